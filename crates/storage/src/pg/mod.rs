//! The shared store: a namespace of a PostgreSQL database, so that several
//! hosts can keep one store (docs/design/postgres-backend.md says why each
//! choice).
//!
//! - One schema per namespace, `pp_<namespace>`, with one table
//!   `kv (tbl, key, value)`: tables are rows, so a tick never runs DDL.
//!   `bytea` compares like `memcmp`, shorter first: the order of redb's keys.
//! - Writers are serialized per namespace, across hosts: a write transaction
//!   begins `READ COMMITTED` and first takes a transaction-scoped advisory
//!   lock on the namespace. Each later statement then sees every commit made
//!   before the lock was granted. (Under `REPEATABLE READ` the lock query
//!   itself would take the snapshot, before the wait: a writer that waited
//!   would read stale rows. `SERIALIZABLE` would need the whole transaction
//!   retried, and a tick runs its strategy inside it.)
//! - Readers see one snapshot: `REPEATABLE READ, READ ONLY`, taken at their
//!   first statement.

mod lease;
mod overlay;
mod pool;
mod session;
mod tx;

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;

use self::pool::Pool;
use super::{Compacted, ReadTx, Store, StoreStats, WriteTx};

/// Connections a store opens at most.
const MAX_CONNECTIONS: usize = 8;
/// How long a transaction waits for a connection before it fails.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);
/// A namespace's schema is `pp_<namespace>`; PostgreSQL cuts names at 63 bytes.
const MAX_NAMESPACE: usize = 60;
/// The advisory lock under which schemas are created (a constant of ours).
const MIGRATION_LOCK: i64 = 0x706f_7765_7270_6c67;
/// How a read transaction begins: one snapshot, taken at its first statement.
const READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

pub struct PgStore {
    pool: Pool,
    schema: String,
    namespace: String,
    /// The advisory lock that serializes the namespace's writers.
    write_lock: i64,
    /// This process's writers queue here, not on pooled connections.
    writer: Mutex<()>,
    /// Who this store is when it holds a lease: random per store, and in
    /// the `application_name` of every session it opens, so that a host
    /// taking the lease over can end them (see [`lease`]).
    holder: String,
}

