//! The grid: reads its consumers' usage and its producers' output, runs the
//! grid strategy every `tick_ms`, and carries out the decision — payment
//! requests on each consumer's return channel (each with a fresh receive
//! address), payouts to producers from its wallet. A tick's books, payouts,
//! sealed requests, consumed inbox records and tick-log entry commit in one
//! transaction: a crash before the commit loses nothing (the retried tick
//! decides the same), one after it repeats nothing.
//!
//! While an experiment or a shadow candidate runs, more than one strategy
//! decides each tick ([`runs`]); all their books, effects and results commit
//! in the same transaction.

mod commit;
mod experiments;
pub mod invariants;
mod news;
pub mod runs;

pub use experiments::{NewExperiment, Refused};

use powerplug_domain::EntityKind;
use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use self::commit::{Consumed, Decided};
use self::news::Pending;
use self::runs::{Acts, Cohorts, Part, Run};
use super::config::GridConfig;
use super::{Clock, Hub, Step};
use crate::books::{StoredBooks, grid_input};
use crate::counter::Counter;
use crate::experiment::shadow;
use crate::limits::MAX_RECORDS_PER_TICK;
use crate::tick_log;
use powerplug_storage::{self as storage, Store};
use powerplug_strategy::GridStrategy;

pub const SLOT: &str = "grid";

