//! Powerplug: a runtime for peer-to-peer energy grids whose payment policies
//! are sandboxed WebAssembly components.
//!
//! This crate is the `powerplug` command and the tools it runs (the demo,
//! `simulate`, `replay`, `strategy check|new|build`); the runtime lives in
//! one crate per layer, each depending only on those below it:
//!
//! | layer | crate | here as |
//! | --- | --- | --- |
//! | HTTP API, starting and stopping a role | `powerplug-http` | [`http`] |
//! | services and roles | `powerplug-roles` | [`role`], [`registry`], [`inbox`], [`outbox`], [`books`], [`tick_log`], [`versions`], [`experiment`], … |
//! | ledger | `powerplug-ledger` | [`wallet`] |
//! | strategy runtime (wasmtime) | `powerplug-strategy` | [`strategy`] |
//! | channels | `powerplug-channel` | [`channel`] |
//! | storage | `powerplug-storage` | [`storage`] |
//!
//! ARCHITECTURE.md draws the graph and follows a reading from a meter to a
//! payment request through it.

pub use powerplug_channel as channel;
pub use powerplug_domain as domain;
pub use powerplug_http as http;
pub use powerplug_ledger as wallet;
pub use powerplug_roles::{
    admission, api, backup, books, chart, counter, documents, experiment, garbage, inbox, outbox,
    pages, registry, replay, retention, returns, role, settlement, tick_log, versions,
};
pub use powerplug_storage as storage;
pub use powerplug_strategy as strategy;
pub use powerplug_strategy::text;

pub mod check;
pub mod component;
pub mod demo;
pub mod logs;
pub mod replay_cli;
pub mod scaffold;
pub mod simulate;
#[cfg(feature = "iota")]
pub mod verify;
