//! Keeping a [`RedbStore`]'s file: its use, compaction, backups, and the
//! check a restore makes of a file before putting it in place.

use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableHandle};

use super::RedbStore;
use super::tx::table;
use crate::{Compacted, Order, ReadTx, StoreStats};

pub(super) fn stats(store: &RedbStore) -> anyhow::Result<StoreStats> {
    let db = store.current()?;
    // Counted table by table in a read transaction: redb's own count
    // (`WriteTransaction::stats`) walks the same pages while holding the one
    // writer, ~2 s at a million consumers with every tick and reading
    // waiting. A page's bytes are its pairs, its headers and its unused room,
    // so the three summed are the bytes of the tables' pages.
    let tx = store.check(db.begin_read())?;
    let (mut stored, mut metadata, mut fragmented) = (0u64, 0u64, 0u64);
    for handle in store.check(tx.list_tables())? {
        let t = store.check(tx.open_table(table(handle.name())))?;
        let s = store.check(t.stats())?;
        stored += s.stored_bytes();
        metadata += s.metadata_bytes();
        fragmented += s.fragmented_bytes();
    }
    drop(tx);
    let allocated = stored + metadata + fragmented;
    let file_bytes = match &store.path {
        Some(path) => std::fs::metadata(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            .len(),
        None => allocated,
    };
    Ok(StoreStats {
        file_bytes,
        stored_bytes: stored,
        metadata_bytes: metadata,
        fragmented_bytes: fragmented,
        free_bytes: file_bytes.saturating_sub(allocated),
        allocated_bytes: allocated,
    })
}

/// How long compaction waits for the transactions open when it starts.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) fn compact(store: &RedbStore) -> anyhow::Result<Compacted> {
    let before = stats(store)?.file_bytes;
    let started = Instant::now();
    {
        // The write lock stops new transactions from beginning; the ones
        // already open hold clones of the `Arc`. A busy host always has a
        // few, each short: wait a little for them to end (new ones wait
        // meanwhile), but not for a reader that never ends: then refuse.
        let deadline = Instant::now() + DRAIN_WAIT;
        let mut slot = store.db.write().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(db) = slot.as_mut().and_then(Arc::get_mut) {
                store.check(db.compact())?;
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "cannot compact while a transaction is open (a tick, a request or a backup); try again"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    let millis = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    Ok(Compacted {
        before_bytes: before,
        after_bytes: stats(store)?.file_bytes,
        millis,
    })
}

/// Entries copied per transaction of the copy: bounds the memory it takes.
const BATCH: usize = 10_000;

pub(super) fn backup_to(store: &RedbStore, path: &Path) -> anyhow::Result<u64> {
    // One read transaction is the copy's view, whatever commits meanwhile.
    let db = store.current()?;
    let tx = store.check(db.begin_read())?;
    let tables: Vec<String> = store
        .check(tx.list_tables())?
        .map(|t| t.name().to_owned())
        .collect();
    copy_from(&super::tx::Read::new(store, tx, db), &tables, path)
}

/// Writes `tables` as `from` sees them to a new store file at `path` (0600;
/// it must not exist: a backup holds the host's secret, and never replaces
/// a file) and returns its size. Any store's snapshot can be copied so.
pub(crate) fn copy_from(from: &dyn ReadTx, tables: &[String], path: &Path) -> anyhow::Result<u64> {
    crate::private::write_new(path, &[])
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    let copied = copy_into(from, tables, path);
    if copied.is_err() {
        // Ours to remove: half a copy is no backup.
        let _ = std::fs::remove_file(path);
    }
    copied
}

fn copy_into(from: &dyn ReadTx, tables: &[String], path: &Path) -> anyhow::Result<u64> {
    let into = |e: redb::Error| anyhow::anyhow!("writing the backup {}: {e}", path.display());
    let out = Database::builder()
        .set_cache_size(super::CACHE_BYTES)
        .create(path)
        .map_err(|e| into(e.into()))?;
    for name in tables {
        // A batch at a time, each from just past the last key copied.
        let mut start = Vec::new();
        loop {
            let entries = from.range(name, &start, None, Order::Ascending, BATCH)?;
            let Some((last, _)) = entries.last() else {
                break;
            };
            start.clone_from(last);
            start.push(0);
            // Batches commit without syncing; the last commit below syncs them all.
            let mut batch = out.begin_write().map_err(|e| into(e.into()))?;
            batch
                .set_durability(Durability::None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            {
                let mut to = batch.open_table(table(name)).map_err(|e| into(e.into()))?;
                for (k, v) in &entries {
                    to.insert(k.as_slice(), v.as_slice())
                        .map_err(|e| into(e.into()))?;
                }
            }
            batch.commit().map_err(|e| into(e.into()))?;
            if entries.len() < BATCH {
                break;
            }
        }
    }
    // Durable from here: an empty commit that syncs everything before it.
    let last = out.begin_write().map_err(|e| into(e.into()))?;
    last.commit().map_err(|e| into(e.into()))?;
    out.close().map_err(|e| into(e.into()))?;
    Ok(std::fs::metadata(path)?.len())
}

/// Whether the file at `path` is a whole store: it opens, and every page's
/// checksum holds. It may write to the file (redb's open), so a restore
/// checks its own copy, not the operator's backup.
pub fn check_store_file(path: &Path) -> anyhow::Result<()> {
    let db = Database::builder()
        .set_cache_size(super::CACHE_BYTES)
        .set_check_integrity_on_open(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{} is not a store: {e}", path.display()))?;
    // Every table must read as ours (bytes → bytes).
    let tx = db.begin_read()?;
    for handle in tx.list_tables()? {
        tx.open_table(table(handle.name()))
            .map_err(|e| anyhow::anyhow!("{} is not a store: {e}", path.display()))?;
    }
    drop(tx);
    db.close()?;
    Ok(())
}
