//! Replacing a running role's strategy (the grid's payment policy, a
//! producer's pricing): a new version is checked (a component of the right
//! world, importing only `log`), compiled (through the cache), dry-run on the
//! recent recorded ticks under the normal limits ([`super::dry_run`]: one
//! that would bill beyond usage or the bound waits for `force`), and given
//! its books ([`super::handover`]: the live ones only across equal formats);
//! only then is it stored and activated — at a tick boundary: the swap waits
//! for the tick in flight, and every tick runs on one version. A version that
//! fails `rollback_after` ticks in a row gives way to the one active before
//! it, on that one's own books carried forward.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use anyhow::Context;
use serde::Serialize;

use super::dry_run::{Bills, History};
use super::handover::{self, Handover};
use crate::books::{Books, StoredBooks};
use crate::tick_log;
use crate::versions::{self, Provenance, Version};
use powerplug_storage::{self as storage, Store};
use powerplug_strategy::{CallError, ComponentInfo, Kind, LoadError, Runtime, Setting};

pub use super::strategy_kind::{Effect, LastTick, Strategy};

/// The candidate against the live version on the last recorded tick input.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub tick: u64,
    /// What the live version decided on it (`None` if that tick failed).
    pub live: Option<Effect>,
    pub candidate: Effect,
    pub fuel: u64,
    pub elapsed_us: u64,
    /// The recent ticks' bills, the candidate's against the live version's.
    pub history: Option<History>,
}

impl DryRun {
    /// Why the candidate waits for the operator's `force`, if it does.
    pub fn refused(&self) -> Option<String> {
        let refused = &self.history.as_ref()?.refused;
        (!refused.is_empty()).then(|| refused.join("; "))
    }
}

fn add_bills(bills: &mut Bills, decided: Vec<(u32, u64, u64)>) {
    for (consumer, wh, owed) in decided {
        let b = bills.entry(consumer).or_default();
        b.0 = b.0.saturating_add(wh);
        b.1 = b.1.saturating_add(owed);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Swapped {
    pub version: Version,
    /// False for an upload kept for later (an experiment, a shadow run).
    pub activated: bool,
    /// No recorded tick yet: nothing to compare on.
    pub dry_run: Option<DryRun>,
    /// The new version did not get the live books (see `books`).
    pub fresh_state: bool,
    /// Which books it started on, and why; `None` when not activated.
    pub books: Option<Handover>,
    /// Why it was stored but not activated: its dry run was refused, and
    /// how to activate it anyway.
    pub waiting: Option<String>,
}

impl Swapped {
    fn kept(version: Version, dry_run: Option<DryRun>) -> Self {
        Self {
            version,
            activated: false,
            dry_run,
            fresh_state: false,
            books: None,
            waiting: None,
        }
    }
}

fn waiting(why: &str, sha256: &str) -> String {
    format!(
        "stored, not activated: over the recent ticks {why} (dry_run.history.consumers shows each consumer); to activate it anyway: `powerplug strategy activate {sha256} --force` (?force=true)"
    )
}

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("component: {0}")]
    Load(#[from] LoadError),
    #[error("kind: this host runs {0} strategies")]
    WrongKind(Kind),
    #[error("dry run: the new version failed on tick {tick}'s input: {why}")]
    DryRun { tick: u64, why: String },
    #[error(
        "state: the new version refuses the live state ({0}); ask for a fresh state to start it anyway"
    )]
    State(String),
    #[error("version: no such version {0}")]
    Unknown(String),
    #[error("version: {0}")]
    Busy(String),
    #[error(
        "version: {0} is not signed by a key this host trusts; upload it again with a signature (`powerplug strategy sign`)"
    )]
    Untrusted(String),
    #[error("storage: {0:#}")]
    Storage(#[from] anyhow::Error),
}

