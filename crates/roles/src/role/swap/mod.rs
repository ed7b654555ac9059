//! Replacing a running role's strategy (the grid's payment policy, a
//! producer's pricing): a new version is checked (a component of the right
//! world, importing only `log`), compiled (through the cache), dry-run on the
//! recent recorded ticks under the normal limits ([`dry_run`]: one that would
//! bill beyond usage or the bound waits for `force`), and given its books
//! ([`handover`]: the live ones only across equal formats); only then is it
//! stored and activated — at a tick boundary: the swap waits for the tick in
//! flight, and every tick runs on one version. A version that fails
//! `rollback_after` ticks in a row gives way to the one active before it, on
//! that one's own books carried forward (`rollback.rs`).
//!
//! - [`Slot`] (here): the active version, the turn ticks and activations
//!   take, and the switch from one version to the next;
//! - `activation.rs`: uploads and activations, gated by the dry run;
//! - [`answer`]: what they answer;
//! - [`Runs`], [`Swappable`] (`swappable.rs`): the traits a role implements to be swapped over HTTP.

mod activation;
pub mod answer;
pub mod dry_run;
pub mod handover;
mod rollback;
mod strategy_kind;
mod swappable;

use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use parking_lot::{FairMutex, FairMutexGuard};

use self::handover::Handover;
use super::Clock;
use super::config::StrategySlot;
use crate::books::StoredBooks;
use crate::versions::{self, Provenance, Version};
use powerplug_storage::{self as storage, Db, Objects, Store};
use powerplug_strategy::Sha256;
use powerplug_strategy::{CallError, ComponentInfo, Runtime, Setting};

pub use self::answer::{DryRun, SwapError, SwapOptions, Swapped};
pub use self::strategy_kind::{Effect, LastTick, Strategy};
pub use self::swappable::{Runs, Swappable};

/// A component offered over the API, and what came with it.
pub struct Offered<'a> {
    pub bytes: &'a [u8],
    pub name: Option<String>,
    pub notes: Option<String>,
    /// The signature the upload was checked with, on a host that trusts keys.
    pub signature: Option<String>,
}

impl Offered<'_> {
    /// Stores the component's bytes: before the transaction that [`store`]s
    /// its metadata, which they must not wait in.
    ///
    /// [`store`]: Self::store
    fn put(&self, objects: &Objects, info: &ComponentInfo) -> anyhow::Result<()> {
        versions::put_component(objects, info, self.bytes)
    }

    /// Stores the component's metadata and how it came.
    fn store(
        self,
        tx: &dyn storage::WriteTx,
        info: &ComponentInfo,
        now_ms: u64,
    ) -> anyhow::Result<Version> {
        let version = versions::add(tx, info, self.name, self.notes, now_ms)?;
        if let Some(signature) = self.signature {
            versions::set_provenance(tx, &info.sha256, &Provenance::Signed(signature))?;
        }
        Ok(version)
    }
}

