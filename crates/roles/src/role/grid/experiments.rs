//! The operator's side of experiments and shadow runs on a grid: start,
//! stop, promote; and the tick's side: starting a scheduled experiment,
//! loading its versions, ending one whose variant fails.

use serde::Deserialize;

use super::runs::Cohorts;
use super::{Grid, SLOT, TickSummary};
use std::collections::BTreeMap;

use crate::books::{Books, GridNews, StoredBooks, copy_books, copy_cell, grid_input, replace};
use crate::experiment::shadow::{self, Shadow};
use crate::experiment::{self, Experiment, Status, Variant, results};
use crate::role::swap::handover::same_format;
use crate::versions;
use powerplug_storage::{self as storage, Store};
use powerplug_strategy::{GridStrategy, Transfer};

/// Why an operator's request was refused; `field` names what to change.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{field}: {why}")]
    Invalid { field: String, why: String },
    #[error("{field}: {why}")]
    Conflict { field: String, why: String },
    #[error("no experiment `{0}`")]
    NotFound(String),
    #[error("storage: {0:#}")]
    Storage(#[from] anyhow::Error),
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> Refused {
    Refused::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

fn conflict(field: impl Into<String>, why: impl Into<String>) -> Refused {
    Refused::Conflict {
        field: field.into(),
        why: why.into(),
    }
}

/// `POST /experiments`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExperiment {
    pub id: Option<String>,
    #[serde(default = "grid_kind")]
    pub kind: String,
    pub variants: Vec<Variant>,
    /// Grid time of its first tick; default: now.
    pub start_ms: Option<u64>,
    pub notes: Option<String>,
}

fn grid_kind() -> String {
    "grid".to_owned()
}

impl Grid {
    /// Checks and stores a new experiment; it starts at the first tick at or
    /// after its start.
    pub fn create_experiment(&self, new: NewExperiment) -> Result<Experiment, Refused> {
        if new.kind != "grid" {
            return Err(invalid("kind", "only `grid` experiments"));
        }
        if new.variants.len() < 2 || new.variants.len() > 8 {
            return Err(invalid("variants", "two to eight variants"));
        }
        let _turn = self.slot.turn();
        let db = self.db();
        if let Some(e) = experiment::current(db)? {
            return Err(conflict(
                "id",
                format!("experiment `{}` is on; stop or promote it first", e.id),
            ));
        }
        if shadow::running(db)?.is_some() {
            return Err(conflict("variants", "a shadow run is on; stop it first"));
        }
        let active = self.slot.current();
        let known = versions::list(db, powerplug_strategy::StrategyKind::Grid)?;
        let mut new = new;
        for (i, v) in new.variants.iter_mut().enumerate() {
            v.version = resolve(&known, active.info(), &v.version)
                .map_err(|why| invalid(format!("variants[{i}].version"), why))?;
        }
        let mut control = None;
        for (i, v) in new.variants.iter().enumerate() {
            let field = |name: &str| format!("variants[{i}].{name}");
            if !storage::valid_name(&v.name) || v.name.len() > 40 {
                return Err(invalid(field("name"), "1 to 40 of A-Z a-z 0-9 _ - ."));
            }
            if new.variants[..i].iter().any(|w| w.name == v.name) {
                return Err(invalid(field("name"), "names must differ"));
            }
            if v.weight == 0 || v.weight > 1_000_000 {
                return Err(invalid(field("weight"), "1 to 1,000,000"));
            }
            if v.version == active.info().sha256.hex() {
                if control.is_some() {
                    return Err(invalid(field("version"), "only one variant is the control"));
                }
                control = Some(i);
            } else {
                // It must take over the live books, as an activated version would.
                let strategy = self
                    .loaded(&v.version)
                    .map_err(|why| invalid(field("version"), why))?;
                self.accepts_live_books(&strategy)
                    .map_err(|why| invalid(field("version"), why))?;
            }
        }
        let Some(control) = control else {
            return Err(invalid(
                "variants",
                "one variant must be the active version (the control)",
            ));
        };
        let id = match new.id {
            Some(id) if storage::valid_name(&id) && id.len() <= 40 => id,
            Some(_) => return Err(invalid("id", "1 to 40 of A-Z a-z 0-9 _ - .")),
            None => format!("exp-{}", experiment::list(db)?.len() + 1),
        };
        if experiment::get(db, &id)?.is_some() {
            return Err(conflict("id", format!("experiment `{id}` exists")));
        }
        if new.notes.as_ref().is_some_and(|n| n.len() > 1_000) {
            return Err(invalid("notes", "at most 1,000 bytes"));
        }
        let now = self.clock.now_ms();
        let e = Experiment {
            id,
            kind: new.kind,
            variants: new.variants,
            control,
            start_ms: new.start_ms.unwrap_or(now),
            created_ms: now,
            status: Status::Scheduled,
            notes: new.notes,
        };
        let tx = db.write()?;
        experiment::put(&*tx, &e)?;
        tx.commit()?;
        Ok(e)
    }

    /// Ends an experiment at the next tick: everyone goes back to the active version.
    pub fn stop_experiment(&self, id: &str) -> Result<Experiment, Refused> {
        let _turn = self.slot.turn();
        let mut e = self.live_experiment(id)?;
        let was = e.status.clone();
        e.status = Status::Stopped {
            at_ms: self.clock.now_ms(),
            reason: "stopped by the operator".to_owned(),
        };
        let tx = self.db().write()?;
        self.hand_back(&*tx, &e, &was)?;
        experiment::put(&*tx, &e)?;
        tx.commit()?;
        Ok(e)
    }

    /// Makes `variant` the active version for everyone from the next tick;
    /// it takes over the grid's books, as an activation does.
    pub fn promote(&self, id: &str, variant: &str) -> Result<Experiment, Refused> {
        let mut e = self.live_experiment(id)?;
        let was = e.status.clone();
        let v = e
            .variant(variant)
            .ok_or_else(|| invalid("variant", format!("no variant `{variant}` in `{id}`")))?;
        e.status = Status::Promoted {
            at_ms: self.clock.now_ms(),
            variant: variant.to_owned(),
        };
        if v == e.control {
            let _turn = self.slot.turn();
            let tx = self.db().write()?;
            self.hand_back(&*tx, &e, &was)?;
            experiment::put(&*tx, &e)?;
            tx.commit()?;
            return Ok(e);
        }
        let reason = format!("promoted from experiment `{id}`");
        let sha: powerplug_strategy::Sha256 = e.variants[v]
            .version
            .parse()
            .map_err(|e| anyhow::anyhow!("the variant's version: {e}"))?;
        self.slot
            .activate_then(
                &sha,
                false,
                // The experiment was the dry run: the operator chose it.
                true,
                &reason,
                &|tx| {
                    // The winner takes over books that hold what each
                    // consumer was actually billed.
                    self.hand_back(tx, &e, &was)?;
                    experiment::put(tx, &e)
                },
            )
            .map_err(|err| conflict("variant", err.to_string()))?;
        Ok(e)
    }

    fn live_experiment(&self, id: &str) -> Result<Experiment, Refused> {
        let e = experiment::get(self.db(), id)?.ok_or_else(|| Refused::NotFound(id.to_owned()))?;
        if !e.is_live() {
            return Err(conflict("id", format!("experiment `{id}` has ended")));
        }
        Ok(e)
    }

    /// Runs `version` beside the active one on live inputs, without effects,
    /// from books copied from the live ones (empty ones for another format).
    pub fn start_shadow(&self, version: &str) -> Result<Shadow, Refused> {
        let _turn = self.slot.turn();
        let db = self.db();
        if let Some(e) = experiment::current(db)? {
            return Err(conflict(
                "version",
                format!("experiment `{}` is on; stop it first", e.id),
            ));
        }
        let known = versions::list(db, powerplug_strategy::StrategyKind::Grid)?;
        let version = resolve(&known, self.slot.current().info(), version)
            .map_err(|why| invalid("version", why))?;
        let version = version.as_str();
        let strategy = self
            .loaded(version)
            .map_err(|why| invalid("version", why))?;
        self.accepts_live_books(&strategy)
            .map_err(|why| invalid("version", why))?;
        let s = Shadow {
            version: version.to_owned(),
            since_ms: self.clock.now_ms(),
            stopped: None,
            stats: Default::default(),
        };
        let tx = db.write()?;
        if same_format(self.slot.current().info(), strategy.info()) {
            copy_books(&*tx, SLOT, shadow::SLOT)?;
        } else {
            replace(&*tx, shadow::SLOT, &Books::default())?;
        }
        shadow::put(&*tx, &s)?;
        tx.commit()?;
        Ok(s)
    }

    /// Stops the shadow run; its report stays. After a tick in flight: its
    /// commit writes back the run it read (with its divergence counted), and
    /// would undo a stop made meanwhile.
    pub fn stop_shadow(&self, why: &str) -> anyhow::Result<Option<Shadow>> {
        let _turn = self.slot.turn();
        self.stop_shadow_in_turn(why)
    }

    /// [`Self::stop_shadow`] from a tick, which holds the turn.
    pub(super) fn stop_shadow_in_turn(&self, why: &str) -> anyhow::Result<Option<Shadow>> {
        let Some(mut s) = shadow::running(self.db())? else {
            return Ok(None);
        };
        tracing::warn!(version = %s.version, why = %powerplug_strategy::text::for_log(why), "shadow stopped");
        s.stopped = Some(why.to_owned());
        let tx = self.db().write()?;
        shadow::put(&*tx, &s)?;
        tx.commit()?;
        Ok(Some(s))
    }

    /// The experiment this tick runs, starting it if its time has come: each
    /// variant's books begin as a copy of the grid's.
    pub(super) fn experiment_due(&self, now: u64) -> anyhow::Result<Option<Experiment>> {
        let db = self.db();
        let Some(mut e) = experiment::current(db)? else {
            return Ok(None);
        };
        match e.status {
            Status::Running { .. } => Ok(Some(e)),
            Status::Scheduled if now >= e.start_ms => {
                let tx = db.write()?;
                for v in 0..e.variants.len() {
                    // Only a variant of the live books' format understands them.
                    let live = self.shares_live_books(&e.variants[v].version);
                    for slot in [e.live_slot(v), e.counterfactual_slot(v)] {
                        if live {
                            copy_books(&*tx, SLOT, &slot)?;
                        } else {
                            replace(&*tx, &slot, &Books::default())?;
                        }
                    }
                }
                e.status = Status::Running { since_ms: now };
                experiment::put(&*tx, &e)?;
                tx.commit()?;
                Ok(Some(e))
            }
            _ => Ok(None),
        }
    }

    /// The experiment's versions, by variant.
    pub(super) fn variant_strategies(
        &self,
        active: &GridStrategy,
        e: &Experiment,
    ) -> Result<Vec<GridStrategy>, String> {
        e.variants
            .iter()
            .enumerate()
            .map(|(v, variant)| match v == e.control {
                true => Ok(active.clone()),
                false => self.loaded(&variant.version),
            })
            .collect()
    }

    /// A stored version, compiled once per process.
    pub(super) fn loaded(&self, version: &str) -> Result<GridStrategy, String> {
        let sha256: powerplug_strategy::Sha256 = version
            .parse()
            .map_err(|e| format!("version `{version}`: {e}"))?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = loaded.get(&sha256) {
            return Ok(s.clone());
        }
        let strategy = self.slot.load_version(&sha256).map_err(|e| e.to_string())?;
        loaded.insert(sha256, strategy.clone());
        Ok(strategy)
    }

    /// Whether the version declares the live books' format: if not, it runs
    /// on books of its own, from empty.
    fn shares_live_books(&self, sha256: &str) -> bool {
        self.loaded(sha256)
            .is_ok_and(|s| same_format(self.slot.current().info(), s.info()))
    }

    /// An idle tick on the live books: the handover check, for a version of
    /// their format (any other starts on empty books).
    fn accepts_live_books(&self, strategy: &GridStrategy) -> Result<(), String> {
        if !same_format(self.slot.current().info(), strategy.info()) {
            return Ok(());
        }
        let read = self.db().read().map_err(|e| e.to_string())?;
        let books = StoredBooks::new(&*read, SLOT);
        let input = grid_input(
            &books,
            self.clock.now_ms(),
            self.slot.settings(),
            Default::default(),
        )
        .map_err(|e| e.to_string())?;
        strategy
            .tick(&input)
            .map(|_| ())
            .map_err(|f| format!("refuses the live books: {f}"))
    }

    /// A variant failed: the experiment ends (recorded, as a rollback is) and
    /// this tick runs again without it, so billing does not wait.
    pub(super) fn end_experiment_and_tick(
        &self,
        e: &Experiment,
        why: String,
    ) -> anyhow::Result<TickSummary> {
        tracing::warn!(experiment = %e.id, why = %powerplug_strategy::text::for_log(&why), "experiment stopped");
        let mut e = e.clone();
        let was = e.status.clone();
        e.status = Status::Stopped {
            at_ms: self.clock.now_ms(),
            reason: why,
        };
        let tx = self.db().write()?;
        self.hand_back(&*tx, &e, &was)?;
        experiment::put(&*tx, &e)?;
        tx.commit()?;
        self.tick_in_turn()
    }
}

impl Grid {
    /// An experiment ends: from the next tick the grid's own books bill
    /// everyone. While it ran they billed only the control's cohort; each
    /// other cohort was billed from its variant's books. So each such
    /// consumer's cell in the grid's books becomes its variant's: what it
    /// was actually billed and paid, not what the control would have billed
    /// (else energy is billed twice, or never). Producers and the grid's
    /// state stay the grid's own: they saw every payment and made every
    /// payout. In the transaction that ends the experiment.
    fn hand_back(
        &self,
        tx: &dyn storage::WriteTx,
        e: &Experiment,
        was: &Status,
    ) -> anyhow::Result<u64> {
        if !matches!(was, Status::Running { .. }) {
            return Ok(0); // never ran: nothing billed outside the grid's books
        }
        // Every consumer the experiment billed has a row with the variant
        // that billed it (also one that has left since); one it never saw
        // has the same cell in both books.
        let mut moved = 0;
        for r in results::consumers(self.db(), &e.id)? {
            let v = r.variant as usize;
            if v == e.control || v >= e.variants.len() {
                continue;
            }
            if self.shares_live_books(&e.variants[v].version) {
                if copy_cell(tx, &e.live_slot(v), SLOT, r.consumer)? {
                    moved += 1;
                }
            } else {
                // A cell of another format means nothing to the grid's
                // version: the consumer starts afresh there rather than be
                // billed again for what its variant billed (what the variant
                // carried unbilled, less than its unit, is not billed).
                crate::books::clear_cell(tx, SLOT, r.consumer)?;
                moved += 1;
            }
        }
        Ok(moved)
    }
}

/// By variant, the payments its counterfactual books take in this tick: each
/// consumer that paid pays, under every variant but its own, what the
/// payment model gives ([`experiment::results::ConsumerRow::modeled_payment`]).
pub(super) fn modeled_payments(
    read: &dyn storage::ReadTx,
    cohorts: &Cohorts,
    news: &GridNews,
) -> anyhow::Result<Vec<Vec<Transfer>>> {
    let e = cohorts.experiment;
    // Each payer's payments this tick: (amount, time of the last).
    let mut paid: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for t in news.transfers.iter().filter(|t| t.incoming) {
        if let Some(c) = t.entity {
            let p = paid.entry(c).or_default();
            p.0 += t.amount;
            p.1 = p.1.max(t.at_ms);
        }
    }
    let mut modeled = vec![Vec::new(); e.variants.len()];
    for (&consumer, &(amount, at_ms)) in &paid {
        let own = cohorts.variant(consumer);
        let row = match cohorts.met.row(consumer) {
            Some(row) => std::borrow::Cow::Borrowed(row),
            // Met for the first time, or a row from before pages.
            None => std::borrow::Cow::Owned(results::row(read, e, consumer, own)?),
        };
        for (v, out) in modeled.iter_mut().enumerate().filter(|(v, _)| *v != own) {
            let amount = row.modeled_payment(v, amount);
            if amount > 0 {
                out.push(Transfer {
                    entity: Some(consumer),
                    amount,
                    at_ms,
                    incoming: true,
                });
            }
        }
    }
    Ok(modeled)
}

/// A version by SHA-256, by the name it was uploaded with, or `active`.
fn resolve(
    known: &[versions::Version],
    active: &powerplug_strategy::ComponentInfo,
    wanted: &str,
) -> Result<String, String> {
    if wanted == "active" {
        return Ok(active.sha256.hex());
    }
    match versions::lookup(known, wanted) {
        versions::Lookup::Found(sha) => Ok(sha.hex()),
        versions::Lookup::Unknown => Err(format!(
            "no grid version `{wanted}` here (a SHA-256, an upload's name, or `active`): upload it first with `?activate=false`"
        )),
        versions::Lookup::Ambiguous => Err(format!(
            "`{wanted}` names more than one version: use its SHA-256"
        )),
    }
}

/// Uploads and activations wait while an experiment is on: its control is
/// the active version.
pub(super) fn swaps_allowed(db: &dyn Store) -> anyhow::Result<Result<(), String>> {
    Ok(match experiment::current(db)? {
        Some(e) => Err(format!(
            "experiment `{}` is on; stop or promote it first",
            e.id
        )),
        None => Ok(()),
    })
}
