//! Powerplug host runtime.
//!
//! - [`strategy`]: loads grid and producer strategies as sandboxed WebAssembly
//!   components and runs one tick at a time under fuel, deadline, memory and
//!   decision-size limits.
//! - [`component`]: builds a Rust strategy crate into a component.
//! - [`simulate`]: a deterministic multi-tick run of both strategies (sources →
//!   producers → grid ← consumers), the main job until the roles exist.

pub mod books;
pub mod channel;
pub mod component;
pub mod outbox;
pub mod simulate;
pub mod storage;
pub mod strategy;
pub mod tick_log;
pub mod wallet;