/// A role's strategy: the active version, and how it is replaced. It owns
/// what a swap needs: the role's database, the strategy's settings and the
/// role's clock.
pub struct Slot<S: Strategy> {
    /// The books and tick-log slot (`grid`, `producer`).
    pub name: &'static str,
    db: Db,
    /// Where components' bytes are.
    objects: Objects,
    settings: Vec<Setting>,
    clock: Clock,
    active: RwLock<S>,
    runtime: Runtime,
    /// One tick or one activation at a time, in the order they asked: a swap
    /// waits for the tick in flight and takes effect at the next one, and a
    /// tick that is waiting goes before an activation that asked after it.
    turn: FairMutex<()>,
    /// Ticks waiting for the turn: an activation lets them go first.
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
        db: &Db,
        objects: &Objects,
        name: &'static str,
        strategy: &StrategySlot,
        data_dir: &std::path::Path,
        trusted_keys: &[String],
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let cache = strategy
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        let runtime = super::runtime(&cache, strategy.limits.limits()?)?;
        let trusted_keys = versions::trusted_keys(trusted_keys)?;
        let kind = S::KIND;
        let load = |bytes: &[u8]| -> anyhow::Result<S> {
            S::from_loaded(runtime.load(bytes)?)
                .ok_or_else(|| anyhow::anyhow!("not a {kind} strategy"))
        };
        let active = match versions::active(&**db, kind)? {
            Some(sha) => {
                let bytes = versions::component(&**db, objects, &sha)?
                    .with_context(|| format!("the active {kind} version {sha} is missing"))?;
                if !versions::may_run(&*db.read()?, &trusted_keys, &sha)? {
                    // Chosen before these keys were trusted: it keeps running,
                    // but nothing unsigned can be chosen again.
                    tracing::warn!(
                        %kind,
                        version = %sha,
                        "the active version is not signed by a trusted key; it runs until another is activated"
                    );
                }
                load(&bytes)?
            }
            None => {
                let configured = &strategy.component;
                let bytes = std::fs::read(configured).with_context(|| {
                    format!("strategy.component: cannot read {}", configured.display())
                })?;
                let active = load(&bytes)
                    .with_context(|| format!("strategy.component: {}", configured.display()))?;
                let sha = &active.info().sha256;
                versions::put_component(objects, active.info(), &bytes)?;
                let tx = db.write()?;
                let now = super::unix_ms();
                let notes = Some("configured".into());
                versions::add(&*tx, active.info(), None, notes, now)?;
                versions::set_provenance(&*tx, sha, &Provenance::Configured)?;
                versions::activate(&*tx, kind, sha, "configured", now)?;
                tx.commit()?;
                active
            }
        };
        Ok(Self {
            name,
            db: db.clone(),
            objects: objects.clone(),
            settings: strategy.settings(),
            clock,
            active: RwLock::new(active),
            runtime,
            turn: FairMutex::new(()),
            ticks_waiting: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            rollback_after: strategy.rollback_after.max(1),
            dry_run_ticks: strategy.dry_run_ticks,
            dry_run_bound_percent: strategy.dry_run_bound_percent,
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

    /// The strategy's settings, as every tick gets them.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    fn db(&self) -> &dyn Store {
        &*self.db
    }

    /// Held by a tick from start to commit. A waiting tick goes before any
    /// activation that has not started yet, so a tick waits for one at most.
    pub fn turn(&self) -> FairMutexGuard<'_, ()> {
        self.ticks_waiting.fetch_add(1, Ordering::SeqCst);
        let turn = self.turn.lock();
        self.ticks_waiting.fetch_sub(1, Ordering::SeqCst);
        turn
    }

