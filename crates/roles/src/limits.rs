//! Every bound this crate's services and roles hold an entity to, in one
//! place: what one entity can make a host keep, read or do per round.

/// Records one tick takes at most; the rest wait for the next.
pub const MAX_RECORDS_PER_TICK: usize = 500_000;

/// Most wallet transfers one tick takes; the rest wait for the next tick
/// (the cursor stops at the last one taken).
pub const MAX_TRANSFERS_PER_TICK: usize = 50_000;

/// Most entities whose joining or leaving one tick takes.
pub const MAX_MEMBERSHIP_PER_TICK: usize = 10_000;

/// How far ahead of where the host has read a channel an entity may write:
/// what one entity can make the host keep unread is bounded by this many
/// messages of at most [`powerplug_channel::MAX_MESSAGE_BYTES`].
pub const WRITE_WINDOW: u64 = 256;

/// Failures in a row of one version whose inputs are logged.
pub const FAILURES_LOGGED: u64 = 10;

/// Largest `/storage` document.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Most `/storage` documents per owner.
pub const MAX_DOCUMENTS: u64 = 10_000;

/// Most `/storage` documents one listing returns.
pub const MAX_PAGE: usize = 1_000;

/// Readings one meter publishes per round at most (after a long outage the
/// rest follow in later rounds).
pub const MAX_READINGS_PER_ROUND: u64 = 100;

/// Registrations in flight at once when a meter host starts.
pub const REGISTRATION_THREADS: usize = 8;
