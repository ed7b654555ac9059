//! Replay: recorded grid ticks through a strategy, offline. The tick log holds
//! each tick's news (usage, output, payments, membership) and the books it was
//! decided on; a replay threads the strategy's *own* books through the news,
//! so a different version decides as it would have live. A book entry the
//! replay has not written yet (the recording starts mid-life) is taken from
//! the recording, so the version that was live reproduces every decision.

pub mod cli;
pub mod compare;
pub mod recording;

use std::collections::{BTreeMap, BTreeSet};

use crate::books::{Books, GridNews};
use crate::strategy::{GridDecision, GridInput, GridStrategy, PaymentRequest, Transfer};
use crate::tick_log::{GridTickRecord, Outcome};

/// What decides in a replay: a grid strategy component, or (in benchmarks)
/// anything else that maps an input to a decision.
pub trait Decide {
    fn sha256(&self) -> &str;
    fn decide(&self, input: &GridInput) -> Result<GridDecision, String>;
}

impl Decide for GridStrategy {
    fn sha256(&self) -> &str {
        &self.info().sha256
    }

    fn decide(&self, input: &GridInput) -> Result<GridDecision, String> {
        self.tick(input)
            .map(|o| o.decision)
            .map_err(|f| f.to_string())
    }
}

/// What one strategy decided over a recording.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    pub sha256: String,
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
    /// Per tick: (time, tokens requested, paid out).
    pub series: Vec<(u64, u64, u64)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerBill {
    pub used_wh: u64,
    pub billed_wh: u64,
    pub owed: u64,
}

impl Replayed {
    pub fn requested(&self) -> u64 {
        self.consumers.values().map(|c| c.owed).sum()
    }

    pub fn paid_out(&self) -> u64 {
        self.series.iter().map(|s| s.2).sum()
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
            .map(|i| crate::strategy::Usage {
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
    let sha = strategy.sha256().to_owned();
    let mut out = Replayed {
        sha256: sha.clone(),
        ..Replayed::default()
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
        let news = news(record, only);
        for (c, wh) in news.usage.iter().map(|u| (u.consumer, u.wh)) {
            out.consumers.entry(c).or_default().used_wh += wh;
            out.usage_records += 1;
        }
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
        let paid_out = decision.payouts.iter().map(|p| p.amount).sum();
        out.series.push((record.input.now_ms, requested, paid_out));
        out.ticks += 1;
        progress(i + 1);
    }
    Ok(out)
}