/// A component offered over the API, and what came with it.
pub struct Offered<'a> {
    pub bytes: &'a [u8],
    pub name: Option<String>,
    pub notes: Option<String>,
    /// The signature the upload was checked with, on a host that trusts keys.
    pub signature: Option<String>,
}

impl Offered<'_> {
    /// Stores the component with its metadata and how it came.
    fn store(
        self,
        tx: &dyn storage::WriteTx,
        info: &ComponentInfo,
        now_ms: u64,
    ) -> anyhow::Result<Version> {
        let version = versions::add(tx, info, self.bytes, self.name, self.notes, now_ms)?;
        if let Some(signature) = self.signature {
            versions::set_provenance(tx, &info.sha256, &Provenance::Signed(signature))?;
        }
        Ok(version)
    }
}

/// A role's strategy: the active version, and how it is replaced.
pub struct Slot<S: Strategy> {
    /// The books and tick-log slot (`grid`, `producer`).
    pub name: &'static str,
    active: RwLock<S>,
    runtime: Runtime,
    /// One tick or one activation at a time: a swap waits for the tick in
    /// flight and takes effect at the next one.
    turn: Mutex<()>,
    ticks_waiting: AtomicU32,
    failures: AtomicU32,
    rollback_after: u32,
    dry_run_ticks: u32,
    dry_run_bound_percent: u32,
    /// Keys a version must be signed by to run (unless it is the configured
    /// one); none: any stored version runs.
    pub trusted_keys: Vec<ed25519_dalek::VerifyingKey>,
}

impl<S: Strategy> Slot<S> {
    /// The active version if there is one (uploads outlive restarts), else
    /// the configured component, which becomes the first version. Compiled
    /// components are cached in `strategy.cache_dir`, or `<data_dir>/cache`.
    pub fn open(
        db: &dyn Store,
        name: &'static str,
        strategy: &super::config::StrategySlot,
        data_dir: &std::path::Path,
        trusted_keys: &[String],
    ) -> anyhow::Result<Self> {
        let cache = strategy
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        let runtime = super::runtime(&cache)?;
        let configured = &strategy.component;
        let (rollback_after, trusted_keys) = (
            strategy.rollback_after,
            versions::trusted_keys(trusted_keys)?,
        );
        let (dry_run_ticks, dry_run_bound_percent) =
            (strategy.dry_run_ticks, strategy.dry_run_bound_percent);
        let kind = S::KIND.to_string();
        let load = |bytes: &[u8]| -> anyhow::Result<S> {
            S::from_loaded(runtime.load(bytes)?)
                .ok_or_else(|| anyhow::anyhow!("not a {kind} strategy"))
        };
        let strategy = match versions::active(db, &kind)? {
            Some(sha) => {
                let bytes = versions::component(db, &sha)?
                    .with_context(|| format!("the active {kind} version {sha} is missing"))?;
                if !versions::may_run(&*db.read()?, &trusted_keys, &sha)? {
                    // Chosen before these keys were trusted: it keeps running,
                    // but nothing unsigned can be chosen again.
                    eprintln!(
                        "{kind}: the active version {sha} is not signed by a trusted key; it runs until another is activated"
                    );
                }
                load(&bytes)?
            }
            None => {
                let bytes = std::fs::read(configured).with_context(|| {
                    format!("strategy.component: cannot read {}", configured.display())
                })?;
                let strategy = load(&bytes)
                    .with_context(|| format!("strategy.component: {}", configured.display()))?;
                let tx = db.write()?;
                let now = super::unix_ms();
                versions::add(
                    &*tx,
                    strategy.info(),
                    &bytes,
                    None,
                    Some("configured".into()),
                    now,
                )?;
                versions::set_provenance(&*tx, &strategy.info().sha256, &Provenance::Configured)?;
                versions::activate(&*tx, &kind, &strategy.info().sha256, "configured", now)?;
                tx.commit()?;
                strategy
            }
        };
        Ok(Self {
            name,
            active: RwLock::new(strategy),
            runtime,
            turn: Mutex::new(()),
            ticks_waiting: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            rollback_after: rollback_after.max(1),
            dry_run_ticks,
            dry_run_bound_percent,
            trusted_keys,
        })
    }

