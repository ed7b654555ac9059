//! The tick log: every tick's input and what came of it, append-only, written in
//! the tick's own transaction. Dry runs, replays and audits read it: because a
//! strategy decides from its input alone, running the recorded input through the
//! recorded strategy version must give the recorded decision again.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::strategy::{GridDecision, GridInput, ProducerDecision, ProducerInput};

/// (slot, tick number) → record.
const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("tick_log");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<D> {
    Decided(D),
    /// The tick failed; the cause as `CallError` printed it.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickRecord<I, D> {
    pub tick: u64,
    /// SHA-256 of the strategy component that decided.
    pub strategy: String,
    /// SHA-256 of (strategy, encoded input): equal hashes must mean equal decisions.
    pub hash: String,
    pub input: I,
    pub outcome: Outcome<D>,
}

pub type GridTickRecord = TickRecord<GridInput, GridDecision>;
pub type ProducerTickRecord = TickRecord<ProducerInput, ProducerDecision>;

/// Appends a grid tick to `slot`'s log inside the tick's transaction.
pub fn record_grid(
    tx: &WriteTransaction,
    slot: &str,
    strategy_sha256: &str,
    input: GridInput,
    outcome: Outcome<GridDecision>,
) -> anyhow::Result<u64> {
    record(tx, slot, strategy_sha256, input, outcome)
}

/// Appends a producer tick to `slot`'s log inside the tick's transaction.
pub fn record_producer(
    tx: &WriteTransaction,
    slot: &str,
    strategy_sha256: &str,
    input: ProducerInput,
    outcome: Outcome<ProducerDecision>,
) -> anyhow::Result<u64> {
    record(tx, slot, strategy_sha256, input, outcome)
}

fn record<I: Serialize, D: Serialize>(
    tx: &WriteTransaction,
    slot: &str,
    strategy_sha256: &str,
    input: I,
    outcome: Outcome<D>,
) -> anyhow::Result<u64> {
    let mut table = tx.open_table(LOG)?;
    let tick = match table.range((slot, 0)..=(slot, u64::MAX))?.next_back() {
        Some(last) => last?.0.value().1 + 1,
        None => 1,
    };
    let encoded_input = postcard::to_allocvec(&input)?;
    let hash = hex::encode(
        Sha256::new()
            .chain_update(strategy_sha256)
            .chain_update(&encoded_input)
            .finalize(),
    );
    let record = TickRecord {
        tick,
        strategy: strategy_sha256.to_owned(),
        hash,
        input,
        outcome,
    };
    table.insert((slot, tick), postcard::to_allocvec(&record)?.as_slice())?;
    Ok(tick)
}

/// `slot`'s grid ticks after `since`, oldest first, at most `limit`.
pub fn grid_ticks(
    db: &Database,
    slot: &str,
    since: u64,
    limit: usize,
) -> anyhow::Result<Vec<GridTickRecord>> {
    ticks(db, slot, since, limit)
}

/// `slot`'s producer ticks after `since`, oldest first, at most `limit`.
pub fn producer_ticks(
    db: &Database,
    slot: &str,
    since: u64,
    limit: usize,
) -> anyhow::Result<Vec<ProducerTickRecord>> {
    ticks(db, slot, since, limit)
}

fn ticks<R: serde::de::DeserializeOwned>(
    db: &Database,
    slot: &str,
    since: u64,
    limit: usize,
) -> anyhow::Result<Vec<R>> {
    let tx = db.begin_read()?;
    let Some(table) = crate::storage::existing(&tx, LOG)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in table
        .range((slot, since.saturating_add(1))..=(slot, u64::MAX))?
        .take(limit)
    {
        out.push(postcard::from_bytes(entry?.1.value())?);
    }
    Ok(out)
}

/// Retention: keeps `slot`'s newest `keep` ticks and deletes the rest.
pub fn prune(db: &Database, slot: &str, keep: u64) -> anyhow::Result<u64> {
    let tx = db.begin_write()?;
    let removed = {
        let mut table = tx.open_table(LOG)?;
        let last = match table.range((slot, 0)..=(slot, u64::MAX))?.next_back() {
            Some(last) => last?.0.value().1,
            None => return Ok(0),
        };
        let cut = last.saturating_sub(keep);
        let doomed: Vec<u64> = table
            .range((slot, 0)..=(slot, cut))?
            .map(|e| e.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()?;
        for tick in &doomed {
            table.remove((slot, *tick))?;
        }
        doomed.len() as u64
    };
    tx.commit()?;
    Ok(removed)
}
