//! Objects nobody names any more: a document body replaced or deleted, a
//! removed version's component, an object written by a put that crashed
//! before its index. Each is noted in the transaction that lets go of it and
//! deleted [`GRACE_MS`] later by the retention pass ([`sweep`]), so that a
//! backup of the store and a copy of the objects taken within that time
//! agree.

use powerplug_storage::{Objects, Order, Store, WriteTx, key};

/// (since ms, object name) → nothing.
const GARBAGE: &str = "object_garbage";

/// How long an object nobody names is kept before it goes: a day.
pub const GRACE_MS: u64 = 24 * 3_600_000;

/// How many noted objects one transaction of [`sweep`] lets go.
const BATCH: usize = 1_000;

/// Notes that `object` is named by nobody since `since_ms` (real time).
pub fn note(tx: &dyn WriteTx, since_ms: u64, object: &str) -> anyhow::Result<()> {
    tx.put(GARBAGE, &key::of(&[&since_ms, &object]), &[])
}

/// Takes back a [`note`]: the object is named after all.
pub fn unnote(tx: &dyn WriteTx, since_ms: u64, object: &str) -> anyhow::Result<()> {
    tx.delete(GARBAGE, &key::of(&[&since_ms, &object]))?;
    Ok(())
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
            tx.delete(GARBAGE, k)?;
        }
        tx.commit()?;
        if due.len() < BATCH {
            return Ok(swept);
        }
    }
}
