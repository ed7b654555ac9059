//! The grid: reads its consumers' usage and its producers' output, runs the
//! grid strategy every `tick_ms`, and carries out the decision — payment
//! requests on each consumer's return channel (each with a fresh receive
//! address), payouts to producers from its wallet. A tick's books, payouts,
//! sealed requests, consumed inbox records and tick-log entry commit in one
//! transaction: a crash before the commit loses nothing (the retried tick
//! decides the same), one after it repeats nothing.

use std::collections::HashMap;

use anyhow::Context;
use serde::Serialize;

use super::config::GridConfig;
use super::{Clock, Hub, Step};
use crate::books::{GridNews, StoredBooks, grid_input, store_decision};
use crate::inbox::{self, Command};
use crate::registry::{self, Kind, LOCAL, Registration};
use crate::storage::Store;
use crate::strategy::{
    Entity, GridDecision, GridStrategy, Metric, Output, Setting, Transfer, Usage,
};
use crate::tick_log::{self, Outcome};
use crate::{outbox, storage, wallet};

pub(super) const SLOT: &str = "grid";
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
        let strategy = self.slot.current();
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

        let read = db.read()?;
        let input = grid_input(
            &StoredBooks {
                slot: SLOT,
                tx: &*read,
            },
            now,
            &self.settings,
            news,
        )?;
        drop(read);
        let tick = storage::counters(db)?.get("ticks").copied().unwrap_or(0) + 1;
        summary.tick = tick;

        let decision = match strategy.tick(&input) {
            Ok(outcome) => outcome.decision,
            Err(failure) => {
                let why = failure.to_string();
                self.record_failure(&strategy, input, &why)?;
                summary.failed = Some(why);
                return Ok(summary);
            }
        };
        let consumed = Consumed {
            records: &records,
            joined: &joined,
            left: &left,
            cursor: next_cursor,
            income,
        };
        if let Err(e) = self.commit(
            &strategy,
            tick,
            now,
            input.clone(),
            &decision,
            &registrations,
            consumed,
        ) {
            // The decision could not be carried out (a payout above the
            // balance, a request to a producer): nothing of it was applied, and
            // the news stays for the next tick.
            let why = format!("decision refused: {e:#}");
            self.record_failure(&strategy, input, &why)?;
            summary.failed = Some(why);
            return Ok(summary);
        }
        summary.requests = decision.payment_requests.len() as u64;
        summary.requested = decision.payment_requests.iter().map(|r| r.owed).sum();
        summary.payouts = decision.payouts.len() as u64;
        summary.paid_out = decision.payouts.iter().map(|p| p.amount).sum();
        if tick % 100 == 0 {
            tick_log::prune(db, SLOT, self.tick_log_keep)?;
        }
        Ok(summary)
    }

    fn record_failure(
        &self,
        strategy: &GridStrategy,
        input: crate::strategy::GridInput,
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

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        strategy: &GridStrategy,
        tick: u64,
        now: u64,
        input: crate::strategy::GridInput,
        decision: &GridDecision,
        registrations: &HashMap<u32, Registration>,
        consumed: Consumed<'_>,
    ) -> anyhow::Result<()> {
        let tx = self.db().write()?;
        store_decision(&*tx, SLOT, &decision.state, &decision.cells)?;
        inbox::consume(&*tx, consumed.records)?;
        registry::consume_news(&*tx, consumed.joined, consumed.left)?;
        storage::set_meta(&*tx, "grid/transfer-cursor", &consumed.cursor)?;
        for p in &decision.payouts {
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
        let mut undeliverable = 0;
        for r in decision.payment_requests.iter() {
            let consumer = registrations
                .get(&r.consumer)
                .filter(|reg| reg.kind == Kind::Consumer)
                .with_context(|| format!("payment request to {}, not a consumer", r.consumer))?;
            // Read again inside the transaction: an earlier request of this
            // tick moved the return channel on.
            let Some(mut reg) = registry::read(&*tx, &consumer.id)? else {
                undeliverable += 1;
                continue;
            };
            let Some(back) = reg.return_channel.as_mut() else {
                undeliverable += 1;
                continue;
            };
            let pay_to = wallet::receive_address(&*tx, &self.wallet_seed, self.account())?;
            let command = Command::PaymentRequest {
                owed: r.owed,
                wh: r.wh,
                pay_to,
            };
            let mut writer = back.writer(self.hub.registry.key());
            let (address, bytes) =
                writer.prepare(crate::channel::Message::Data(command.encode()))?;
            outbox::enqueue(&*tx, LOCAL, address, bytes)?;
            back.next_index = writer.next_index();
            registry::put(&*tx, &reg)?;
        }
        storage::set_meta(&*tx, "grid/metrics", &metrics(&decision.metrics))?;
        let requested: u64 = decision.payment_requests.iter().map(|r| r.owed).sum();
        let billed: u64 = decision.payment_requests.iter().map(|r| r.wh).sum();
        let paid_out: u64 = decision.payouts.iter().map(|p| p.amount).sum();
        storage::count(&*tx, "ticks", 1)?;
        storage::count(&*tx, "usage-wh", input.usage.wh.iter().sum())?;
        storage::count(&*tx, "output-wh", input.output.iter().map(|o| o.wh).sum())?;
        storage::count(
            &*tx,
            "payment-requests",
            decision.payment_requests.len() as u64,
        )?;
        storage::count(&*tx, "requests-undeliverable", undeliverable)?;
        storage::count(&*tx, "requested", requested)?;
        storage::count(&*tx, "billed-wh", billed)?;
        storage::count(&*tx, "paid-out", paid_out)?;
        storage::count(&*tx, "income", consumed.income)?;
        tick_log::record_grid(
            &*tx,
            SLOT,
            &strategy.info().sha256,
            input,
            Outcome::Decided(decision.clone()),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The strategy's metrics of its last successful tick.
    pub fn metrics(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(storage::meta(self.db(), "grid/metrics")?.unwrap_or_default())
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
