//! The report as one HTML page: tables and inline SVG charts, no scripts.

use std::fmt::Write;

use super::Status;
use super::report::{Difference, Report};
use crate::chart::{Chart, Line};

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
}

fn interval(d: &Difference) -> String {
    match (d.low, d.high) {
        (Some(lo), Some(hi)) => {
            let verdict = if lo > 0.0 {
                "higher"
            } else if hi < 0.0 {
                "lower"
            } else {
                "no clear difference"
            };
            format!("[{lo:.3}, {hi:.3}]</td><td>{verdict}")
        }
        _ => "too few consumers</td><td>–".to_owned(),
    }
}

fn status(s: &Status) -> String {
    match s {
        Status::Scheduled => "scheduled".to_owned(),
        Status::Running { since_ms } => format!("running since grid time {since_ms}"),
        Status::Stopped { at_ms, reason } => {
            format!("stopped at grid time {at_ms}: {}", esc(reason))
        }
        Status::Promoted { at_ms, variant } => {
            format!(
                "ended at grid time {at_ms}: <b>{}</b> promoted",
                esc(variant)
            )
        }
    }
}

/// Consumers per page of the consumer table.
pub const PER_PAGE: usize = 100;

/// How many pages the consumer table has (one at least).
pub fn pages(report: &Report) -> usize {
    report.consumers.len().div_ceil(PER_PAGE).max(1)
}

/// The page, with page `number` (from 1) of the consumer table. Its links
/// carry no token: the browser sends the one it logged in with.
pub fn render(report: &Report, number: usize) -> String {
    let e = &report.experiment;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Experiment {id}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}</style></head><body>\
         <h1>Experiment <code>{id}</code></h1><p>{status} · {ticks} ticks recorded · start at grid time {start}</p>",
        id = esc(&e.id),
        status = status(&e.status),
        ticks = report.ticks,
        start = e.start_ms,
    );
    h.push_str("<h2>Each cohort under its own variant</h2><table><tr><th>variant</th><th>consumers</th><th>kWh unbilled at the start</th><th>kWh used</th><th>kWh billed</th><th>outstanding at the start</th><th>tokens requested</th><th>collected</th><th>outstanding</th><th>collection rate</th><th>price per kWh</th><th>time to payment (s)</th><th>producer payouts</th><th>grid margin</th></tr>");
    for v in &report.variants {
        let _ = write!(
            h,
            "<tr><td>{}{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&v.name),
            if v.control { " (control)" } else { "" },
            v.consumers,
            v.opening_unbilled_wh as f64 / 1000.0,
            v.usage_wh as f64 / 1000.0,
            v.billed_wh as f64 / 1000.0,
            v.opening_outstanding,
            v.requested,
            v.collected,
            v.outstanding,
            opt(v.collection_rate, 3),
            opt(v.price_per_kwh, 2),
            opt(v.mean_time_to_payment_ms.map(|ms| ms / 1000.0), 1),
            v.producer_payouts,
            v.margin,
        );
    }
    let _ = write!(
        h,
        "</table><p>{}</p><h2>Every variant on every consumer (counterfactual bills)</h2><table><tr><th>variant</th><th>consumers</th><th>kWh billed</th><th>tokens requested</th><th>price per kWh</th><th>income (modeled on other cohorts)</th><th>payouts its rule decided</th><th>margin</th></tr>",
        esc(report.span)
    );
    for v in &report.variants {
        let a = &v.everyone;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&v.name),
            a.consumers,
            a.billed_wh as f64 / 1000.0,
            a.requested,
            opt(a.price_per_kwh, 2),
            a.income,
            a.payouts_decided,
            a.margin
        );
    }
    let _ = write!(h, "</table><p>{}</p>", esc(report.payment_model));
    h.push_str("<h2>Differences from the control (95% confidence intervals over consumers)</h2><table><tr><th>variant − control</th><th>metric</th><th>compared</th><th>estimate</th><th>95% interval</th><th>verdict</th><th>consumers</th></tr>");
    for d in &report.differences {
        let _ = write!(
            h,
            "<tr><td>{} − {}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.variant),
            esc(&d.control),
            d.metric,
            if d.paired {
                "same consumers"
            } else {
                "cohorts"
            },
            d.estimate,
            interval(d),
            d.consumers
        );
    }
    h.push_str("</table>");
    let start = report.series.at_ms.first().copied().unwrap_or(0);
    let xs: Vec<f64> = report
        .series
        .at_ms
        .iter()
        .map(|t| (t - start) as f64 / 60_000.0)
        .collect();
    let chart = |title: &str, y: &str, pick: &dyn Fn(usize) -> Vec<f64>| {
        Chart {
            title,
            x_label: "grid minutes since the start",
            y_label: y,
            xs: xs.clone(),
            lines: report
                .series
                .variants
                .iter()
                .enumerate()
                .map(|(i, v)| Line {
                    name: v.name.clone(),
                    ys: pick(i),
                    colour: i,
                    dashed: false,
                })
                .collect(),
        }
        .svg()
    };
    h.push_str("<h2>Over time</h2>");
    h.push_str(&chart(
        "Cumulative bills on every consumer",
        "tokens",
        &|i| {
            report.series.variants[i]
                .everyone_requested
                .iter()
                .map(|&x| x as f64)
                .collect()
        },
    ));
    h.push_str(&chart(
        "Cumulative grid margin per consumer of each cohort",
        "tokens per consumer",
        &|i| {
            let n = report.variants[i].consumers.max(1) as f64;
            report.series.variants[i]
                .margin
                .iter()
                .map(|&x| x as f64 / n)
                .collect()
        },
    ));
    h.push_str(&bills_chart(report));
    consumer_table(&mut h, report, number, &|p| format!("?page={p}"));
    let _ = write!(
        h,
        "<h2>How producers were paid</h2><p>{}</p><p>The same as JSON: <a href=\"report\">report</a>; the consumer table as CSV: <a href=\"report.csv\">report.csv</a></p></body></html>",
        esc(report.payout_rule),
    );
    h
}

