use std::collections::HashMap;
use std::sync::Mutex;

use super::Address;

/// Where channel messages are stored and found. Append-only: `put` adds a
/// message at an address (there may be several, some of them junk), `get`
/// returns all of them in the order they were added.
pub trait Transport: Send + Sync {
    fn put(&self, address: &Address, message: Vec<u8>) -> anyhow::Result<()>;
    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>>;

    /// Several messages at once; a store may take them in one write. On error
    /// some may have been stored: resending is safe (readers keep the first
    /// valid message at an address).
    fn put_many(&self, messages: &[(Address, Vec<u8>)]) -> anyhow::Result<()> {
        for (address, bytes) in messages {
            self.put(address, bytes.clone())?;
        }
        Ok(())
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
    fn put(&self, address: &Address, message: Vec<u8>) -> anyhow::Result<()> {
        let mut messages = self
            .messages
            .lock()
            .map_err(|_| anyhow::anyhow!("transport lock poisoned"))?;
        messages.entry(*address).or_default().push(message);
        Ok(())
    }

    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        let messages = self
            .messages
            .lock()
            .map_err(|_| anyhow::anyhow!("transport lock poisoned"))?;
        Ok(messages.get(address).cloned().unwrap_or_default())
    }
}
