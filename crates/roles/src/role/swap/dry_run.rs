//! The dry run that guards an activation: the candidate decides the last
//! `dry_run_ticks` recorded ticks again, without effects, as it would have
//! live — on the live books of each tick if it shares their format, else
//! carried through the window from empty books, as it will start — and its
//! bills are compared with what the live version actually billed, per
//! consumer. A candidate that would break the host's energy invariant, or
//! whose bills exceed the live ones by more than the bound, waits for the
//! operator's `force`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::answer::{DryRun, SwapError};
use super::{Slot, Strategy, handover};
use crate::books::Books;
use crate::role::grid::invariants;
use crate::tick_log;
use powerplug_storage::Store;

/// A consumer's bills over the window: the live version's, the candidate's,
/// and the host's lifetime totals.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsumerBills {
    pub consumer: u32,
    pub id: Option<String>,
    pub live_wh: u64,
    pub live_owed: u64,
    pub candidate_wh: u64,
    pub candidate_owed: u64,
    /// Lifetime, as the host counts: Wh reported, Wh billed (live).
    pub reported_wh: u64,
    pub billed_wh: u64,
}

/// The comparison over the window.
#[derive(Debug, Clone, Serialize, Default)]
pub struct History {
    /// Recorded ticks decided again, the first of them.
    pub ticks: u64,
    pub from_tick: u64,
    /// `live`: each tick on the live books of its time; `empty`: carried from
    /// empty books through the window.
    pub books: &'static str,
    pub live_requested: u64,
    pub candidate_requested: u64,
    pub bound_percent: u32,
    /// Why it waits for `force`; empty: it passes.
    pub refused: Vec<String>,
    /// Consumers billed differently, the largest excess first (at most 100).
    pub consumers: Vec<ConsumerBills>,
}

/// Per consumer: (Wh, tokens).
pub type Bills = BTreeMap<u32, (u64, u64)>;

/// Compares the window's bills and fills in why the candidate must wait.
pub fn judge(
    db: &dyn Store,
    mut history: History,
    live: &Bills,
    candidate: &Bills,
) -> anyhow::Result<History> {
    let bound = u128::from(history.bound_percent);
    let total = |b: &Bills| b.values().map(|v| v.1).sum::<u64>();
    history.live_requested = total(live);
    history.candidate_requested = total(candidate);
    let (l, c) = (
        u128::from(history.live_requested),
        u128::from(history.candidate_requested),
    );
    if c * 100 > l * (100 + bound) {
        history.refused.push(format!(
            "it would have requested {c} tokens where the live version requested {l}: more than {bound}% above"
        ));
    }
    // A consumer's allowance: the bound on its own live bill, or on the
    // average live bill if that is larger (a few ticks bill whole kWh unevenly).
    let billed = live.values().filter(|b| b.1 > 0).count().max(1) as u128;
    let average = l / billed;
    let read = db.read()?;
    let mut rows = Vec::new();
    let (mut over_bound, mut over_usage) = (0, 0);
    let consumers: std::collections::BTreeSet<u32> =
        live.keys().chain(candidate.keys()).copied().collect();
    for consumer in consumers {
        let (lw, lo) = live.get(&consumer).copied().unwrap_or_default();
        let (cw, co) = candidate.get(&consumer).copied().unwrap_or_default();
        if (lw, lo) == (cw, co) {
            continue;
        }
        let (reported, billed_wh) = invariants::energy(&*read, consumer)?;
        // Had the candidate billed the window instead of the live version.
        if billed_wh.saturating_sub(lw).saturating_add(cw) > reported {
            over_usage += 1;
        }
        let allowance = u128::from(lo).max(average) * bound / 100;
        if u128::from(co) > u128::from(lo) + allowance {
            over_bound += 1;
        }
        rows.push(ConsumerBills {
            consumer,
            id: None,
            live_wh: lw,
            live_owed: lo,
            candidate_wh: cw,
            candidate_owed: co,
            reported_wh: reported,
            billed_wh,
        });
    }
    drop(read);
    if over_usage > 0 {
        history.refused.push(format!(
            "it would have billed {over_usage} consumer(s) for more Wh than they reported"
        ));
    }
    if over_bound > 0 {
        history.refused.push(format!(
            "it would have billed {over_bound} consumer(s) more than {bound}% above the live version (or above the average live bill)"
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.candidate_owed.saturating_sub(r.live_owed)));
    rows.truncate(100);
    for r in &mut rows {
        r.id = crate::registry::id_of(db, r.consumer)?;
    }
    history.consumers = rows;
    Ok(history)
}

fn add_bills(bills: &mut Bills, decided: Vec<(u32, u64, u64)>) {
    for (consumer, wh, owed) in decided {
        let b = bills.entry(consumer).or_default();
        b.0 = b.0.saturating_add(wh);
        b.1 = b.1.saturating_add(owed);
    }
}

impl<S: Strategy> Slot<S> {
    /// The candidate on the last `window` recorded ticks: on the live books
    /// of each tick if it gets them, else carried from empty books through
    /// them, as it will start. Fails if the candidate fails on one; the last
    /// tick's effects are compared as before, the window's bills per
    /// consumer in `history`.
    pub(super) fn dry_run(
        &self,
        candidate: &S,
        fresh: bool,
        window: u32,
    ) -> Result<Option<DryRun>, SwapError> {
        let db = self.db();
        let position = tick_log::position(&*db.read()?, self.name)?;
        let since = position.saturating_sub(u64::from(window.max(1)));
        let records = S::recorded_since(db, self.name, since, usize::MAX)?;
        let live_books = !fresh && handover::same_format(self.current().info(), candidate.info());
        let mut history = History {
            books: if live_books { "live" } else { "empty" },
            bound_percent: self.dry_run_bound_percent,
            ..History::default()
        };
        let (mut live_bills, mut candidate_bills) = (Bills::new(), Bills::new());
        let mut books = Books::default();
        let mut last = None;
        for (tick, input, recorded) in records {
            let decided = if live_books {
                candidate
                    .tick(&input)
                    .map(|o| (o.decision, o.fuel_used, o.elapsed))
                    .map_err(|f| f.to_string())
            } else {
                let started = std::time::Instant::now();
                candidate
                    .carry(&mut books, &input)
                    .map(|(d, fuel)| (d, fuel, started.elapsed()))
            };
            let (decision, fuel, elapsed) =
                decided.map_err(|why| SwapError::DryRun { tick, why })?;
            // A tick the live version failed decided nothing to compare with.
            if let Some(live) = &recorded {
                if history.ticks == 0 {
                    history.from_tick = tick;
                }
                history.ticks += 1;
                add_bills(&mut live_bills, S::bills(live));
                add_bills(&mut candidate_bills, S::bills(&decision));
            }
            last = Some(DryRun {
                tick,
                live: recorded.as_ref().map(S::effect),
                candidate: S::effect(&decision),
                fuel,
                elapsed_us: elapsed.as_micros() as u64,
                history: None,
            });
        }
        let Some(mut last) = last else {
            return Ok(None);
        };
        last.history = Some(judge(db, history, &live_bills, &candidate_bills)?);
        Ok(Some(last))
    }
}
