//! Powerplug host runtime.
//!
//! - [`strategy`]: loads grid and producer strategies as sandboxed WebAssembly
//!   components and runs one tick at a time under fuel, deadline, memory and
//!   decision-size limits.
//! - [`component`]: builds a Rust strategy crate into a component.
//! - [`role`]: the grid, producer, consumer and source services, over
//!   [`registry`], [`inbox`], [`channel`], [`wallet`], [`outbox`], [`books`],
//!   [`tick_log`], [`documents`] and [`versions`] (strategy versions, for
//!   hot-swap) on one [`storage`] per host (redb by default); their HTTP APIs in
//!   [`http`]; [`demo`] runs them all in one process.
//! - [`simulate`]: a deterministic in-memory run of both strategies, for
//!   checking strategies without any service.

pub mod admission;
pub mod api;
pub mod books;
pub mod channel;
pub mod chart;
pub mod component;
pub mod demo;
pub mod documents;
pub mod experiment;
pub mod http;
pub mod inbox;
pub mod outbox;
pub mod private;
pub mod registry;
pub mod replay;
pub mod role;
pub mod simulate;
pub mod storage;
pub mod strategy;
pub mod text;
pub mod tick_log;
pub mod versions;
pub mod wallet;
