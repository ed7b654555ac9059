//! A small pool of PostgreSQL connections, each with its statements
//! prepared.
//!
//! The sync `postgres` client runs a tokio runtime of its own per
//! connection, so a connection may be used and dropped only off async
//! threads (on `spawn_blocking` threads, plain threads). The store is used
//! there, but its last `Arc` may be dropped anywhere: connections that go
//! are therefore dropped on a thread of their own.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls, Statement};

/// A connection and the statements the store runs on it, on its schema.
pub(super) struct Conn {
    pub client: Client,
    /// The namespace's table, schema-qualified.
    pub kv: String,
    pub get: Statement,
    pub put: Statement,
    pub delete: Statement,
    /// Ranges: [ascending, descending] × [with an end, to the last key].
    pub range: [[Statement; 2]; 2],
}

impl Conn {
    fn open(config: &Config, schema: &str) -> anyhow::Result<Self> {
        let mut client = config.connect(NoTls)?;
        let kv = format!("{schema}.kv");
        let range = |order: &str, bounded: bool| {
            let (end, limit) = if bounded {
                (" AND key < $3", "$4")
            } else {
                ("", "$3")
            };
            format!(
                "SELECT key, value FROM {kv} WHERE tbl = $1 AND key >= $2{end} \
                 ORDER BY key {order} LIMIT {limit}"
            )
        };
        Ok(Self {
            get: client.prepare(&format!(
                "SELECT value FROM {kv} WHERE tbl = $1 AND key = $2"
            ))?,
            put: client.prepare(&format!(
                "INSERT INTO {kv} (tbl, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value"
            ))?,
            delete: client.prepare(&format!("DELETE FROM {kv} WHERE tbl = $1 AND key = $2"))?,
            range: [
                [
                    client.prepare(&range("ASC", true))?,
                    client.prepare(&range("ASC", false))?,
                ],
                [
                    client.prepare(&range("DESC", true))?,
                    client.prepare(&range("DESC", false))?,
                ],
            ],
            client,
            kv,
        })
    }
}

/// Drops connections where their runtimes may be dropped.
fn discard(conns: Vec<Conn>) {
    if conns.is_empty() {
        return;
    }
    // If no thread can be started, the process is going down anyway.
    let _ = std::thread::Builder::new()
        .name("powerplug-pg-close".into())
        .spawn(move || drop(conns));
}

pub(super) struct Pool {
    config: Config,
    schema: String,
    max: usize,
    wait: Duration,
    /// Idle connections, and how many exist in all.
    idle: Mutex<(Vec<Conn>, usize)>,
    returned: Condvar,
}

impl Pool {
    pub fn new(config: Config, schema: String, max: usize, wait: Duration) -> Self {
        Self {
            config,
            schema,
            max: max.max(1),
            wait,
            idle: Mutex::new((Vec::new(), 0)),
            returned: Condvar::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// An idle connection, a new one while fewer than `max` exist, or the
    /// first one returned within `wait`.
    pub fn get(&self) -> anyhow::Result<Pooled<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(conn) = idle.0.pop() {
                if !conn.client.is_closed() {
                    return Ok(Pooled::new(self, conn));
                }
                idle.1 -= 1;
                discard(vec![conn]);
                continue;
            }
            if idle.1 < self.max {
                idle.1 += 1;
                drop(idle);
                return match Conn::open(&self.config, &self.schema) {
                    Ok(conn) => Ok(Pooled::new(self, conn)),
                    Err(e) => {
                        self.forget(None);
                        Err(e.context("cannot connect to PostgreSQL (storage.url)"))
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(
                !left.is_zero(),
                "the store is busy: all {} PostgreSQL connections are in use",
                self.max
            );
            idle = self
                .returned
                .wait_timeout(idle, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Lets go of every idle connection.
    pub fn clear_idle(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let gone = std::mem::take(&mut idle.0);
        idle.1 -= gone.len();
        drop(idle);
        self.returned.notify_all();
        discard(gone);
    }

    /// A connection that is no use any more leaves the pool's count.
    fn forget(&self, conn: Option<Conn>) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).1 -= 1;
        self.returned.notify_one();
        discard(conn.into_iter().collect());
    }

    fn put_back(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .push(conn);
        self.returned.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(PoisonError::into_inner);
        discard(std::mem::take(&mut idle.0));
    }
}

/// A connection out of the pool: back in when dropped, unless marked broken.
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    pub broken: bool,
}

impl<'a> Pooled<'a> {
    fn new(pool: &'a Pool, conn: Conn) -> Self {
        Self {
            pool,
            conn: Some(conn),
            broken: false,
        }
    }

    pub fn conn(&mut self) -> &mut Conn {
        // Present from `new` until `drop`.
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.broken || conn.client.is_closed() {
            self.pool.forget(Some(conn));
        } else {
            self.pool.put_back(conn);
        }
    }
}
