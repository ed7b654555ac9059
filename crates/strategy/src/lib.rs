//! The strategy runtime: WebAssembly components that decide, a host that acts.
//!
//! [`Runtime`] owns the wasmtime engine (pooling allocator, fuel, epochs) and the
//! on-disk cache of compiled components. [`Runtime::load`] checks that a component
//! implements a world this host supports and imports nothing but `log`, and gives
//! a [`GridStrategy`] or a [`ProducerStrategy`]. Each `tick` runs on a fresh
//! instance (so a decision depends on its input alone) under the [`Limits`], and a
//! failure of any kind is a [`CallError`] that names its cause.

mod bindings;
mod cache;
mod error;
mod inspect;
mod limits;
mod runtime;
mod sandbox;
pub mod text;

pub use bindings::grid::{
    GridDecision, GridInput, Output, PaymentRequestBatch, Payout, UsageBatch,
};
pub use bindings::producer::{OutputCommand, ProducerDecision, ProducerInput, SourceOutput};
pub use bindings::types::{CellBatch, Entity, Metric, Setting, Transfer};
pub use bindings::{AMOUNTS_OVERFLOW, Decision, LogLevel, PaymentRequest, Usage};
pub use error::{CallError, LoadError};
pub use inspect::{
    BOOKS_SECTION, ComponentInfo, Language, WORLD_VERSION, declare_books, export_name, inspect,
    valid_books_format,
};
pub use limits::{Limits, MAX_PRICE, MAX_WH, Metering};
pub use powerplug_domain::{EntityKind, Sha256, StrategyKind};
pub use runtime::{CacheStats, GridStrategy, Loaded, ProducerStrategy, Runtime};
pub use sandbox::{LogLine, TickFailure, TickOutcome, validate};
