//! Retention: what a grid or producer has finished with goes, so that its
//! disk stays bounded however long it runs.
//!
//! - Channel messages once their reader has read past them and at least
//!   `messages_ms` ago: the inbound channels this host reads itself, and a
//!   consumer's return channel up to where the consumer says (in its usage
//!   records) it has read. A consumer that never says keeps its requests.
//! - Received records (the keys that make a resent reading a duplicate),
//!   once they ended `messages_ms` ago and a tick consumed them; a floor per
//!   entity then refuses anything that starts before what was deleted.
//! - The tick log by count, age and bytes, keeping a dry run's worth.
//! - The channels an entity left behind (removed, or replaced by a reset),
//!   whole, once retired for `messages_ms`.
//! - The per-consumer and per-tick rows of experiments that ended
//!   `experiments_ms` ago (their reports go with them).
//! - The grid's ledger history: transfers its ticks have taken in and
//!   receive addresses, `ledger_ms` after they were made (each payer's
//!   latest payment stays, so a retry is always recognised; balances stay).
//!
//! Ages are on the role's clock (a demo's runs faster than the wall's);
//! passes run every `every_ms` of real time on a thread of their own, in
//! short transactions that interleave with the ticks'. The compiled-component
//! cache bounds itself (its newest entries).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::registry::{self, Registration};
use crate::tick_log;
use powerplug_channel::{Address, forget_in};
use powerplug_storage::Objects;
use powerplug_storage::{Db, Store, WriteTx, key};

/// Which bounds a host keeps (`[retention]` in a grid's or producer's
/// config; docs/roles.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// How long read channel messages and received records are kept, ms of
    /// the role's clock (at least this; at most about twice).
    pub messages_ms: u64,
    /// The tick log's oldest tick, ms of the role's clock.
    pub tick_log_ms: u64,
    /// The tick log's size per slot (the grid's, each experiment
    /// variant's, a shadow's), bytes.
    pub tick_log_bytes: u64,
    /// How long an ended experiment's rows stay, ms of the role's clock.
    pub experiments_ms: u64,
    /// How long the ledger keeps a transfer (and its idempotency key) and a
    /// receive address, ms of the role's clock.
    pub ledger_ms: u64,
    /// Appends what the ledger lets go to `<data_dir>/ledger-archive.jsonl`
    /// first (one transfer a line), for an audit trail kept elsewhere.
    pub ledger_archive: bool,
    /// Real ms between passes; 0 turns retention off.
    pub every_ms: u64,
    /// Compact the store when this share of its file (percent) is free
    /// pages; 0 never.
    pub compact_free_percent: u64,
    /// ... and the free pages are at least this many bytes.
    pub compact_min_bytes: u64,
}

const DAY_MS: u64 = 24 * 3_600_000;

impl Default for Retention {
    fn default() -> Self {
        Self {
            // Read messages serve nobody (a restored backup holds the
            // positions of its own moment): an hour for a look at them.
            // A day at 10,000 consumers held 8–16 GB of readings.
            messages_ms: 3_600_000,
            tick_log_ms: 7 * DAY_MS,
            tick_log_bytes: 256 << 20,
            experiments_ms: 90 * DAY_MS,
            // Entities read their transfers as they come (a producer every
            // tick); a day's detail at 10,000 consumers is ~0.7 GB
            // (BENCHMARKS.md, the soak with a bounded ledger).
            ledger_ms: DAY_MS,
            ledger_archive: false,
            every_ms: 60_000,
            compact_free_percent: 50,
            compact_min_bytes: 64 << 20,
        }
    }
}

/// What retention did and holds, for `/status` and `/metrics`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub passes: u64,
    pub last_pass_ms: u64,
    pub messages_deleted: u64,
    pub message_bytes_freed: u64,
    pub records_deleted: u64,
    pub ticks_deleted: u64,
    pub tick_bytes_freed: u64,
    pub experiments_pruned: u64,
    pub transfers_deleted: u64,
    pub addresses_deleted: u64,
    pub ledger_bytes_freed: u64,
    /// Document bodies replaced or deleted a grace period ago.
    pub objects_deleted: u64,
    pub compactions: u64,
    pub last_compaction: Option<powerplug_storage::Compacted>,
    pub last_error: Option<String>,
}

