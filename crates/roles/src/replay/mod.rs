//! Replay: recorded grid ticks through a strategy, offline. The tick log holds
//! each tick's news (usage, output, payments, membership) and the books it was
//! decided on; a replay threads the strategy's *own* books through the news,
//! so a different version decides as it would have live. A book entry the
//! replay has not written yet (the recording starts mid-life) is taken from
//! the recording, so the version that was live reproduces every decision.
//!
//! Payments follow the replayed bills: the recorded payments were made on the
//! recorded bills, so in a tick in which a consumer paid, it pays the
//! replayed strategy the same share of *its* bills as it had paid of the
//! recorded ones ([`crate::experiment::billing::modeled_paid`]; payments on
//! bills from before the recording are left out). A tick the same version
//! decided live gets the recorded payments as they were: that is what its
//! books saw (during an experiment, the grid's books saw every cohort's
//! payments), and the replay reproduces its decision.

pub mod compare;
pub mod recording;

use std::collections::{BTreeMap, BTreeSet};

use crate::books::{Books, GridNews};
use crate::experiment::billing::modeled_paid;
use crate::tick_log::{GridTickRecord, Outcome};
use powerplug_strategy::{GridDecision, GridInput, GridStrategy, PaymentRequest, Transfer};

/// What decides in a replay: a grid strategy component, or (in benchmarks)
/// anything else that maps an input to a decision.
pub trait Decide {
    fn sha256(&self) -> &powerplug_strategy::Sha256;
    fn decide(&self, input: &GridInput) -> Result<GridDecision, String>;
}

impl Decide for GridStrategy {
    fn sha256(&self) -> &powerplug_strategy::Sha256 {
        &self.info().sha256
    }

    fn decide(&self, input: &GridInput) -> Result<GridDecision, String> {
        self.tick(input)
            .map(|o| o.decision)
            .map_err(|f| f.to_string())
    }
}

/// What one strategy decided over a recording.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub sha256: powerplug_strategy::Sha256,
    /// Ticks replayed (recorded failures are skipped: their news came again).
    pub ticks: u64,
    pub usage_records: u64,
    /// Recorded decisions of this same version, and how many came out equal.
    pub comparable: u64,
    pub reproduced: u64,
    /// The first tick whose decision differs from the recorded one.
    pub first_mismatch: Option<u64>,
    /// Per consumer: (Wh billed, tokens requested, Wh used).
    pub consumers: BTreeMap<u32, ConsumerBill>,
    /// Per tick: (time, tokens requested, paid out, income by the model).
    pub series: Vec<(u64, u64, u64, u64)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerBill {
    pub used_wh: u64,
    pub billed_wh: u64,
    pub owed: u64,
    /// What it paid the replayed strategy, by the payment model.
    pub paid: u64,
    /// The recorded bills and payments the model follows.
    pub recorded_owed: u64,
    pub recorded_paid: u64,
}

impl Replayed {
    pub fn requested(&self) -> u64 {
        self.consumers.values().map(|c| c.owed).sum()
    }

    pub fn paid_out(&self) -> u64 {
        self.series.iter().map(|s| s.2).sum()
    }

    /// What consumers paid it, by the payment model.
    pub fn income(&self) -> u64 {
        self.series.iter().map(|s| s.3).sum()
    }
}

/// The payments of `news` as the replayed strategy takes them in: each
/// paying consumer's, by the payment model, on its replayed bills so far;
/// `as_recorded`: the recorded ones.
fn model_payments(
    news: &mut GridNews,
    consumers: &mut BTreeMap<u32, ConsumerBill>,
    as_recorded: bool,
) {
    let mut paid: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for t in news.transfers.iter().filter(|t| t.incoming) {
        if let Some(c) = t.entity {
            let p = paid.entry(c).or_default();
            p.0 += t.amount;
            p.1 = p.1.max(t.at_ms);
        }
    }
    let mut changed = BTreeMap::new();
    for (&consumer, &(amount, at_ms)) in &paid {
        let c = consumers.entry(consumer).or_default();
        c.recorded_paid += amount;
        let pays = match as_recorded {
            true => amount,
            false => modeled_paid(c.recorded_owed, c.recorded_paid, c.owed).saturating_sub(c.paid),
        };
        c.paid += pays;
        if pays != amount {
            changed.insert(consumer, (pays, at_ms));
        }
    }
    if changed.is_empty() {
        return; // the recorded transfers, as they were
    }
    news.transfers
        .retain(|t| !(t.incoming && t.entity.is_some_and(|c| changed.contains_key(&c))));
    for (consumer, (amount, at_ms)) in changed.into_iter().filter(|c| c.1.0 > 0) {
        news.transfers.push(Transfer {
            entity: Some(consumer),
            amount,
            at_ms,
            incoming: true,
        });
    }
}

