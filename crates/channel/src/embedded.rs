//! The host's own store as a channel transport: messages in a table keyed by
//! (address, arrival number) so that `get` returns them in the order they
//! arrived, and durable once `put` returns.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::feed::{Cursor, note_written};
use super::{Address, Refused, Sealed, Source, Transport};
use powerplug_storage::{Db, Order, ReadTx, RedbStore, WriteTx, key, prefixed};

const MESSAGES: &str = "channel_messages";

/// The largest message a host takes from outside; channel commands are a few
/// hundred bytes.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;

pub struct EmbeddedTransport {
    db: Db,
    /// This poller's place in the store's feed of written addresses.
    feed: Mutex<Cursor>,
}

impl EmbeddedTransport {
    /// Uses the host's store.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            feed: Mutex::default(),
        }
    }

    /// The addresses written to the store since the last call, through this
    /// host or any other that shares the store, so a poller reads only the
    /// channels that moved; `None` when it must read them all: on the first
    /// call after a start, when the feed was trimmed past its place, or when
    /// the store went back in time (restored from a backup).
    pub fn take_written(&self) -> anyhow::Result<Option<HashSet<Address>>> {
        let mut feed = self.feed.lock().unwrap_or_else(|e| e.into_inner());
        feed.take(&*self.db.read()?)
    }

    /// One consistent view of the store to read many channels from: one
    /// read transaction for all, not one per address (a round trip each on
    /// a networked store).
    pub fn snapshot(&self) -> anyhow::Result<Snapshot<'_>> {
        Ok(Snapshot(self.db.read()?))
    }

    /// Opens or creates a database file for the channels alone.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self::new(Arc::new(RedbStore::open(path)?)))
    }
}

/// Adds `bytes` at `address` inside the caller's transaction, unless the very
/// same bytes are there already (a resend after a crash). Nothing is refused:
/// this is the host's own write path, or an outside one the caller checked.
pub fn store_in(tx: &dyn WriteTx, address: &Address, bytes: &[u8]) -> anyhow::Result<()> {
    let there = messages_in(tx, address)?;
    store_after(tx, address, bytes, &there)
}

/// [`store_in`] for a caller that has read `there`, the messages at
/// `address` in `tx`: one read fewer (a round trip on a networked store).
/// An address's messages are numbered from 0 without gaps (they are only
/// ever deleted all together), so the next one is `there.len()`.
pub fn store_after(
    tx: &dyn WriteTx,
    address: &Address,
    bytes: &[u8],
    there: &[Vec<u8>],
) -> anyhow::Result<()> {
    if there.iter().any(|m| m == bytes) {
        return Ok(());
    }
    let next = there.len() as u64;
    tx.put(MESSAGES, &key::of(&[&address.0, &next]), bytes)
}

/// Deletes every message at `address` (retention: its reader has read past
/// it); the bytes freed.
pub fn forget_in(tx: &dyn WriteTx, address: &Address) -> anyhow::Result<u64> {
    let mut freed = 0;
    for (k, v) in prefixed(tx, MESSAGES, &address.0, Order::Ascending, usize::MAX)? {
        tx.remove(MESSAGES, &k)?;
        freed += (k.len() + v.len()) as u64;
    }
    Ok(freed)
}

/// Says that the messages at `addresses` are about to be read in `tx` (see
/// [`ReadTx::prefetch_ranges`]): the ranges exactly as [`messages_in`] reads them.
pub fn prefetch_in(tx: &dyn ReadTx, addresses: &[Address]) -> anyhow::Result<()> {
    let ranges: Vec<(Vec<u8>, Vec<u8>)> = addresses
        .iter()
        .filter_map(|a| Some((a.0.to_vec(), key::after_prefix(&a.0)?)))
        .collect();
    tx.prefetch_ranges(MESSAGES, &ranges)
}

/// The messages at `address` as `tx` sees them, in arrival order.
pub fn messages_in(tx: &dyn ReadTx, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
    let entries = prefixed(tx, MESSAGES, &address.0, Order::Ascending, usize::MAX)?;
    Ok(entries.into_iter().map(|(_, v)| v).collect())
}

impl EmbeddedTransport {
    /// Bytes at an address, unchecked: for tests that need junk in a store.
    pub fn put_raw(&self, address: Address, bytes: Vec<u8>) -> anyhow::Result<()> {
        let tx = self.db.write()?;
        store_in(&*tx, &address, &bytes)?;
        note_written(&*tx, &[address])?;
        tx.commit()?;
        Ok(())
    }
}

/// The host's own writes (its return channels): one transaction (one disk
/// sync) for the lot, never refused.
impl Transport for EmbeddedTransport {
    fn put_many(&self, messages: &[Sealed]) -> anyhow::Result<Vec<Refused>> {
        let tx = self.db.write()?;
        let addresses: Vec<Address> = messages.iter().map(|m| m.address).collect();
        prefetch_in(&*tx, &addresses)?;
        // In address order (stable), as a B-tree takes a batch best.
        let mut sorted: Vec<&Sealed> = messages.iter().collect();
        sorted.sort_by_key(|m| m.address);
        for m in sorted {
            store_in(&*tx, &m.address, &m.bytes)?;
        }
        note_written(&*tx, &addresses)?;
        tx.commit()?;
        Ok(Vec::new())
    }

    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        messages_in(&*self.db.read()?, address)
    }

    /// One read transaction for the lot.
    fn get_many(&self, addresses: &[Address]) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        let tx = self.db.read()?;
        addresses.iter().map(|a| messages_in(&*tx, a)).collect()
    }
}

/// A read transaction of the channel store, for a reader.
pub struct Snapshot<'a>(Box<dyn ReadTx + 'a>);

impl Source for Snapshot<'_> {
    fn messages(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        messages_in(&*self.0, address)
    }

    fn prefetch(&self, addresses: &[Address]) -> anyhow::Result<()> {
        prefetch_in(&*self.0, addresses)
    }
}
