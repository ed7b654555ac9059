//! One strategy call: a fresh store with its budgets, and the translation of
//! whatever went wrong into a [`CallError`].

use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, Trap};

use super::bindings::{Decision, LogLevel, log};
use super::{CallError, Language, Limits, Metering};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// A decision and what it cost.
#[derive(Debug, Clone)]
pub struct TickOutcome<D> {
    pub decision: D,
    pub fuel_used: u64,
    pub elapsed: Duration,
    pub logs: Vec<LogLine>,
    /// Lines beyond [`Limits::log_lines`], counted but not kept.
    pub logs_dropped: u32,
}

/// A tick that produced no decision: why, and what the strategy logged before
/// it failed (with the SDK, a Rust panic logs its message there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickFailure {
    pub error: CallError,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u32,
}

impl std::fmt::Display for TickFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(last) = self.logs.iter().rev().find(|l| l.level == LogLevel::Error) {
            write!(f, " (the strategy logged: {})", last.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for TickFailure {}

impl From<CallError> for TickFailure {
    fn from(error: CallError) -> Self {
        Self {
            error,
            logs: Vec::new(),
            logs_dropped: 0,
        }
    }
}

/// What a store holds for the guest: its limits and what it logged.
pub(crate) struct Guest {
    memory_limit: usize,
    memory_refused: bool,
    log_lines: usize,
    log_line_bytes: usize,
    logs: Vec<LogLine>,
    logs_dropped: u32,
}

impl ResourceLimiter for Guest {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_limit;
        self.memory_refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    // Counts of *core* instances, memories and tables inside one component:
    // generous, because language runtimes (Python, JS) use many; memory size is
    // what is limited.
    fn instances(&self) -> usize {
        1_000
    }
    fn memories(&self) -> usize {
        1_000
    }
    fn tables(&self) -> usize {
        1_000
    }
}

impl log::Host for Guest {
    fn log(&mut self, level: LogLevel, message: String) {
        if self.logs.len() >= self.log_lines {
            self.logs_dropped = self.logs_dropped.saturating_add(1);
            return;
        }
        // Kept lines reach stderr, `/status` and the tick log: no terminal
        // control in them (cleaned first, so the cap holds afterwards).
        let mut message = crate::text::clean(&message);
        if message.len() > self.log_line_bytes {
            let mut end = self.log_line_bytes;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        self.logs.push(LogLine { level, message });
    }
}

pub(crate) fn new_store(engine: &wasmtime::Engine, limits: &Limits) -> Store<Guest> {
    let guest = Guest {
        memory_limit: limits.memory_bytes,
        memory_refused: false,
        log_lines: limits.log_lines,
        log_line_bytes: limits.log_line_bytes,
        logs: Vec::new(),
        logs_dropped: 0,
    };
    let mut store = Store::new(engine, guest);
    store.limiter(|g| g);
    if limits.metering == Metering::Fuel {
        // Fuel is enabled on the engine with this metering: this cannot fail.
        let _ = store.set_fuel(limits.fuel);
    }
    let ticks = limits
        .deadline
        .as_nanos()
        .div_ceil(crate::limits::EPOCH_TICK.as_nanos()) as u64;
    // One extra tick: the deadline is "at least", never shorter than asked.
    store.set_epoch_deadline(ticks.max(1) + 1);
    store.epoch_deadline_trap();
    store
}

/// Runs `call` in `store` and turns every way it can fail into a [`CallError`].
pub(crate) fn run<D: Decision>(
    mut store: Store<Guest>,
    limits: &Limits,
    language: Option<Language>,
    call: impl FnOnce(&mut Store<Guest>) -> wasmtime::Result<Result<D, String>>,
) -> Result<TickOutcome<D>, TickFailure> {
    let start = Instant::now();
    let result = call(&mut store);
    let elapsed = start.elapsed();
    let fuel_used = match limits.metering {
        Metering::Fuel => limits.fuel - store.get_fuel().unwrap_or(0),
        // Not counted.
        Metering::Epoch => 0,
    };
    let memory_refused = store.data().memory_refused;
    let guest = store.into_data();
    let fail = |error| TickFailure {
        error,
        logs: guest.logs.clone(),
        logs_dropped: guest.logs_dropped,
    };

    let decision = match result {
        Ok(Ok(decision)) => decision,
        // Some language runtimes turn a refused allocation into an error value.
        Ok(Err(_)) | Err(_) if memory_refused => {
            return Err(fail(CallError::MemoryLimit {
                limit: limits.memory_bytes,
            }));
        }
        // The strategy's own words: capped and without terminal control.
        Ok(Err(reason)) => return Err(fail(CallError::Refused(crate::text::for_log(&reason)))),
        Err(error) => return Err(fail(classify(error, limits, language))),
    };
    validate(&decision, limits).map_err(fail)?;
    Ok(TickOutcome {
        decision,
        fuel_used,
        elapsed,
        logs: guest.logs,
        logs_dropped: guest.logs_dropped,
    })
}

/// What the host checks of a strategy's decision before it applies anything:
/// its size within the limit, then its shape and amounts ([`Decision::check`]).
pub fn validate<D: Decision>(decision: &D, limits: &Limits) -> Result<(), CallError> {
    let size = decision.payload_bytes();
    if size > limits.decision_bytes {
        return Err(CallError::DecisionTooLarge {
            size,
            limit: limits.decision_bytes,
        });
    }
    decision.check().map_err(CallError::Malformed)
}

fn classify(error: wasmtime::Error, limits: &Limits, language: Option<Language>) -> CallError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel {
            budget: limits.fuel,
        },
        Some(Trap::Interrupt) => CallError::Deadline {
            limit: limits.deadline,
        },
        Some(Trap::UnreachableCodeReached) => CallError::Trap {
            message: format!(
                "wasm `unreachable` executed ({})",
                Language::unreachable_means(language)
            ),
        },
        Some(trap) => CallError::Trap {
            message: trap.to_string(),
        },
        // Backtraces name the guest's functions, which the guest names.
        None => CallError::Trap {
            message: crate::text::clean(&format!("{error:#}")),
        },
    }
}
