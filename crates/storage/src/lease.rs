//! Leases: which of the hosts that share a store acts for it (ticks, sends).
//!
//! A lease has a holder, an epoch that grows each time it changes hands, and
//! a period after which a holder that stopped renewing it loses it. A write
//! transaction can be *fenced* by a lease: it commits only if its store
//! still holds the lease in the epoch it names, so a holder that was paused
//! past its lease (or cut off the network) and wakes up cannot commit what
//! it decided before. A store only one process can open (redb) holds every
//! lease, always.

use std::time::Duration;

/// Who holds a lease, as [`Store::lease`](crate::Store::lease) found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "held_by")]
pub enum Lease {
    /// This store, in `epoch`.
    Me { epoch: u64 },
    /// Another host, in `epoch`, for `left_ms` more unless it renews.
    Other {
        holder: String,
        epoch: u64,
        left_ms: u64,
    },
}

/// A commit refused because its store no longer holds the lease it was
/// fenced by (see [`WriteTx::fence`](crate::WriteTx::fence)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    pub lease: String,
    pub epoch: u64,
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "commit refused: this host no longer holds the `{}` lease of epoch {}",
            self.lease, self.epoch
        )
    }
}

impl std::error::Error for Fenced {}

impl Fenced {
    /// Whether `error` (or one of its causes) is a refused commit.
    pub fn is(error: &anyhow::Error) -> bool {
        error.chain().any(|e| e.downcast_ref::<Fenced>().is_some())
    }
}

/// The shortest period a lease may have: a holder renews it three times a
/// period, and each renewal is a round trip.
pub const MIN_PERIOD: Duration = Duration::from_millis(300);
