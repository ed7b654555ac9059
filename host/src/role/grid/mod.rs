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

mod experiments;
pub mod runs;

pub use experiments::{NewExperiment, Refused};

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use serde::Serialize;

use self::runs::{Acts, Cohorts, Part, Run};
use super::config::GridConfig;
use super::{Clock, Hub, Step};
use crate::books::{GridNews, StoredBooks, grid_input, store_decision};
use crate::experiment::{results, shadow};
use crate::inbox::{self, Command};
use crate::registry::{self, Kind, LOCAL, Registration};
use crate::storage::Store;
use crate::strategy::{
    Entity, GridDecision, GridInput, GridStrategy, Metric, Output, PaymentRequest, Setting,
    Transfer, Usage,
};
use crate::tick_log::{self, Outcome};
use crate::{outbox, storage, wallet};

pub const SLOT: &str = "grid";
/// Records one tick takes at most; the rest wait for the next.
const MAX_RECORDS_PER_TICK: usize = 500_000;

pub struct Grid {
    pub hub: Hub,
    /// The strategy, and how it is replaced.
    pub slot: super::swap::Slot<GridStrategy>,
    settings: Vec<Setting>,
    clock: Clock,
    tick_log_keep: u64,
    wallet_seed: [u8; 32],
    schedule: super::TickSchedule,
    /// Versions an experiment or a shadow runs, loaded once, by SHA-256.
    loaded: Mutex<HashMap<String, GridStrategy>>,
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
    pub fn open(config: &GridConfig, db: crate::storage::Db) -> anyhow::Result<Self> {
        let hub = Hub::new(
            &config.service.id,
            db,
            &[Kind::Consumer, Kind::Producer],
            config.operator_token.clone(),
        )?;
        let slot = super::swap::Slot::open(
            &hub.db,
            SLOT,
            &config.strategy,
            &config.service.data_dir,
            &config.trusted_keys,
        )?;
        let wallet_seed = storage::meta_or_init(&hub.db, "wallet-seed", crate::channel::random32)?;
        Ok(Self {
            hub,
            slot,
            settings: config.strategy.settings(),
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
        self.tick_in_turn()
    }

    fn tick_in_turn(&self) -> anyhow::Result<TickSummary> {
        let active = self.slot.current();
        let db = self.db();
        let now = self.clock.now_ms();
        let records = inbox::pending(db, MAX_RECORDS_PER_TICK)?;
        let (joined, left) = registry::news_since_tick(db)?;
        let cursor: u64 = storage::meta(db, "grid/transfer-cursor")?.unwrap_or(0);
        let transfers = wallet::transfers_since(db, self.account(), cursor)?;
        let registrations: HashMap<u32, Registration> = registry::all(db)?
            .into_iter()
            .map(|r| (r.index, r))
            .collect();
        let index_of: HashMap<&str, u32> = registrations
            .values()
            .map(|r| (r.id.as_str(), r.index))
            .collect();

        let mut news = GridNews {
            joined: joined
                .iter()
                .filter_map(|i| registrations.get(i))
                .map(|r| Entity {
                    index: r.index,
                    kind: r.kind.into(),
                    id: r.id.clone(),
                })
                .collect(),
            left: left.clone(),
            ..GridNews::default()
        };
        let mut summary = TickSummary::default();
        for r in &records {
            match registrations.get(&r.entity).map(|reg| reg.kind) {
                Some(Kind::Producer) => {
                    summary.output_wh += r.wh;
                    news.output.push(Output {
                        producer: r.entity,
                        start_ms: r.start_ms,
                        end_ms: r.end_ms,
                        wh: r.wh,
                        price: r.price,
                    });
                }
                // Usage of a consumer that since left still counts.
                _ => {
                    summary.usage_wh += r.wh;
                    news.usage.push(Usage {
                        consumer: r.entity,
                        start_ms: r.start_ms,
                        end_ms: r.end_ms,
                        wh: r.wh,
                    });
                }
            }
        }
        let mut income = 0;
        for t in &transfers {
            let incoming = t.to == self.account();
            if incoming {
                income += t.amount;
            }
            let counterparty = if incoming { &t.reference } else { &t.to };
            news.transfers.push(Transfer {
                entity: index_of.get(counterparty.as_str()).copied(),
                amount: t.amount,
                at_ms: t.at_ms,
                incoming,
            });
        }
        let next_cursor = transfers.last().map_or(cursor, |t| t.seq);

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
        let cohorts = experiment.as_ref().map(|e| Cohorts {
            experiment: e,
            of: news
                .usage
                .iter()
                .map(|u| u.consumer)
                .chain(news.transfers.iter().filter_map(|t| t.entity))
                .filter_map(|c| registrations.get(&c))
                .filter(|r| r.kind == Kind::Consumer)
                .map(|r| (r.index, e.cohort(&r.id)))
                .collect(),
        });

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
            inputs.push(grid_input(&books, now, &self.settings, part_news)?);
        }
        drop(read);
        let tick = storage::counters(db)?.get("ticks").copied().unwrap_or(0) + 1;
        summary.tick = tick;

        let mut outcomes = decide(&runs, &inputs).into_iter();
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
                    &self.settings,
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

    fn record_failure(
        &self,
        strategy: &GridStrategy,
        input: GridInput,
        why: &str,
    ) -> anyhow::Result<()> {
        let tx = self.db().write()?;
        tick_log::record_grid(
            &*tx,
            SLOT,
            &strategy.info().sha256,
            input,
            Outcome::Failed(why.to_owned()),
        )?;
        storage::count(&*tx, "ticks-failed", 1)?;
        tx.commit()?;
        Ok(())
    }

    /// Carries out every run's decision in one transaction.
    fn commit(
        &self,
        decided: Decided<'_>,
        inputs: Vec<GridInput>,
        registrations: &HashMap<u32, Registration>,
        consumed: Consumed<'_>,
    ) -> anyhow::Result<Sent> {
        let Decided {
            tick,
            now,
            runs,
            decisions,
            cohorts,
            shadow,
        } = decided;
        let active = &decisions[0];
        let tx = self.db().write()?;
        for (run, decision) in runs.iter().zip(decisions) {
            store_decision(&*tx, &run.slot, &decision.state, &decision.cells)?;
        }
        inbox::consume(&*tx, consumed.records)?;
        registry::consume_news(&*tx, consumed.joined, consumed.left)?;
        storage::set_meta(&*tx, "grid/transfer-cursor", &consumed.cursor)?;
        for p in &active.payouts {
            let producer = registrations
                .get(&p.producer)
                .filter(|r| r.kind == Kind::Producer)
                .with_context(|| format!("payout to {}, not a producer", p.producer))?;
            wallet::transfer(
                &*tx,
                self.account(),
                &producer.id,
                p.amount,
                self.account(),
                &format!("payout/{tick}/{}", p.producer),
                now,
            )?;
        }
        let mut sent = Sent::default();
        for (run, decision) in runs.iter().zip(decisions) {
            for r in decision.payment_requests.iter() {
                if runs::sends(run, cohorts, r.consumer) {
                    self.request(&*tx, registrations, &r, &mut sent)?;
                }
            }
        }
        storage::set_meta(&*tx, "grid/metrics", &metrics(&active.metrics))?;
        let paid_out: u64 = active.payouts.iter().map(|p| p.amount).sum();
        storage::count(&*tx, "ticks", 1)?;
        storage::count(&*tx, "usage-wh", inputs[0].usage.wh.iter().sum())?;
        storage::count(
            &*tx,
            "output-wh",
            inputs[0].output.iter().map(|o| o.wh).sum(),
        )?;
        storage::count(&*tx, "payment-requests", sent.requests)?;
        storage::count(&*tx, "requests-undeliverable", sent.undeliverable)?;
        storage::count(&*tx, "requested", sent.requested)?;
        storage::count(&*tx, "billed-wh", sent.billed_wh)?;
        storage::count(&*tx, "paid-out", paid_out)?;
        storage::count(&*tx, "income", consumed.income)?;
        if let Some(c) = cohorts {
            let variant_of = |consumer| c.variant(consumer);
            let facts = experiment_facts(now, &variant_of, runs, decisions, &inputs[0], paid_out);
            results::record(&*tx, c.experiment, &facts)?;
        }
        if let (Some(mut s), Some(candidate)) = (shadow, decisions.get(1)) {
            s.stats.compare(now, active, candidate);
            shadow::put(&*tx, &s)?;
        }
        for ((run, input), decision) in runs.iter().zip(inputs).zip(decisions) {
            let outcome = Outcome::Decided(decision.clone());
            tick_log::record_grid(&*tx, &run.slot, &run.strategy.info().sha256, input, outcome)?;
        }
        tx.commit()?;
        Ok(sent)
    }

    /// Seals a payment request on the consumer's return channel, into the outbox.
    fn request(
        &self,
        tx: &dyn storage::WriteTx,
        registrations: &HashMap<u32, Registration>,
        r: &PaymentRequest,
        sent: &mut Sent,
    ) -> anyhow::Result<()> {
        let consumer = registrations
            .get(&r.consumer)
            .filter(|reg| reg.kind == Kind::Consumer)
            .with_context(|| format!("payment request to {}, not a consumer", r.consumer))?;
        sent.requests += 1;
        sent.requested += r.owed;
        sent.billed_wh += r.wh;
        // Read again inside the transaction: an earlier request of this tick
        // moved the return channel on.
        let Some(mut reg) = registry::read(tx, &consumer.id)? else {
            sent.undeliverable += 1;
            return Ok(());
        };
        let Some(back) = reg.return_channel.as_mut() else {
            sent.undeliverable += 1;
            return Ok(());
        };
        let pay_to = wallet::receive_address(tx, &self.wallet_seed, self.account())?;
        let command = Command::PaymentRequest {
            owed: r.owed,
            wh: r.wh,
            pay_to,
        };
        let mut writer = back.writer(self.hub.registry.key());
        let (address, bytes) = writer.prepare(crate::channel::Message::Data(command.encode()))?;
        outbox::enqueue(tx, LOCAL, address, bytes)?;
        back.next_index = writer.next_index();
        registry::put(tx, &reg)?;
        Ok(())
    }

    /// The strategy's metrics of its last successful tick.
    pub fn metrics(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(storage::meta(self.db(), "grid/metrics")?.unwrap_or_default())
    }
}

/// What a tick's runs decided, to carry out.
struct Decided<'a> {
    tick: u64,
    now: u64,
    runs: &'a [Run],
    /// By run; the active version's first.
    decisions: &'a [GridDecision],
    cohorts: Option<&'a Cohorts<'a>>,
    shadow: Option<shadow::Shadow>,
}

/// The payment requests a tick sent.
#[derive(Default)]
struct Sent {
    requests: u64,
    requested: u64,
    billed_wh: u64,
    undeliverable: u64,
}

/// Every run decides on its own input; the runs after the first in threads
/// of their own (they share nothing, and the machine may have cores to spare).
fn decide(runs: &[Run], inputs: &[GridInput]) -> Vec<Result<GridDecision, String>> {
    let one = |run: &Run, input: &GridInput| {
        run.strategy
            .tick(input)
            .map(|o| o.decision)
            .map_err(|f| f.to_string())
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = runs
            .iter()
            .zip(inputs)
            .skip(1)
            .map(|(run, input)| scope.spawn(move || one(run, input)))
            .collect();
        let mut all = Vec::with_capacity(runs.len());
        if let (Some(run), Some(input)) = (runs.first(), inputs.first()) {
            all.push(one(run, input));
        }
        for handle in others {
            all.push(
                handle
                    .join()
                    .unwrap_or_else(|_| Err("the strategy's thread panicked".to_owned())),
            );
        }
        all
    })
}

