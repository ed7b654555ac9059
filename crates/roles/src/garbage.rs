//! Objects nobody names any more: a document body replaced or deleted, a
//! removed version's component, an object written by a put that crashed
//! before its index. Each is noted in the transaction that lets go of it and
//! deleted [`GRACE_MS`] later by the retention pass ([`sweep`]), so that a
//! backup of the store and a copy of the objects taken within that time
//! agree.
//!
//! An object an entity let go of (a document body) is noted with its owner,
//! and each owner's waiting objects are counted: the disk an entity pins with
//! replaced bodies is bounded by [`MAX_WAITING`], not by how fast it writes.

use powerplug_storage::{Objects, Order, Store, WriteTx, key};

/// (since ms, object name) → the owner, or nothing (the host's own object).
const GARBAGE: &str = "object_garbage";
/// owner → how many of its objects wait in [`GARBAGE`].
const WAITING: &str = "object_garbage_waiting";

/// Most objects one owner may have waiting: a put of a large body is refused
/// beyond it (see `documents`), so what an owner pins on disk is at most its
/// documents plus this many bodies, however often it replaces them.
pub const MAX_WAITING: u64 = crate::limits::MAX_DOCUMENTS;

/// How long an object nobody names is kept before it goes: a day.
pub const GRACE_MS: u64 = 24 * 3_600_000;

/// How many noted objects one transaction of [`sweep`] lets go.
const BATCH: usize = 1_000;

/// Notes that `object`, the host's own, is named by nobody since `since_ms`
/// (real time).
pub fn note(tx: &dyn WriteTx, since_ms: u64, object: &str) -> anyhow::Result<()> {
    tx.put(GARBAGE, &key::of(&[&since_ms, &object]), &[])
}

/// [`note`] for an object of `owner`'s, counted against its [`MAX_WAITING`].
pub fn note_owned(
    tx: &dyn WriteTx,
    since_ms: u64,
    object: &str,
    owner: &str,
) -> anyhow::Result<()> {
    let k = key::of(&[&since_ms, &object]);
    if tx.get(GARBAGE, &k)?.is_none() {
        count(tx, owner, 1)?;
    }
    tx.put(GARBAGE, &k, owner.as_bytes())
}

/// Takes back a [`note`]: the object is named after all.
pub fn unnote(tx: &dyn WriteTx, since_ms: u64, object: &str) -> anyhow::Result<()> {
    let k = key::of(&[&since_ms, &object]);
    if let Some(owner) = tx.get(GARBAGE, &k)? {
        tx.delete(GARBAGE, &k)?;
        forget(tx, &owner)?;
    }
    Ok(())
}

/// How many of `owner`'s objects wait to be deleted.
pub fn waiting(tx: &dyn powerplug_storage::ReadTx, owner: &str) -> anyhow::Result<u64> {
    match tx.get(WAITING, &key::of(&[&owner]))? {
        Some(bytes) => key::u64_value(&bytes),
        None => Ok(0),
    }
}

fn count(tx: &dyn WriteTx, owner: &str, delta: i64) -> anyhow::Result<()> {
    let k = key::of(&[&owner]);
    let n = waiting(tx, owner)?.saturating_add_signed(delta);
    if n == 0 {
        tx.delete(WAITING, &k)?;
        Ok(())
    } else {
        tx.put(WAITING, &k, &n.to_be_bytes())
    }
}

/// One object of the owner named by a [`GARBAGE`] value went (none for the
/// host's own).
fn forget(tx: &dyn WriteTx, owner: &[u8]) -> anyhow::Result<()> {
    match std::str::from_utf8(owner) {
        Ok(owner) if !owner.is_empty() => count(tx, owner, -1),
        _ => Ok(()),
    }
}

/// How many objects are noted (a scan of them all: for tests).
#[cfg(test)]
pub(crate) fn noted(tx: &dyn powerplug_storage::ReadTx) -> anyhow::Result<usize> {
    Ok(tx
        .range(GARBAGE, &[], None, Order::Ascending, usize::MAX)?
        .len())
}

/// Deletes the objects noted before `now_ms - GRACE_MS` (real time) that
/// are still named by nobody (a component may have been uploaded again);
/// how many went.
pub fn sweep(db: &dyn Store, objects: &Objects, now_ms: u64) -> anyhow::Result<u64> {
    let end = key::of(&[&now_ms.saturating_sub(GRACE_MS)]);
    let mut swept = 0;
    loop {
        let tx = db.read()?;
        let due = tx.range(GARBAGE, &[], Some(&end), Order::Ascending, BATCH)?;
        for (k, _) in &due {
            let mut r = key::Reader::new(k);
            r.u64()?;
            let name = r.str()?;
            if !crate::versions::names(&*tx, name)? {
                objects.delete(name)?;
                swept += 1;
            }
        }
        drop(tx);
        let tx = db.write()?;
        for (k, _) in &due {
            // Read again: counted once even if taken back meanwhile.
            if let Some(owner) = tx.get(GARBAGE, k)? {
                tx.delete(GARBAGE, k)?;
                forget(&*tx, &owner)?;
            }
        }
        tx.commit()?;
        if due.len() < BATCH {
            return Ok(swept);
        }
    }
}
