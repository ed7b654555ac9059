//! Storage: the one place that knows where a host's data lives.
//!
//! Every service (ledger, outbox, books, tick log, registry, inbox,
//! documents, channel store) keeps its data in named tables of a [`Store`]:
//! ordered byte keys (built with [`key`]) to byte values, read and written in
//! transactions. A tick's state change and all its effects go through one
//! [`WriteTx`], so they commit together or not at all. [`RedbStore`] is the
//! embedded default; [`PgStore`] keeps a namespace of a PostgreSQL database
//! that several hosts can share.

mod config;
pub mod key;
pub mod lease;
pub mod objects;
mod pg;
pub mod private;
mod redb;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use self::config::{StorageConfig, open};
pub use self::lease::{Fenced, Lease};
pub use self::objects::{Objects, ObjectsConfig};
pub use self::pg::PgStore;
pub use self::redb::{InUse, RedbStore, check_store_file};

/// Which way a range is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// Entries of a table in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A consistent view of the store.
pub trait ReadTx {
    fn get(&self, table: &str, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>>;

    /// The entries with `start <= key < end` (no end: to the last key), in
    /// `order`, at most `limit`.
    fn range(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> anyhow::Result<Entries>;

    /// Says that `keys` of `table` are about to be read one by one. A store
    /// whose every read is a round trip (PostgreSQL) fetches them all at
    /// once; an embedded one has nothing to gain and ignores it.
    fn prefetch(&self, table: &str, keys: &[Vec<u8>]) -> anyhow::Result<()> {
        let _ = (table, keys);
        Ok(())
    }

    /// [`prefetch`](Self::prefetch) for ranges `start <= key < end` about to
    /// be read whole in ascending order (each holding a few entries: the
    /// messages at a channel address).
    fn prefetch_ranges(&self, table: &str, ranges: &[(Vec<u8>, Vec<u8>)]) -> anyhow::Result<()> {
        let _ = (table, ranges);
        Ok(())
    }
}

/// A transaction that changes the store when, and only if, it commits.
pub trait WriteTx: ReadTx {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> anyhow::Result<()>;
    /// Whether there was an entry.
    fn delete(&self, table: &str, key: &[u8]) -> anyhow::Result<bool>;
    /// [`delete`](Self::delete) without the answer, which a networked store
    /// would have to ask the server for.
    fn remove(&self, table: &str, key: &[u8]) -> anyhow::Result<()> {
        self.delete(table, key).map(drop)
    }
    /// Makes the commit fail with [`Fenced`] unless the store still holds
    /// the lease `name` in `epoch` (unexpired) when it commits; a store that
    /// holds every lease (redb) ignores it.
    fn fence(&self, name: &str, epoch: u64) -> anyhow::Result<()> {
        let _ = (name, epoch);
        Ok(())
    }
    /// Durable once this returns. Dropping the transaction instead discards it.
    fn commit(self: Box<Self>) -> anyhow::Result<()>;
}

pub trait Store: Send + Sync {
    fn read(&self) -> anyhow::Result<Box<dyn ReadTx + '_>>;
    /// Write transactions are serialized: one at a time.
    fn write(&self) -> anyhow::Result<Box<dyn WriteTx + '_>>;

    /// How the store's file is used. Waits for the write in progress.
    fn stats(&self) -> anyhow::Result<StoreStats>;

    /// Gives the file's free pages back to the file system. Every new
    /// transaction waits while it runs; the ones open when it starts get a
    /// moment to end, and if one does not, it refuses (the caller retries
    /// later).
    fn compact(&self) -> anyhow::Result<Compacted>;

    /// Writes a consistent copy of every table to a new file at `path`
    /// (0600; it must not exist) and returns its size. The copy is one read
    /// transaction's view: the store keeps serving reads and writes meanwhile.
    fn backup_to(&self, path: &Path) -> anyhow::Result<u64>;

    /// Renews the lease `name` for `period` if this store holds it, or takes
    /// it if nobody does or its holder let it run out (cutting that holder's
    /// sessions off first, so nothing it began can still commit); else says
    /// who holds it. A store only one process can open holds every lease.
    fn lease(&self, name: &str, period: std::time::Duration) -> anyhow::Result<Lease> {
        let _ = (name, period);
        Ok(Lease::Me { epoch: 1 })
    }

    /// Lets go of the lease `name` if this store holds it, so that another
    /// host takes it at once (a graceful stop).
    fn release(&self, name: &str) -> anyhow::Result<()> {
        let _ = name;
        Ok(())
    }
}

/// How a store's file is used, in bytes (`/status`, `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// The file's length (in memory: what is allocated).
    pub file_bytes: u64,
    /// Keys and values.
    pub stored_bytes: u64,
    /// The tables' branches and page headers.
    pub metadata_bytes: u64,
    /// Unused room in the tables' pages.
    pub fragmented_bytes: u64,
    /// Room in the file that no table's page takes (free pages, and the
    /// store's own few pages of bookkeeping): what compaction can give back.
    pub free_bytes: u64,
    /// The tables' pages.
    pub allocated_bytes: u64,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Compacted {
    pub before_bytes: u64,
    pub after_bytes: u64,
    /// How long writes waited for it.
    pub millis: u64,
}

/// A host's store, shared by its services and threads.
pub type Db = Arc<dyn Store>;

impl<S: Store + ?Sized> Store for Arc<S> {
    fn read(&self) -> anyhow::Result<Box<dyn ReadTx + '_>> {
        (**self).read()
    }

    fn write(&self) -> anyhow::Result<Box<dyn WriteTx + '_>> {
        (**self).write()
    }

