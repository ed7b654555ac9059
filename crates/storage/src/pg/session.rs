//! A PostgreSQL connection on a thread of its own.
//!
//! The sync `postgres` client drives a tokio runtime of its own per
//! connection, and tokio refuses to start one on a thread that is driving
//! async tasks (it panics). Hosts call the store from async code too (a
//! handler's quick read, the demo's watch), so each connection lives on its
//! own thread, and a call hands it a job and waits for the answer: from any
//! thread, as a redb read waits for the disk. The thread ends, and closes
//! the connection, when its [`Conn`] is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use postgres::{Client, Config, NoTls, Statement};

/// A connection and the statements the store runs on it, on its schema.
pub(super) struct Session {
    pub client: Client,
    /// The namespace's table, schema-qualified.
    pub kv: String,
    pub get: Statement,
    /// Keys `= ANY($2)` of one table.
    pub get_many: Statement,
    /// The first `$4` entries of each range from two arrays (starts, ends),
    /// with the range's number (from 1).
    pub range_many: Statement,
    /// Upserts from three arrays (tables, keys, values) without duplicates.
    pub put_many: Statement,
    /// Deletes from two arrays (tables, keys).
    pub delete_many: Statement,
    /// Ranges: [ascending, descending] × [with an end, to the last key].
    pub range: [[Statement; 2]; 2],
    /// Whether a holder ($2) holds a lease ($1) in an epoch ($3), unexpired;
    /// the row stays locked until the transaction ends.
    pub fence: Statement,
}

impl Session {
    fn open(config: &Config, schema: &str) -> anyhow::Result<Self> {
        let mut client = config.connect(NoTls)?;
        // Every statement finds its rows through the (tbl, key) index, and
        // only that plan scales. Left to itself the planner chose, for
        // 10,000 keys, plans that read every row of `tbl` and compare each
        // with every key (a bitmap of `tbl` then `key = ANY($2)` as a
        // filter, planned while the table was empty; or a seq scan and a
        // hash join): 1–6 s where the index takes 30 ms, and ticks that
        // were fast or slow by which plan a statement had. So: plain index
        // scans, planned once per statement.
        client.batch_execute(
            "SET plan_cache_mode = force_generic_plan;              SET enable_seqscan = off; SET enable_bitmapscan = off",
        )?;
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
            get_many: client.prepare(&format!(
                "SELECT key, value FROM {kv} WHERE tbl = $1 AND key = ANY($2)"
            ))?,
            range_many: client.prepare(&format!(
                "SELECT r.i, k.key, k.value \
                 FROM unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS r (s, e, i) \
                 CROSS JOIN LATERAL (SELECT key, value FROM {kv} \
                   WHERE tbl = $1 AND key >= r.s AND key < r.e ORDER BY key LIMIT $4) k"
            ))?,
            put_many: client.prepare(&format!(
                "INSERT INTO {kv} (tbl, key, value) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
                 ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value"
            ))?,
            delete_many: client.prepare(&format!(
                "DELETE FROM {kv} k USING unnest($1::text[], $2::bytea[]) AS d (tbl, key) \
                 WHERE k.tbl = d.tbl AND k.key = d.key"
            ))?,
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
            fence: client.prepare(&format!(
                "SELECT 1 FROM {schema}.lease WHERE name = $1 AND holder = $2 AND epoch = $3 \
                 AND expires > clock_timestamp() FOR SHARE"
            ))?,
            client,
            kv,
        })
    }
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The handle of a connection's thread.
pub(super) struct Conn {
    jobs: mpsc::Sender<Job>,
    /// The server ended the session (seen after the last job).
    closed: Arc<AtomicBool>,
}

fn lost() -> anyhow::Error {
    anyhow::anyhow!("the PostgreSQL connection's thread ended")
}

impl Conn {
    /// Connects on a new thread and prepares the store's statements.
    pub fn open(config: &Config, schema: &str) -> anyhow::Result<Self> {
        let (config, schema) = (config.clone(), schema.to_owned());
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (opened, ready) = mpsc::sync_channel(1);
        let closed = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&closed);
        std::thread::Builder::new()
            .name("powerplug-pg".into())
            .spawn(move || {
                let mut session = match Session::open(&config, &schema) {
                    Ok(session) => session,
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                let _ = opened.send(Ok(()));
                for job in inbox {
                    job(&mut session);
                    seen.store(session.client.is_closed(), Ordering::Release);
                }
            })?;
        ready.recv().map_err(|_| lost())??;
        Ok(Self { jobs, closed })
    }

    /// Runs `job` on the connection's thread and waits for its answer.
    pub fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Session) -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |session| {
                let _ = reply.send(job(session));
            }))
            .map_err(|_| lost())?;
        answer.recv().map_err(|_| lost())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