    /// An activation's turn: after every tick already waiting for one. The
    /// fair lock alone lets an activation that asked after a tick, but before
    /// the tick parked, go first (the swap bench counted ticks that waited
    /// for two or three).
    fn turn_for_swap(&self) -> FairMutexGuard<'_, ()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.ticks_waiting.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        self.turn.lock()
    }

    /// Reads the active version again (a host that takes over from
    /// another leader: that one may have swapped it) and loads it if it
    /// is not the one running here.
    pub fn reload(&self) -> anyhow::Result<()> {
        let stored = || versions::active(self.db(), S::KIND);
        let news = |stored: &Option<Sha256>| {
            stored
                .as_ref()
                .is_some_and(|s| *s != self.current().info().sha256)
        };
        // A standby asks every round: the turn is taken only for news.
        if !news(&stored()?) {
            return Ok(());
        }
        let _turn = self.turn_for_swap();
        let active = match stored()? {
            Some(active) if news(&Some(active)) => active,
            _ => return Ok(()),
        };
        // What the leader before ran, trusted or not (as at a start).
        let bytes = versions::component(self.db(), &self.objects, &active)?
            .with_context(|| format!("the active {} version {active} is missing", S::KIND))?;
        let loaded = self
            .runtime
            .load(&bytes)
            .map_err(SwapError::from)
            .and_then(of_kind)
            .map_err(|e| anyhow::anyhow!("the active version {active}: {e}"))?;
        tracing::info!(kind = %S::KIND, version = %active, "the active version changed under another leader; running it");
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        self.failures.store(0, Ordering::Relaxed);
        Ok(())
    }

    pub fn failures_in_a_row(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// A stored version, loaded (from the compiled cache if it is there):
    /// every path that runs a stored version (activation, rollback,
    /// experiment, shadow) comes here, so `trusted_keys` is checked here.
    pub fn load_version(&self, sha256: &Sha256) -> Result<S, SwapError> {
        let bytes = versions::component(self.db(), &self.objects, sha256)?
            .ok_or_else(|| SwapError::Unknown(*sha256))?;
        if !versions::may_run(&*self.db.read()?, &self.trusted_keys, sha256)? {
            return Err(SwapError::Untrusted(*sha256));
        }
        of_kind(self.runtime.load(&bytes)?)
    }

    /// A new component, checked and loaded (not stored).
    fn load_offered(&self, offered: &Offered) -> Result<S, SwapError> {
        of_kind(self.runtime.load(offered.bytes)?)
    }

    /// Gives the candidate its books (see [`handover`]) and makes it active,
    /// between ticks; the books the live version leaves are kept for a
    /// rollback to its format. `also` writes in the same transaction.
    fn switch(
        &self,
        candidate: S,
        upload: Option<Offered>,
        fresh: bool,
        reason: &str,
        also: &dyn Fn(&dyn storage::WriteTx) -> anyhow::Result<()>,
    ) -> Result<(Version, Handover), SwapError> {
        let _turn = self.turn_for_swap();
        // The time of the activation: now, after the tick in flight.
        let now_ms = self.clock.now_ms();
        let kind = S::KIND;
        let live = self.current().info().clone();
        let (handover, books) = handover::plan(self.db(), self.name, &live, &candidate, fresh)?;
        if handover.is_live() {
            let read = self.db.read()?;
            let books = StoredBooks::new(&*read, self.name);
            let input = S::idle(&books, now_ms, &self.settings)?;
            drop(read);
            if let Err(failure) = candidate.tick(&input) {
                return Err(SwapError::State(match failure.error {
                    CallError::Refused(why) => why,
                    other => other.to_string(),
                }));
            }
        }
        let info = candidate.info().clone();
        if let Some(offered) = &upload {
            offered.put(&self.objects, &info)?;
        }
        let tx = self.db.write()?;
        let version = match upload {
            Some(offered) => offered.store(&*tx, &info, now_ms)?,
            None => self.stored(&info.sha256)?,
        };
        let reason = match handover.books {
            "live" => reason.to_owned(),
            other => format!("{reason}, {other} books"),
        };
        versions::activate(&*tx, kind, &info.sha256, &reason, now_ms)?;
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

    /// The stored metadata of a version.
    fn stored(&self, sha256: &Sha256) -> Result<Version, SwapError> {
        versions::list(self.db(), S::KIND)?
            .into_iter()
            .find(|v| v.sha256 == *sha256)
            .ok_or_else(|| SwapError::Unknown(*sha256))
    }

    /// What `/status` shows of the active version.
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        let current = self.current();
        let info = current.info();
        Ok(serde_json::json!({
            "sha256": info.sha256,
            "world": info.world,
            "size": info.size,
            "failed_ticks_in_a_row": self.failures_in_a_row(),
            "last_rollback": self.last_rollback()?,
        }))
    }
}

/// The loaded component as this slot's kind, or an error that names both kinds.
fn of_kind<S: Strategy>(loaded: powerplug_strategy::Loaded) -> Result<S, SwapError> {
    let component = loaded.info().kind;
    S::from_loaded(loaded).ok_or(SwapError::WrongKind {
        runs: S::KIND,
        component,
    })
}
