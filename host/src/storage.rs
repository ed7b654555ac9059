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

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

/// Small named values of a host: its keys, its channel positions, cursors.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Named running totals a host reports in `/status`.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// A named value, decoded with postcard; `None` if never written.
pub fn meta<T: serde::de::DeserializeOwned>(db: &Database, name: &str) -> anyhow::Result<Option<T>> {
    let tx = db.begin_read()?;
    let Some(table) = existing(&tx, META)? else {
        return Ok(None);
    };
    match table.get(name)? {
        Some(bytes) => Ok(Some(postcard::from_bytes(bytes.value())?)),
        None => Ok(None),
    }
}

pub fn set_meta<T: serde::Serialize>(tx: &WriteTransaction, name: &str, value: &T) -> anyhow::Result<()> {
    tx.open_table(META)?
        .insert(name, postcard::to_allocvec(value)?.as_slice())?;
    Ok(())
}

/// The named value, created (and committed) by `init` on first use.
pub fn meta_or_init<T: serde::Serialize + serde::de::DeserializeOwned>(
    db: &Database,
    name: &str,
    init: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if let Some(value) = meta(db, name)? {
        return Ok(value);
    }
    let value = init()?;
    let tx = db.begin_write()?;
    set_meta(&tx, name, &value)?;
    tx.commit()?;
    Ok(value)
}

/// Adds `by` to a counter inside the caller's transaction.
pub fn count(tx: &WriteTransaction, name: &str, by: u64) -> anyhow::Result<()> {
    if by == 0 {
        return Ok(());
    }
    let mut table = tx.open_table(COUNTERS)?;
    let now = table.get(name)?.map(|v| v.value()).unwrap_or(0);
    table.insert(name, now.saturating_add(by))?;
    Ok(())
}

/// Every counter, by name.
pub fn counters(db: &Database) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let tx = db.begin_read()?;
    let mut out = std::collections::BTreeMap::new();
    if let Some(table) = existing(&tx, COUNTERS)? {
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.insert(k.value().to_owned(), v.value());
        }
    }
    Ok(out)
}

/// A name that is safe as an id, a storage context or key: 1 to 64 of
/// `A-Z a-z 0-9 _ - .`, not starting with a dot (so never `.` or `..`).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
