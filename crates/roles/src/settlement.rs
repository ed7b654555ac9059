//! A grid tick's settlement: one hash over what the tick decided and the
//! ledger transfers it made, kept so that it can be anchored somewhere the
//! grid cannot rewrite (the IOTA Tangle, `powerplug-iota`) and checked later
//! (`powerplug verify`): recomputed from the tick log and the ledger, it must
//! equal both the kept hash and the anchored one.
//!
//! Written in the tick's own transaction, only by a grid that anchors: one
//! small row a tick, kept with the block that anchors it (the receipt), plus
//! a queue of the ones not anchored yet.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use powerplug_ledger::Transfer;
use powerplug_storage::{Order, Store, WriteTx, key};
use powerplug_strategy::GridDecision;

use crate::tick_log::{self, Outcome};

/// Tick → [`Settlement`].
const SETTLEMENTS: &str = "settlements";
/// Tick → (): settlements not anchored yet, oldest first.
const PENDING: &str = "settlements_pending";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// The grid's id.
    pub grid: String,
    /// The grid's tick (its `ticks` counter).
    pub tick: u64,
    /// Where the tick's decision is in the tick log.
    pub slot: String,
    pub log_tick: u64,
    pub hash: [u8; 32],
    /// The ledger positions of its payout transfers: below the ledger's
    /// retention floor, a missing one was let go, not rewritten.
    pub payouts: Vec<u64>,
    /// The block that anchors it, once it does.
    pub block: Option<String>,
}

/// SHA-256 over the grid, the tick, its decision and its transfers.
pub fn hash(
    grid: &str,
    tick: u64,
    decision: &GridDecision,
    transfers: &[Transfer],
) -> anyhow::Result<[u8; 32]> {
    Ok(Sha256::new()
        .chain_update(b"powerplug/settlement/v1")
        .chain_update((grid.len() as u64).to_be_bytes())
        .chain_update(grid)
        .chain_update(tick.to_be_bytes())
        .chain_update(postcard::to_allocvec(decision)?)
        .chain_update(postcard::to_allocvec(transfers)?)
        .finalize()
        .into())
}

/// Keeps a settlement to anchor, inside the tick's transaction.
pub fn record(tx: &dyn WriteTx, settlement: &Settlement) -> anyhow::Result<()> {
    let k = key::of(&[&settlement.tick]);
    tx.put(SETTLEMENTS, &k, &postcard::to_allocvec(settlement)?)?;
    tx.put(PENDING, &k, &[])?;
    Ok(())
}

/// The oldest settlements not anchored yet, at most `limit`.
pub fn pending(db: &dyn Store, limit: usize) -> anyhow::Result<Vec<Settlement>> {
    let read = db.read()?;
    let ticks = read.range(PENDING, &[], None, Order::Ascending, limit)?;
    let mut out = Vec::with_capacity(ticks.len());
    for (k, _) in ticks {
        if let Some(bytes) = read.get(SETTLEMENTS, &k)? {
            out.push(postcard::from_bytes(&bytes)?);
        }
    }
    Ok(out)
}

/// Notes the block that anchors `tick`'s settlement.
pub fn anchored(db: &dyn Store, tick: u64, block: &str) -> anyhow::Result<()> {
    let k = key::of(&[&tick]);
    let tx = db.write()?;
    let Some(bytes) = tx.get(SETTLEMENTS, &k)? else {
        anyhow::bail!("tick {tick}: no settlement kept");
    };
    let mut s: Settlement = postcard::from_bytes(&bytes)?;
    s.block = Some(block.to_owned());
    tx.put(SETTLEMENTS, &k, &postcard::to_allocvec(&s)?)?;
    tx.delete(PENDING, &k)?;
    tx.commit()
}

/// For `/status`, once a settlement was kept: how many wait to be anchored
/// (counted up to 10,000) and the last tick anchored.
pub fn status(db: &dyn Store) -> anyhow::Result<Option<serde_json::Value>> {
    let read = db.read()?;
    let Some((last_kept, _)) = powerplug_storage::last(&*read, SETTLEMENTS, &[])? else {
        return Ok(None);
    };
    let pending = read.range(PENDING, &[], None, Order::Ascending, 10_000)?;
    let last_anchored = match pending.first() {
        // Anchored oldest first: the one before the oldest pending.
        Some((k, _)) => key::Reader::new(k).u64()?.saturating_sub(1),
        None => key::Reader::new(&last_kept).u64()?,
    };
    Ok(Some(serde_json::json!({
        "pending": pending.len(),
        "last_anchored_tick": last_anchored,
    })))
}

/// The kept settlements from tick `from` on, at most `limit`.
pub fn list(db: &dyn Store, from: u64, limit: usize) -> anyhow::Result<Vec<Settlement>> {
    let entries = db.read()?.range(
        SETTLEMENTS,
        &key::of(&[&from]),
        None,
        Order::Ascending,
        limit,
    )?;
    powerplug_storage::values(entries)
}

/// What the store says of a kept settlement now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recomputed {
    Hash([u8; 32]),
    /// Retention let go of what it was made of (the tick's log record, a
    /// payout's detail): nothing is left here to check it against.
    Gone(String),
}

/// The settlement of `s.tick` as the tick log and the ledger say it now.
pub fn recompute(db: &dyn Store, s: &Settlement) -> anyhow::Result<Recomputed> {
    let Some(record) = tick_log::grid_ticks(db, &s.slot, s.log_tick.saturating_sub(1), 1)?
        .into_iter()
        .find(|r| r.tick == s.log_tick)
    else {
        return Ok(Recomputed::Gone(format!(
            "its tick log record ({} #{}) is no longer held",
            s.slot, s.log_tick
        )));
    };
    let Outcome::Decided(decision) = record.outcome else {
        anyhow::bail!("the tick log says tick {} failed", s.tick);
    };
    let floor = powerplug_ledger::transfers_floor(db)?;
    let mut transfers = Vec::new();
    for (i, p) in decision.payouts.iter().enumerate() {
        let k = powerplug_ledger::host_key(&format!("payout/{}/{}", s.tick, p.producer));
        match powerplug_ledger::by_key(db, &k)? {
            Some(t) => transfers.push(t),
            None if s.payouts.get(i).is_some_and(|&seq| seq < floor) => {
                return Ok(Recomputed::Gone(format!(
                    "its payout to {} is no longer held (ledger retention)",
                    p.producer
                )));
            }
            None => anyhow::bail!(
                "the ledger has no payout to {} of tick {}",
                p.producer,
                s.tick
            ),
        }
    }
    Ok(Recomputed::Hash(hash(
        &s.grid, s.tick, &decision, &transfers,
    )?))
}