/// Each consumer's bill under each variant, consumers in order of their
/// bill under the control: how the policies differ consumer by consumer.
fn bills_chart(report: &Report) -> String {
    let control = report.variants.iter().position(|v| v.control).unwrap_or(0);
    let mut order: Vec<usize> = (0..report.consumers.len()).collect();
    order.sort_by_key(|&i| report.consumers[i].under.get(control).map_or(0, |u| u.owed));
    Chart {
        title: "Each consumer's bill under each variant",
        x_label: "consumers, by their bill under the control",
        y_label: "tokens",
        xs: (1..=order.len()).map(|i| i as f64).collect(),
        lines: report
            .variants
            .iter()
            .enumerate()
            .map(|(v, variant)| Line {
                name: variant.name.clone(),
                ys: order
                    .iter()
                    .map(|&i| {
                        report.consumers[i]
                            .under
                            .get(v)
                            .map_or(0.0, |u| u.owed as f64)
                    })
                    .collect(),
                colour: v,
                dashed: false,
            })
            .collect(),
    }
    .svg()
}

/// Page `number` of the consumer table, with links to the other pages.
fn consumer_table(h: &mut String, report: &Report, number: usize, link: &dyn Fn(usize) -> String) {
    let pages = pages(report);
    let _ = write!(
        h,
        "<h2>Each consumer</h2><p>{} consumers, page {number} of {pages}. Its own variant's bill and payments are real; the others' are counterfactual (payments by the model above).</p><table><tr><th>consumer</th><th>cohort</th><th>kWh unbilled at the start</th><th>kWh used</th><th>kWh billed</th><th>outstanding at the start</th><th>requested</th><th>collected</th><th>outstanding</th>",
        report.consumers.len()
    );
    for v in &report.variants {
        let _ = write!(
            h,
            "<th>{0}: tokens billed</th><th>{0}: paid</th>",
            esc(&v.name)
        );
    }
    h.push_str("</tr>");
    for c in report
        .consumers
        .iter()
        .skip((number - 1) * PER_PAGE)
        .take(PER_PAGE)
    {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&c.id),
            esc(&c.variant),
            c.opening_unbilled_wh as f64 / 1000.0,
            c.usage_wh as f64 / 1000.0,
            c.billed_wh as f64 / 1000.0,
            c.opening_outstanding,
            c.requested,
            c.collected,
            c.outstanding
        );
        for u in &c.under {
            let _ = write!(h, "<td>{}</td><td>{}</td>", u.owed, u.paid);
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><p>");
    for p in 1..=pages {
        match p == number {
            true => {
                let _ = write!(h, "<b>{p}</b> ");
            }
            false => {
                let _ = write!(h, "<a href=\"report.html{}\">{p}</a> ", link(p));
            }
        }
    }
    h.push_str("</p>");
}