    /// The active version now.
    pub fn current(&self) -> S {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Held by a tick from start to commit. A waiting tick goes before any
    /// activation that has not started yet, so a tick waits for one at most.
    pub fn turn(&self) -> MutexGuard<'_, ()> {
        self.ticks_waiting.fetch_add(1, Ordering::SeqCst);
        let turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        self.ticks_waiting.fetch_sub(1, Ordering::SeqCst);
        turn
    }

    /// An activation's turn: after every tick already waiting for one.
    fn turn_for_swap(&self) -> MutexGuard<'_, ()> {
        // std's Mutex is not fair: without this, back-to-back activations
        // could take the turn again and again before a woken tick runs.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.ticks_waiting.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        self.turn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn failures_in_a_row(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Checks, stores and activates an uploaded component; one whose dry run
    /// is refused is only stored, unless `force`.
    #[allow(clippy::too_many_arguments)]
    pub fn upload(
        &self,
        db: &dyn Store,
        settings: &[Setting],
        clock: &dyn Fn() -> u64,
        offered: Offered,
        fresh: bool,
        force: bool,
    ) -> Result<Swapped, SwapError> {
        let candidate = S::from_loaded(self.runtime.load(offered.bytes)?)
            .ok_or(SwapError::WrongKind(S::KIND))?;
        let dry_run = self.dry_run(db, &candidate, fresh, self.dry_run_ticks)?;
        if let Some(why) = dry_run
            .as_ref()
            .and_then(DryRun::refused)
            .filter(|_| !force)
        {
            let tx = db.write()?;
            let version = offered.store(&*tx, candidate.info(), clock())?;
            tx.commit()?;
            return Ok(Swapped {
                waiting: Some(waiting(&why, &version.sha256)),
                ..Swapped::kept(version, dry_run)
            });
        }
        let (version, books) = self.switch(
            db,
            settings,
            clock,
            candidate,
            Some(offered),
            fresh,
            "uploaded",
            &|_| Ok(()),
        )?;
        Ok(Swapped {
            version,
            activated: true,
            dry_run,
            fresh_state: !books.is_live(),
            books: Some(books),
            waiting: None,
        })
    }

    /// Checks and stores an uploaded component without activating it.
    pub fn keep(
        &self,
        db: &dyn Store,
        offered: Offered,
        now_ms: u64,
    ) -> Result<Swapped, SwapError> {
        let candidate = S::from_loaded(self.runtime.load(offered.bytes)?)
            .ok_or(SwapError::WrongKind(S::KIND))?;
        // Kept, not activated: checked on the last tick, as it always was;
        // its activation replays the recent ticks.
        let dry_run = self.dry_run(db, &candidate, false, 1)?;
        let tx = db.write()?;
        let version = offered.store(&*tx, candidate.info(), now_ms)?;
        tx.commit()?;
        Ok(Swapped::kept(version, dry_run))
    }

    /// Activates a stored version again (a rollback, or forward); one whose
    /// dry run is refused stays inactive, unless `force`.
    #[allow(clippy::too_many_arguments)]
    pub fn activate(
        &self,
        db: &dyn Store,
        settings: &[Setting],
        clock: &dyn Fn() -> u64,
        sha256: &str,
        fresh: bool,
        force: bool,
    ) -> Result<Swapped, SwapError> {
        let also = &|_: &dyn storage::WriteTx| Ok(());
        self.activate_then(db, settings, clock, sha256, fresh, force, "activated", also)
    }

