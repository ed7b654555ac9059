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
#[cfg(feature = "iota")]
mod tangle;

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
use crate::books::{GridNews, StoredBooks, grid_input};
use crate::counter::Counter;
use crate::experiment::shadow::{self, Shadow};
use crate::experiment::{Experiment, results};
use crate::limits::MAX_RECORDS_PER_TICK;
use crate::registry;
use powerplug_ledger as wallet;
use powerplug_storage::{self as storage, Store};
use powerplug_strategy::{GridDecision, GridInput, GridStrategy};

pub const SLOT: &str = "grid";
/// Meta: the ledger position up to which ticks have taken transfers in.
pub const TRANSFER_CURSOR: &str = "grid/transfer-cursor";

pub struct Grid {
    pub hub: Hub,
    /// The strategy, and how it is replaced.
    pub slot: super::swap::Slot<GridStrategy>,
    clock: Clock,
    /// How receive addresses are written (`pp2…`, or Bech32 on the Tangle).
    addresses: AddressFormat,
    /// What this ledger's own (`pp2…`) addresses are enciphered under.
    wallet_seed: [u8; 32],
    /// Whether each tick keeps its settlement to anchor.
    anchoring: bool,
    #[cfg(feature = "iota")]
    _anchorer: Option<tangle::Anchorer>,
    schedule: super::TickSchedule,
    /// Versions an experiment or a shadow runs, loaded once, by SHA-256.
    loaded: Mutex<HashMap<powerplug_strategy::Sha256, GridStrategy>>,
    /// Whether this host ticks, or stands by (hosts sharing a store).
    pub leader: super::leader::Leadership,
}

/// How a grid writes receive addresses.
type AddressFormat = Box<dyn wallet::Addresses + Send>;

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
    /// Fuel the active version's decision took.
    pub fuel: u64,
}

