//! The grid world's scenarios, and the model of money and energy that every
//! decision is checked against: consumers use energy and pay what they were
//! asked, producers report output and see their payouts confirmed, the grid's
//! wallet holds what came in minus what went out.

use std::collections::BTreeMap;

use super::{Property, Tally};
use crate::books::{Books, GridNews};
use crate::inbox::{MAX_PRICE, MAX_WH};
use crate::strategy::{Entity, EntityKind, GridDecision, GridStrategy, Output, Transfer, Usage};

/// 2026-01-01T00:00:00Z: scenarios start at midnight, so a day covers every hour.
pub(super) const START_MS: u64 = 1_767_225_600_000;
const SLICE_MS: u64 = 30_000;

struct Scenario {
    name: &'static str,
    consumers: u32,
    producers: u32,
    ticks: u32,
    tick_ms: u64,
    /// Readings per consumer per tick, and the range of each (Wh).
    readings: u32,
    usage_wh: (u64, u64),
    output_wh: (u64, u64),
    /// Each consumer pays this every tick from the second on, whatever it owes
    /// (`None`: it pays what it was asked, the tick after).
    payment: Option<u64>,
    /// The last producer says goodbye at this tick.
    producer_leaves_at: Option<u32>,
    /// Amounts at the host's limits: a trap here is an overflow.
    extreme: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "first tick, nothing happened",
        consumers: 0,
        producers: 0,
        ticks: 1,
        tick_ms: 15_000,
        readings: 0,
        usage_wh: (0, 0),
        output_wh: (0, 0),
        payment: None,
        producer_leaves_at: None,
        extreme: false,
    },
    Scenario {
        name: "a day: 5 consumers, 2 producers",
        consumers: 5,
        producers: 2,
        ticks: 48,
        tick_ms: 1_800_000,
        readings: 1,
        usage_wh: (0, 2_500),
        output_wh: (1_000, 9_000),
        payment: None,
        producer_leaves_at: Some(40),
        extreme: false,
    },
    Scenario {
        name: "busy: 1,000 consumers, 10 producers",
        consumers: 1_000,
        producers: 10,
        ticks: 3,
        tick_ms: 15_000,
        readings: 1,
        usage_wh: (0, 1_500),
        output_wh: (50_000, 150_000),
        payment: None,
        producer_leaves_at: None,
        extreme: false,
    },
    Scenario {
        name: "largest amounts the host accepts",
        consumers: 10,
        producers: 2,
        ticks: 4,
        tick_ms: 90_000,
        readings: 3,
        usage_wh: (MAX_WH, MAX_WH),
        output_wh: (MAX_WH, MAX_WH),
        payment: Some(MAX_PRICE),
        producer_leaves_at: None,
        extreme: true,
    },
];

pub(super) fn run(strategy: &GridStrategy, tally: &mut Tally) {
    for (n, scenario) in SCENARIOS.iter().enumerate() {
        run_scenario(strategy, scenario, n as u64, tally);
    }
}

/// What the scenario has put in so far, to check decisions against.
#[derive(Default)]
pub(super) struct Model {
    pub(super) kinds: BTreeMap<u32, EntityKind>,
    pub(super) left: Vec<u32>,
    /// Entities that left before the tick being checked: no request may go
    /// to one of them.
    pub(super) left_before: Vec<u32>,
    pub(super) used_wh: BTreeMap<u32, u128>,
    billed_wh: BTreeMap<u32, u128>,
    owed: BTreeMap<u32, u128>,
    /// The grid's wallet: everything received minus everything paid out.
    pub(super) balance: u128,
}