/// Runs retention for one host, on a thread of its own: a pass deletes
/// about as much as the host wrote since the last one, and on the tick's
/// thread it held ticks back (a soak's grid, 1,000 consumers at ×60, ticked
/// 85 % of its nominal ticks). Its transactions interleave with the ticks'.
pub struct Keeper {
    pub config: Retention,
    /// The tick log's count bound, and what a dry run needs.
    pub tick_log_ticks: u64,
    pub tick_log_at_least: u64,
    /// Where the ledger's history is archived before it goes, if it is
    /// (the grid sets it when `ledger_archive` is on).
    pub archive: Option<PathBuf>,
    last: Mutex<Option<Instant>>,
    report: Arc<Mutex<Report>>,
    pass: crate::background::Single,
}

/// What a pass needs to know.
#[derive(Debug, Clone)]
struct Plan {
    config: Retention,
    tick_log_ticks: u64,
    tick_log_at_least: u64,
    archive: Option<PathBuf>,
}

/// Per registration: how far its channels are deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Marks {
    inbound: Mark,
    outbound: Mark,
    /// Where the consumer says it has read its return channel.
    acked: u64,
}

/// A channel's deletion: messages below `pruned` are gone; those below
/// `candidate` had been read at `candidate_ms` and go once that is
/// `messages_ms` ago. The root tells a reset channel from the old one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    root: [u8; 32],
    pruned: u64,
    candidate: u64,
    candidate_ms: u64,
}

/// registration id → [`Marks`].
const MARKS: &str = "retention_marks";
/// role-clock ms → [`LedgerNote`]: where the ledger was at each pass
/// within the last `ledger_ms`.
const LEDGER_NOTES: &str = "retention_ledger_notes";
/// The ledger's next transfer the grid has not taken in, and its next
/// receive address number: what lies below them may go, once old enough.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LedgerNote {
    transfers: u64,
    addresses: u64,
}

/// channel root → [`Retired`]: a channel its entity left (removed, or
/// replaced by a reset), whose messages go once it has been retired for
/// `messages_ms`.
const RETIRED: &str = "retention_retired";

/// What is left of a retired channel: its messages at `from..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Retired {
    from: u64,
    end: u64,
    /// When a pass first saw it (role clock); 0 until then.
    seen_ms: u64,
}

/// Figures this recent decide a compaction (see [`crate::figures`]).
const RECENT_FIGURES: Duration = Duration::from_secs(120);

/// Registrations per write transaction: a pass never holds the writer long.
const CHUNK: usize = 1_000;

impl Mark {
    /// Moves the mark for a reader at `read`; the indices to delete now.
    fn advance(
        &mut self,
        root: [u8; 32],
        read: u64,
        now_ms: u64,
        keep_ms: u64,
    ) -> std::ops::Range<u64> {
        if self.root != root {
            *self = Mark {
                root,
                ..Mark::default()
            };
        }
        let mut doomed = self.pruned..self.pruned;
        if self.candidate > self.pruned && self.candidate_ms.saturating_add(keep_ms) <= now_ms {
            doomed = self.pruned..self.candidate;
            self.pruned = self.candidate;
        }
        if self.candidate == self.pruned && read > self.candidate {
            self.candidate = read;
            self.candidate_ms = now_ms;
        }
        doomed
    }
}

impl Keeper {
    pub fn new(config: Retention, tick_log_ticks: u64, tick_log_at_least: u64) -> Self {
        Self {
            config,
            tick_log_ticks,
            tick_log_at_least,
            archive: None,
            last: Mutex::new(None),
            report: Default::default(),
            pass: Default::default(),
        }
    }

    pub fn report(&self) -> Report {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts a pass if one is due and none runs; a failed pass is
    /// reported, and the next one tries again (nothing of a failed
    /// transaction is applied).
    pub fn maybe_run(
        &self,
        db: &powerplug_storage::Db,
        objects: &Objects,
        figures: &Arc<crate::figures::Taker>,
        now_ms: u64,
    ) {
        if self.config.every_ms == 0 {
            return;
        }
        if self.pass.busy() {
            return;
        }
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let every = Duration::from_millis(self.config.every_ms);
            if last.is_some_and(|at| at.elapsed() < every) {
                return;
            }
            *last = Some(Instant::now());
        }
        let plan = Plan {
            config: self.config,
            tick_log_ticks: self.tick_log_ticks,
            tick_log_at_least: self.tick_log_at_least,
            archive: self.archive.clone(),
        };
        let (db, objects, report) = (db.clone(), objects.clone(), self.report.clone());
        let figures = figures.clone();
        (self.pass).start("retention", move || {
            plan.record(&db, &objects, &figures, now_ms, &report)
        });
    }

