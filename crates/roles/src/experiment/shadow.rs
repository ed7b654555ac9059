//! Shadow mode: a candidate version runs beside the active one on the live
//! inputs, in books of its own, with no effects; every tick its decision is
//! compared with the active one's and the divergence is kept.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use powerplug_storage::{self as storage, Store, WriteTx};
use powerplug_strategy::GridDecision;

const SHADOW: &str = "shadow/grid";
/// The shadow's books and tick-log slot.
pub const SLOT: &str = "shadow";
/// Diverging ticks kept for the report.
const RECENT: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    /// SHA-256 of the candidate version.
    pub version: String,
    pub since_ms: u64,
    /// Why it stopped (its tick failed, or the operator stopped it).
    pub stopped: Option<String>,
    pub stats: Divergence,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    pub ticks: u64,
    /// Ticks whose decisions differ in any request or payout.
    pub ticks_diverged: u64,
    /// Consumer-ticks billed differently (amount or energy).
    pub consumer_ticks_diverged: u64,
    pub active: Totals,
    pub candidate: Totals,
    /// The largest difference in one consumer's bill in one tick.
    pub largest_bill_difference: u64,
    pub recent: VecDeque<DivergedTick>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub requested: u64,
    pub billed_wh: u64,
    pub paid_out: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivergedTick {
    pub at_ms: u64,
    pub consumers: u64,
    pub active: Totals,
    pub candidate: Totals,
}

fn totals(d: &GridDecision) -> Totals {
    Totals {
        requests: d.payment_requests.len() as u64,
        requested: d.payment_requests.iter().map(|r| r.owed).sum(),
        billed_wh: d.payment_requests.iter().map(|r| r.wh).sum(),
        paid_out: d.payouts.iter().map(|p| p.amount).sum(),
    }
}

fn add(to: &mut Totals, t: &Totals) {
    to.requests += t.requests;
    to.requested += t.requested;
    to.billed_wh += t.billed_wh;
    to.paid_out += t.paid_out;
}

impl Divergence {
    /// Adds one tick's pair of decisions.
    pub fn compare(&mut self, at_ms: u64, active: &GridDecision, candidate: &GridDecision) {
        let bills = |d: &GridDecision| -> BTreeMap<u32, (u64, u64)> {
            let mut m = BTreeMap::new();
            for r in d.payment_requests.iter() {
                let e: &mut (u64, u64) = m.entry(r.consumer).or_default();
                e.0 += r.owed;
                e.1 += r.wh;
            }
            m
        };
        let (a, c) = (bills(active), bills(candidate));
        let mut consumers = 0;
        for consumer in a.keys().chain(c.keys().filter(|k| !a.contains_key(k))) {
            let (x, y) = (
                a.get(consumer).copied().unwrap_or_default(),
                c.get(consumer).copied().unwrap_or_default(),
            );
            if x != y {
                consumers += 1;
                self.largest_bill_difference = self.largest_bill_difference.max(x.0.abs_diff(y.0));
            }
        }
        let (ta, tc) = (totals(active), totals(candidate));
        self.ticks += 1;
        add(&mut self.active, &ta);
        add(&mut self.candidate, &tc);
        let payouts = |d: &GridDecision| {
            let mut m: BTreeMap<u32, u64> = BTreeMap::new();
            for p in &d.payouts {
                *m.entry(p.producer).or_default() += p.amount;
            }
            m
        };
        if consumers > 0 || payouts(active) != payouts(candidate) {
            self.ticks_diverged += 1;
            self.consumer_ticks_diverged += consumers;
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(DivergedTick {
                at_ms,
                consumers,
                active: ta,
                candidate: tc,
            });
        }
    }
}

pub fn get(db: &dyn Store) -> anyhow::Result<Option<Shadow>> {
    storage::meta(db, SHADOW)
}

pub fn put(tx: &dyn WriteTx, shadow: &Shadow) -> anyhow::Result<()> {
    storage::set_meta(tx, SHADOW, shadow)
}

/// The running shadow, if any.
pub fn running(db: &dyn Store) -> anyhow::Result<Option<Shadow>> {
    Ok(get(db)?.filter(|s| s.stopped.is_none()))
}
