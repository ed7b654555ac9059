//! Uploads and activations: each is dry-run first, and one whose dry run is
//! refused is stored but waits for the operator's `force`.

use super::answer::{DryRun, SwapError, Swapped};
use super::{Offered, Slot, Strategy};
use powerplug_storage::WriteTx;
use powerplug_strategy::Sha256;

fn waiting(why: &str, sha256: &Sha256) -> String {
    format!(
        "stored, not activated: over the recent ticks {why} (dry_run.history.consumers shows each consumer); to activate it anyway: `powerplug strategy activate {sha256} --force` (?force=true)"
    )
}

/// Why a dry run keeps the candidate waiting, unless the operator forces it.
fn refused(dry_run: &Option<DryRun>, force: bool) -> Option<String> {
    dry_run
        .as_ref()
        .and_then(DryRun::refused)
        .filter(|_| !force)
}

impl<S: Strategy> Slot<S> {
    /// Checks, stores and activates an uploaded component; one whose dry run
    /// is refused is only stored, unless `force`.
    pub fn upload(&self, offered: Offered, fresh: bool, force: bool) -> Result<Swapped, SwapError> {
        let candidate = self.load_offered(&offered)?;
        let dry_run = self.dry_run(&candidate, fresh, self.dry_run_ticks)?;
        if let Some(why) = refused(&dry_run, force) {
            offered.put(&self.objects, candidate.info())?;
            let tx = self.db.write()?;
            let version = offered.store(&*tx, candidate.info(), self.clock.now_ms())?;
            tx.commit()?;
            return Ok(Swapped {
                waiting: Some(waiting(&why, &version.sha256)),
                ..Swapped::kept(version, dry_run)
            });
        }
        let (version, books) =
            self.switch(candidate, Some(offered), fresh, "uploaded", &|_| Ok(()))?;
        Ok(Swapped::activated(version, dry_run, books))
    }

    /// Checks and stores an uploaded component without activating it.
    pub fn keep(&self, offered: Offered) -> Result<Swapped, SwapError> {
        let candidate = self.load_offered(&offered)?;
        // Kept, not activated: checked on the last tick, as it always was;
        // its activation replays the recent ticks.
        let dry_run = self.dry_run(&candidate, false, 1)?;
        offered.put(&self.objects, candidate.info())?;
        let tx = self.db.write()?;
        let version = offered.store(&*tx, candidate.info(), self.clock.now_ms())?;
        tx.commit()?;
        Ok(Swapped::kept(version, dry_run))
    }

    /// Activates a stored version again (a rollback, or forward); one whose
    /// dry run is refused stays inactive, unless `force`.
    pub fn activate(
        &self,
        sha256: &Sha256,
        fresh: bool,
        force: bool,
    ) -> Result<Swapped, SwapError> {
        self.activate_then(sha256, fresh, force, "activated", &|_| Ok(()))
    }

    /// Activates a stored version and, in the same transaction, writes what
    /// `also` writes (an experiment's end, when its winner takes over).
    pub fn activate_then(
        &self,
        sha256: &Sha256,
        fresh: bool,
        force: bool,
        reason: &str,
        also: &dyn Fn(&dyn WriteTx) -> anyhow::Result<()>,
    ) -> Result<Swapped, SwapError> {
        let candidate = self.load_version(sha256)?;
        let dry_run = self.dry_run(&candidate, fresh, self.dry_run_ticks)?;
        if let Some(why) = refused(&dry_run, force) {
            return Ok(Swapped {
                waiting: Some(waiting(&why, sha256)),
                ..Swapped::kept(self.stored(sha256)?, dry_run)
            });
        }
        let (version, books) = self.switch(candidate, None, fresh, reason, also)?;
        Ok(Swapped::activated(version, dry_run, books))
    }
}
