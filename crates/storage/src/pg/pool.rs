//! A small pool of PostgreSQL connections, each with its statements
//! prepared, each on a thread of its own ([`Conn`]).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::Config;

pub(super) use super::session::Conn;

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
                if !conn.is_closed() {
                    return Ok(Pooled::new(self, conn));
                }
                idle.1 -= 1;
                continue;
            }
            if idle.1 < self.max {
                idle.1 += 1;
                drop(idle);
                return match Conn::open(&self.config, &self.schema) {
                    Ok(conn) => Ok(Pooled::new(self, conn)),
                    Err(e) => {
                        self.forget();
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
    }

    /// A connection that is no use any more leaves the pool's count.
    fn forget(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).1 -= 1;
        self.returned.notify_one();
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

    pub fn conn(&self) -> &Conn {
        // Present from `new` until `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.broken || conn.is_closed() {
            // Dropping it ends its thread, which closes the connection.
            drop(conn);
            self.pool.forget();
        } else {
            self.pool.put_back(conn);
        }
    }
}
