//! What every user of the host's redb database needs.

use redb::{Key, ReadOnlyTable, ReadTransaction, TableDefinition, TableError, Value};

/// The table, or `None` while nothing was ever written to it (redb creates a
/// table on its first write), which readers treat as empty.
pub fn existing<K: Key + 'static, V: Value + 'static>(
    tx: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, TableError> {
    match tx.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
