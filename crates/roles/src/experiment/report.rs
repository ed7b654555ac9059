//! An experiment's report: each variant's results on its own cohort, every
//! variant's bills on every consumer (the counterfactuals), and each
//! difference from the control with a 95% confidence interval over consumers.

use serde::Serialize;

use super::Experiment;
use super::results::{ConsumerRow, TickRow};

/// How producers are paid while an experiment runs (in every report).
pub const PAYOUT_RULE: &str = "Producers are paid from the pooled income of all cohorts by the control's rule: the grid's own books, run by the active version, see every consumer's usage and payment, and only their payouts are carried out. The payouts so far are attributed to consumers by their share of the energy used so far; a cohort's grid margin is what it paid minus its share.";

/// What a counterfactual consumer pays (in every report).
pub const PAYMENT_MODEL: &str = "Counterfactual payments: in each tick in which a consumer actually paid, it pays under each other variant the same share of that variant's bills as it had by then paid of the bills it was actually sent (lifetime, at most all of them). A variant's books on the other cohorts take in these payments, not the ones made on other bills, so its income follows its bills and its rule's payouts follow its income. Each variant's books on its own cohort see the real payments.";

/// Over which span the figures count (in every report).
pub const SPAN: &str = "Usage, bills and payments count from the experiment's start; what a consumer had used but not been billed, and been billed but not paid, before it is carried as its opening balances: billed ≤ opening unbilled + used, and outstanding = opening outstanding + requested − collected.";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub experiment: Experiment,
    pub ticks: u64,
    pub payout_rule: &'static str,
    pub payment_model: &'static str,
    pub span: &'static str,
    pub variants: Vec<VariantResult>,
    pub differences: Vec<Difference>,
    pub series: Series,
    /// Every consumer the experiment saw, by index.
    pub consumers: Vec<ConsumerLine>,
}

/// One consumer: its real figures and its bill under every variant.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerLine {
    pub consumer: u32,
    /// Its registered id (`#index` if the grid no longer knows it).
    pub id: String,
    /// The variant that billed it.
    pub variant: String,
    pub opening_unbilled_wh: i64,
    pub opening_outstanding: i64,
    pub usage_wh: u64,
    pub billed_wh: u64,
    pub requested: u64,
    pub collected: u64,
    pub outstanding: i64,
    /// By variant (in the experiment's order): its own variant's real bill
    /// and payments, the others' counterfactual ones.
    pub under: Vec<UnderVariant>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnderVariant {
    pub wh: u64,
    pub owed: u64,
    /// Paid: really (its own variant), by the payment model (the others).
    pub paid: u64,
}

/// A variant on its own cohort, and on everyone.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    pub name: String,
    pub version: String,
    pub weight: u32,
    pub control: bool,
    /// Consumers of its cohort seen since the start.
    pub consumers: u64,
    /// Before the start: used but not billed, billed but not paid.
    pub opening_unbilled_wh: i64,
    pub opening_outstanding: i64,
    pub usage_wh: u64,
    pub billed_wh: u64,
    pub requested: u64,
    pub collected: u64,
    /// opening outstanding + requested − collected.
    pub outstanding: i64,
    /// collected / (opening outstanding + requested).
    pub collection_rate: Option<f64>,
    pub price_per_kwh: Option<f64>,
    /// Token-weighted mean time from a request to its payment (FIFO).
    pub mean_time_to_payment_ms: Option<f64>,
    pub producer_payouts: u64,
    pub margin: i64,
    /// Its bills on every consumer (its cohort's real ones and the others'
    /// counterfactual ones), and the payouts its rule decided.
    pub everyone: Everyone,
}

#[derive(Debug, Clone, Serialize)]
pub struct Everyone {
    pub consumers: u64,
    pub billed_wh: u64,
    pub requested: u64,
    pub price_per_kwh: Option<f64>,
    /// Its cohort's real payments and, by the payment model, the others'.
    pub income: u64,
    pub payouts_decided: u64,
    /// income − payouts_decided.
    pub margin: i64,
}

/// `variant` minus `control` in `metric`, per consumer.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub variant: String,
    pub control: String,
    pub metric: &'static str,
    /// Paired: the same consumers under both (counterfactual bills);
    /// otherwise the two cohorts (Welch).
    pub paired: bool,
    pub estimate: f64,
    /// 95% confidence interval; none with fewer than two consumers a side.
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub consumers: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub at_ms: Vec<u64>,
    pub variants: Vec<VariantSeries>,
}

