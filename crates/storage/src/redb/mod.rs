//! The embedded default store: one redb database file per host, one redb table
//! (bytes → bytes) per named table.
//!
//! The [`Database`] sits behind a lock and an [`Arc`] so that it can be
//! swapped: every transaction holds a clone of the `Arc` (never the lock), so
//! the lock is held only while a transaction begins, and "no clone but ours"
//! means "no transaction open". Two things need that:
//! - compaction, which redb runs on `&mut Database` with no transaction open;
//! - recovery after an I/O error (a full disk): redb then refuses every later
//!   operation with `PreviousIo` until the file is opened again, so the next
//!   `read()` or `write()` opens it again once the old transactions are gone.

mod tx;
mod upkeep;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use redb::{Database, DatabaseError, ReadableDatabase};

use super::{Compacted, ReadTx, Store, StoreStats, WriteTx};

pub use upkeep::check_store_file;
pub(crate) use upkeep::copy_from;

const CACHE_BYTES: usize = 32 << 20;

pub struct RedbStore {
    /// The file, to open again after an I/O error; `None` in memory.
    path: Option<PathBuf>,
    /// `None` between closing a failed database and opening it again.
    db: RwLock<Option<Arc<Database>>>,
    /// An operation failed with an I/O error: open the file again.
    broken: AtomicBool,
}

/// The file is open in another process (a running role holds it).
#[derive(Debug)]
pub struct InUse(pub PathBuf);

impl std::fmt::Display for InUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is open in another process (is the role running?)",
            self.0.display()
        )
    }
}

impl std::error::Error for InUse {}

/// Opens the database file, as [`RedbStore::open`] and every reopen do.
fn open_file(path: &Path) -> anyhow::Result<Database> {
    // redb caches up to 1 GiB by default; a process may hold a hundred
    // roles' databases (the demo), and the working set of one is small.
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => InUse(path.to_owned()).into(),
            e => anyhow::anyhow!("cannot open {}: {e}", path.display()),
        })
}

impl RedbStore {
    /// Opens the database file, creating it (0600: only this user) if needed.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        crate::private::touch(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        Ok(Self::from(open_file(path)?, Some(path)))
    }

    /// Opens a database file that must exist (a stopped role's); an
    /// [`InUse`] error if a running process holds it.
    pub fn open_existing(path: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0),
            "{} is not a store (no such file, or empty)",
            path.display()
        );
        Ok(Self::from(open_file(path)?, Some(path)))
    }

    /// A store in memory, for tests and benchmarks of the layers above.
    pub fn in_memory() -> anyhow::Result<Self> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Ok(Self::from(db, None))
    }

    fn from(db: Database, path: Option<&Path>) -> Self {
        Self {
            path: path.map(Path::to_owned),
            db: RwLock::new(Some(Arc::new(db))),
            broken: AtomicBool::new(false),
        }
    }

    /// The open database, opened again first if an I/O error broke it.
    fn current(&self) -> anyhow::Result<Arc<Database>> {
        if self.broken.load(Ordering::Acquire) {
            self.reopen()?;
        }
        // The lock guards only the swap of an `Arc`: a panic while it was
        // held cannot have left it half done.
        let slot = self.db.read().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(db) => Ok(Arc::clone(db)),
            None => anyhow::bail!("the store is closed after an I/O error; try again"),
        }
    }

    /// Closes the broken database and opens its file again. Refused while
    /// transactions on the old one are open: its file lock lives as long as
    /// they do. The caller's next call tries again.
    fn reopen(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            // Memory has no I/O to fail and nothing to open again.
            self.broken.store(false, Ordering::Release);
            return Ok(());
        };
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if !self.broken.load(Ordering::Acquire) {
            return Ok(()); // another thread reopened it meanwhile
        }
        if let Some(db) = slot.as_ref() {
            let open = Arc::strong_count(db) - 1;
            anyhow::ensure!(
                open == 0,
                "the store failed to write and is opened again once its {open} open transaction(s) end; try again"
            );
        }
        // Dropping the last `Arc` closes the file and releases its lock.
        *slot = None;
        *slot = Some(Arc::new(open_file(path)?));
        self.broken.store(false, Ordering::Release);
        tracing::info!(path = %path.display(), "store opened again after an I/O error");
        Ok(())
    }

    /// redb's error as ours. After an I/O error redb latches (every later
    /// operation fails with `PreviousIo`): mark the file to be opened again.
    fn check<T, E: Into<redb::Error>>(&self, result: Result<T, E>) -> anyhow::Result<T> {
        result.map_err(|e| {
            let e: redb::Error = e.into();
            if matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
                && !self.broken.swap(true, Ordering::AcqRel)
            {
                tracing::warn!(error = %e, "store I/O failed; it is opened again on next use");
            }
            e.into()
        })
    }
}

impl Store for RedbStore {
    fn read(&self) -> anyhow::Result<Box<dyn ReadTx + '_>> {
        let db = self.current()?;
        let tx = self.check(db.begin_read())?;
        Ok(Box::new(tx::Read::new(self, tx, db)))
    }

    fn write(&self) -> anyhow::Result<Box<dyn WriteTx + '_>> {
        let db = self.current()?;
        let tx = self.check(db.begin_write())?;
        Ok(Box::new(tx::Write::new(self, tx, db)))
    }

    fn stats(&self) -> anyhow::Result<StoreStats> {
        upkeep::stats(self)
    }

    fn compact(&self) -> anyhow::Result<Compacted> {
        upkeep::compact(self)
    }

    fn backup_to(&self, path: &Path) -> anyhow::Result<u64> {
        upkeep::backup_to(self, path)
    }
}
