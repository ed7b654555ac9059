//! Transactions of a [`PgStore`](super::PgStore): a pooled connection inside
//! `BEGIN`, until `COMMIT`, or `ROLLBACK` when dropped.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::MutexGuard;

use postgres::types::ToSql;

use anyhow::Context;

use super::overlay::{Overlay, SMALL_RANGE, Writes};
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
    /// Its writes until commit, and what it read (see [`Overlay`]).
    overlay: RefCell<Overlay>,
    writer: bool,
    /// Statements sent, and since when: reported at the end (debug level).
    trips: Cell<u32>,
    /// Of its time, how much went to waiting for the server.
    on_server: Cell<std::time::Duration>,
    began: std::time::Instant,
    /// Held by a writer until it ends: this process's next writer waits
    /// here. Dropped after the transaction (fields drop after `drop`).
    _queued: Option<MutexGuard<'a, ()>>,
    /// A writer's store, as a lease holder.
    holder: &'a str,
    /// The lease its commit must still hold (see [`WriteTx::fence`]).
    fence: RefCell<Option<(String, u64)>>,
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
            overlay: RefCell::default(),
            writer: false,
            trips: Cell::new(1),
            on_server: Cell::default(),
            began: std::time::Instant::now(),
            _queued: None,
            holder: "",
            fence: RefCell::default(),
        })
    }

    /// A writer of the store `holder`, which holds `queued` until it ends.
    pub fn queued(mut self, queued: MutexGuard<'a, ()>, holder: &'a str) -> Self {
        self._queued = Some(queued);
        self.writer = true;
        self.holder = holder;
        self
    }

    fn open(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.state.get() == State::Open,
            "the transaction failed or ended earlier; begin a new one"
        );
        Ok(())
    }

    /// Runs `job` on the connection; a failure marks the transaction failed.
    fn on<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Session) -> Result<T, postgres::Error> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.open()?;
        self.trips.set(self.trips.get().saturating_add(1));
        let asked = std::time::Instant::now();
        let answer = self.conn.conn().call(job);
        self.on_server.set(self.on_server.get() + asked.elapsed());
        let done = match answer {
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
        if let Some(known) = self.overlay.borrow().get(table, key) {
            return Ok(known);
        }
        let (t, k) = (table.to_owned(), key.to_vec());
        let row = self.on(move |s| {
            let params: [&(dyn ToSql + Sync); 2] = [&t, &k];
            s.client.query_opt(&s.get, &params)
        })?;
        let value: Option<Vec<u8>> = row.map(|r| r.get(0));
        self.overlay
            .borrow_mut()
            .learn(table, key.to_vec(), value.clone());
        Ok(value)
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
        if let Some((server, complete)) = self.overlay.borrow().asked(table, start, end, order)
            && let Some(merged) = self
                .overlay
                .borrow()
                .merge(table, start, end, order, limit, server, *complete)
        {
            return Ok(merged);
        }
        // Ask for as many more as this transaction's writes may hide: then
        // the merge is sure of `limit` entries.
        let shadowing = self.overlay.borrow().shadowing(table, start, end);
        let wanted = limit.saturating_add(shadowing);
        let asked = i64::try_from(wanted).unwrap_or(i64::MAX);
        let (t, s0, e) = (table.to_owned(), start.to_vec(), end.map(<[u8]>::to_vec));
        let rows = self.on(move |s| {
            let by = &s.range[usize::from(order == Order::Descending)];
            match &e {
                Some(e) => {
                    let params: [&(dyn ToSql + Sync); 4] = [&t, &s0, e, &asked];
                    s.client.query(&by[0], &params)
                }
                None => {
                    let params: [&(dyn ToSql + Sync); 3] = [&t, &s0, &asked];
                    s.client.query(&by[1], &params)
                }
            }
        })?;
        let server: Entries = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let complete = server.len() < wanted;
        // The server's side stays as it is while this transaction lasts (a
        // writer holds the namespace's lock, a reader its snapshot):
        // remember what it said.
        let mut overlay = self.overlay.borrow_mut();
        overlay.answered(table, start, end, order, &server, complete);
        if self.writer {
            // A writer often deletes what it just listed (an outbox drained).
            for (k, v) in &server {
                overlay.learn(table, k.clone(), Some(v.clone()));
            }
        }
        if shadowing == 0 {
            return Ok(server);
        }
        overlay
            .merge(table, start, end, order, limit, &server, complete)
            .ok_or_else(|| anyhow::anyhow!("PostgreSQL store: a range merge fell short"))
    }

    fn prefetch_ranges(&self, table: &str, ranges: &[(Vec<u8>, Vec<u8>)]) -> anyhow::Result<()> {
        let unknown: Vec<&(Vec<u8>, Vec<u8>)> = {
            let overlay = self.overlay.borrow();
            let asked = |(s, e): &&(Vec<u8>, Vec<u8>)| {
                overlay.asked(table, s, Some(e), Order::Ascending).is_none()
            };
            ranges.iter().filter(asked).collect()
        };
        // One more than a small range holds: a range that returns that many
        // is not small, and is left to be read when asked for.
        let most = i64::try_from(SMALL_RANGE + 1).unwrap_or(i64::MAX);
        for chunk in unknown.chunks(PREFETCH_CHUNK) {
            let t = table.to_owned();
            let starts: Vec<Vec<u8>> = chunk.iter().map(|(s, _)| s.clone()).collect();
            let ends: Vec<Vec<u8>> = chunk.iter().map(|(_, e)| e.clone()).collect();
            let rows = self.on(move |s| {
                let params: [&(dyn ToSql + Sync); 4] = [&t, &starts, &ends, &most];
                s.client.query(&s.range_many, &params)
            })?;
            let mut found: Vec<Entries> = vec![Vec::new(); chunk.len()];
            for row in &rows {
                let i: i64 = row.get(0);
                let slot = usize::try_from(i - 1).ok().and_then(|i| found.get_mut(i));
                let slot = slot.context("PostgreSQL store: a range's number out of bounds")?;
                slot.push((row.get(1), row.get(2)));
            }
            let mut overlay = self.overlay.borrow_mut();
            for ((s, e), entries) in chunk.iter().zip(found) {
                if entries.len() <= SMALL_RANGE {
                    overlay.answered(table, s, Some(e), Order::Ascending, &entries, true);
                }
            }
        }
        Ok(())
    }

    fn prefetch(&self, table: &str, keys: &[Vec<u8>]) -> anyhow::Result<()> {
        let unknown = self.overlay.borrow().unknown(table, keys);
        for chunk in unknown.chunks(PREFETCH_CHUNK) {
            let (t, ks) = (table.to_owned(), chunk.to_vec());
            let rows = self.on(move |s| {
                let params: [&(dyn ToSql + Sync); 2] = [&t, &ks];
                s.client.query(&s.get_many, &params)
            })?;
            let found: HashMap<Vec<u8>, Vec<u8>> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let mut overlay = self.overlay.borrow_mut();
            for k in chunk {
                let value = found.get(k).cloned();
                overlay.learn(table, k.clone(), value);
            }
        }
        Ok(())
    }
}