/// Running totals per tick.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VariantSeries {
    pub name: String,
    pub requested: Vec<u64>,
    pub collected: Vec<u64>,
    pub margin: Vec<i64>,
    /// Its bills on every consumer.
    pub everyone_requested: Vec<u64>,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Producer payouts attributed to consumers by energy used.
struct Attribution {
    paid_out: u128,
    used_wh: u128,
}

impl Attribution {
    fn of(&self, used_wh: u64) -> u64 {
        (self.paid_out * u128::from(used_wh))
            .checked_div(self.used_wh)
            .unwrap_or(0) as u64
    }

    fn margin(&self, r: &ConsumerRow) -> i64 {
        r.collected as i64 - self.of(r.usage_wh) as i64
    }
}

/// The report; `id_of` names a consumer index.
pub fn build(
    experiment: &Experiment,
    consumers: &[ConsumerRow],
    ticks: &[TickRow],
    id_of: &dyn Fn(u32) -> Option<String>,
) -> Report {
    let n = experiment.variants.len();
    let share = Attribution {
        paid_out: ticks.iter().map(|t| u128::from(t.paid_out)).sum(),
        used_wh: consumers.iter().map(|r| u128::from(r.usage_wh)).sum(),
    };
    let cohort = |v: usize| consumers.iter().filter(move |r| r.variant as usize == v);
    let variants = (0..n)
        .map(|v| {
            let spec = &experiment.variants[v];
            let sum = |f: fn(&ConsumerRow) -> u64| cohort(v).map(f).sum::<u64>();
            let (requested, collected, billed_wh) = (
                sum(|r| r.requested),
                sum(|r| r.collected),
                sum(|r| r.billed_wh),
            );
            let opening_unbilled_wh: i64 = cohort(v).map(|r| r.opening.unbilled_wh()).sum();
            let opening_outstanding: i64 = cohort(v).map(|r| r.opening.outstanding()).sum();
            let owed = opening_outstanding + requested as i64;
            let income: u64 = consumers.iter().map(|r| paid_under(r, v)).sum();
            let payouts_decided: u64 = ticks
                .iter()
                .filter_map(|t| t.variants.get(v))
                .map(|t| t.payouts_decided)
                .sum();
            let payouts = share.of(sum(|r| r.usage_wh));
            let waited: u128 = cohort(v).map(|r| r.waited_token_ms).sum();
            let settled = sum(|r| r.settled);
            let all_wh: u64 = consumers.iter().map(|r| bill(r, v).0).sum();
            let all_owed: u64 = consumers.iter().map(|r| bill(r, v).1).sum();
            VariantResult {
                name: spec.name.clone(),
                version: spec.version.clone(),
                weight: spec.weight,
                control: v == experiment.control,
                consumers: cohort(v).count() as u64,
                opening_unbilled_wh,
                opening_outstanding,
                usage_wh: sum(|r| r.usage_wh),
                billed_wh,
                requested,
                collected,
                outstanding: owed - collected as i64,
                collection_rate: ratio(collected, owed.max(0) as u64),
                price_per_kwh: ratio(requested * 1000, billed_wh),
                mean_time_to_payment_ms: (settled > 0).then(|| waited as f64 / settled as f64),
                producer_payouts: payouts,
                margin: collected as i64 - payouts as i64,
                everyone: Everyone {
                    consumers: consumers.len() as u64,
                    billed_wh: all_wh,
                    requested: all_owed,
                    price_per_kwh: ratio(all_owed * 1000, all_wh),
                    income,
                    payouts_decided,
                    margin: income as i64 - payouts_decided as i64,
                },
            }
        })
        .collect();
    Report {
        experiment: experiment.clone(),
        ticks: ticks.len() as u64,
        payout_rule: PAYOUT_RULE,
        payment_model: PAYMENT_MODEL,
        span: SPAN,
        variants,
        differences: differences(experiment, consumers, &share),
        series: series(experiment, ticks),
        consumers: consumers
            .iter()
            .map(|r| line(experiment, r, id_of))
            .collect(),
    }
}

/// What `r` paid under variant `v`: really, or by the payment model.
fn paid_under(r: &ConsumerRow, v: usize) -> u64 {
    match r.variant as usize == v {
        true => r.collected,
        false => r.cf_paid.get(v).copied().unwrap_or(0),
    }
}

