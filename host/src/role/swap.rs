//! Replacing a running grid's payment policy: a new version is checked (a
//! component of the right world, importing only `log`), compiled (through the
//! cache), run as a dry run on the last recorded tick input under the normal
//! limits, and handed the live state; only then is it stored and activated —
//! at a tick boundary: the swap waits for the tick in flight, and every tick
//! runs entirely on one version.

use serde::Serialize;

use super::grid::{Grid, SLOT};
use crate::books::{GridNews, StoredBooks, grid_input, store_decision};
use crate::strategy::{CallError, CellBatch, GridDecision, GridStrategy, LoadError, Loaded};
use crate::tick_log::{self, Outcome};
use crate::versions::{self, Version};

/// What a decision would do, in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effect {
    pub payment_requests: usize,
    pub requested: u64,
    pub payouts: usize,
    pub paid_out: u64,
}

impl Effect {
    fn of(d: &GridDecision) -> Self {
        Self {
            payment_requests: d.payment_requests.len(),
            requested: d.payment_requests.iter().map(|r| r.owed).sum(),
            payouts: d.payouts.len(),
            paid_out: d.payouts.iter().map(|p| p.amount).sum(),
        }
    }
}

/// The candidate against the live version on the last recorded tick input.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub tick: u64,
    /// What the live version decided on it (`None` if that tick failed).
    pub live: Option<Effect>,
    pub candidate: Effect,
    pub fuel: u64,
    pub elapsed_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Swapped {
    pub version: Version,
    /// No recorded tick yet: nothing to compare on.
    pub dry_run: Option<DryRun>,
    pub fresh_state: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("component: {0}")]
    Load(#[from] LoadError),
    #[error("kind: this host runs grid strategies, not {0}")]
    WrongKind(String),
    #[error("dry run: the new version failed on tick {tick}'s input: {why}")]
    DryRun { tick: u64, why: String },
    #[error(
        "state: the new version refuses the live state ({0}); ask for a fresh state to start it anyway"
    )]
    State(String),
    #[error("version: no grid version {0}")]
    Unknown(String),
    #[error("storage: {0:#}")]
    Storage(#[from] anyhow::Error),
}

impl Grid {
    /// Checks, stores and activates an uploaded component.
    pub fn upload(
        &self,
        bytes: &[u8],
        name: Option<String>,
        notes: Option<String>,
        fresh: bool,
    ) -> Result<Swapped, SwapError> {
        let candidate = match self.runtime.load(bytes)? {
            Loaded::Grid(grid) => grid,
            Loaded::Producer(_) => return Err(SwapError::WrongKind("producer".into())),
        };
        let dry_run = self.dry_run(&candidate)?;
        let version = self.switch(candidate, Some((bytes, name, notes)), fresh, "uploaded")?;
        Ok(Swapped {
            version,
            dry_run,
            fresh_state: fresh,
        })
    }

    /// Activates a stored version again (a rollback, or forward).
    pub fn activate(&self, sha256: &str, fresh: bool) -> Result<Swapped, SwapError> {
        let bytes = versions::component(self.db(), sha256)?
            .ok_or_else(|| SwapError::Unknown(sha256.to_owned()))?;
        let candidate = self.runtime.load_grid(&bytes)?;
        let dry_run = self.dry_run(&candidate)?;
        let version = self.switch(candidate, None, fresh, "activated")?;
        Ok(Swapped {
            version,
            dry_run,
            fresh_state: fresh,
        })
    }

    /// Brings back an earlier version (no dry run: it ran here before).
    pub(super) fn roll_back(&self, sha256: &str, reason: &str) -> Result<(), SwapError> {
        let bytes = versions::component(self.db(), sha256)?
            .ok_or_else(|| SwapError::Unknown(sha256.to_owned()))?;
        let candidate = self.runtime.load_grid(&bytes)?;
        self.switch(candidate, None, false, reason)?;
        Ok(())
    }

    fn dry_run(&self, candidate: &GridStrategy) -> Result<Option<DryRun>, SwapError> {
        let Some(record) = tick_log::last_grid(self.db(), SLOT)? else {
            return Ok(None);
        };
        let outcome = candidate
            .tick(&record.input)
            .map_err(|failure| SwapError::DryRun {
                tick: record.tick,
                why: failure.to_string(),
            })?;
        Ok(Some(DryRun {
            tick: record.tick,
            live: match &record.outcome {
                Outcome::Decided(d) => Some(Effect::of(d)),
                Outcome::Failed(_) => None,
            },
            candidate: Effect::of(&outcome.decision),
            fuel: outcome.fuel_used,
            elapsed_us: outcome.elapsed.as_micros() as u64,
        }))
    }

    /// Hands the candidate the live state and makes it active, between ticks.
    fn switch(
        &self,
        candidate: GridStrategy,
        upload: Option<(&[u8], Option<String>, Option<String>)>,
        fresh: bool,
        reason: &str,
    ) -> Result<Version, SwapError> {
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock_now();
        if !fresh {
            let read = self.db().read()?;
            let books = StoredBooks {
                slot: SLOT,
                tx: &*read,
            };
            let input = grid_input(&books, now, self.settings(), GridNews::default())?;
            drop(read);
            if let Err(failure) = candidate.tick(&input) {
                let why = match failure.error {
                    CallError::Refused(why) => why,
                    other => other.to_string(),
                };
                return Err(SwapError::State(why));
            }
        }
        let info = candidate.info().clone();
        let tx = self.db().write()?;
        let version = match upload {
            Some((bytes, name, notes)) => versions::add(&*tx, &info, bytes, name, notes, now)?,
            None => versions::list(self.db(), "grid")?
                .into_iter()
                .find(|v| v.sha256 == info.sha256)
                .ok_or_else(|| SwapError::Unknown(info.sha256.clone()))?,
        };
        let reason = if fresh {
            format!("{reason}, fresh state")
        } else {
            reason.to_owned()
        };
        versions::activate(&*tx, "grid", &info.sha256, &reason, now)?;
        if fresh {
            // The strategy's own state starts empty; per-entity cells stay.
            store_decision(&*tx, SLOT, &[], &CellBatch::from_entries([]))?;
        }
        tx.commit()?;
        self.set_strategy(candidate);
        Ok(version)
    }
}
