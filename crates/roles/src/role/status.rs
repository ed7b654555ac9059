//! What `GET /status` shows of a grid or producer: registrations, totals,
//! balances, channel positions, the active strategy.

use powerplug_domain::EntityKind;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::grid::Grid;
use super::producer::Producer;
use crate::outbox;
use crate::registry;
use powerplug_ledger as wallet;
use powerplug_storage::Store;

fn registrations(db: &dyn Store) -> anyhow::Result<Value> {
    let mut by_kind: BTreeMap<&str, Value> = BTreeMap::new();
    let (mut dropped, mut rejected, mut read) = (0, 0, 0);
    for (kind, s) in registry::summary(db)? {
        let kind = match kind {
            EntityKind::Consumer => "consumers",
            EntityKind::Producer => "producers",
            EntityKind::Source => "sources",
        };
        if s.open + s.closed > 0 {
            by_kind.insert(kind, json!({ "open": s.open, "closed": s.closed }));
        }
        dropped += s.dropped;
        rejected += s.rejected;
        read += s.read;
    }
    Ok(json!({
        "by_kind": by_kind,
        "messages_read": read,
        "messages_dropped": dropped,
        "commands_rejected": rejected,
    }))
}

/// The store's size and free pages, what the tick log holds per slot
/// (slot names name experiments: for a read token) and the ledger's
/// history, and what retention did.
fn store(hub: &super::Hub, figures: &crate::figures::Figures) -> Value {
    json!({
        "size": figures.size,
        "tick_log": figures.tick_log,
        "ledger": figures.ledger,
        // Where document bodies and components are (read token only: a
        // bucket's name is the operator's business).
        "objects": hub.objects.place(),
        "retention": {
            "config": hub.retention.config,
            "tick_log_ticks": hub.retention.tick_log_ticks,
            "tick_log_at_least": hub.retention.tick_log_at_least,
            "done": hub.retention.report(),
        },
    })
}

fn metrics(list: Vec<(String, i64)>) -> BTreeMap<String, i64> {
    list.into_iter().collect()
}

/// What anyone may read of a grid: a fixed number of reads, whatever its
/// size (the counters are a handful of named totals).
pub fn grid_public(grid: &Grid) -> anyhow::Result<Value> {
    let db = grid.db();
    Ok(json!({
        "role": "grid",
        "id": grid.account(),
        "clock": grid.clock().status(),
        "strategy": grid.slot.status()?,
        "totals": crate::counter::all(db)?,
        "metrics": metrics(grid.metrics()?),
        "wallet": {
            "balance": wallet::balance(db, grid.account())?,
            "issued": wallet::issued(db)?,
        },
        "scheduler": grid.hub.scheduler.status(),
        // Whether this host ticks: a load balancer sends operators' changes
        // of strategies and experiments to the one that does.
        "lease": grid.leader.status(),
    }))
}

/// Everything, for a read token: also the registrations by kind, the
/// outbox's length and the store's figures, the sum of every balance
/// among them (a scan, taken at most every few seconds whoever asks).
pub fn grid(grid: &Grid) -> anyhow::Result<Value> {
    let db = grid.db();
    let mut status = grid_public(grid)?;
    status["registrations"] = registrations(db)?;
    let figures = grid.hub.figures.get(&grid.hub.db)?;
    status["wallet"]["held"] = json!(figures.money.held);
    status["wallet"]["conserved"] = json!(figures.money.holds());
    status["outbox_pending"] = json!(outbox::backlog(db)?);
    if let Some(anchors) = crate::settlement::status(db)? {
        status["anchors"] = anchors;
    }
    status["store"] = store(&grid.hub, &figures);
    Ok(status)
}

/// What anyone may read of a producer, without asking the grid anything.
pub fn producer_public(producer: &Producer) -> anyhow::Result<Value> {
    let db = producer.db();
    let member = producer.member()?;
    Ok(json!({
        "role": "producer",
        "id": member.id,
        "clock": producer.clock().status(),
        "strategy": producer.slot.status()?,
        "totals": crate::counter::all(db)?,
        "metrics": metrics(producer.metrics()?),
        "grid": {
            "url": producer.grid_url(),
            "closed": member.closed,
            "registered": member.credential.is_some(),
            "index": member.index,
            "channel_position": member.channel.next_index,
            "reported_wh": member.published_wh,
        },
        "scheduler": producer.hub.scheduler.status(),
        "lease": producer.leader.status(),
    }))
}

/// Everything, for a read token: also its balance at the grid (a request to
/// the grid), its registrations and outbox.
pub fn producer(producer: &Producer) -> anyhow::Result<Value> {
    let db = producer.db();
    let mut status = producer_public(producer)?;
    status["registrations"] = registrations(db)?;
    status["grid"]["balance"] = json!(producer.balance());
    status["outbox_pending"] = json!(outbox::backlog(db)?);
    let figures = producer.hub.figures.get(&producer.hub.db)?;
    status["store"] = store(&producer.hub, &figures);
    Ok(status)
}
