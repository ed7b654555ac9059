//! Transactions of a [`PgStore`](super::PgStore): a pooled connection inside
//! `BEGIN`, until `COMMIT`, or `ROLLBACK` when dropped.

use std::cell::Cell;
use std::sync::MutexGuard;

use postgres::types::ToSql;

use super::pool::Pooled;
use super::session::Session;
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
    conn: Pooled<'a>,
    state: Cell<State>,
    /// Held by a writer until it ends: this process's next writer waits
    /// here. Dropped after the transaction (fields drop after `drop`).
    _queued: Option<MutexGuard<'a, ()>>,
}

impl<'a> Tx<'a> {
    /// Runs `begin` (one round trip) on `conn`. On failure, whether the
    /// connection turned out to be lost (the server restarted, say).
    pub fn begin(mut conn: Pooled<'a>, begin: &str) -> Result<Self, (anyhow::Error, bool)> {
        let sql = begin.to_owned();
        let begun = conn.conn().call(move |s| s.client.batch_execute(&sql));
        let failed = match begun {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some((e.is_closed(), anyhow::Error::new(e))),
            Err(e) => Some((true, e)),
        };
        if let Some((lost, e)) = failed {
            conn.broken = true;
            let lost = lost || conn.conn().is_closed();
            return Err((e.context("PostgreSQL store"), lost));
        }
        Ok(Self {
            conn,
            state: Cell::new(State::Open),
            _queued: None,
        })
    }

    /// Holds `queued` until the transaction ends.
    pub fn queued(mut self, queued: MutexGuard<'a, ()>) -> Self {
        self._queued = Some(queued);
        self
    }

    /// Runs `job` on the connection; a failure marks the transaction failed.
    fn on<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Session) -> Result<T, postgres::Error> + Send + 'static,
    ) -> anyhow::Result<T> {
        anyhow::ensure!(
            self.state.get() == State::Open,
            "the transaction failed or ended earlier; begin a new one"
        );
        let done = match self.conn.conn().call(job) {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => anyhow::Error::new(e),
            Err(e) => e,
        };
        self.state.set(State::Failed);
        Err(done.context("PostgreSQL store"))
    }

    /// The names of the tables that hold anything.
    pub fn tables(&self) -> anyhow::Result<Vec<String>> {
        let rows = self.on(|s| {
            let sql = format!("SELECT DISTINCT tbl FROM {} ORDER BY tbl", s.kv);
            s.client.query(&sql, &[])
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl ReadTx for Tx<'_> {
    fn get(&self, table: &str, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let (table, key) = (table.to_owned(), key.to_vec());
        let row = self.on(move |s| {
            let params: [&(dyn ToSql + Sync); 2] = [&table, &key];
            s.client.query_opt(&s.get, &params)
        })?;
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
        let (table, start, end) = (table.to_owned(), start.to_vec(), end.map(<[u8]>::to_vec));
        let rows = self.on(move |s| {
            let by = &s.range[usize::from(order == Order::Descending)];
            match &end {
                Some(end) => {
                    let params: [&(dyn ToSql + Sync); 4] = [&table, &start, end, &limit];
                    s.client.query(&by[0], &params)
                }
                None => {
                    let params: [&(dyn ToSql + Sync); 3] = [&table, &start, &limit];
                    s.client.query(&by[1], &params)
                }
            }
        })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl WriteTx for Tx<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let (table, key, value) = (table.to_owned(), key.to_vec(), value.to_vec());
        self.on(move |s| {
            let params: [&(dyn ToSql + Sync); 3] = [&table, &key, &value];
            s.client.execute(&s.put, &params)
        })
        .map(drop)
    }

    fn delete(&self, table: &str, key: &[u8]) -> anyhow::Result<bool> {
        let (table, key) = (table.to_owned(), key.to_vec());
        let n = self.on(move |s| {
            let params: [&(dyn ToSql + Sync); 2] = [&table, &key];
            s.client.execute(&s.delete, &params)
        })?;
        Ok(n > 0)
    }

    fn commit(self: Box<Self>) -> anyhow::Result<()> {
        self.on(|s| s.client.batch_execute("COMMIT"))?;
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
        let ended = self
            .conn
            .conn()
            .call(|s| s.client.batch_execute("ROLLBACK"));
        if !matches!(ended, Ok(Ok(()))) {
            self.conn.broken = true;
        }
    }
}
