//! The host's embedded store as a channel transport: messages in a redb table,
//! keyed by (address, arrival number) so that `get` returns them in the order
//! they arrived, and durable once `put` returns.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Address, Transport};

const MESSAGES: TableDefinition<([u8; 32], u64), &[u8]> = TableDefinition::new("channel_messages");

/// The largest message this store accepts; channel commands are small.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// An address holds one valid message; a few more are tolerated (a resend
/// after a crash, junk), but a store accepting any number could be filled by
/// anyone who can reach it.
pub const MAX_PER_ADDRESS: u64 = 16;

pub struct EmbeddedTransport {
    db: Arc<Database>,
}

impl EmbeddedTransport {
    /// Uses the host's database (the table is created on first use).
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// Opens or creates a database file for the channels alone.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self::new(Arc::new(Database::create(path)?)))
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
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(MESSAGES)?;
            for (address, message) in messages {
            let next = match table
                .range((address.0, 0)..=(address.0, u64::MAX))?
                .next_back()
            {
                Some(last) => last?.0.value().1 + 1,
                None => 0,
            };
            anyhow::ensure!(
                next < MAX_PER_ADDRESS,
                "address: {address} already holds {MAX_PER_ADDRESS} messages"
            );
            table.insert((address.0, next), message.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        let Some(table) = crate::storage::existing(&tx, MESSAGES)? else {
            return Ok(Vec::new());
        };
        let mut messages = Vec::new();
        for entry in table.range((address.0, 0)..=(address.0, u64::MAX))? {
            messages.push(entry?.1.value().to_vec());
        }
        Ok(messages)
    }
}