    /// Activates a stored version and, in the same transaction, writes what
    /// `also` writes (an experiment's end, when its winner takes over).
    #[allow(clippy::too_many_arguments)]
    pub fn activate_then(
        &self,
        db: &dyn Store,
        settings: &[Setting],
        clock: &dyn Fn() -> u64,
        sha256: &str,
        fresh: bool,
        force: bool,
        reason: &str,
        also: &dyn Fn(&dyn storage::WriteTx) -> anyhow::Result<()>,
    ) -> Result<Swapped, SwapError> {
        let candidate = self.load_version(db, sha256)?;
        let dry_run = self.dry_run(db, &candidate, fresh, self.dry_run_ticks)?;
        if let Some(why) = dry_run
            .as_ref()
            .and_then(DryRun::refused)
            .filter(|_| !force)
        {
            let version = versions::list(db, &S::KIND.to_string())?
                .into_iter()
                .find(|v| v.sha256 == sha256)
                .ok_or_else(|| SwapError::Unknown(sha256.to_owned()))?;
            return Ok(Swapped {
                waiting: Some(waiting(&why, sha256)),
                ..Swapped::kept(version, dry_run)
            });
        }
        let (version, books) =
            self.switch(db, settings, clock, candidate, None, fresh, reason, also)?;
        Ok(Swapped {
            version,
            activated: true,
            dry_run,
            fresh_state: !books.is_live(),
            books: Some(books),
            waiting: None,
        })
    }

    /// A stored version, loaded (from the compiled cache if it is there):
    /// every path that runs a stored version (activation, rollback,
    /// experiment, shadow) comes here, so `trusted_keys` is checked here.
    pub fn load_version(&self, db: &dyn Store, sha256: &str) -> Result<S, SwapError> {
        let bytes = versions::component(db, sha256)?
            .ok_or_else(|| SwapError::Unknown(sha256.to_owned()))?;
        if !versions::may_run(&*db.read()?, &self.trusted_keys, sha256)? {
            return Err(SwapError::Untrusted(sha256.to_owned()));
        }
        S::from_loaded(self.runtime.load(&bytes)?).ok_or(SwapError::WrongKind(S::KIND))
    }

    /// The candidate on the last `window` recorded ticks (see
    /// [`super::dry_run`]): on the live books of each tick if it gets them,
    /// else carried from empty books through them, as it will start. Fails
    /// if the candidate fails on one; the last tick's effects are compared as
    /// before, the window's bills per consumer in `history`.
    fn dry_run(
        &self,
        db: &dyn Store,
        candidate: &S,
        fresh: bool,
        window: u32,
    ) -> Result<Option<DryRun>, SwapError> {
        let position = tick_log::position(&*db.read()?, self.name)?;
        let since = position.saturating_sub(u64::from(window.max(1)));
        let records = S::recorded_since(db, self.name, since, usize::MAX)?;
        let live_books = !fresh && handover::same_format(self.current().info(), candidate.info());
        let mut history = History {
            books: if live_books { "live" } else { "empty" },
            bound_percent: self.dry_run_bound_percent,
            ..History::default()
        };
        let (mut live_bills, mut candidate_bills) = (Bills::new(), Bills::new());
        let mut books = Books::default();
        let mut last = None;
        for (tick, input, recorded) in records {
            let decided = if live_books {
                candidate
                    .tick(&input)
                    .map(|o| (o.decision, o.fuel_used, o.elapsed))
                    .map_err(|f| f.to_string())
            } else {
                let started = std::time::Instant::now();
                candidate
                    .carry(&mut books, &input)
                    .map(|(d, fuel)| (d, fuel, started.elapsed()))
            };
            let (decision, fuel, elapsed) =
                decided.map_err(|why| SwapError::DryRun { tick, why })?;
            // A tick the live version failed decided nothing to compare with.
            if let Some(live) = &recorded {
                if history.ticks == 0 {
                    history.from_tick = tick;
                }
                history.ticks += 1;
                add_bills(&mut live_bills, S::bills(live));
                add_bills(&mut candidate_bills, S::bills(&decision));
            }
            last = Some(DryRun {
                tick,
                live: recorded.as_ref().map(S::effect),
                candidate: S::effect(&decision),
                fuel,
                elapsed_us: elapsed.as_micros() as u64,
                history: None,
            });
        }
        let Some(mut last) = last else {
            return Ok(None);
        };
        last.history = Some(super::dry_run::judge(
            db,
            history,
            &live_bills,
            &candidate_bills,
        )?);
        Ok(Some(last))
    }

