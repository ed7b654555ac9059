//! The host's own store as a channel transport: messages in a table keyed by
//! (address, arrival number) so that `get` returns them in the order they
//! arrived, and durable once `put` returns.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Address, Transport};
use crate::storage::{Db, Order, RedbStore, key, last, prefixed};

const MESSAGES: &str = "channel_messages";

/// The largest message this store accepts; channel commands are small.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// An address holds one valid message; a few more are tolerated (a resend
/// after a crash, junk), but a store accepting any number could be filled by
/// anyone who can reach it.
pub const MAX_PER_ADDRESS: u64 = 16;

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
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = written.as_mut() {
            set.insert(address);
        }
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

impl Transport for EmbeddedTransport {
    fn put(&self, address: &Address, message: Vec<u8>) -> anyhow::Result<()> {
        self.put_many(&[(*address, message)])
    }

    /// One transaction (one disk sync) for the lot; all or nothing.
    fn put_many(&self, messages: &[(Address, Vec<u8>)]) -> anyhow::Result<()> {
        if let Some((_, big)) = messages.iter().find(|(_, m)| m.len() > MAX_MESSAGE_BYTES) {
            anyhow::bail!("message: {} bytes, at most {MAX_MESSAGE_BYTES}", big.len());
        }
        let tx = self.db.write()?;
        for (address, message) in messages {
            let next = match last(&*tx, MESSAGES, &address.0)? {
                Some((k, _)) => {
                    let mut r = key::Reader::new(&k);
                    r.bytes32()?;
                    r.u64()? + 1
                }
                None => 0,
            };
            anyhow::ensure!(
                next < MAX_PER_ADDRESS,
                "address: {address} already holds {MAX_PER_ADDRESS} messages"
            );
            tx.put(MESSAGES, &key::of(&[&address.0, &next]), message)?;
        }
        tx.commit()?;
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = written.as_mut() {
            set.extend(messages.iter().map(|(a, _)| *a));
        }
        Ok(())
    }

    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        let entries = prefixed(
            &*self.db.read()?,
            MESSAGES,
            &address.0,
            Order::Ascending,
            usize::MAX,
        )?;
        Ok(entries.into_iter().map(|(_, v)| v).collect())
    }

    /// One read transaction for the lot.
    fn get_many(&self, addresses: &[Address]) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        let tx = self.db.read()?;
        addresses
            .iter()
            .map(|a| {
                let entries = prefixed(&*tx, MESSAGES, &a.0, Order::Ascending, usize::MAX)?;
                Ok(entries.into_iter().map(|(_, v)| v).collect())
            })
            .collect()
    }
}