    /// Waits for a pass under way (a stopping role lets go of its store).
    pub fn wait(&self) {
        self.pass.wait();
    }
}

impl Plan {
    fn record(
        &self,
        db: &Db,
        objects: &Objects,
        figures: &crate::figures::Taker,
        now_ms: u64,
        report: &Mutex<Report>,
    ) {
        let started = Instant::now();
        let result = self.run(db, objects, figures, now_ms);
        let mut report = report.lock().unwrap_or_else(|e| e.into_inner());
        report.passes += 1;
        report.last_pass_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(done) => {
                report.messages_deleted += done.messages_deleted;
                report.message_bytes_freed += done.message_bytes_freed;
                report.records_deleted += done.records_deleted;
                report.ticks_deleted += done.ticks_deleted;
                report.tick_bytes_freed += done.tick_bytes_freed;
                report.experiments_pruned += done.experiments_pruned;
                report.transfers_deleted += done.transfers_deleted;
                report.addresses_deleted += done.addresses_deleted;
                report.ledger_bytes_freed += done.ledger_bytes_freed;
                report.objects_deleted += done.objects_deleted;
                if let Some(c) = done.last_compaction {
                    report.compactions += 1;
                    report.last_compaction = Some(c);
                }
                report.last_error = done.last_error;
            }
            Err(e) => {
                let why = format!("{e:#}");
                tracing::warn!(error = %powerplug_strategy::text::for_log(&why), "retention pass failed");
                report.last_error = Some(why);
            }
        }
    }

    /// One whole pass, now.
    fn run(
        &self,
        db: &Db,
        objects: &Objects,
        figures: &crate::figures::Taker,
        now_ms: u64,
    ) -> anyhow::Result<Report> {
        let mut done = Report::default();
        // Real time, as the objects were noted (a demo's clock runs faster).
        done.objects_deleted += crate::garbage::sweep(db, objects, crate::role::unix_ms())?;
        self.channels(db, now_ms, &mut done)?;
        done.records_deleted +=
            crate::inbox::forget_received(db, now_ms.saturating_sub(self.config.messages_ms))?;
        let bounds = tick_log::Bounds {
            ticks: self.tick_log_ticks,
            age_ms: self.config.tick_log_ms,
            bytes: self.config.tick_log_bytes,
            at_least: self.tick_log_at_least,
        };
        for slot in tick_log::slots(db)? {
            let (ticks, bytes) = tick_log::prune(db, &slot, bounds, now_ms)?;
            done.ticks_deleted += ticks;
            done.tick_bytes_freed += bytes;
        }
        done.experiments_pruned +=
            crate::experiment::forget_ended(db, now_ms.saturating_sub(self.config.experiments_ms))?;
        self.ledger(db, now_ms, &mut done)?;
        // A compaction that cannot run now (a reader holds a transaction)
        // runs at a later pass; what this pass deleted stays deleted.
        match self.compact_if_worth(db, figures) {
            Ok(compacted) => done.last_compaction = compacted,
            Err(e) => done.last_error = Some(format!("compaction: {e:#}")),
        }
        Ok(done)
    }

    /// The ledger's history, continuously: each pass notes where the
    /// ledger is (what the grid's ticks took in, the addresses handed out)
    /// and lets go of what it was at the last note `ledger_ms` old, so that
    /// between `ledger_ms` and a pass more is held, steadily (a two-phase
    /// mark, as for channels, would hold one to two periods: a sawtooth of
    /// a day's ledger).
    fn ledger(&self, db: &dyn Store, now_ms: u64, done: &mut Report) -> anyhow::Result<()> {
        use powerplug_ledger as wallet;
        let taken_in: u64 =
            powerplug_storage::meta(db, crate::role::grid::TRANSFER_CURSOR)?.unwrap_or(0);
        let here = LedgerNote {
            transfers: taken_in + 1,
            addresses: wallet::addresses_issued(db)? + 1,
        };
        let tx = db.write()?;
        tx.put(
            LEDGER_NOTES,
            &key::of(&[&now_ms]),
            &postcard::to_allocvec(&here)?,
        )?;
        let cutoff = now_ms.saturating_sub(self.config.ledger_ms);
        let old = tx.range(
            LEDGER_NOTES,
            &[],
            Some(&key::of(&[&cutoff.saturating_add(1)])),
            powerplug_storage::Order::Ascending,
            usize::MAX,
        )?;
        let Some((_, newest_old)) = old.last() else {
            return tx.commit();
        };
        let then: LedgerNote = postcard::from_bytes(newest_old)?;
        for (k, _) in &old {
            tx.remove(LEDGER_NOTES, k)?;
        }
        tx.commit()?;
        let mut archive = |t: &[wallet::Transfer]| match &self.archive {
            Some(path) => append(path, t),
            None => Ok(()),
        };
        let t = wallet::prune_transfers(db, then.transfers, &mut archive)?;
        let a = wallet::prune_addresses(db, then.addresses)?;
        done.transfers_deleted += t.deleted;
        done.addresses_deleted += a.deleted;
        done.ledger_bytes_freed += t.bytes + a.bytes;
        Ok(())
    }

    fn compact_if_worth(
        &self,
        db: &Db,
        figures: &crate::figures::Taker,
    ) -> anyhow::Result<Option<powerplug_storage::Compacted>> {
        let percent = self.config.compact_free_percent;
        if percent == 0 {
            return Ok(None);
        }
        // The sizes as last taken for `/status` or `/metrics`, if lately:
        // counting the pages walks every tree (seconds of a core at a
        // million), not to be done twice a minute.
        let stats = match figures.recent(RECENT_FIGURES) {
            Some(figures) => figures.size,
            None => db.stats()?,
        };
        let worth = stats.free_bytes >= self.config.compact_min_bytes
            && stats.free_bytes.saturating_mul(100) >= stats.file_bytes.saturating_mul(percent);
        if !worth {
            return Ok(None);
        }
        let compacted = db.compact()?;
        // So that the next pass does not compact again on the old sizes.
        figures.refresh(db)?;
        Ok(Some(compacted))
    }

    fn retired(&self, db: &dyn Store, now_ms: u64, done: &mut Report) -> anyhow::Result<()> {
        let rows = retired_rows(&*db.read()?)?;
        if rows.is_empty() {
            return Ok(());
        }
        // A root in use again (a re-registration of the same channel) is no
        // longer retired: its messages are a live reader's. The root's holder
        // says so, in the transaction that would forget them; but a store in
        // which two channels shared a root before roots were kept apart can
        // only tell from every registration (read after the rows, so a
        // channel retired since is not taken for live), and keeps its roots.
        let shared = match registry::roots_unique(db)? {
            true => None,
            false => Some(live_roots(db)?),
        };
        for chunk in rows.chunks(CHUNK) {
            let tx = db.write()?;
            for (k, v) in chunk {
                let root: [u8; 32] = k.as_slice().try_into()?;
                let mut retired: Retired = postcard::from_bytes(v)?;
                let live = match &shared {
                    Some(live) => live.contains(&root),
                    None => registry::uses_root(&*tx, &root)?,
                };
                if live {
                    tx.remove(RETIRED, k)?;
                } else if retired.seen_ms == 0 {
                    retired.seen_ms = now_ms.max(1);
                    tx.put(RETIRED, k, &postcard::to_allocvec(&retired)?)?;
                } else if retired.seen_ms.saturating_add(self.config.messages_ms) <= now_ms {
                    forget(&*tx, &root, retired.from..retired.end, done)?;
                    tx.delete(RETIRED, k)?;
                    if shared.is_none() {
                        registry::release_root(&*tx, &root)?;
                    }
                }
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// Deletes what the readers of every registered channel have read, and
    /// retired channels once they have been retired long enough.
    fn channels(&self, db: &dyn Store, now_ms: u64, done: &mut Report) -> anyhow::Result<()> {
        let keep = self.config.messages_ms;
        self.retired(db, now_ms, done)?;
        // A page of registrations at a time: at a million, all of them at
        // once held hundreds of MB for every pass.
        let mut after: Option<String> = None;
        loop {
            let (mut chunk, next) = registry::page(db, None, "", after.as_deref(), CHUNK, CHUNK)?;
            let tx = db.write()?;
            crate::returns::current_all(&*tx, &mut chunk)?;
            for r in &chunk {
                let mut marks = marks_in(&*tx, &r.id)?;
                let before = marks;
                let doomed = marks
                    .inbound
                    .advance(r.channel.root, r.read_index, now_ms, keep);
                forget(&*tx, &r.channel.root, doomed, done)?;
                if let Some(w) = &r.return_channel {
                    let read = marks.acked.min(w.next_index);
                    let doomed = marks.outbound.advance(w.root, read, now_ms, keep);
                    forget(&*tx, &w.root, doomed, done)?;
                }
                if marks != before {
                    put_marks(&*tx, &r.id, &marks)?;
                }
            }
            tx.commit()?;
            match next {
                Some(id) => after = Some(id),
                None => return Ok(()),
            }
        }
    }
}

/// Appends `transfers` to the archive at `path`, one JSON line each, synced
/// before the deletion commits: a crash between the two archives them
/// again at the next pass (same `seq`, same line).
fn append(path: &Path, transfers: &[powerplug_ledger::Transfer]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if transfers.is_empty() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for t in transfers {
        serde_json::to_writer(&mut lines, t)?;
        lines.push(b'\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("ledger archive {}", path.display()))?;
    file.write_all(&lines)?;
    file.sync_data()?;
    Ok(())
}

/// The roots every registration's channels are at.
fn live_roots(db: &dyn Store) -> anyhow::Result<std::collections::HashSet<[u8; 32]>> {
    Ok(registry::all(db)?
        .iter()
        .flat_map(|r| {
            [
                Some(r.channel.root),
                r.return_channel.as_ref().map(|w| w.root),
            ]
        })
        .flatten()
        .collect())
}

fn retired_rows(tx: &dyn powerplug_storage::ReadTx) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let ascending = powerplug_storage::Order::Ascending;
    tx.range(RETIRED, &[], None, ascending, usize::MAX)
}

/// The roots of the retired channels whose messages may not all be gone.
pub fn retired_roots(tx: &dyn powerplug_storage::ReadTx) -> anyhow::Result<Vec<[u8; 32]>> {
    (retired_rows(tx)?.into_iter())
        .map(|(k, _)| Ok(k.as_slice().try_into()?))
        .collect()
}

/// Inside the transaction that removes a registration or replaces its
/// channel: its channels (inbound, and the return channel whose goodbye
/// was just sent) are retired, from where retention had got to up to past
/// anything written to them, and its marks start over.
pub fn retire(tx: &dyn WriteTx, old: &Registration) -> anyhow::Result<()> {
    let marks = marks_in(tx, &old.id)?;
    let from = |mark: &Mark, root: &[u8; 32]| if &mark.root == root { mark.pruned } else { 0 };
    let mut channels = vec![(
        old.channel.root,
        from(&marks.inbound, &old.channel.root),
        old.read_index.saturating_add(crate::limits::WRITE_WINDOW),
    )];
    if let Some(w) = &old.return_channel {
        channels.push((w.root, from(&marks.outbound, &w.root), w.next_index + 1));
    }
    for (root, from, end) in channels {
        let retired = Retired {
            from,
            end,
            seen_ms: 0,
        };
        tx.put(RETIRED, &root, &postcard::to_allocvec(&retired)?)?;
    }
    tx.delete(MARKS, &key::of(&[&old.id])).map(drop)
}

fn forget(
    tx: &dyn WriteTx,
    root: &[u8; 32],
    doomed: std::ops::Range<u64>,
    done: &mut Report,
) -> anyhow::Result<()> {
    for i in doomed {
        let freed = forget_in(tx, &Address::of(root, i))?;
        if freed > 0 {
            done.messages_deleted += 1;
            done.message_bytes_freed += freed;
        }
    }
    Ok(())
}

fn marks_in(tx: &dyn powerplug_storage::ReadTx, id: &str) -> anyhow::Result<Marks> {
    Ok(match tx.get(MARKS, &key::of(&[&id]))? {
        Some(bytes) => postcard::from_bytes(&bytes)?,
        None => Marks::default(),
    })
}

fn put_marks(tx: &dyn WriteTx, id: &str, marks: &Marks) -> anyhow::Result<()> {
    tx.put(MARKS, &key::of(&[&id]), &postcard::to_allocvec(marks)?)
}

/// Records, inside the inbox's transaction, where consumers say they have
/// read their return channels (the highest each says; a claim beyond what
/// was written only lets its own requests go sooner, to where they were
/// written).
pub fn acknowledge(tx: &dyn WriteTx, acks: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    let keys: Vec<Vec<u8>> = acks.keys().map(|id| key::of(&[id])).collect();
    tx.prefetch(MARKS, &keys)?;
    for (id, &read) in acks {
        let mut marks = marks_in(tx, id)?;
        if read > marks.acked {
            marks.acked = read;
            put_marks(tx, id, &marks)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Mark;

    /// The compaction is decided on the figures last taken for the askers,
    /// and after it they are taken again: the next pass does not compact
    /// the same free pages twice.
    #[test]
    fn a_compaction_is_decided_on_the_last_figures_and_done_once() {
        use super::*;
        let dir = tempfile::tempdir().unwrap();
        let db: Db =
            Arc::new(powerplug_storage::RedbStore::open(&dir.path().join("s.redb")).unwrap());
        let rows = |put: bool| {
            let tx = db.write().unwrap();
            for n in 0u32..20_000 {
                match put {
                    true => tx.put("junk", &n.to_be_bytes(), &[7; 200]).unwrap(),
                    false => tx.remove("junk", &n.to_be_bytes()).unwrap(),
                }
            }
            tx.commit().unwrap();
        };
        rows(true);
        rows(false);
        let plan = Plan {
            config: Retention {
                compact_free_percent: 30,
                compact_min_bytes: 64 << 10,
                ..Default::default()
            },
            tick_log_ticks: 10,
            tick_log_at_least: 1,
            archive: None,
        };
        let figures = crate::figures::Taker::default();
        let before = figures.get(&db).unwrap().size;
        assert!(
            before.free_bytes * 100 >= before.file_bytes * 30,
            "{before:?}"
        );
        let compacted = plan.compact_if_worth(&db, &figures).unwrap();
        assert!(compacted.is_some(), "worth it: {before:?}");
        let after = figures.get(&db).unwrap().size;
        assert!(
            after.file_bytes < before.file_bytes,
            "{before:?} → {after:?}"
        );
        let again = plan.compact_if_worth(&db, &figures).unwrap();
        assert!(again.is_none(), "once: {again:?}");

        // Nobody asked for figures lately: the pass counts the pages itself,
        // and leaves the askers' figures alone.
        rows(true);
        rows(false);
        let unasked = crate::figures::Taker::default();
        assert!(plan.compact_if_worth(&db, &unasked).unwrap().is_some());
        assert!(plan.compact_if_worth(&db, &unasked).unwrap().is_none());
        assert!(unasked.recent(Duration::from_secs(60)).is_none());
    }

    #[test]
    fn a_mark_deletes_what_was_read_once_it_is_old_enough() {
        let root = [1; 32];
        let mut m = Mark::default();
        // Read to 5 at t=100: nothing goes yet.
        assert_eq!(m.advance(root, 5, 100, 50), 0..0);
        // Read on to 9 at t=120: 0..5 still younger than 50 ms.
        assert_eq!(m.advance(root, 9, 120, 50), 0..0);
        // At t=150 what was read by t=100 goes; 9 becomes the next candidate.
        assert_eq!(m.advance(root, 9, 150, 50), 0..5);
        assert_eq!(m.advance(root, 9, 199, 50), 5..5);
        assert_eq!(m.advance(root, 12, 200, 50), 5..9);
        // A reset channel starts over, whatever the old one had.
        assert_eq!(m.advance([2; 32], 3, 300, 50), 0..0);
        assert_eq!(m.advance([2; 32], 3, 350, 50), 0..3);
    }

    #[test]
    fn nothing_unread_goes_however_old() {
        let root = [1; 32];
        let mut m = Mark::default();
        assert_eq!(m.advance(root, 0, 0, 10), 0..0);
        assert_eq!(m.advance(root, 0, 1_000_000, 10), 0..0);
        assert_eq!(m.advance(root, 4, 1_000_000, 10), 0..0);
        assert_eq!(m.advance(root, 4, 2_000_000, 10), 0..4);
    }
}
