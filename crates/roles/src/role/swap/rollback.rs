//! Automatic rollback: a version that fails `rollback_after` ticks in a row
//! gives way to the one active before it, on that one's own books carried
//! forward; why is recorded in the history and shown in `/status`.

use std::sync::atomic::Ordering;

use super::{Slot, Strategy};
use crate::versions;
use powerplug_storage as storage;
use powerplug_strategy::text::for_log;

impl<S: Strategy> Slot<S> {
    /// After each tick: counts failures in a row, and rolls back at
    /// `rollback_after`.
    pub fn watch(&self, failed: Option<&str>) -> anyhow::Result<()> {
        let Some(why) = failed else {
            self.failures.store(0, Ordering::Relaxed);
            return Ok(());
        };
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.rollback_after {
            return Ok(());
        }
        let kind = S::KIND;
        let current = self.current().info().sha256;
        let history = versions::history(self.db(), kind)?;
        let Some(previous) = history.iter().rev().find(|a| a.sha256 != current) else {
            return Ok(()); // nothing to go back to: keep trying
        };
        let reason = format!("automatic rollback after {failures} failed ticks in a row: {why}");
        // It ran here before: no dry run.
        let outcome = self
            .load_version(&previous.sha256)
            .and_then(|s| self.switch(s, None, false, &reason, &|_| Ok(())))
            .map(|(_, books)| books);
        match outcome {
            Ok(books) => {
                tracing::warn!(
                    %kind,
                    from = %current,
                    to = %previous.sha256,
                    books = %books.why,
                    reason = %for_log(&reason),
                    "rolled back"
                );
                let tx = self.db.write()?;
                let record = (current, previous.sha256, self.clock.now_ms(), reason);
                storage::set_meta(&*tx, &last_rollback_name(kind), &record)?;
                tx.commit()?;
            }
            Err(e) => tracing::error!(%kind, error = %e, "rolling back failed"),
        }
        Ok(())
    }

    /// The last automatic rollback, for `/status`.
    pub fn last_rollback(&self) -> anyhow::Result<Option<serde_json::Value>> {
        let record: Option<(String, String, u64, String)> =
            storage::meta(self.db(), &last_rollback_name(S::KIND))?;
        Ok(record.map(|(from, to, at_ms, why)| {
            serde_json::json!({ "from": from, "to": to, "at_ms": at_ms, "why": why })
        }))
    }
}

fn last_rollback_name(kind: powerplug_strategy::StrategyKind) -> String {
    format!("{kind}/last-rollback")
}