pub struct Grid {
    pub hub: Hub,
    /// The strategy, and how it is replaced.
    pub slot: super::swap::Slot<GridStrategy>,
    clock: Clock,
    tick_log_keep: u64,
    wallet_seed: [u8; 32],
    schedule: super::TickSchedule,
    /// Versions an experiment or a shadow runs, loaded once, by SHA-256.
    loaded: Mutex<HashMap<powerplug_strategy::Sha256, GridStrategy>>,
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct TickSummary {
    pub tick: u64,
    pub failed: Option<String>,
    pub usage_wh: u64,
    pub output_wh: u64,
    pub requests: u64,
    pub requested: u64,
    pub payouts: u64,
    pub paid_out: u64,
}

impl Grid {
    pub fn open(config: &GridConfig, db: powerplug_storage::Db) -> anyhow::Result<Self> {
        let mut hub = Hub::new(
            &config.service.id,
            db,
            &[EntityKind::Consumer, EntityKind::Producer],
            config.admission.clone(),
            config.operator_token.clone(),
        )?;
        hub.plausible = config.plausible;
        hub.operators = super::config::Operators::new(
            config.operator_token.as_deref(),
            &config.operator_tokens,
        );
        let slot = super::swap::Slot::open(
            &hub.db,
            SLOT,
            &config.strategy,
            &config.service.data_dir,
            &config.trusted_keys,
            config.service.clock,
        )?;
        let wallet_seed =
            storage::meta_or_init(&hub.db, "wallet-seed", powerplug_channel::random32)?;
        invariants::start_counting(&hub.db)?;
        Ok(Self {
            hub,
            slot,
            clock: config.service.clock,
            tick_log_keep: config.strategy.tick_log_keep,
            wallet_seed,
            schedule: super::TickSchedule::new(config.strategy.tick_ms),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    pub fn db(&self) -> &dyn Store {
        &self.hub.db
    }

    /// The grid's own wallet account.
    pub fn account(&self) -> &str {
        &self.hub.id
    }

    /// The active version now.
    pub fn strategy(&self) -> GridStrategy {
        self.slot.current()
    }

    /// One tick now: reads what is pending, decides, commits.
    pub fn tick(&self) -> anyhow::Result<TickSummary> {
        let _turn = self.slot.turn();
        let span = super::tick_span("grid", SLOT, &self.slot.current().info().sha256);
        let _in = span.enter();
        let started = std::time::Instant::now();
        let summary = self.tick_in_turn()?;
        super::tick_done(&span, started, summary.failed.as_deref());
        Ok(summary)
    }

    fn tick_in_turn(&self) -> anyhow::Result<TickSummary> {
        let active = self.slot.current();
        let db = self.db();
        let now = self.clock.now_ms();
        let Pending {
            records,
            joined,
            left,
            next_cursor,
            registrations,
            news,
            usage_wh,
            output_wh,
            income,
        } = self.pending()?;
        let mut summary = TickSummary {
            usage_wh,
            output_wh,
            ..TickSummary::default()
        };

        // Who decides this tick.
        let experiment = self.experiment_due(now)?;
        let mut shadow = match experiment {
            Some(_) => None,
            None => shadow::running(db)?,
        };
        let active_run = Run {
            slot: SLOT.to_owned(),
            strategy: active.clone(),
            variant: experiment.as_ref().map(|e| e.control),
            part: Part::Everyone,
            acts: Acts::Active,
        };
        let mut runs = match (&experiment, &shadow) {
            (Some(e), _) => match self.variant_strategies(&active, e) {
                Ok(variants) => runs::experiment_runs(&active, e, variants),
                Err(why) => return self.end_experiment_and_tick(e, why),
            },
            (None, Some(s)) => match self.loaded(&s.version) {
                Ok(candidate) => vec![
                    active_run,
                    Run {
                        slot: shadow::SLOT.to_owned(),
                        strategy: candidate,
                        variant: None,
                        part: Part::Everyone,
                        acts: Acts::Nothing,
                    },
                ],
                Err(why) => {
                    self.stop_shadow(&format!("cannot load: {why}"))?;
                    shadow = None;
                    vec![active_run]
                }
            },
            (None, None) => vec![active_run],
        };
        let mut cohorts = experiment.as_ref().map(|e| Cohorts {
            experiment: e,
            of: news
                .usage
                .iter()
                .map(|u| u.consumer)
                .chain(news.transfers.iter().filter_map(|t| t.entity))
                .filter_map(|c| registrations.get(&c))
                .filter(|r| r.kind == EntityKind::Consumer)
                .map(|r| (r.index, e.cohort(&r.id)))
                .collect(),
            modeled: Vec::new(),
        });
        if let Some(c) = cohorts.as_mut() {
            c.modeled = experiments::modeled_payments(db, c, &news)?;
        }

        let read = db.read()?;
        let mut inputs = Vec::with_capacity(runs.len());
        for run in &runs {
            let part_news = match &cohorts {
                Some(c) => c.news(run.part, &news),
                None => news.clone(),
            };
            let books = StoredBooks {
                slot: &run.slot,
                tx: &*read,
            };
            inputs.push(grid_input(&books, now, self.slot.settings(), part_news)?);
        }
        drop(read);
        let tick = Counter::Ticks.read(db)? + 1;
        summary.tick = tick;
        tracing::Span::current().record("tick", tick);

        let mut outcomes = runs::decide(&runs, &inputs).into_iter();
        let decision = match outcomes.next() {
            Some(Ok(decision)) => decision,
            failed => {
                let why = match failed {
                    Some(Err(why)) => why,
                    _ => "no decision".to_owned(),
                };
                self.record_failure(&active, inputs.swap_remove(0), &why)?;
                summary.failed = Some(why);
                return Ok(summary);
            }
        };
        let mut decisions = vec![decision];
        for (run, outcome) in runs.iter().skip(1).zip(outcomes) {
            let checked = outcome.and_then(|d| match &cohorts {
                Some(c) => c.check(run, &d).map(|()| d),
                None => Ok(d),
            });
            match (checked, &experiment) {
                (Ok(d), _) => decisions.push(d),
                (Err(why), Some(e)) => {
                    let name = run.variant.map_or("", |v| e.variants[v].name.as_str());
                    return self.end_experiment_and_tick(e, format!("variant `{name}`: {why}"));
                }
                (Err(why), None) => {
                    self.stop_shadow(&why)?;
                    shadow = None;
                    runs.truncate(1);
                    inputs.truncate(1);
                    break;
                }
            }
        }
        let consumed = Consumed {
            records: &records,
            joined: &joined,
            left: &left,
            cursor: next_cursor,
            income,
        };
        let decided = Decided {
            tick,
            now,
            runs: &runs,
            decisions: &decisions,
            cohorts: cohorts.as_ref(),
            shadow,
        };
        let summed = match self.commit(decided, inputs, &registrations, consumed) {
            Ok(summed) => summed,
            Err(e) => {
                // The decision could not be carried out (a payout above the
                // balance, a request to a producer): nothing of it was applied,
                // and the news stays for the next tick.
                let why = format!("decision refused: {e:#}");
                let input = grid_input(
                    &StoredBooks {
                        slot: SLOT,
                        tx: &*db.read()?,
                    },
                    now,
                    self.slot.settings(),
                    news,
                )?;
                self.record_failure(&active, input, &why)?;
                summary.failed = Some(why);
                return Ok(summary);
            }
        };
        summary.requests = summed.requests;
        summary.requested = summed.requested;
        summary.payouts = decisions[0].payouts.len() as u64;
        summary.paid_out = decisions[0].payouts.iter().map(|p| p.amount).sum();
        if tick % 100 == 0 {
            for run in &runs {
                tick_log::prune(db, &run.slot, self.tick_log_keep)?;
            }
        }
        Ok(summary)
    }

    /// The strategy's metrics of its last successful tick.
    pub fn metrics(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(storage::meta(self.db(), "grid/metrics")?.unwrap_or_default())
    }
}

impl super::swap::Runs for Grid {
    type Strategy = GridStrategy;

    fn slot(&self) -> &super::swap::Slot<GridStrategy> {
        &self.slot
    }

    fn swaps_allowed(&self) -> anyhow::Result<Result<(), String>> {
        experiments::swaps_allowed(self.db())
    }
}

impl Step for Grid {
    fn scheduler(&self) -> &super::SchedulerHealth {
        &self.hub.scheduler
    }

    fn step(&self) -> anyhow::Result<()> {
        self.hub.poll(self.clock.now_ms())?;
        let now = self.clock.now_ms();
        if self.schedule.due(now) {
            let summary = self.tick()?;
            let failed = summary.failed.as_deref();
            self.slot.watch(failed)?;
        }
        self.hub.drain(None)?;
        Ok(())
    }
}
