//! Transactions of a [`RedbStore`]: each holds the database it began on, so
//! the store can tell when none is open (compaction, reopening).

use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use redb::{
    Database, ReadTransaction, ReadableTable, TableDefinition, TableError, TableHandle,
    WriteTransaction,
};

use super::RedbStore;
use crate::{Entries, Order, ReadTx, WriteTx};

pub(super) fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

pub(super) struct Read<'a> {
    // Declared first: dropped before the database it began on.
    tx: ReadTransaction,
    _db: Arc<Database>,
    store: &'a RedbStore,
}

pub(super) struct Write<'a> {
    tx: WriteTransaction,
    _db: Arc<Database>,
    store: &'a RedbStore,
    /// The tables that exist, listed once per transaction: listing them for
    /// every read was a fifth of a busy grid's CPU.
    tables: RefCell<Option<HashSet<String>>>,
}

impl<'a> Read<'a> {
    pub(super) fn new(store: &'a RedbStore, tx: ReadTransaction, db: Arc<Database>) -> Self {
        Self { tx, _db: db, store }
    }
}

impl<'a> Write<'a> {
    pub(super) fn new(store: &'a RedbStore, tx: WriteTransaction, db: Arc<Database>) -> Self {
        Self {
            tx,
            _db: db,
            store,
            tables: RefCell::new(None),
        }
    }

    fn exists(&self, name: &str) -> anyhow::Result<bool> {
        let mut tables = self.tables.borrow_mut();
        if tables.is_none() {
            let listed = self.store.check(self.tx.list_tables())?;
            *tables = Some(listed.map(|t| t.name().to_owned()).collect());
        }
        Ok(tables.as_ref().is_some_and(|t| t.contains(name)))
    }

    /// Opening a table for a write creates it.
    fn created(&self, name: &str) {
        if let Some(tables) = self.tables.borrow_mut().as_mut()
            && !tables.contains(name)
        {
            tables.insert(name.to_owned());
        }
    }
}

fn collect<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    start: &[u8],
    end: Option<&[u8]>,
    order: Order,
    limit: usize,
) -> Result<Entries, redb::StorageError> {
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

impl ReadTx for Read<'_> {
    fn get(&self, name: &str, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        match self.tx.open_table(table(name)) {
            Ok(t) => Ok(self.store.check(t.get(key))?.map(|v| v.value().to_vec())),
            // redb creates a table on its first write: never written is empty.
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => self.store.check(Err(e)),
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
        match self.tx.open_table(table(name)) {
            Ok(t) => self.store.check(collect(&t, start, end, order, limit)),
            Err(TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(e) => self.store.check(Err(e)),
        }
    }
}

impl ReadTx for Write<'_> {
    fn get(&self, name: &str, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        // Opening a table in a write transaction creates it; reading an absent
        // table must not, or a failed lookup would leave traces.
        if !self.exists(name)? {
            return Ok(None);
        }
        let t = self.store.check(self.tx.open_table(table(name)))?;
        Ok(self.store.check(t.get(key))?.map(|v| v.value().to_vec()))
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
        let t = self.store.check(self.tx.open_table(table(name)))?;
        self.store.check(collect(&t, start, end, order, limit))
    }
}

impl WriteTx for Write<'_> {
    fn put(&self, name: &str, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let mut t = self.store.check(self.tx.open_table(table(name)))?;
        self.created(name);
        self.store.check(t.insert(key, value))?;
        Ok(())
    }

    fn delete(&self, name: &str, key: &[u8]) -> anyhow::Result<bool> {
        if !self.exists(name)? {
            return Ok(false);
        }
        let mut t = self.store.check(self.tx.open_table(table(name)))?;
        Ok(self.store.check(t.remove(key))?.is_some())
    }

    fn commit(self: Box<Self>) -> anyhow::Result<()> {
        let Self { tx, _db, store, .. } = *self;
        store.check(tx.commit())
    }
}
