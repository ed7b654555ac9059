//! Powerplug's services and roles, over storage, channels, the ledger and the
//! strategy runtime.
//!
//! Services (each keeps its data in the host's [`powerplug_storage::Store`]):
//! [`registry`] and [`admission`] (who may take part), [`inbox`] (readings
//! taken from channels), [`outbox`] (messages to send, durable), [`books`]
//! (a strategy's state), [`tick_log`] (every tick's input and decision),
//! [`versions`] (strategy versions, for hot-swap), [`experiment`] (A/B tests
//! and shadow runs), [`documents`] (entities' own storage), [`replay`]
//! (a recording through other strategies), [`garbage`] (objects nobody names),
//! [`backup`] (a store with its objects).
//!
//! Roles ([`role`]): the grid, the producer and the meters (consumers and
//! sources), each a scheduler repeating one step over those services. Their
//! HTTP APIs are in `powerplug-http`, which depends on this crate, never the
//! other way round.

pub mod admission;
/// The HTTP API's JSON bodies live with the client that sends them.
pub use powerplug_client::api;
pub mod background;
pub mod backup;
pub mod books;
pub mod chart;
pub mod counter;
pub mod documents;
pub mod experiment;
pub mod figures;
pub mod garbage;
pub mod inbox;
pub mod limits;
pub mod outbox;
pub mod pages;
pub mod registry;
pub mod replay;
pub mod retention;
pub mod returns;
pub mod role;
pub mod settlement;
pub mod telemetry;
pub mod tick_log;
pub mod versions;
