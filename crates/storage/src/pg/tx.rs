//! Transactions of a [`PgStore`](super::PgStore): a pooled connection inside
//! `BEGIN`, until `COMMIT`, or `ROLLBACK` when dropped.

use std::cell::{Cell, RefCell};
use std::sync::MutexGuard;

use postgres::types::ToSql;

use super::pool::{Conn, Pooled};
use crate::{Entries, Order, ReadTx, WriteTx};

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// A statement failed: PostgreSQL has aborted the transaction, and its
    /// `COMMIT` would quietly roll back. Refuse to go on instead.
    Failed,
    Committed,
}

pub(super) struct Tx<'a> {
    conn: RefCell<Pooled<'a>>,
    state: Cell<State>,
    /// Held by a writer until it ends: this process's next writer waits
    /// here. Dropped after the transaction (fields drop after `drop`).
    _queued: Option<MutexGuard<'a, ()>>,
}

impl<'a> Tx<'a> {
    /// Runs `begin` (one round trip) on `conn`. On failure, whether the
    /// connection turned out to be lost (the server restarted, say).
    pub fn begin(mut conn: Pooled<'a>, begin: &str) -> Result<Self, (anyhow::Error, bool)> {
        if let Err(e) = conn.conn().client.batch_execute(begin) {
            conn.broken = true;
            let lost = e.is_closed() || conn.conn().client.is_closed();
            return Err((anyhow::Error::new(e).context("PostgreSQL store"), lost));
        }
        Ok(Self {
            conn: RefCell::new(conn),
            state: Cell::new(State::Open),
            _queued: None,
        })
    }

    /// Holds `queued` until the transaction ends.
    pub fn queued(mut self, queued: MutexGuard<'a, ()>) -> Self {
        self._queued = Some(queued);
        self
    }

    /// Runs `f` on the connection; a failure marks the transaction failed.
    fn on<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, postgres::Error>) -> anyhow::Result<T> {
        anyhow::ensure!(
            self.state.get() == State::Open,
            "the transaction failed or ended earlier; begin a new one"
        );
        let mut pooled = self.conn.borrow_mut();
        f(pooled.conn()).map_err(|e| {
            self.state.set(State::Failed);
            anyhow::Error::new(e).context("PostgreSQL store")
        })
    }

    /// The names of the tables that hold anything.
    pub fn tables(&self) -> anyhow::Result<Vec<String>> {
        let rows = self.on(|c| {
            let sql = format!("SELECT DISTINCT tbl FROM {} ORDER BY tbl", c.kv);
            c.client.query(&sql, &[])
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl ReadTx for Tx<'_> {
    fn get(&self, table: &str, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let params: [&(dyn ToSql + Sync); 2] = [&table, &key];
        let row = self.on(|c| c.client.query_opt(&c.get, &params))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn range(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> anyhow::Result<Entries> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.on(|c| {
            let by = &c.range[usize::from(order == Order::Descending)];
            match end {
                Some(end) => {
                    let params: [&(dyn ToSql + Sync); 4] = [&table, &start, &end, &limit];
                    c.client.query(&by[0], &params)
                }
                None => {
                    let params: [&(dyn ToSql + Sync); 3] = [&table, &start, &limit];
                    c.client.query(&by[1], &params)
                }
            }
        })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl WriteTx for Tx<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let params: [&(dyn ToSql + Sync); 3] = [&table, &key, &value];
        self.on(|c| c.client.execute(&c.put, &params)).map(drop)
    }

    fn delete(&self, table: &str, key: &[u8]) -> anyhow::Result<bool> {
        let params: [&(dyn ToSql + Sync); 2] = [&table, &key];
        let n = self.on(|c| c.client.execute(&c.delete, &params))?;
        Ok(n > 0)
    }

    fn commit(self: Box<Self>) -> anyhow::Result<()> {
        self.on(|c| c.client.batch_execute("COMMIT"))?;
        self.state.set(State::Committed);
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.state.get() == State::Committed {
            return;
        }
        // Not committed, or aborted by a failed statement (which ROLLBACK
        // still has to end). A connection it cannot end is not put back.
        let pooled = self.conn.get_mut();
        if pooled.conn().client.batch_execute("ROLLBACK").is_err() {
            pooled.broken = true;
        }
    }
}