    /// Gives the candidate its books (see [`handover`]) and makes it active,
    /// between ticks; the books the live version leaves are kept for a
    /// rollback to its format.
    #[allow(clippy::too_many_arguments)]
    fn switch(
        &self,
        db: &dyn Store,
        settings: &[Setting],
        clock: &dyn Fn() -> u64,
        candidate: S,
        upload: Option<Offered>,
        fresh: bool,
        reason: &str,
        also: &dyn Fn(&dyn storage::WriteTx) -> anyhow::Result<()>,
    ) -> Result<(Version, Handover), SwapError> {
        let _turn = self.turn_for_swap();
        // The time of the activation: now, after the tick in flight.
        let now_ms = clock();
        let kind = S::KIND.to_string();
        let live = self.current().info().clone();
        let (handover, books) = handover::plan(db, self.name, &live, &candidate, fresh)?;
        if handover.is_live() {
            let read = db.read()?;
            let books = StoredBooks {
                slot: self.name,
                tx: &*read,
            };
            let input = S::idle(&books, now_ms, settings)?;
            drop(read);
            if let Err(failure) = candidate.tick(&input) {
                return Err(SwapError::State(match failure.error {
                    CallError::Refused(why) => why,
                    other => other.to_string(),
                }));
            }
        }
        let info = candidate.info().clone();
        let tx = db.write()?;
        let version = match upload {
            Some(offered) => offered.store(&*tx, &info, now_ms)?,
            None => versions::list(db, &kind)?
                .into_iter()
                .find(|v| v.sha256 == info.sha256)
                .ok_or_else(|| SwapError::Unknown(info.sha256.clone()))?,
        };
        let reason = match handover.books {
            "live" => reason.to_owned(),
            other => format!("{reason}, {other} books"),
        };
        versions::activate(&*tx, &kind, &info.sha256, &reason, now_ms)?;
        if let Some(books) = &books {
            handover::archive(&*tx, self.name, &live)?;
            crate::books::replace(&*tx, self.name, books)?;
        }
        also(&*tx)?;
        tx.commit()?;
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = candidate;
        self.failures.store(0, Ordering::Relaxed);
        Ok((version, handover))
    }

    /// After each tick: counts failures in a row; at `rollback_after` the
    /// version active before this one comes back, and why is recorded in the
    /// history and in `/status` (the last rollback).
    pub fn watch(
        &self,
        db: &dyn Store,
        settings: &[Setting],
        clock: &dyn Fn() -> u64,
        failed: Option<&str>,
    ) -> anyhow::Result<()> {
        let Some(why) = failed else {
            self.failures.store(0, Ordering::Relaxed);
            return Ok(());
        };
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.rollback_after {
            return Ok(());
        }
        let kind = S::KIND.to_string();
        let current = self.current().info().sha256.clone();
        let history = versions::history(db, &kind)?;
        let Some(previous) = history.iter().rev().find(|a| a.sha256 != current) else {
            return Ok(()); // nothing to go back to: keep trying
        };
        let reason = format!("automatic rollback after {failures} failed ticks in a row: {why}");
        // It ran here before: no dry run.
        let outcome = self
            .load_version(db, &previous.sha256)
            .and_then(|s| self.switch(db, settings, clock, s, None, false, &reason, &|_| Ok(())))
            .map(|(_, books)| books);
        match outcome {
            Ok(books) => {
                eprintln!("{kind}: {reason}; books: {}", books.why);
                let tx = db.write()?;
                let record = (current, previous.sha256.clone(), clock(), reason);
                storage::set_meta(&*tx, &format!("{kind}/last-rollback"), &record)?;
                tx.commit()?;
            }
            Err(e) => eprintln!("{kind}: rolling back failed: {e}"),
        }
        Ok(())
    }