impl Grid {
    pub fn open(config: &GridConfig, db: powerplug_storage::Db) -> anyhow::Result<Self> {
        let objects = super::open_objects(&config.service, &db)?;
        let mut hub = Hub::new(
            &config.service.id,
            db,
            objects,
            &[EntityKind::Consumer, EntityKind::Producer],
            config.admission.clone(),
            config.operator_token.clone(),
        )?;
        hub.plausible = config.plausible;
        hub.retention = crate::retention::Keeper::new(
            config.retention,
            config.strategy.tick_log_keep,
            u64::from(config.strategy.dry_run_ticks),
        );
        hub.retention.archive = config
            .retention
            .ledger_archive
            .then(|| config.service.data_dir.join("ledger-archive.jsonl"));
        hub.operators = super::config::Operators::new(
            config.operator_token.as_deref(),
            &config.operator_tokens,
        );
        let slot = super::swap::Slot::open(
            &hub.db,
            &hub.objects,
            SLOT,
            &config.strategy,
            &config.service.data_dir,
            &config.trusted_keys,
            config.service.clock,
        )?;
        let wallet_seed =
            storage::meta_or_init(&hub.db, "wallet-seed", powerplug_channel::random32)?;
        invariants::start_counting(&hub.db)?;
        crate::experiment::billing::migrate(&*hub.db)?;
        let leader = super::leader::Leadership::start(
            hub.db.clone(),
            SLOT,
            std::time::Duration::from_millis(config.service.lease_ms),
        )?;
        #[cfg(feature = "iota")]
        let tangle::OnTangle {
            addresses,
            anchorer,
        } = match &config.iota {
            Some(iota) => tangle::open(iota, &hub.db, leader.watch(), &hub.id, &wallet_seed)?,
            None => tangle::OnTangle {
                addresses: None,
                anchorer: None,
            },
        };
        #[cfg(not(feature = "iota"))]
        let addresses: Option<AddressFormat> = match &config.iota {
            Some(_) => anyhow::bail!(
                "iota: this powerplug was built without the Tangle; build it with `--features iota`"
            ),
            None => None,
        };
        Ok(Self {
            leader,
            hub,
            slot,
            clock: config.service.clock,
            addresses: addresses.unwrap_or_else(|| Box::new(wallet::Enciphered::new(&wallet_seed))),
            wallet_seed,
            anchoring: config.iota.as_ref().is_some_and(|i| i.anchor),
            #[cfg(feature = "iota")]
            _anchorer: anchorer,
            schedule: super::TickSchedule::new(config.strategy.tick_ms),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The account a receive address of this grid pays into (`None`: no
    /// such address, or retention let it go).
    pub fn resolve(&self, address: &str) -> Result<Option<String>, wallet::WalletError> {
        wallet::resolve(self.db(), &self.wallet_seed, address)
    }

    pub fn db(&self) -> &dyn Store {
        &self.hub.db
    }

    /// A transaction of the tick in progress (see [`Leadership::tick_tx`]).
    ///
    /// [`Leadership::tick_tx`]: super::leader::Leadership::tick_tx
    fn tick_tx(&self) -> anyhow::Result<Box<dyn storage::WriteTx + '_>> {
        self.leader.tick_tx(self.db())
    }

    /// The grid's own wallet account.
    pub fn account(&self) -> &str {
        &self.hub.id
    }

    /// The clock its ticks run on.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The active version now.
    pub fn strategy(&self) -> GridStrategy {
        self.slot.current()
    }

    /// One tick now: reads what is pending, decides, commits. Only the
    /// host that leads ticks.
    pub fn tick(&self) -> anyhow::Result<TickSummary> {
        let _turn = self.slot.turn();
        self.leader.begin_tick()?;
        let sha256 = self.slot.current().info().sha256;
        let span = super::tick_span("grid", SLOT, &sha256);
        let _in = span.enter();
        let started = std::time::Instant::now();
        let seen = super::Seen::start(&self.hub, self.clock.now_ms(), sha256);
        let summary = self.tick_in_turn();
        let ticked = summary.as_ref().map(|s| super::Ticked {
            tick: s.tick,
            fuel: s.fuel,
            why: s.failed.clone(),
            usage_wh: s.usage_wh,
            output_wh: s.output_wh,
            requested: s.requested,
            paid_out: s.paid_out,
        });
        seen.done(ticked.as_ref().map_err(|e| *e));
        let summary = summary?;
        super::tick_done(&span, started, summary.failed.as_deref());
        Ok(summary)
    }

    /// A tick in four steps: gather what is pending, choose who decides,
    /// decide, commit.
    fn tick_in_turn(&self) -> anyhow::Result<TickSummary> {
        let active = self.slot.current();
        let db = self.db();
        let now = self.clock.now_ms();
        let pending = self.pending()?;
        let mut summary = TickSummary {
            usage_wh: pending.usage_wh,
            output_wh: pending.output_wh,
            ..TickSummary::default()
        };

        let experiment = self.experiment_due(now)?;
        let (mut runs, shadow) = match self.choose_runs(&active, experiment.as_ref())? {
            Chosen::Runs(runs, shadow) => (runs, shadow),
            Chosen::EndExperiment(e, why) => return self.end_experiment_and_tick(e, why),
        };
        let cohorts = self.cohorts(experiment.as_ref(), &pending)?;
        let mut inputs = self.inputs(&runs, cohorts.as_ref(), &pending.news, now)?;
        let tick = Counter::Ticks.read(db)? + 1;
        summary.tick = tick;
        tracing::Span::current().record("tick", tick);

        let (decisions, shadow) = match decide(
            &runs,
            &inputs,
            cohorts.as_ref(),
            experiment.as_ref(),
            &mut summary.fuel,
        ) {
            Verdict::Decided(decisions) => (decisions, shadow),
            Verdict::ActiveFailed(why) => {
                self.record_failure(&active, inputs.swap_remove(0), &why)?;
                summary.failed = Some(why);
                return Ok(summary);
            }
            Verdict::VariantFailed(e, why) => return self.end_experiment_and_tick(e, why),
            Verdict::ShadowFailed(decisions, why) => {
                self.stop_shadow_in_turn(&why)?;
                runs.truncate(1);
                inputs.truncate(1);
                (decisions, None)
            }
        };

        let Pending {
            records,
            joined,
            left,
            next_cursor,
            mut registrations,
            news,
            income,
            ..
        } = pending;
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
        let summed = match self.commit(decided, inputs, &mut registrations, consumed) {
            Ok(summed) => summed,
            Err(e) if storage::Fenced::is(&e) => return Err(e),
            Err(e) => {
                // The decision could not be carried out (a payout above the
                // balance, a request to a producer): nothing of it was applied,
                // and the news stays for the next tick.
                let why = format!("decision refused: {e:#}");
                let input = grid_input(
                    &StoredBooks::new(&*db.read()?, SLOT),
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
        Ok(summary)
    }

    /// Who decides this tick: the active version alone; with the variants of
    /// a running experiment; or with a shadow candidate that acts on nothing.
    fn choose_runs<'e>(
        &self,
        active: &GridStrategy,
        experiment: Option<&'e Experiment>,
    ) -> anyhow::Result<Chosen<'e>> {
        let active_run = Run {
            slot: SLOT.to_owned(),
            strategy: active.clone(),
            variant: experiment.map(|e| e.control),
            part: Part::Everyone,
            acts: Acts::Active,
        };
        if let Some(e) = experiment {
            return Ok(match self.variant_strategies(active, e) {
                Ok(variants) => Chosen::Runs(runs::experiment_runs(active, e, variants), None),
                Err(why) => Chosen::EndExperiment(e, why),
            });
        }
        let Some(shadow) = shadow::running(self.db())? else {
            return Ok(Chosen::Runs(vec![active_run], None));
        };
        Ok(match self.loaded(&shadow.version) {
            Ok(candidate) => {
                let candidate = Run {
                    slot: shadow::SLOT.to_owned(),
                    strategy: candidate,
                    variant: None,
                    part: Part::Everyone,
                    acts: Acts::Nothing,
                };
                Chosen::Runs(vec![active_run, candidate], Some(shadow))
            }
            Err(why) => {
                self.stop_shadow_in_turn(&format!("cannot load: {why}"))?;
                Chosen::Runs(vec![active_run], None)
            }
        })
    }

    /// During an experiment: the cohort of every consumer the news mentions,
    /// and the payments each cohort's model says they made. A consumer the
    /// experiment has met is in the cohort its results row says, also after
    /// it has left (its last readings are billed by the variant that billed
    /// the rest, as the hand-back assumes); only those it meets for the
    /// first time are drawn from their registrations. A page read per 64
    /// consumers: a read of every named registration cost a 10,000-consumer
    /// tick ~40 ms.
    fn cohorts<'e>(
        &self,
        experiment: Option<&'e Experiment>,
        pending: &Pending,
    ) -> anyhow::Result<Option<Cohorts<'e>>> {
        let Some(e) = experiment else {
            return Ok(None);
        };
        let news = &pending.news;
        let named = (news.usage.iter().map(|u| u.consumer))
            .chain(news.transfers.iter().filter_map(|t| t.entity));
        let read = self.db().read()?;
        let met = results::Met::read(&*read, e, named.clone())?;
        let mut registrations = HashMap::new();
        let new = named.filter(|&c| met.row(c).is_none());
        registry::add_by_index(&*read, &mut registrations, new)?;
        let drawn = (registrations.values())
            .filter(|r| r.kind == EntityKind::Consumer)
            .map(|r| (r.index, e.cohort(&r.id)));
        let mut cohorts = Cohorts {
            experiment: e,
            of: met.variants().chain(drawn).collect(),
            modeled: Vec::new(),
            met,
        };
        cohorts.modeled = experiments::modeled_payments(&*read, &cohorts, news)?;
        Ok(Some(cohorts))
    }

    /// Each run's input: its own books, and the news of its part of the grid.
    fn inputs(
        &self,
        runs: &[Run],
        cohorts: Option<&Cohorts>,
        news: &GridNews,
        now: u64,
    ) -> anyhow::Result<Vec<GridInput>> {
        let read = self.db().read()?;
        runs.iter()
            .map(|run| {
                let part_news = match cohorts {
                    Some(c) => c.news(run.part, news),
                    None => news.clone(),
                };
                let books = StoredBooks::new(&*read, &run.slot);
                grid_input(&books, now, self.slot.settings(), part_news)
            })
            .collect()
    }

    /// The strategy's metrics of its last successful tick.
    pub fn metrics(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(storage::meta(self.db(), "grid/metrics")?.unwrap_or_default())
    }
}

/// Who decides a tick.
enum Chosen<'e> {
    /// These runs, the active version's first; and the shadow they include.
    Runs(Vec<Run>, Option<Shadow>),
    /// A variant of the experiment cannot be loaded: the experiment ends.
    EndExperiment(&'e Experiment, String),
}

/// How the runs of a tick decided.
enum Verdict<'e> {
    /// Every run decided: the active version's decision first.
    Decided(Vec<GridDecision>),
    /// The active version failed: the tick fails.
    ActiveFailed(String),
    /// A variant failed or broke its cohort's bounds: the experiment ends.
    VariantFailed(&'e Experiment, String),
    /// The shadow candidate failed: it stops; the active decision stands.
    ShadowFailed(Vec<GridDecision>, String),
}

/// Runs every strategy of the tick on its input (in parallel) and checks each
/// variant's decision against its cohort.
fn decide<'e>(
    runs: &[Run],
    inputs: &[GridInput],
    cohorts: Option<&Cohorts>,
    experiment: Option<&'e Experiment>,
    fuel: &mut u64,
) -> Verdict<'e> {
    let mut outcomes = runs::decide(runs, inputs).into_iter();
    let decision = match outcomes.next() {
        Some(Ok((decision, used))) => {
            *fuel = used;
            decision
        }
        Some(Err(why)) => return Verdict::ActiveFailed(why),
        None => return Verdict::ActiveFailed("no decision".to_owned()),
    };
    let mut decisions = vec![decision];
    for (run, outcome) in runs.iter().skip(1).zip(outcomes.map(|o| o.map(|(d, _)| d))) {
        let checked = outcome.and_then(|d| match cohorts {
            Some(c) => c.check(run, &d).map(|()| d),
            None => Ok(d),
        });
        match (checked, experiment) {
            (Ok(d), _) => decisions.push(d),
            (Err(why), Some(e)) => {
                let name = run.variant.map_or("", |v| e.variants[v].name.as_str());
                return Verdict::VariantFailed(e, format!("variant `{name}`: {why}"));
            }
            (Err(why), None) => return Verdict::ShadowFailed(decisions, why),
        }
    }
    Verdict::Decided(decisions)
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

    /// The host that leads polls, ticks and sends, and on its first round
    /// in an epoch reads again the active version, which another leader
    /// may have swapped. A standby serves HTTP and keeps running what the
    /// leader activated (so its `/status` says so, and a takeover compiles
    /// nothing).
    fn step(&self) -> anyhow::Result<()> {
        let Some(turn) = self.leader.turn() else {
            return self.slot.reload();
        };
        if turn.new {
            self.slot.reload()?;
        }
        self.hub.poll(self.clock.now_ms())?;
        let now = self.clock.now_ms();
        if self.schedule.due(now) {
            let summary = self.tick()?;
            let failed = summary.failed.as_deref();
            self.slot.watch(failed)?;
        }
        self.hub.drain(None)?;
        self.hub
            .retention
            .maybe_run(&self.hub.db, &self.hub.objects, &self.hub.figures, now);
        Ok(())
    }

    fn finish(&self) -> anyhow::Result<()> {
        self.hub.retention.wait();
        self.hub.figures.wait();
        self.leader.stop();
        Ok(())
    }
}