impl PgStore {
    /// A transaction begun with `sql`. A lost connection (the server
    /// restarted, the network cut) takes the pool's idle ones with it, most
    /// likely lost too: the transaction begins again once, on a new one.
    fn begin(&self, sql: &str) -> anyhow::Result<tx::Tx<'_>> {
        match tx::Tx::begin(self.pool.get()?, sql) {
            Err((_, true)) => {
                self.pool.clear_idle();
                tx::Tx::begin(self.pool.get()?, sql).map_err(|(e, _)| e)
            }
            begun => begun.map_err(|(e, _)| e),
        }
    }

    /// Runs `job` outside a transaction, again once on a new connection if
    /// the one it got turned out to be lost (as [`begin`](Self::begin)).
    fn autocommit<T: Send + 'static>(
        &self,
        job: impl Fn(&mut session::Session) -> Result<T, postgres::Error> + Send + Clone + 'static,
    ) -> anyhow::Result<T> {
        let mut conn = self.pool.get()?;
        match conn.conn().call(job.clone()) {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if !e.is_closed() && !conn.conn().is_closed() => {
                return Err(e.into());
            }
            _ => conn.broken = true,
        }
        drop(conn);
        self.pool.clear_idle();
        Ok(self.pool.get()?.conn().call(job)??)
    }

    /// Connects to the database at `url` (a `postgres://` URL or a
    /// `key=value` string) and uses `namespace`, creating it if needed.
    /// Errors name the configuration key at fault.
    pub fn connect(url: &str, namespace: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            crate::valid_name(namespace) && namespace.len() <= MAX_NAMESPACE,
            "storage.namespace: `{namespace}` is not 1 to {MAX_NAMESPACE} of A-Z a-z 0-9 _ - . \
             (not starting with a dot)"
        );
        let mut config = crate::config::postgres_config(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.keepalives(true);
        let holder = {
            let bytes = crate::private::random32()?;
            bytes[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        // Who holds a session, then which namespace it serves, in
        // `pg_stat_activity` (a takeover ends the sessions of the holder
        // before it by this name, so it is always ours).
        config.application_name(&format!("powerplug {holder} {namespace}"));
        let schema = format!("\"pp_{namespace}\"");
        let store = Self {
            pool: Pool::new(config, schema.clone(), MAX_CONNECTIONS, CONNECTION_WAIT),
            write_lock: lock_key(namespace),
            namespace: namespace.to_owned(),
            schema,
            writer: Mutex::new(()),
            holder,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Creates the namespace's schema and table if they are not there.
    /// Concurrent `CREATE … IF NOT EXISTS` can still collide: one at a time.
    fn migrate(&self) -> anyhow::Result<()> {
        let s = &self.schema;
        let sql = format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); \
             CREATE SCHEMA IF NOT EXISTS {s}; \
             CREATE TABLE IF NOT EXISTS {s}.kv (\
               tbl text COLLATE \"C\" NOT NULL, key bytea NOT NULL, value bytea NOT NULL, \
               PRIMARY KEY (tbl, key)); \
             CREATE TABLE IF NOT EXISTS {s}.lease (\
               name text COLLATE \"C\" PRIMARY KEY, holder text NOT NULL, \
               epoch bigint NOT NULL, expires timestamptz NOT NULL); \
             COMMIT;"
        );
        // Not through the pool: its connections prepare statements on the table.
        let config = self.pool.config().clone();
        let schema = s.clone();
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut client = config
                .connect(postgres::NoTls)
                .context("storage.url: cannot connect to PostgreSQL")?;
            client.batch_execute(&sql).with_context(|| {
                format!("storage.namespace: cannot create the store's schema {schema}")
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("creating the store's schema {s} failed"))?
    }

    /// Runs `sql` (no parameters, no rows) outside any transaction.
    fn execute(&self, sql: String) -> anyhow::Result<()> {
        self.pool
            .get()?
            .conn()
            .call(move |s| s.client.batch_execute(&sql))??;
        Ok(())
    }

    /// Removes the namespace and everything in it.
    pub fn drop_namespace(self) -> anyhow::Result<()> {
        self.execute(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
    }
}

/// The advisory lock of a namespace: a 64-bit FNV-1a hash of its name, the
/// same in every process.
fn lock_key(namespace: &str) -> i64 {
    let hash = format!("powerplug/namespace/{namespace}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    i64::from_be_bytes(hash.to_be_bytes())
}

impl Store for PgStore {
    fn read(&self) -> anyhow::Result<Box<dyn ReadTx + '_>> {
        Ok(Box::new(self.begin(READ)?))
    }

    fn write(&self) -> anyhow::Result<Box<dyn WriteTx + '_>> {
        let queued = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let begin = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({})",
            self.write_lock
        );
        Ok(Box::new(self.begin(&begin)?.queued(queued, &self.holder)))
    }

    fn lease(&self, name: &str, period: Duration) -> anyhow::Result<super::Lease> {
        self.lease_now(name, period)
    }

    fn release(&self, name: &str) -> anyhow::Result<()> {
        self.release_now(name)
    }

    fn stats(&self) -> anyhow::Result<StoreStats> {
        let name = format!("pp_{}", self.namespace);
        // From the catalog, not a scan of every row: `/metrics` asks often.
        // The table's size (rows, large values, dead rows until vacuumed)
        // stands for what is stored.
        let sizes = self.pool.get()?.conn().call(move |s| {
            s.client.query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint, \
                        coalesce(sum(pg_table_size(c.oid)), 0)::bigint \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind = 'r'",
                &[&name],
            )
        })??;
        let bytes = |v: i64| u64::try_from(v).unwrap_or(0);
        let (total, stored) = (bytes(sizes.get(0)), bytes(sizes.get(1)));
        Ok(StoreStats {
            file_bytes: total,
            allocated_bytes: total,
            stored_bytes: stored,
            // The indexes.
            metadata_bytes: total.saturating_sub(stored),
            fragmented_bytes: 0,
            // PostgreSQL reuses its free space itself: nothing for
            // compaction to give back.
            free_bytes: 0,
        })
    }

    /// `VACUUM`: makes deleted rows' room reusable (and gives back what is
    /// free at the table's end). It neither blocks readers nor writers.
    fn compact(&self) -> anyhow::Result<Compacted> {
        let before = self.stats()?.file_bytes;
        let started = std::time::Instant::now();
        self.execute(format!("VACUUM (ANALYZE) {}.kv", self.schema))?;
        Ok(Compacted {
            before_bytes: before,
            after_bytes: self.stats()?.file_bytes,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// A copy of one snapshot as an embedded store file, which `powerplug
    /// store restore` and `check` take as they are. A whole database is
    /// backed up with `pg_dump`.
    fn backup_to(&self, path: &Path) -> anyhow::Result<u64> {
        let read = self.begin(READ)?;
        let tables = read.tables()?;
        crate::redb::copy_from(&read, &tables, path)
    }
}
