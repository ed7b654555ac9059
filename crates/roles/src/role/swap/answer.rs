//! What an upload or an activation answers: the version, the dry run, the
//! books it started on, or why it was refused.

use serde::Serialize;

use super::dry_run::History;
use super::handover::Handover;
use crate::versions::Version;
use powerplug_strategy::{LoadError, StrategyKind};

pub use super::strategy_kind::Effect;

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
    pub(super) fn activated(version: Version, dry_run: Option<DryRun>, books: Handover) -> Self {
        Self {
            version,
            activated: true,
            dry_run,
            fresh_state: !books.is_live(),
            books: Some(books),
            waiting: None,
        }
    }

    pub(super) fn kept(version: Version, dry_run: Option<DryRun>) -> Self {
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

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("component: {0}")]
    Load(#[from] LoadError),
    #[error("kind: the component is a {component} strategy; this host runs {runs} strategies")]
    WrongKind {
        runs: StrategyKind,
        component: StrategyKind,
    },
    #[error("dry run: the new version failed on tick {tick}'s input: {why}")]
    DryRun { tick: u64, why: String },
    #[error(
        "state: the new version refuses the live state ({0}); ask for a fresh state to start it anyway"
    )]
    State(String),
    #[error("version: no such version {0}")]
    Unknown(powerplug_strategy::Sha256),
    #[error("version: {0}")]
    Busy(String),
    #[error(
        "version: {0} is not signed by a key this host trusts; upload it again with a signature (`powerplug strategy sign`)"
    )]
    Untrusted(powerplug_strategy::Sha256),
    #[error("storage: {0:#}")]
    Storage(#[from] anyhow::Error),
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