fn line(e: &Experiment, r: &ConsumerRow, id_of: &dyn Fn(u32) -> Option<String>) -> ConsumerLine {
    let owed = r.opening.outstanding() + r.requested as i64;
    ConsumerLine {
        consumer: r.consumer,
        id: id_of(r.consumer).unwrap_or_else(|| format!("#{}", r.consumer)),
        variant: e
            .variants
            .get(r.variant as usize)
            .map_or_else(String::new, |v| v.name.clone()),
        opening_unbilled_wh: r.opening.unbilled_wh(),
        opening_outstanding: r.opening.outstanding(),
        usage_wh: r.usage_wh,
        billed_wh: r.billed_wh,
        requested: r.requested,
        collected: r.collected,
        outstanding: owed - r.collected as i64,
        under: (0..e.variants.len())
            .map(|v| {
                let (wh, owed) = bill(r, v);
                UnderVariant {
                    wh,
                    owed,
                    paid: paid_under(r, v),
                }
            })
            .collect(),
    }
}

/// The consumer table as CSV: one row per consumer, then per variant its
/// bill's Wh, tokens and payments.
pub fn csv(report: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::from(
        "consumer,id,variant,opening_unbilled_wh,opening_outstanding,usage_wh,billed_wh,requested,collected,outstanding",
    );
    for v in &report.experiment.variants {
        let _ = write!(s, ",{0}_wh,{0}_owed,{0}_paid", csv_field(&v.name));
    }
    s.push('\n');
    for c in &report.consumers {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            c.consumer,
            csv_field(&c.id),
            csv_field(&c.variant),
            c.opening_unbilled_wh,
            c.opening_outstanding,
            c.usage_wh,
            c.billed_wh,
            c.requested,
            c.collected,
            c.outstanding
        );
        for u in &c.under {
            let _ = write!(s, ",{},{},{}", u.wh, u.owed, u.paid);
        }
        s.push('\n');
    }
    s
}

/// Ids and names are `A-Z a-z 0-9 _ - .`; quoted anyway should that change.
fn csv_field(text: &str) -> String {
    match text.contains([',', '"', '\n']) {
        true => format!("\"{}\"", text.replace('"', "\"\"")),
        false => text.to_owned(),
    }
}

/// A consumer's bill under variant `v`: (wh, owed).
fn bill(r: &ConsumerRow, v: usize) -> (u64, u64) {
    r.bills.get(v).map_or((0, 0), |b| (b.wh, b.owed))
}

/// Per-consumer metrics compared between cohorts.
type Metric = (&'static str, fn(&ConsumerRow, &Attribution) -> Option<f64>);

const COHORT_METRICS: [Metric; 6] = [
    ("tokens requested per consumer", |r, _| {
        Some(r.requested as f64)
    }),
    ("tokens collected per consumer", |r, _| {
        Some(r.collected as f64)
    }),
    ("grid margin per consumer", |r, a| Some(a.margin(r) as f64)),
    ("collection rate", |r, _| {
        let owed = r.opening.outstanding() + r.requested as i64;
        ratio(r.collected, owed.max(0) as u64)
    }),
    ("price per kWh", |r, _| {
        ratio(r.requested * 1000, r.billed_wh)
    }),
    ("time to payment (s)", |r, _| {
        (r.settled > 0).then(|| r.waited_token_ms as f64 / r.settled as f64 / 1000.0)
    }),
];

fn differences(e: &Experiment, consumers: &[ConsumerRow], share: &Attribution) -> Vec<Difference> {
    let c = e.control;
    let mut out = Vec::new();
    for v in (0..e.variants.len()).filter(|&v| v != c) {
        let named =
            |metric, paired, (estimate, low, high, n): (f64, Option<f64>, Option<f64>, u64)| {
                Difference {
                    variant: e.variants[v].name.clone(),
                    control: e.variants[c].name.clone(),
                    metric,
                    paired,
                    estimate,
                    low,
                    high,
                    consumers: n,
                }
            };
        let owed: Vec<f64> = consumers
            .iter()
            .map(|r| bill(r, v).1 as f64 - bill(r, c).1 as f64)
            .collect();
        out.push(named(
            "bill per consumer, same consumers",
            true,
            paired(&owed),
        ));
        let wh: Vec<f64> = consumers
            .iter()
            .map(|r| bill(r, v).0 as f64 - bill(r, c).0 as f64)
            .collect();
        out.push(named(
            "Wh billed per consumer, same consumers",
            true,
            paired(&wh),
        ));
        for (metric, f) in COHORT_METRICS {
            let of = |variant: usize| -> Vec<f64> {
                consumers
                    .iter()
                    .filter(|r| r.variant as usize == variant)
                    .filter_map(|r| f(r, share))
                    .collect()
            };
            out.push(named(metric, false, welch(&of(v), &of(c))));
        }
    }
    out
}

fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n.max(1.0);
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        f64::NAN
    };
    (mean, var)
}