    /// The last automatic rollback, for `/status`.
    pub fn last_rollback(&self, db: &dyn Store) -> anyhow::Result<Option<serde_json::Value>> {
        let record: Option<(String, String, u64, String)> =
            storage::meta(db, &format!("{}/last-rollback", S::KIND))?;
        Ok(record.map(|(from, to, at_ms, why)| serde_json::json!({ "from": from, "to": to, "at_ms": at_ms, "why": why })))
    }

    /// What `/status` shows of the active version.
    pub fn status(&self, db: &dyn Store) -> anyhow::Result<serde_json::Value> {
        let current = self.current();
        let info = current.info();
        Ok(serde_json::json!({
            "sha256": info.sha256,
            "world": info.world,
            "size": info.size,
            "failed_ticks_in_a_row": self.failures_in_a_row(),
            "last_rollback": self.last_rollback(db)?,
        }))
    }
}

/// A role that runs a strategy in a [`Slot`].
pub trait Runs: Send + Sync + 'static {
    type Strategy: Strategy;
    fn slot(&self) -> &Slot<Self::Strategy>;
    fn store(&self) -> &dyn Store;
    fn settings(&self) -> &[Setting];
    fn now_ms(&self) -> u64;
    /// Why the active version may not change now, if it may not.
    fn swaps_allowed(&self) -> anyhow::Result<Result<(), String>> {
        Ok(Ok(()))
    }
}

/// How an upload or an activation goes.
#[derive(Debug, Clone, Copy)]
pub struct SwapOptions {
    /// Start on empty books whatever the formats.
    pub fresh: bool,
    /// False: only check and store (an upload).
    pub activate: bool,
    /// Activate even if the dry run is refused.
    pub force: bool,
}

/// A role whose strategy can be replaced over HTTP.
pub trait Swappable: Send + Sync + 'static {
    fn kind(&self) -> Kind;
    fn store(&self) -> &dyn Store;
    fn trusted_keys(&self) -> &[ed25519_dalek::VerifyingKey];
    fn upload(&self, offered: Offered, options: SwapOptions) -> Result<Swapped, SwapError>;
    fn activate(&self, sha256: &str, options: SwapOptions) -> Result<Swapped, SwapError>;
}

impl<R: Runs> Swappable for R {
    fn kind(&self) -> Kind {
        <R::Strategy as Strategy>::KIND
    }

    fn store(&self) -> &dyn Store {
        Runs::store(self)
    }

    fn trusted_keys(&self) -> &[ed25519_dalek::VerifyingKey] {
        &self.slot().trusted_keys
    }

    fn upload(&self, offered: Offered, options: SwapOptions) -> Result<Swapped, SwapError> {
        let (db, settings) = (Runs::store(self), self.settings());
        if !options.activate {
            return self.slot().keep(db, offered, self.now_ms());
        }
        self.swaps_allowed()?.map_err(SwapError::Busy)?;
        let SwapOptions { fresh, force, .. } = options;
        let clock = &|| self.now_ms();
        self.slot()
            .upload(db, settings, clock, offered, fresh, force)
    }

    fn activate(&self, sha256: &str, options: SwapOptions) -> Result<Swapped, SwapError> {
        let (db, settings) = (Runs::store(self), self.settings());
        self.swaps_allowed()?.map_err(SwapError::Busy)?;
        let SwapOptions { fresh, force, .. } = options;
        self.slot()
            .activate(db, settings, &|| self.now_ms(), sha256, fresh, force)
    }
}
