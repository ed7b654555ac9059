//! Write Powerplug strategies in Rust.
//!
//! A strategy implements [`grid::GridStrategy`] or [`producer::ProducerStrategy`] on
//! plain Rust types and exports itself with [`export_grid_strategy!`] or
//! [`export_producer_strategy!`]. Built for `wasm32-unknown-unknown` and wrapped
//! (`powerplug strategy build`), it becomes a component whose only import is
//! Powerplug's `log`. The same code runs natively through [`grid::run`] and
//! [`producer::run`], which is how strategies are unit-tested without WASM.
//!
//! The types are the ones the WIT contract defines (`wit/strategy.wit`), generated
//! by wit-bindgen, so what a test builds is exactly what the host sends.

#[doc(hidden)]
pub mod bindings;
mod cells;
mod config;
pub mod grid;
pub mod log;
pub mod producer;
pub mod state;

pub use bindings::grid::powerplug::strategy::types::{
    CellBatch, Entity, EntityKind, Metric, Setting, Transfer,
};
pub use cells::{Cells, Words};
pub use config::Config;

/// What a strategy returns when it refuses a tick; the host applies nothing.
pub type Error = String;
