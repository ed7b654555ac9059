use std::time::Duration;

use powerplug_domain::StrategyKind;

/// Why a component was refused. Nothing about it was kept.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not WebAssembly: the bytes do not start with the `\\0asm` magic number")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build strategies with `powerplug strategy build` (or wrap with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("unsupported world: the component exports {exports:?}; this host runs components that export `powerplug:strategy/grid@{version}` or `powerplug:strategy/producer@{version}`", version = super::WORLD_VERSION)]
    UnsupportedWorld { exports: Vec<String> },
    #[error("forbidden import `{0}`: a strategy may import only `powerplug:strategy/log@{version}`", version = super::WORLD_VERSION)]
    ForbiddenImport(String),
    #[error("expected a {expected} strategy, this component is a {found} strategy")]
    WrongKind {
        expected: StrategyKind,
        found: StrategyKind,
    },
    #[error("compiled-component cache at {path}: {message}")]
    Cache { path: String, message: String },
}

/// Why one tick produced no decision. The host applied nothing; the next call
/// runs on a fresh instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("out of fuel: the tick used its whole budget of {budget} fuel")]
    OutOfFuel { budget: u64 },
    #[error("deadline: the tick ran longer than {limit:?}")]
    Deadline { limit: Duration },
    #[error("memory limit: the strategy tried to grow its memory past {limit} bytes")]
    MemoryLimit { limit: usize },
    #[error("trap: {message}")]
    Trap { message: String },
    #[error("decision too large: {size} bytes, the limit is {limit}")]
    DecisionTooLarge { size: usize, limit: usize },
    #[error("malformed decision: {0}")]
    Malformed(String),
    #[error("the strategy refused the tick: {0}")]
    Refused(String),
    #[error("could not instantiate: {0}")]
    Instantiate(String),
}

impl CallError {
    /// A short stable name for metrics and logs.
    pub fn cause(&self) -> &'static str {
        match self {
            CallError::OutOfFuel { .. } => "out-of-fuel",
            CallError::Deadline { .. } => "deadline",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::Trap { .. } => "trap",
            CallError::DecisionTooLarge { .. } => "decision-too-large",
            CallError::Malformed(_) => "malformed",
            CallError::Refused(_) => "refused",
            CallError::Instantiate(_) => "instantiate",
        }
    }
}
