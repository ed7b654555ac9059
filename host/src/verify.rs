//! `powerplug verify`: checks a grid's recorded ticks against their anchors
//! on the IOTA Tangle (feature `iota`). For each kept settlement, the tick
//! log and the ledger must give the same hash again (nothing was rewritten
//! in the store), and the block the grid noted must carry that hash for that
//! grid and tick, confirmed no earlier than the anchor of the tick before
//! (a tick rewritten and anchored again later shows as out of order; the
//! newest tick has no later anchor to be compared with).

use serde::Serialize;

use crate::settlement::{self, Recomputed, Settlement};
use crate::storage::Store;
use powerplug_iota::{Node, anchor};

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub checked: u64,
    pub verified: u64,
    /// Kept, not anchored yet (the grid anchors in the background).
    pub not_anchored: u64,
    /// Retention let go of what the settlement was made of; each with why.
    pub not_checkable: Vec<Failed>,
    pub failed: Vec<Failed>,
}

#[derive(Debug, Serialize)]
pub struct Failed {
    pub tick: u64,
    pub why: String,
}

/// Checks the settlements of ticks `from..` (at most `limit`).
pub fn verify(db: &dyn Store, node: &Node, from: u64, limit: usize) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut last_milestone = None;
    for s in settlement::list(db, from, limit)? {
        report.checked += 1;
        match check(db, node, &s, &mut last_milestone) {
            Ok(Checked::Verified) => report.verified += 1,
            Ok(Checked::NotAnchored) => report.not_anchored += 1,
            Ok(Checked::Gone(why)) => report.not_checkable.push(Failed { tick: s.tick, why }),
            Err(e) => report.failed.push(Failed {
                tick: s.tick,
                why: format!("{e:#}"),
            }),
        }
    }
    Ok(report)
}

enum Checked {
    Verified,
    NotAnchored,
    Gone(String),
}

fn check(
    db: &dyn Store,
    node: &Node,
    s: &Settlement,
    last_milestone: &mut Option<u32>,
) -> anyhow::Result<Checked> {
    let now = match settlement::recompute(db, s)? {
        Recomputed::Hash(h) => h,
        Recomputed::Gone(why) => return Ok(Checked::Gone(why)),
    };
    anyhow::ensure!(
        now == s.hash,
        "the tick log or the ledger changed since the tick: its settlement is {} now, {} then",
        hex::encode(now),
        hex::encode(s.hash)
    );
    let Some(block) = &s.block else {
        return Ok(Checked::NotAnchored);
    };
    let found = anchor::read(node, block)?;
    let a = &found.anchored;
    anyhow::ensure!(
        a.grid == s.grid && a.tick == s.tick && a.settlement == hex::encode(now),
        "block {block} anchors grid `{}` tick {} settlement {}, not this tick's {}",
        a.grid,
        a.tick,
        a.settlement,
        hex::encode(now)
    );
    if let (Some(m), Some(before)) = (found.milestone, *last_milestone) {
        anyhow::ensure!(
            m >= before,
            "block {block} was confirmed at milestone {m}, before the anchor of an earlier tick ({before}): anchored again later"
        );
    }
    *last_milestone = found.milestone.or(*last_milestone);
    Ok(Checked::Verified)
}