fn run_scenario(strategy: &GridStrategy, s: &Scenario, seed: u64, tally: &mut Tally) {
    tally.start(s.name, s.ticks);
    let mut rng = super::Rng(seed);
    let mut model = Model::default();
    let mut books = Books::default();
    let producer = |p: u32| s.consumers + p;
    let mut news = GridNews {
        joined: (0..s.consumers)
            .map(|c| entity(c, EntityKind::Consumer, "consumer"))
            .chain((0..s.producers).map(|p| entity(producer(p), EntityKind::Producer, "producer")))
            .collect(),
        ..GridNews::default()
    };
    for e in &news.joined {
        model.kinds.insert(e.index, e.kind());
    }

    for tick in 1..=s.ticks {
        let now = START_MS + u64::from(tick) * s.tick_ms;
        for c in 0..s.consumers {
            for r in 0..s.readings {
                let wh = rng.between(s.usage_wh);
                let start = now - SLICE_MS * u64::from(r + 1);
                news.usage.push(Usage {
                    consumer: c,
                    start_ms: start,
                    end_ms: start + SLICE_MS,
                    wh,
                });
                *model.used_wh.entry(c).or_default() += u128::from(wh);
            }
            let pay = match s.payment {
                Some(amount) if tick > 1 => u128::from(amount),
                Some(_) => 0,
                None => {
                    let owed = model.owed.entry(c).or_default();
                    let pay = (*owed).min(u128::from(MAX_PRICE));
                    *owed -= pay;
                    pay
                }
            };
            if pay > 0 {
                model.balance += pay;
                news.transfers.push(Transfer {
                    entity: Some(c),
                    amount: pay as u64,
                    at_ms: now,
                    incoming: true,
                });
            }
        }
        if s.producer_leaves_at == Some(tick) && s.producers > 0 {
            let last = producer(s.producers - 1);
            news.left.push(last);
            model.left.push(last);
        }
        for p in (0..s.producers).map(producer) {
            if !model.left.contains(&p) {
                news.output.push(Output {
                    producer: p,
                    start_ms: now - SLICE_MS,
                    end_ms: now,
                    wh: rng.between(s.output_wh),
                    price: 1,
                });
            }
        }

        let input = books.grid_input(now, &[], std::mem::take(&mut news));
        let at = format!("{}, tick {tick}", s.name);
        let Some(decision) = tally.tick(&at, s.extreme, || strategy.tick(&input)) else {
            return;
        };
        model.check(&decision, &at, tally);
        news.transfers.extend(confirmed(&decision, now));
        books.apply_grid(&decision);
    }
}

/// The wallet's confirmations of a decision's payouts, which the strategy
/// sees the tick after.
pub(super) fn confirmed(d: &GridDecision, now: u64) -> Vec<Transfer> {
    d.payouts
        .iter()
        .map(|p| Transfer {
            entity: Some(p.producer),
            amount: p.amount,
            at_ms: now,
            incoming: false,
        })
        .collect()
}

fn entity(index: u32, kind: EntityKind, prefix: &str) -> Entity {
    Entity::new(index, kind, format!("{prefix}-{index}"))
}

impl Model {
    pub(super) fn check(&mut self, d: &GridDecision, at: &str, tally: &mut Tally) {
        let r = &d.payment_requests;
        tally.in_range(at, "a payment request's Wh", r.wh.iter().copied());
        tally.in_range(at, "a payment request", r.owed.iter().copied());
        tally.in_range(at, "a payout", d.payouts.iter().map(|p| p.amount));

        for request in r.iter() {
            let c = request.consumer;
            if self.left_before.contains(&c) {
                tally.fail(
                    Property::EnergyAccountedFor,
                    format!("{at}: a payment request to consumer {c}, which left before this tick"),
                );
                continue;
            }
            if self.kinds.get(&c) != Some(&EntityKind::Consumer) {
                let what = self.describe(c);
                tally.fail(
                    Property::EnergyAccountedFor,
                    format!("{at}: a payment request to entity {c}, {what}"),
                );
                continue;
            }
            let billed = self.billed_wh.entry(c).or_default();
            *billed += u128::from(request.wh);
            let used = self.used_wh.get(&c).copied().unwrap_or(0);
            if *billed > used {
                tally.fail(
                    Property::EnergyAccountedFor,
                    format!("{at}: consumer {c} billed for {billed} Wh in all, but used {used}"),
                );
            }
            *self.owed.entry(c).or_default() += u128::from(request.owed);
        }

        let mut paid = 0u128;
        for p in &d.payouts {
            let to = p.producer;
            if self.kinds.get(&to) != Some(&EntityKind::Producer) || self.left.contains(&to) {
                let what = self.describe(to);
                tally.fail(
                    Property::MoneyConserved,
                    format!("{at}: a payout to entity {to}, {what}"),
                );
            }
            if p.amount == 0 {
                tally.fail(
                    Property::MoneyConserved,
                    format!("{at}: a payout of 0 tokens to {to}, which the wallet refuses"),
                );
            }
            paid += u128::from(p.amount);
        }
        if paid > self.balance {
            tally.fail(
                Property::MoneyConserved,
                format!(
                    "{at}: payouts of {paid} tokens, but the grid holds {} (everything received minus everything paid out)",
                    self.balance
                ),
            );
        }
        self.balance = self.balance.saturating_sub(paid);
    }

    fn describe(&self, index: u32) -> &'static str {
        match self.kinds.get(&index) {
            _ if self.left.contains(&index) => "which has left",
            Some(EntityKind::Consumer) => "a consumer",
            Some(EntityKind::Producer) => "a producer",
            Some(EntityKind::Source) => "a source",
            None => "which the grid does not know",
        }
    }
}