/// One tick of an experiment, for its results.
fn experiment_facts<'a>(
    at_ms: u64,
    variant_of: &'a dyn Fn(u32) -> usize,
    runs: &[Run],
    decisions: &[GridDecision],
    input: &GridInput,
    paid_out: u64,
) -> results::TickFacts<'a> {
    let n = runs
        .iter()
        .filter_map(|r| r.variant)
        .max()
        .map_or(0, |v| v + 1);
    let mut bills = vec![Vec::new(); n];
    let mut payouts_decided = vec![0; n];
    for (run, decision) in runs.iter().zip(decisions) {
        if let Some(v) = run.variant {
            bills[v].extend(decision.payment_requests.iter());
            payouts_decided[v] += decision.payouts.iter().map(|p| p.amount).sum::<u64>();
        }
    }
    let usage = input
        .usage
        .consumer
        .iter()
        .zip(&input.usage.wh)
        .map(|(&c, &wh)| (c, wh))
        .collect::<Vec<_>>();
    let incoming = input
        .transfers
        .iter()
        .filter(|t| t.incoming)
        .filter_map(|t| Some((t.entity?, t.amount)))
        .collect::<Vec<_>>();
    results::TickFacts {
        at_ms,
        variant_of,
        usage,
        incoming,
        bills,
        payouts_decided,
        paid_out,
    }
}

