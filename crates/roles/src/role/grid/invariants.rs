//! What the host holds every grid decision to, whichever version made it:
//! each consumer is billed, over its lifetime, at most the Wh it reported, and
//! payment requests go to registered consumers only. (Payouts within the
//! ledger's funds are the wallet's own rule.) A strategy's books are its own
//! and may be wrong — a version that reads another's cells, a bug — so the
//! host keeps its own two numbers per consumer, in the tick's transaction.

use powerplug_domain::EntityKind;
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::pages::{self, Pages};
use crate::registry;
use powerplug_storage::{ReadTx, Store, key};
use powerplug_strategy::UsageBatch;

/// consumer page → each consumer's (Wh reported, Wh billed) ([`pages`]).
const ENERGY: &str = "consumer_energy_pages";
/// consumer index → (Wh reported, Wh billed), two big-endian words: before pages.
const ENERGY_ROWS: &str = "consumer_energy";

fn energy_pages() -> Pages<'static> {
    Pages::new(ENERGY, &[])
}

/// A consumer's lifetime (reported Wh, billed Wh), as of the last tick.
pub fn energy(tx: &dyn ReadTx, consumer: u32) -> anyhow::Result<(u64, u64)> {
    Ok(energy_pages().get(tx, consumer)?.unwrap_or_default())
}

/// Starts the counts on a grid that ran before the host counted (once): each
/// consumer's reported Wh are the usage its ticks consumed, its billed Wh 0 —
/// what it was billed then is not known, so the invariant lets its strategy
/// bill what it still carries, and counts exactly from here on. Moves counts
/// kept a row each onto pages.
pub fn start_counting(db: &dyn Store) -> anyhow::Result<()> {
    const STARTED: &str = "grid/energy-counted";
    pages::migrate(db, ENERGY_ROWS, ENERGY, |k, v| {
        let consumer = key::Reader::new(k).u32()?;
        anyhow::ensure!(v.len() == 16, "energy of {consumer}: {} bytes", v.len());
        let counted = (key::u64_value(&v[..8])?, key::u64_value(&v[8..])?);
        Ok((Vec::new(), consumer, counted))
    })?;
    if powerplug_storage::meta::<bool>(db, STARTED)?.is_some() {
        return Ok(());
    }
    let tx = db.write()?;
    let consumers: std::collections::HashSet<u32> = (crate::registry::all(db)?.iter())
        .filter(|r| r.kind == EntityKind::Consumer)
        .map(|r| r.index)
        .collect();
    let mut counted = Vec::new();
    for (entity, wh) in crate::inbox::consumed_wh(&*tx)? {
        let consumer = consumers.contains(&entity);
        if consumer && energy_pages().get::<(u64, u64)>(&*tx, entity)?.is_none() {
            counted.push((entity, (wh, 0u64)));
        }
    }
    energy_pages().set(&*tx, counted)?;
    powerplug_storage::set_meta(&*tx, STARTED, &true)?;
    tx.commit()
}

/// What a tick bills one consumer: (Wh, tokens).
pub type Bills = BTreeMap<u32, (u64, u64)>;

/// Adds the tick's usage and the bills the host is about to send to each
/// consumer's lifetime totals, and refuses the decision — naming the consumer
/// and the amounts — if a bill goes to an entity that is not a consumer, or
/// takes a consumer's billed Wh past what it reported.
pub fn check_and_record(
    tx: &dyn powerplug_storage::WriteTx,
    usage: &UsageBatch,
    bills: &Bills,
    consumers: &HashSet<u32>,
) -> anyhow::Result<()> {
    let mut used: BTreeMap<u32, u64> = BTreeMap::new();
    for (&consumer, &wh) in usage.consumer.iter().zip(&usage.wh) {
        let u = used.entry(consumer).or_default();
        *u = u.saturating_add(wh);
    }
    let touched = used.keys().chain(bills.keys()).copied();
    energy_pages().update(tx, touched, |consumer, t: &mut (u64, u64)| {
        if let Some(&wh) = used.get(&consumer) {
            t.0 = t.0.saturating_add(wh);
        }
        let Some(&(wh, owed)) = bills.get(&consumer) else {
            return Ok(());
        };
        // One that left: a consumer if it ever reported usage.
        anyhow::ensure!(
            consumers.contains(&consumer) || t.0 > 0,
            "invariant: a payment request of {owed} tokens for {wh} Wh to entity {consumer}, which is not a registered consumer",
        );
        t.1 = t.1.saturating_add(wh);
        if t.1 > t.0 {
            let mut named = HashMap::new();
            registry::add_by_index(tx, &mut named, [consumer])?;
            anyhow::bail!(
                "invariant: consumer {} would have been billed {} Wh in all, more than the {} Wh it reported (this tick: {wh} Wh for {owed} tokens)",
                named.get(&consumer).map_or_else(
                    || format!("index {consumer}"),
                    |r| format!("{} (index {consumer})", r.id)
                ),
                t.1,
                t.0,
            );
        }
        Ok(())
    })
}