    fn stats(&self) -> anyhow::Result<StoreStats> {
        (**self).stats()
    }

    fn compact(&self) -> anyhow::Result<Compacted> {
        (**self).compact()
    }

    fn backup_to(&self, path: &Path) -> anyhow::Result<u64> {
        (**self).backup_to(path)
    }

    fn lease(&self, name: &str, period: std::time::Duration) -> anyhow::Result<Lease> {
        (**self).lease(name, period)
    }

    fn release(&self, name: &str) -> anyhow::Result<()> {
        (**self).release(name)
    }
}

/// The entries whose keys start with `prefix`.
pub fn prefixed(
    tx: &dyn ReadTx,
    table: &str,
    prefix: &[u8],
    order: Order,
    limit: usize,
) -> anyhow::Result<Entries> {
    tx.range(
        table,
        prefix,
        key::after_prefix(prefix).as_deref(),
        order,
        limit,
    )
}

/// The values of `entries`, each decoded with postcard.
pub fn values<T: serde::de::DeserializeOwned>(entries: Entries) -> anyhow::Result<Vec<T>> {
    entries
        .iter()
        .map(|(_, v)| postcard::from_bytes(v).map_err(Into::into))
        .collect()
}

/// The last entry under `prefix`, if any.
pub fn last(
    tx: &dyn ReadTx,
    table: &str,
    prefix: &[u8],
) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
    Ok(prefixed(tx, table, prefix, Order::Descending, 1)?.pop())
}

/// Small named values of a host: its keys, its channel positions, cursors.
const META: &str = "meta";
/// Named running totals a host reports in `/status`.
const COUNTERS: &str = "counters";

/// A named value, decoded with postcard; `None` if never written.
pub fn meta<T: serde::de::DeserializeOwned>(
    db: &dyn Store,
    name: &str,
) -> anyhow::Result<Option<T>> {
    meta_in(&*db.read()?, name)
}

/// A named value inside a transaction.
pub fn meta_in<T: serde::de::DeserializeOwned>(
    tx: &dyn ReadTx,
    name: &str,
) -> anyhow::Result<Option<T>> {
    match tx.get(META, &key::of(&[&name]))? {
        Some(bytes) => Ok(Some(postcard::from_bytes(&bytes)?)),
        None => Ok(None),
    }
}

pub fn set_meta<T: serde::Serialize>(
    tx: &dyn WriteTx,
    name: &str,
    value: &T,
) -> anyhow::Result<()> {
    tx.put(META, &key::of(&[&name]), &postcard::to_allocvec(value)?)
}

pub fn delete_meta(tx: &dyn WriteTx, name: &str) -> anyhow::Result<()> {
    tx.remove(META, &key::of(&[&name]))
}

/// The named value, created (and committed) by `init` on first use.
pub fn meta_or_init<T: serde::Serialize + serde::de::DeserializeOwned>(
    db: &dyn Store,
    name: &str,
    init: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if let Some(value) = meta(db, name)? {
        return Ok(value);
    }
    let value = init()?;
    let tx = db.write()?;
    // Hosts sharing a store may start together: the first one's value
    // stands (a second secret would sign with keys nobody else knows).
    if let Some(first) = meta_in(&*tx, name)? {
        return Ok(first);
    }
    set_meta(&*tx, name, &value)?;
    tx.commit()?;
    Ok(value)
}

const TIMELINE: &str = "timeline";

/// Which history of the store this is. A restored copy starts a new one
/// ([`begin_timeline`]), so that the hosts that talk to this one learn that
/// it went back in time and send again what the copy does not hold (see
/// docs/operations.md).
pub fn timeline(db: &dyn Store) -> anyhow::Result<String> {
    meta_or_init(db, TIMELINE, random_timeline)
}

/// Gives the store a new timeline: done to a restored copy before it is used.
pub fn begin_timeline(db: &dyn Store) -> anyhow::Result<String> {
    let timeline = random_timeline()?;
    let tx = db.write()?;
    set_meta(&*tx, TIMELINE, &timeline)?;
    tx.commit()?;
    Ok(timeline)
}

fn random_timeline() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Adds `by` to a counter inside the caller's transaction.
pub fn count(tx: &dyn WriteTx, name: &str, by: u64) -> anyhow::Result<()> {
    if by == 0 {
        return Ok(());
    }
    let k = key::of(&[&name]);
    let now = match tx.get(COUNTERS, &k)? {
        Some(bytes) => key::u64_value(&bytes)?,
        None => 0,
    };
    tx.put(COUNTERS, &k, &now.saturating_add(by).to_be_bytes())
}

/// One counter (0 if never counted): one key read, not every counter.
pub fn counter(db: &dyn Store, name: &str) -> anyhow::Result<u64> {
    match db.read()?.get(COUNTERS, &key::of(&[&name]))? {
        Some(bytes) => key::u64_value(&bytes),
        None => Ok(0),
    }
}

/// Every counter, by name.
pub fn counters(db: &dyn Store) -> anyhow::Result<BTreeMap<String, u64>> {
    let tx = db.read()?;
    let mut out = BTreeMap::new();
    for (k, v) in tx.range(COUNTERS, &[], None, Order::Ascending, usize::MAX)? {
        out.insert(key::Reader::new(&k).str()?.to_owned(), key::u64_value(&v)?);
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
