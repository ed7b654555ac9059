//! A replay's output: a table per consumer and in total (one strategy, or two
//! side by side), and a chart of cumulative bills and margins over time.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{ConsumerBill, Replayed};
use crate::chart::{Chart, Line};
use crate::tick_log::GridTickRecord;

/// Entity index → id, from the membership news in the recording.
pub fn names(records: &[GridTickRecord]) -> BTreeMap<u32, String> {
    records
        .iter()
        .flat_map(|r| r.input.joined.iter())
        .map(|e| (e.index, e.id.clone()))
        .collect()
}

fn kwh(wh: u64) -> String {
    format!("{:.1}", wh as f64 / 1000.0)
}

/// The per-consumer table (the `top` largest differences, or the largest
/// bills with one strategy) and the totals.
pub fn table(
    a: &Replayed,
    b: Option<&Replayed>,
    names: &BTreeMap<u32, String>,
    top: usize,
) -> String {
    let mut s = String::new();
    let zero = ConsumerBill::default();
    let bill_b = |c: &u32| b.and_then(|b| b.consumers.get(c)).copied().unwrap_or(zero);
    let mut rows: Vec<(&u32, &ConsumerBill)> = a.consumers.iter().collect();
    match b {
        Some(_) => rows.sort_by_key(|(c, x)| std::cmp::Reverse(x.owed.abs_diff(bill_b(c).owed))),
        None => rows.sort_by_key(|(_, x)| std::cmp::Reverse(x.owed)),
    }
    let name = |c: &u32| names.get(c).cloned().unwrap_or_else(|| format!("#{c}"));
    match b {
        Some(_) => {
            let _ = writeln!(
                s,
                "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "consumer", "used kWh", "A kWh", "A owed", "B kWh", "B owed", "B − A"
            );
            for (c, x) in rows.iter().take(top) {
                let y = bill_b(c);
                let _ = writeln!(
                    s,
                    "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>+10}",
                    name(c),
                    kwh(x.used_wh),
                    kwh(x.billed_wh),
                    x.owed,
                    kwh(y.billed_wh),
                    y.owed,
                    y.owed as i64 - x.owed as i64
                );
            }
        }
        None => {
            let _ = writeln!(
                s,
                "{:<20} {:>10} {:>10} {:>10}",
                "consumer", "used kWh", "kWh", "owed"
            );
            for (c, x) in rows.iter().take(top) {
                let _ = writeln!(
                    s,
                    "{:<20} {:>10} {:>10} {:>10}",
                    name(c),
                    kwh(x.used_wh),
                    kwh(x.billed_wh),
                    x.owed
                );
            }
        }
    }
    if rows.len() > top {
        let _ = writeln!(s, "… and {} more consumers", rows.len() - top);
    }
    let _ = writeln!(s);
    let ta = Totals::of(a);
    let tb = b.map(Totals::of);
    let _ = writeln!(
        s,
        "{:<36} {:>16} {:>16}",
        "total",
        "A",
        if b.is_some() { "B" } else { "" }
    );
    let rows: [(&str, Column); 7] = [
        ("kWh billed", |t| &t.kwh),
        ("tokens requested", |t| &t.requested),
        ("average price per kWh", |t| &t.price),
        ("income (payment model)", |t| &t.income),
        ("producer payouts decided", |t| &t.paid_out),
        ("grid margin (income − payouts)", |t| &t.margin),
        ("recorded decisions reproduced", |t| &t.reproduced),
    ];
    for (label, pick) in rows {
        let _ = writeln!(
            s,
            "{:<36} {:>16} {:>16}",
            label,
            pick(&ta),
            tb.as_ref().map_or("", pick)
        );
    }
    let _ = writeln!(
        s,
        "{} ticks, {} usage records, {} consumers",
        a.ticks,
        a.usage_records,
        a.consumers.len()
    );
    let _ = writeln!(
        s,
        "Payment model: in each tick in which a consumer paid, it pays each strategy the same share of that strategy's bills as it had paid of the recorded bills (at most all of them; what it paid beyond them, on bills from before the recording, stands)."
    );
    s
}

/// Picks one figure of a [`Totals`].
type Column = fn(&Totals) -> &str;

/// One strategy's column of the totals, as printed.
struct Totals {
    kwh: String,
    requested: String,
    price: String,
    income: String,
    paid_out: String,
    margin: String,
    reproduced: String,
}

impl Totals {
    fn of(r: &Replayed) -> Self {
        let billed: u64 = r.consumers.values().map(|c| c.billed_wh).sum();
        let (requested, paid_out, income) = (r.requested(), r.paid_out(), r.income());
        Self {
            kwh: kwh(billed),
            requested: requested.to_string(),
            price: match billed {
                0 => "–".to_owned(),
                _ => format!("{:.2}", requested as f64 * 1000.0 / billed as f64),
            },
            income: income.to_string(),
            paid_out: paid_out.to_string(),
            margin: (income as i64 - paid_out as i64).to_string(),
            reproduced: match r.comparable {
                0 => "–".to_owned(),
                n => format!("{}/{n}", r.reproduced),
            },
        }
    }
}

/// Cumulative bills and margins of each replayed strategy over time.
pub fn chart(runs: &[(&str, &Replayed)]) -> String {
    let Some((_, first)) = runs.first() else {
        return String::new();
    };
    let start = first.series.first().map_or(0, |s| s.0);
    let xs = first
        .series
        .iter()
        .map(|s| (s.0 - start) as f64 / 60_000.0)
        .collect();
    let mut lines = Vec::new();
    for (i, (name, r)) in runs.iter().enumerate() {
        let (mut bills, mut margin) = (Vec::new(), Vec::new());
        let (mut requested, mut paid, mut income) = (0u64, 0u64, 0u64);
        for &(_, req, out, inc) in &r.series {
            requested += req;
            paid += out;
            income += inc;
            bills.push(requested as f64);
            margin.push(income as f64 - paid as f64);
        }
        lines.push(Line {
            name: format!("{name}: bills"),
            ys: bills,
            colour: i,
            dashed: false,
        });
        lines.push(Line {
            name: format!("{name}: margin"),
            ys: margin,
            colour: i,
            dashed: true,
        });
    }
    Chart {
        title: "Replay: cumulative bills and grid margin (income − payouts)",
        x_label: "grid minutes since the first recorded tick",
        y_label: "tokens",
        xs,
        lines,
    }
    .svg()
}
