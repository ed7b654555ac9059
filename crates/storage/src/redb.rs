//! The embedded default store: one redb database file per host, one redb table
//! (bytes → bytes) per named table.

use std::ops::Bound;
use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError,
    TableHandle, WriteTransaction,
};

use super::{Entries, Order, ReadTx, Store, WriteTx};

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

const CACHE_BYTES: usize = 32 << 20;

pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens the database file, creating it (0600: only this user) if needed.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        crate::private::touch(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        // redb caches up to 1 GiB by default; a process may hold a hundred
        // roles' databases (the demo), and the working set of one is small.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        Ok(Self { db })
    }

    /// A store in memory, for tests and benchmarks of the layers above.
    pub fn in_memory() -> anyhow::Result<Self> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Ok(Self { db })
    }
}

impl Store for RedbStore {
    fn read(&self) -> anyhow::Result<Box<dyn ReadTx + '_>> {
        Ok(Box::new(Read(self.db.begin_read()?)))
    }

    fn write(&self) -> anyhow::Result<Box<dyn WriteTx + '_>> {
        Ok(Box::new(Write(self.db.begin_write()?)))
    }
}

struct Read(ReadTransaction);
struct Write(WriteTransaction);

fn collect<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    start: &[u8],
    end: Option<&[u8]>,
    order: Order,
    limit: usize,
) -> anyhow::Result<Entries> {
    let bounds = (
        Bound::Included(start),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    );
    let range = t.range::<&[u8]>(bounds)?;
    let entries: Box<dyn Iterator<Item = _>> = match order {
        Order::Ascending => Box::new(range),
        Order::Descending => Box::new(range.rev()),
    };
    let mut out = Vec::new();
    for entry in entries.take(limit) {
        let (k, v) = entry?;
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

impl ReadTx for Read {
    fn get(&self, name: &str, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        match self.0.open_table(table(name)) {
            Ok(t) => Ok(t.get(key)?.map(|v| v.value().to_vec())),
            // redb creates a table on its first write: never written is empty.
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn range(
        &self,
        name: &str,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> anyhow::Result<Entries> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match self.0.open_table(table(name)) {
            Ok(t) => collect(&t, start, end, order, limit),
            Err(TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Write {
    fn exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.0.list_tables()?.any(|t| t.name() == name))
    }
}

impl ReadTx for Write {
    fn get(&self, name: &str, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        // Opening a table in a write transaction creates it; reading an absent
        // table must not, or a failed lookup would leave traces.
        if !self.exists(name)? {
            return Ok(None);
        }
        let t = self.0.open_table(table(name))?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    fn range(
        &self,
        name: &str,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> anyhow::Result<Entries> {
        if limit == 0 || !self.exists(name)? {
            return Ok(Vec::new());
        }
        let t = self.0.open_table(table(name))?;
        collect(&t, start, end, order, limit)
    }
}

impl WriteTx for Write {
    fn put(&self, name: &str, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        self.0.open_table(table(name))?.insert(key, value)?;
        Ok(())
    }

    fn delete(&self, name: &str, key: &[u8]) -> anyhow::Result<bool> {
        if !self.exists(name)? {
            return Ok(false);
        }
        Ok(self.0.open_table(table(name))?.remove(key)?.is_some())
    }

    fn commit(self: Box<Self>) -> anyhow::Result<()> {
        self.0.commit()?;
        Ok(())
    }
}
