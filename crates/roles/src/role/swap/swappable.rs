//! What a role implements to have its strategy replaced over HTTP.

use super::answer::{SwapError, SwapOptions, Swapped};
use super::{Offered, Slot, Strategy};
use powerplug_storage::Store;
use powerplug_strategy::{Sha256, StrategyKind};

/// A role that runs a strategy in a [`Slot`].
pub trait Runs: Send + Sync + 'static {
    type Strategy: Strategy;
    fn slot(&self) -> &Slot<Self::Strategy>;
    /// Why the active version may not change now, if it may not.
    fn swaps_allowed(&self) -> anyhow::Result<Result<(), String>> {
        Ok(Ok(()))
    }
}

/// A role whose strategy can be replaced over HTTP.
pub trait Swappable: Send + Sync + 'static {
    fn kind(&self) -> StrategyKind;
    fn store(&self) -> &dyn Store;
    fn trusted_keys(&self) -> &[ed25519_dalek::VerifyingKey];
    fn upload(&self, offered: Offered, options: SwapOptions) -> Result<Swapped, SwapError>;
    fn activate(&self, sha256: &Sha256, options: SwapOptions) -> Result<Swapped, SwapError>;
}

impl<R: Runs> Swappable for R {
    fn kind(&self) -> StrategyKind {
        <R::Strategy as Strategy>::KIND
    }

    fn store(&self) -> &dyn Store {
        self.slot().db()
    }

    fn trusted_keys(&self) -> &[ed25519_dalek::VerifyingKey] {
        &self.slot().trusted_keys
    }

    fn upload(&self, offered: Offered, options: SwapOptions) -> Result<Swapped, SwapError> {
        if !options.activate {
            return self.slot().keep(offered);
        }
        self.swaps_allowed()?.map_err(SwapError::Busy)?;
        self.slot().upload(offered, options.fresh, options.force)
    }

    fn activate(&self, sha256: &Sha256, options: SwapOptions) -> Result<Swapped, SwapError> {
        self.swaps_allowed()?.map_err(SwapError::Busy)?;
        self.slot().activate(sha256, options.fresh, options.force)
    }
}