impl WriteTx for Tx<'_> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        self.open()?;
        self.overlay
            .borrow_mut()
            .write(table, key, Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, table: &str, key: &[u8]) -> anyhow::Result<bool> {
        let existed = self.get(table, key)?.is_some();
        self.overlay.borrow_mut().write(table, key, None);
        Ok(existed)
    }

    fn remove(&self, table: &str, key: &[u8]) -> anyhow::Result<()> {
        self.open()?;
        self.overlay.borrow_mut().write(table, key, None);
        Ok(())
    }

    fn fence(&self, name: &str, epoch: u64) -> anyhow::Result<()> {
        self.open()?;
        *self.fence.borrow_mut() = Some((name.to_owned(), epoch));
        Ok(())
    }

    /// Checks its fence, sends the writes (a few statements, however many
    /// there are) and commits, in one hop to the connection's thread.
    fn commit(self: Box<Self>) -> anyhow::Result<()> {
        let writes = self.overlay.borrow_mut().take_writes();
        let written = writes.put_keys.len() + writes.delete_keys.len();
        // Which tables the rows went to, for the debug line (rows are what
        // the server's time goes with).
        let tables = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            let mut by_table = std::collections::BTreeMap::<&str, usize>::new();
            for t in writes.put_tables.iter().chain(&writes.delete_tables) {
                *by_table.entry(t.as_str()).or_default() += 1;
            }
            by_table
                .iter()
                .map(|(t, n)| format!("{t}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        });
        let fence = self.fence.borrow_mut().take();
        let holder = self.holder.to_owned();
        let checked = fence.clone();
        let held = self.on(move |s| {
            if let Some((name, epoch)) = &checked {
                let epoch = i64::try_from(*epoch).unwrap_or(i64::MAX);
                let params: [&(dyn ToSql + Sync); 3] = [name, &holder, &epoch];
                if s.client.query_opt(&s.fence, &params)?.is_none() {
                    // Dropping the transaction rolls it back.
                    return Ok(false);
                }
            }
            send(s, &writes)?;
            s.client.batch_execute("COMMIT").map(|()| true)
        })?;
        if !held {
            let (lease, epoch) = fence.unwrap_or_default();
            return Err(crate::Fenced { lease, epoch }.into());
        }
        self.state.set(State::Committed);
        tracing::debug!(
            round_trips = self.trips.get(),
            written,
            ms = self.began.elapsed().as_millis(),
            server_ms = self.on_server.get().as_millis(),
            tables = tables.as_deref().unwrap_or(""),
            "PostgreSQL transaction committed"
        );
        Ok(())
    }
}

/// Keys a prefetch asks for in one statement.
const PREFETCH_CHUNK: usize = 10_000;
/// Bytes of keys and values one write statement carries at most (a
/// message may not pass 1 GiB; smaller ones keep memory use even).
const WRITE_CHUNK_BYTES: usize = 8 << 20;

/// Upserts then deletes `writes` in statements of at most
/// [`WRITE_CHUNK_BYTES`]. A key is in one of the two lists at most once.
fn send(s: &mut Session, w: &Writes) -> Result<(), postgres::Error> {
    let mut from = 0;
    while from < w.put_keys.len() {
        let to = chunk_end(from, w.put_keys.len(), |i| {
            w.put_keys[i].len() + w.put_values[i].len()
        });
        let (t, k, v) = (
            &w.put_tables[from..to],
            &w.put_keys[from..to],
            &w.put_values[from..to],
        );
        let params: [&(dyn ToSql + Sync); 3] = [&t, &k, &v];
        s.client.execute(&s.put_many, &params)?;
        from = to;
    }
    let mut from = 0;
    while from < w.delete_keys.len() {
        let to = chunk_end(from, w.delete_keys.len(), |i| w.delete_keys[i].len());
        let (t, k) = (&w.delete_tables[from..to], &w.delete_keys[from..to]);
        let params: [&(dyn ToSql + Sync); 2] = [&t, &k];
        s.client.execute(&s.delete_many, &params)?;
        from = to;
    }
    Ok(())
}

/// The end of the chunk that starts at `from`: at least one item, then as
/// many as fit in [`WRITE_CHUNK_BYTES`].
fn chunk_end(from: usize, len: usize, size: impl Fn(usize) -> usize) -> usize {
    let mut bytes = 0;
    let mut to = from;
    while to < len && (to == from || bytes + size(to) <= WRITE_CHUNK_BYTES) {
        bytes += size(to);
        to += 1;
    }
    to
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
