//! Powerplug's words as types, used wherever a value crosses a boundary (the
//! HTTP API, the ledger, the strategy runtime, stored records), so that a
//! price is never added to an energy and a hash is never a free string.
//!
//! Every type serialises as the bare value it wraps (a number, a string), so
//! JSON bodies and stored records read the same as before these types existed.
//! Amounts are integers in the smallest unit; sums are checked: money and
//! energy never wrap.

mod ids;
mod kinds;
mod units;

pub use ids::{AccountId, Sha256};
pub use kinds::{EntityKind, StrategyKind};
pub use units::{Tokens, UnixMs, Wh};