/// What a tick consumes, committed with its decision.
struct Consumed<'a> {
    records: &'a [inbox::Record],
    joined: &'a [u32],
    left: &'a [u32],
    cursor: u64,
    income: u64,
}

fn metrics(metrics: &[Metric]) -> Vec<(String, i64)> {
    metrics.iter().map(|m| (m.name.clone(), m.value)).collect()
}

impl super::swap::Runs for Grid {
    type Strategy = GridStrategy;

    fn slot(&self) -> &super::swap::Slot<GridStrategy> {
        &self.slot
    }

    fn store(&self) -> &dyn Store {
        self.db()
    }

    fn settings(&self) -> &[Setting] {
        &self.settings
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn swaps_allowed(&self) -> anyhow::Result<Result<(), String>> {
        experiments::swaps_allowed(self.db())
    }
}

impl Step for Grid {
    fn step(&self) -> anyhow::Result<()> {
        self.hub.poll()?;
        let now = self.clock.now_ms();
        if self.schedule.due(now) {
            let summary = self.tick()?;
            if let Some(why) = &summary.failed {
                eprintln!("grid tick {} failed: {why}", summary.tick);
            }
            let failed = summary.failed.as_deref();
            self.slot
                .watch(self.db(), &self.settings, &|| self.clock.now_ms(), failed)?;
        }
        self.hub.drain(None)?;
        Ok(())
    }
}
