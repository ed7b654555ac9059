//! What the host holds every grid decision to, whichever version made it:
//! each consumer is billed, over its lifetime, at most the Wh it reported, and
//! payment requests go to registered consumers only. (Payouts within the
//! ledger's funds are the wallet's own rule.) A strategy's books are its own
//! and may be wrong — a version that reads another's cells, a bug — so the
//! host keeps its own two numbers per consumer, in the tick's transaction.

use powerplug_domain::EntityKind;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use crate::registry::Registration;
use powerplug_storage::{ReadTx, Store, WriteTx, key};
use powerplug_strategy::UsageBatch;

/// consumer index → (Wh reported, Wh billed), two big-endian words.
const ENERGY: &str = "consumer_energy";

/// A consumer's lifetime (reported Wh, billed Wh), as of the last tick.
pub fn energy(tx: &dyn ReadTx, consumer: u32) -> anyhow::Result<(u64, u64)> {
    let Some(bytes) = tx.get(ENERGY, &key::of(&[&consumer]))? else {
        return Ok((0, 0));
    };
    anyhow::ensure!(
        bytes.len() == 16,
        "energy of {consumer}: {} bytes",
        bytes.len()
    );
    Ok((key::u64_value(&bytes[..8])?, key::u64_value(&bytes[8..])?))
}

/// Starts the counts on a grid that ran before the host counted (once): each
/// consumer's reported Wh are the usage its ticks consumed, its billed Wh 0 —
/// what it was billed then is not known, so the invariant lets its strategy
/// bill what it still carries, and counts exactly from here on.
pub fn start_counting(db: &dyn Store) -> anyhow::Result<()> {
    const STARTED: &str = "grid/energy-counted";
    if powerplug_storage::meta::<bool>(db, STARTED)?.is_some() {
        return Ok(());
    }
    let tx = db.write()?;
    let registrations = crate::registry::all(db)?;
    for (entity, wh) in crate::inbox::consumed_wh(&*tx)? {
        let consumer = registrations
            .iter()
            .any(|r| r.index == entity && r.kind == EntityKind::Consumer);
        if consumer && tx.get(ENERGY, &key::of(&[&entity]))?.is_none() {
            put(&*tx, entity, (wh, 0))?;
        }
    }
    powerplug_storage::set_meta(&*tx, STARTED, &true)?;
    tx.commit()
}

fn put(tx: &dyn WriteTx, consumer: u32, (reported, billed): (u64, u64)) -> anyhow::Result<()> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&reported.to_be_bytes());
    bytes[8..].copy_from_slice(&billed.to_be_bytes());
    tx.put(ENERGY, &key::of(&[&consumer]), &bytes)
}

/// A consumer's totals in `totals`, read from the store the first time.
fn totals_of<'a>(
    tx: &dyn ReadTx,
    totals: &'a mut BTreeMap<u32, (u64, u64)>,
    consumer: u32,
) -> anyhow::Result<&'a mut (u64, u64)> {
    Ok(match totals.entry(consumer) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(energy(tx, consumer)?),
    })
}

/// What a tick bills one consumer: (Wh, tokens).
pub type Bills = BTreeMap<u32, (u64, u64)>;

/// Adds the tick's usage and the bills the host is about to send to each
/// consumer's lifetime totals, and refuses the decision — naming the consumer
/// and the amounts — if a bill goes to an entity that is not a consumer, or
/// takes a consumer's billed Wh past what it reported.
pub fn check_and_record(
    tx: &dyn WriteTx,
    usage: &UsageBatch,
    bills: &Bills,
    registrations: &HashMap<u32, Registration>,
) -> anyhow::Result<()> {
    let keys: Vec<Vec<u8>> = (usage.consumer.iter().chain(bills.keys()))
        .map(|c| key::of(&[c]))
        .collect();
    tx.prefetch(ENERGY, &keys)?;
    let mut totals: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for (&consumer, &wh) in usage.consumer.iter().zip(&usage.wh) {
        let t = totals_of(tx, &mut totals, consumer)?;
        t.0 = t.0.saturating_add(wh);
    }
    for (&consumer, &(wh, owed)) in bills {
        let t = totals_of(tx, &mut totals, consumer)?;
        let name = registrations.get(&consumer);
        let is_consumer = match name {
            Some(r) => r.kind == EntityKind::Consumer,
            // One that left: a consumer if it ever reported usage.
            None => t.0 > 0,
        };
        anyhow::ensure!(
            is_consumer,
            "invariant: a payment request of {owed} tokens for {wh} Wh to entity {consumer}{}, which is not a registered consumer",
            name.map(|r| format!(" ({}, a {:?})", r.id, r.kind))
                .unwrap_or_default()
        );
        t.1 = t.1.saturating_add(wh);
        anyhow::ensure!(
            t.1 <= t.0,
            "invariant: consumer {} would have been billed {} Wh in all, more than the {} Wh it reported (this tick: {wh} Wh for {owed} tokens)",
            name.map_or_else(
                || format!("index {consumer}"),
                |r| format!("{} (index {consumer})", r.id)
            ),
            t.1,
            t.0,
        );
    }
    for (consumer, counted) in totals {
        put(tx, consumer, counted)?;
    }
    Ok(())
}
