//! The host's own store as a channel transport: messages in a table keyed by
//! (address, arrival number) so that `get` returns them in the order they
//! arrived, and durable once `put` returns.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Address, Refused, Sealed, Transport};
use powerplug_storage::{Db, Order, ReadTx, RedbStore, WriteTx, key, last, prefixed};

const MESSAGES: &str = "channel_messages";

/// The largest message a host takes from outside; channel commands are a few
/// hundred bytes.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;

pub struct EmbeddedTransport {
    db: Db,
    /// Addresses written since the last [`Self::take_written`]; `None` until
    /// the first call, when anything may be there.
    written: Mutex<Option<HashSet<Address>>>,
}

impl EmbeddedTransport {
    /// Uses the host's store.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            written: Mutex::new(None),
        }
    }

    /// Marks an address as written, so the next poll reads the channel that
    /// expects it (a channel registered after its first messages arrived).
    pub fn touch(&self, address: Address) {
        self.written([address]);
    }

    /// The addresses written through this transport since the last call, so a
    /// poller reads only the channels that moved; `None` on the first call
    /// (after a start, every channel may have news).
    pub fn take_written(&self) -> Option<HashSet<Address>> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let taken = written.take();
        *written = Some(HashSet::new());
        taken
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
    if there.iter().any(|m| m == bytes) {
        return Ok(());
    }
    let next = match last(tx, MESSAGES, &address.0)? {
        Some((k, _)) => {
            let mut r = key::Reader::new(&k);
            r.bytes32()?;
            r.u64()? + 1
        }
        None => 0,
    };
    tx.put(MESSAGES, &key::of(&[&address.0, &next]), bytes)
}

/// Deletes every message at `address` (retention: its reader has read past
/// it); the bytes freed.
pub fn forget_in(tx: &dyn WriteTx, address: &Address) -> anyhow::Result<u64> {
    let mut freed = 0;
    for (k, v) in prefixed(tx, MESSAGES, &address.0, Order::Ascending, usize::MAX)? {
        tx.delete(MESSAGES, &k)?;
        freed += (k.len() + v.len()) as u64;
    }
    Ok(freed)
}

/// The messages at `address` as `tx` sees them, in arrival order.
pub fn messages_in(tx: &dyn ReadTx, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
    let entries = prefixed(tx, MESSAGES, &address.0, Order::Ascending, usize::MAX)?;
    Ok(entries.into_iter().map(|(_, v)| v).collect())
}

impl EmbeddedTransport {
    /// Marks addresses as written after a transaction that stored them committed.
    pub fn written(&self, addresses: impl IntoIterator<Item = Address>) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = written.as_mut() {
            set.extend(addresses);
        }
    }

    /// Bytes at an address, unchecked: for tests that need junk in a store.
    pub fn put_raw(&self, address: Address, bytes: Vec<u8>) -> anyhow::Result<()> {
        let tx = self.db.write()?;
        store_in(&*tx, &address, &bytes)?;
        tx.commit()?;
        self.written([address]);
        Ok(())
    }
}

/// The host's own writes (its return channels): one transaction (one disk
/// sync) for the lot, never refused.
impl Transport for EmbeddedTransport {
    fn put_many(&self, messages: &[Sealed]) -> anyhow::Result<Vec<Refused>> {
        let tx = self.db.write()?;
        for m in messages {
            store_in(&*tx, &m.address, &m.bytes)?;
        }
        tx.commit()?;
        self.written(messages.iter().map(|m| m.address));
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
