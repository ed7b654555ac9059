use std::collections::HashMap;
use std::sync::Mutex;

use super::{Address, Sealed};

/// A message a store would not take, by its position in a `put_many`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub position: usize,
    pub reason: String,
    /// Worth sending again later (the store is not ready for it yet); false
    /// when it will never be taken (not the author's, a conflicting message).
    pub retry: bool,
}

/// Where a reader finds the messages at an address: any [`Transport`], or
/// one consistent view of a store ([`Snapshot`](super::Snapshot)).
pub trait Source {
    /// The messages at `address`, in arrival order.
    fn messages(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>>;

    /// Says that the messages at `addresses` are about to be read: a source
    /// whose every read is a round trip fetches them at once.
    fn prefetch(&self, addresses: &[Address]) -> anyhow::Result<()> {
        let _ = addresses;
        Ok(())
    }

    /// Whether the source checked already that `author` signed the message
    /// at `position` of `address` for that address and its link (a host's
    /// store at its door; a poll's gathering many at once, at half the cost
    /// a signature): a reader then only decrypts it.
    fn signed(&self, author: &[u8; 32], address: &Address, position: usize) -> bool {
        let _ = (author, address, position);
        false
    }
}

impl<T: Transport + ?Sized> Source for T {
    fn messages(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        self.get(address)
    }
}

/// Where channel messages are stored and found. Append-only: `put` adds a
/// message at an address, `get` returns what is there in the order it came.
pub trait Transport: Send + Sync {
    /// Several messages at once; a store may take them in one write. Answers
    /// the messages it refused; the others are stored. On error some may have
    /// been stored: resending is safe (a store keeps an identical resend once,
    /// and readers keep the first valid message at an address).
    fn put_many(&self, messages: &[Sealed]) -> anyhow::Result<Vec<Refused>>;
    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>>;

    fn put(&self, message: &Sealed) -> anyhow::Result<()> {
        match self.put_many(std::slice::from_ref(message))?.pop() {
            None => Ok(()),
            Some(refused) => anyhow::bail!("{}", refused.reason),
        }
    }

    /// The messages at each of `addresses`; a store may answer in one go.
    fn get_many(&self, addresses: &[Address]) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        addresses.iter().map(|a| self.get(a)).collect()
    }
}

/// A transport in this process's memory: for one process that both writes and
/// reads, and for tests of the channel layer itself.
#[derive(Default)]
pub struct MemoryTransport {
    messages: Mutex<HashMap<Address, Vec<Vec<u8>>>>,
}

impl Transport for MemoryTransport {
    fn put_many(&self, sealed: &[Sealed]) -> anyhow::Result<Vec<Refused>> {
        let mut messages = self
            .messages
            .lock()
            .map_err(|_| anyhow::anyhow!("transport lock poisoned"))?;
        for m in sealed {
            let at = messages.entry(m.address).or_default();
            if !at.contains(&m.bytes) {
                at.push(m.bytes.clone());
            }
        }
        Ok(Vec::new())
    }

    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        let messages = self
            .messages
            .lock()
            .map_err(|_| anyhow::anyhow!("transport lock poisoned"))?;
        Ok(messages.get(address).cloned().unwrap_or_default())
    }
}

impl MemoryTransport {
    /// For tests of the channel layer: bytes at an address, unchecked.
    pub fn put_raw(&self, address: Address, bytes: Vec<u8>) -> anyhow::Result<()> {
        let mut messages = self
            .messages
            .lock()
            .map_err(|_| anyhow::anyhow!("transport lock poisoned"))?;
        messages.entry(address).or_default().push(bytes);
        Ok(())
    }
}