/// The news of a recorded tick, for the consumers in `only` (all if `None`):
/// their usage and payments; producers' output and membership always.
fn news(record: &GridTickRecord, only: Option<&BTreeSet<u32>>) -> GridNews {
    let input = &record.input;
    let keep = |c: u32| only.is_none_or(|o| o.contains(&c));
    let u = &input.usage;
    GridNews {
        joined: input.joined.clone(),
        left: input.left.clone(),
        usage: (0..u.consumer.len())
            .filter(|&i| keep(u.consumer[i]))
            .map(|i| powerplug_strategy::Usage {
                consumer: u.consumer[i],
                start_ms: u.start_ms[i],
                end_ms: u.end_ms[i],
                wh: u.wh[i],
            })
            .collect(),
        output: input.output.to_vec(),
        transfers: input
            .transfers
            .iter()
            .filter(|t| match only {
                None => true,
                // A subset's books see its own consumers' payments only.
                Some(o) => t.incoming && t.entity.is_some_and(|c| o.contains(&c)),
            })
            .cloned()
            .collect::<Vec<Transfer>>(),
    }
}

/// Replays `records` (oldest first) through `strategy`; `progress` hears
/// how many ticks are done.
pub fn replay(
    strategy: &dyn Decide,
    records: &[GridTickRecord],
    only: Option<&BTreeSet<u32>>,
    progress: &mut dyn FnMut(usize),
) -> anyhow::Result<Replayed> {
    let sha = *strategy.sha256();
    let mut out = Replayed {
        sha256: sha,
        ticks: 0,
        usage_records: 0,
        comparable: 0,
        reproduced: 0,
        first_mismatch: None,
        consumers: BTreeMap::new(),
        series: Vec::new(),
    };
    let mut books = Books::default();
    for (i, record) in records.iter().enumerate() {
        let recorded = match &record.outcome {
            Outcome::Decided(d) => d,
            Outcome::Failed(_) => continue,
        };
        if out.ticks == 0 {
            books.state = record.input.state.clone();
        }
        for (entity, words) in record.input.cells.iter() {
            books.cells.entry(entity).or_insert(words);
        }
        let mut news = news(record, only);
        for (c, wh) in news.usage.iter().map(|u| (u.consumer, u.wh)) {
            out.consumers.entry(c).or_default().used_wh += wh;
            out.usage_records += 1;
        }
        model_payments(&mut news, &mut out.consumers, record.strategy == sha);
        let income = news
            .transfers
            .iter()
            .filter(|t| t.incoming)
            .map(|t| t.amount)
            .sum();
        let input = books.grid_input(record.input.now_ms, &record.input.config, news);
        let decision = strategy
            .decide(&input)
            .map_err(|why| anyhow::anyhow!("tick {}: {why}", record.tick))?;
        books.apply_grid(&decision);
        if only.is_none() && record.strategy == sha {
            out.comparable += 1;
            if *recorded == decision {
                out.reproduced += 1;
            } else if out.first_mismatch.is_none() {
                out.first_mismatch = Some(record.tick);
            }
        }
        let mut requested = 0;
        for PaymentRequest { consumer, wh, owed } in decision.payment_requests.iter() {
            let c = out.consumers.entry(consumer).or_default();
            c.billed_wh += wh;
            c.owed += owed;
            requested += owed;
        }
        for r in recorded.payment_requests.iter() {
            if only.is_none_or(|o| o.contains(&r.consumer)) {
                out.consumers.entry(r.consumer).or_default().recorded_owed += r.owed;
            }
        }
        let paid_out = decision.payouts.iter().map(|p| p.amount).sum();
        out.series
            .push((record.input.now_ms, requested, paid_out, income));
        out.ticks += 1;
        progress(i + 1);
    }
    Ok(out)
}