/// Mean of paired differences and its 95% interval (Student's t).
pub fn paired(diffs: &[f64]) -> (f64, Option<f64>, Option<f64>, u64) {
    let (mean, var) = mean_var(diffs);
    let n = diffs.len();
    if n < 2 {
        return (mean, None, None, n as u64);
    }
    let half = t975((n - 1) as f64) * (var / n as f64).sqrt();
    (mean, Some(mean - half), Some(mean + half), n as u64)
}

/// Difference of means of two samples and its 95% interval (Welch).
pub fn welch(a: &[f64], b: &[f64]) -> (f64, Option<f64>, Option<f64>, u64) {
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    let n = (a.len() + b.len()) as u64;
    let estimate = ma - mb;
    if a.len() < 2 || b.len() < 2 {
        return (estimate, None, None, n);
    }
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se = (sa + sb).sqrt();
    if se == 0.0 {
        return (estimate, Some(estimate), Some(estimate), n);
    }
    let df = (sa + sb).powi(2)
        / (sa.powi(2) / (a.len() as f64 - 1.0) + sb.powi(2) / (b.len() as f64 - 1.0));
    let half = t975(df) * se;
    (estimate, Some(estimate - half), Some(estimate + half), n)
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom.
fn t975(df: f64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if !df.is_finite() || df >= 30.0 {
        // Within 0.5% of the exact value above 30.
        return 1.960 + 2.4 / df.max(30.0);
    }
    TABLE[(df.floor() as usize).clamp(1, 30) - 1]
}

fn series(e: &Experiment, ticks: &[TickRow]) -> Series {
    let mut s = Series {
        at_ms: ticks.iter().map(|t| t.at_ms).collect(),
        variants: e
            .variants
            .iter()
            .map(|v| VariantSeries {
                name: v.name.clone(),
                ..Default::default()
            })
            .collect(),
    };
    for (v, out) in s.variants.iter_mut().enumerate() {
        let (mut requested, mut collected, mut everyone, mut used) = (0u64, 0u64, 0u64, 0u64);
        let mut so_far = Attribution {
            paid_out: 0,
            used_wh: 0,
        };
        for t in ticks {
            let Some(vt) = t.variants.get(v) else {
                continue;
            };
            so_far.paid_out += u128::from(t.paid_out);
            so_far.used_wh += t
                .variants
                .iter()
                .map(|x| u128::from(x.usage_wh))
                .sum::<u128>();
            requested += vt.requested;
            collected += vt.collected;
            everyone += vt.all.owed;
            used += vt.usage_wh;
            out.requested.push(requested);
            out.collected.push(collected);
            out.margin.push(collected as i64 - so_far.of(used) as i64);
            out.everyone_requested.push(everyone);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_matches_a_hand_computed_interval() {
        // a: mean 5, var 2.5 (n 5); b: mean 3, var 2.5 (n 5): se = 1, df = 8.
        let a = [3.0, 4.0, 5.0, 6.0, 7.0];
        let b = [1.0, 2.0, 3.0, 4.0, 5.0];
        let (d, lo, hi, n) = welch(&a, &b);
        assert_eq!((d, n), (2.0, 10));
        assert!((lo.unwrap_or(0.0) - (2.0 - 2.306)).abs() < 1e-9);
        assert!((hi.unwrap_or(0.0) - (2.0 + 2.306)).abs() < 1e-9);
    }

    #[test]
    fn constant_paired_differences_have_a_zero_width_interval() {
        let (d, lo, hi, _) = paired(&[2.0; 50]);
        assert_eq!((d, lo, hi), (2.0, Some(2.0), Some(2.0)));
        assert_eq!(paired(&[1.0]).1, None);
    }
}
