//! What `GET /status` shows of a grid or producer: registrations, totals,
//! balances, channel positions, the active strategy.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::grid::Grid;
use super::producer::Producer;
use crate::registry::{self, Kind};
use crate::storage::Store;
use crate::{outbox, storage, wallet};

fn registrations(db: &dyn Store) -> anyhow::Result<Value> {
    let mut by_kind: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let (mut dropped, mut rejected, mut read) = (0, 0, 0);
    for r in registry::all(db)? {
        let kind = match r.kind {
            Kind::Consumer => "consumers",
            Kind::Producer => "producers",
            Kind::Source => "sources",
        };
        let entry = by_kind.entry(kind).or_default();
        if r.closed {
            entry.1 += 1
        } else {
            entry.0 += 1
        }
        dropped += r.dropped;
        rejected += r.rejected;
        read += r.read_index;
    }
    let kinds: BTreeMap<&str, Value> = by_kind
        .into_iter()
        .map(|(k, (open, closed))| (k, json!({ "open": open, "closed": closed })))
        .collect();
    Ok(json!({
        "by_kind": kinds,
        "messages_read": read,
        "messages_dropped": dropped,
        "commands_rejected": rejected,
    }))
}

fn metrics(list: Vec<(String, i64)>) -> BTreeMap<String, i64> {
    list.into_iter().collect()
}

pub fn grid(grid: &Grid) -> anyhow::Result<Value> {
    let db = grid.db();
    Ok(json!({
        "role": "grid",
        "id": grid.account(),
        "strategy": grid.slot.status(db)?,
        "registrations": registrations(db)?,
        "totals": storage::counters(db)?,
        "metrics": metrics(grid.metrics()?),
        "wallet": {
            "balance": wallet::balance(db, grid.account())?,
            "issued": wallet::issued(db)?,
            "held": wallet::total_balances(db)?,
        },
        "outbox_pending": outbox::pending(db, 100_000)?.len(),
        "scheduler": grid.hub.scheduler.status(),
    }))
}

pub fn producer(producer: &Producer) -> anyhow::Result<Value> {
    let db = producer.db();
    let member = producer.member()?;
    Ok(json!({
        "role": "producer",
        "id": member.id,
        "strategy": producer.slot.status(db)?,
        "registrations": registrations(db)?,
        "totals": storage::counters(db)?,
        "metrics": metrics(producer.metrics()?),
        "grid": {
            "url": producer.grid_url(),
            "balance": producer.balance(),
            "closed": member.closed,
            "registered": member.credential.is_some(),
            "index": member.index,
            "channel_position": member.channel.next_index,
            "reported_wh": member.published_wh,
        },
        "outbox_pending": outbox::pending(db, 100_000)?.len(),
        "scheduler": producer.hub.scheduler.status(),
    }))
}
