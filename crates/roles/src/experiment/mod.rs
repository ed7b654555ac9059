//! A/B experiments on the grid's payment policy.
//!
//! An experiment splits the consumers into cohorts by a sticky hash of
//! (experiment id, consumer id), one cohort per variant (a stored strategy
//! version with a weight). One variant is the *control*: the active version,
//! which keeps running in the grid's own books on every consumer. Each other
//! variant bills its cohort from books of its own, and also runs, without
//! effects, on every other cohort (its *counterfactual* books), so every
//! consumer has a bill under every variant. Producers are paid from the pooled
//! income by the control's rule: the grid's own books see every payment, and
//! only their payouts are carried out.
//!
//! [`results`] keeps what each variant did, [`report`] turns it into numbers
//! with confidence intervals, [`page`] into an HTML page with charts.

pub mod billing;
pub mod page;
pub mod report;
pub mod results;
pub mod shadow;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use powerplug_storage::{self as storage, Order, Store, WriteTx, key};

/// id → [`Experiment`].
const EXPERIMENTS: &str = "experiments";
/// The experiment scheduled or running, if any (one at a time).
const CURRENT: &str = "experiment/current";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Variant {
    pub name: String,
    /// SHA-256 of a stored strategy version.
    pub version: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waits for its start; everyone is billed by the active version.
    Scheduled,
    Running {
        since_ms: u64,
    },
    Stopped {
        at_ms: u64,
        reason: String,
    },
    Promoted {
        at_ms: u64,
        variant: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: String,
    pub kind: String,
    pub variants: Vec<Variant>,
    /// Index of the variant that is the active version.
    pub control: usize,
    /// Grid time (ms) of the first tick that runs it.
    pub start_ms: u64,
    pub created_ms: u64,
    pub status: Status,
    pub notes: Option<String>,
}

impl Experiment {
    /// The variant `consumer` is billed by: sticky, by hash, by weight.
    pub fn cohort(&self, consumer_id: &str) -> usize {
        cohort(&self.id, &self.variants, consumer_id)
    }

    pub fn is_live(&self) -> bool {
        matches!(self.status, Status::Scheduled | Status::Running { .. })
    }

    /// The books of variant `v` on its own cohort. The control's bill no one
    /// (the grid's own books, on everyone, send its cohort's requests): they
    /// measure its rule on its cohort alone, as the other variants' do.
    pub fn live_slot(&self, v: usize) -> String {
        format!("exp/{}/{}", self.id, self.variants[v].name)
    }

    /// The books of variant `v` on the other cohorts, without effects.
    pub fn counterfactual_slot(&self, v: usize) -> String {
        format!("exp/{}/{}/cf", self.id, self.variants[v].name)
    }

    pub fn variant(&self, name: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.name == name)
    }
}

/// The variant of `consumer_id` among `variants`: the hash's 64 bits scaled
/// onto the summed weights, so each variant gets its weight's share.
pub fn cohort(experiment_id: &str, variants: &[Variant], consumer_id: &str) -> usize {
    let digest = Sha256::new()
        .chain_update(b"powerplug/experiment/cohort/v1\0")
        .chain_update(experiment_id.as_bytes())
        .chain_update([0])
        .chain_update(consumer_id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
    let point = ((u128::from(u64::from_be_bytes(first)) * u128::from(total)) >> 64) as u64;
    let mut upto = 0;
    for (i, v) in variants.iter().enumerate() {
        upto += u64::from(v.weight);
        if point < upto {
            return i;
        }
    }
    variants.len().saturating_sub(1)
}

pub fn get(db: &dyn Store, id: &str) -> anyhow::Result<Option<Experiment>> {
    match db.read()?.get(EXPERIMENTS, &key::of(&[&id]))? {
        Some(bytes) => Ok(Some(postcard::from_bytes(&bytes)?)),
        None => Ok(None),
    }
}

pub fn put(tx: &dyn WriteTx, experiment: &Experiment) -> anyhow::Result<()> {
    tx.put(
        EXPERIMENTS,
        &key::of(&[&experiment.id]),
        &postcard::to_allocvec(experiment)?,
    )?;
    let current = experiment.is_live().then(|| experiment.id.clone());
    let previous: Option<Option<String>> = storage::meta_in(tx, CURRENT)?;
    // Only the current experiment clears the mark.
    if current.is_some() || previous.flatten().as_deref() == Some(experiment.id.as_str()) {
        storage::set_meta(tx, CURRENT, &current)?;
    }
    Ok(())
}

/// Every experiment, by id.
pub fn list(db: &dyn Store) -> anyhow::Result<Vec<Experiment>> {
    storage::values(storage::prefixed(
        &*db.read()?,
        EXPERIMENTS,
        &[],
        Order::Ascending,
        usize::MAX,
    )?)
}

/// When retention deleted an experiment's rows (its report with them).
pub fn rows_deleted_at(db: &dyn Store, id: &str) -> anyhow::Result<Option<u64>> {
    storage::meta(db, &format!("experiment/{id}/rows-deleted"))
}

/// Retention: deletes the rows of experiments that ended before
/// `before_ms`, one experiment per transaction; how many experiments.
pub fn forget_ended(db: &dyn Store, before_ms: u64) -> anyhow::Result<u64> {
    let mut forgotten = 0;
    for e in list(db)? {
        let ended = match e.status {
            Status::Stopped { at_ms, .. } | Status::Promoted { at_ms, .. } => at_ms,
            Status::Scheduled | Status::Running { .. } => continue,
        };
        if ended >= before_ms || rows_deleted_at(db, &e.id)?.is_some() {
            continue;
        }
        let tx = db.write()?;
        results::forget(&*tx, &e.id)?;
        storage::set_meta(
            &*tx,
            &format!("experiment/{}/rows-deleted", e.id),
            &before_ms,
        )?;
        tx.commit()?;
        forgotten += 1;
    }
    Ok(forgotten)
}

/// The experiment scheduled or running, if any.
pub fn current(db: &dyn Store) -> anyhow::Result<Option<Experiment>> {
    let id: Option<Option<String>> = storage::meta(db, CURRENT)?;
    match id.flatten() {
        Some(id) => get(db, &id),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants(weights: &[u32]) -> Vec<Variant> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Variant {
                name: format!("v{i}"),
                version: String::new(),
                weight,
            })
            .collect()
    }

    #[test]
    fn a_zero_weight_variant_gets_nobody() {
        let vs = variants(&[1, 0, 1]);
        for c in 0..1000 {
            assert_ne!(cohort("e", &vs, &format!("c{c}")), 1);
        }
    }

    #[test]
    fn the_experiment_id_reshuffles_cohorts() {
        let vs = variants(&[1, 1]);
        let moved = (0..1000)
            .filter(|c| {
                let id = format!("c{c}");
                cohort("a", &vs, &id) != cohort("b", &vs, &id)
            })
            .count();
        // Independent coin flips: about half move.
        assert!((400..600).contains(&moved), "{moved}");
    }
}
