//! The producer world's scenarios: sources report their output slice by slice
//! (some of it late), the grid pays now and then; every decision's output
//! commands are checked against what the sources delivered and against what
//! the producer host refuses to send.

use super::grid::START_MS;
use super::{Property, Tally};
use crate::books::{Books, ProducerNews};
use crate::inbox::{MAX_PRICE, MAX_WH};
use crate::strategy::{
    Entity, EntityKind, ProducerDecision, ProducerStrategy, SourceOutput, Transfer,
};

const SLICE_MS: u64 = 30_000;

struct Scenario {
    name: &'static str,
    sources: u32,
    ticks: u32,
    output_wh: (u64, u64),
    /// The last source's readings arrive one tick late.
    late_source: bool,
    /// The grid pays the producer this every fifth tick.
    payment: u64,
    extreme: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "first tick, nothing happened",
        sources: 0,
        ticks: 1,
        output_wh: (0, 0),
        late_source: false,
        payment: 0,
        extreme: false,
    },
    Scenario {
        name: "an hour: 3 sources, one late",
        sources: 3,
        ticks: 60,
        output_wh: (500, 6_000),
        late_source: true,
        payment: 37,
        extreme: false,
    },
    Scenario {
        name: "busy: 1,000 sources",
        sources: 1_000,
        ticks: 3,
        output_wh: (0, 2_000),
        late_source: false,
        payment: 1_000,
        extreme: false,
    },
    // Several sources at the limit: their sum in one slice is above what
    // one command may claim, which the strategy must cap (the grid keeps one
    // report per start time, so a split one would lose its second half).
    Scenario {
        name: "largest amounts, 3 sources",
        sources: 3,
        ticks: 8,
        output_wh: (MAX_WH, MAX_WH),
        late_source: false,
        payment: MAX_PRICE,
        extreme: true,
    },
];

/// Producer ticks come every minute, as the producer role's default.
const TICK_MS: u64 = 60_000;

pub(super) fn run(strategy: &ProducerStrategy, tally: &mut Tally) {
    for (n, scenario) in SCENARIOS.iter().enumerate() {
        run_scenario(strategy, scenario, 100 + n as u64, tally);
    }
}

fn run_scenario(strategy: &ProducerStrategy, s: &Scenario, seed: u64, tally: &mut Tally) {
    tally.start(s.name, s.ticks);
    let mut rng = super::Rng(seed);
    let mut books = Books::default();
    let (mut delivered, mut reported) = (0u128, 0u128);
    let mut late: Vec<SourceOutput> = Vec::new();
    let mut news = ProducerNews {
        joined: (0..s.sources)
            .map(|i| Entity {
                index: i,
                kind: EntityKind::Source.into(),
                id: format!("source-{i}"),
            })
            .collect(),
        ..ProducerNews::default()
    };

    for tick in 1..=s.ticks {
        let now = START_MS + u64::from(tick) * TICK_MS;
        news.outputs.append(&mut late);
        for source in 0..s.sources {
            for slice in 1..=TICK_MS / SLICE_MS {
                let end = now - (slice - 1) * SLICE_MS;
                let output = SourceOutput {
                    source,
                    start_ms: end - SLICE_MS,
                    end_ms: end,
                    wh: rng.between(s.output_wh),
                };
                delivered += u128::from(output.wh);
                if s.late_source && source == s.sources - 1 {
                    late.push(output);
                } else {
                    news.outputs.push(output);
                }
            }
        }
        if tick % 5 == 0 && s.payment > 0 {
            news.transfers.push(Transfer {
                entity: None,
                amount: s.payment,
                at_ms: now,
                incoming: true,
            });
        }
        // What is still on its way has not been delivered yet.
        let in_flight: u128 = late.iter().map(|o| u128::from(o.wh)).sum();

        let input = books.producer_input(now, &[], std::mem::take(&mut news));
        let at = format!("{}, tick {tick}", s.name);
        let Some(decision) = tally.tick(&at, s.extreme, || strategy.tick(&input)) else {
            return;
        };
        reported += check(&decision, now, &at, tally);
        within_delivered(reported, delivered - in_flight, &at, tally);
        books.apply_producer(&decision);
    }
}

/// A producer never reports more than its sources delivered, in all.
pub(super) fn within_delivered(reported: u128, delivered: u128, at: &str, tally: &mut Tally) {
    if reported > delivered {
        tally.fail(
            Property::EnergyAccountedFor,
            format!("{at}: {reported} Wh reported in all, but the sources delivered {delivered}"),
        );
    }
}

/// Checks each output command; returns the Wh they report.
pub(super) fn check(d: &ProducerDecision, now: u64, at: &str, tally: &mut Tally) -> u128 {
    tally.in_range(
        at,
        "an output command's Wh",
        d.commands.iter().map(|c| c.wh),
    );
    tally.in_range(
        at,
        "an output command's price",
        d.commands.iter().map(|c| c.price),
    );
    for c in &d.commands {
        if c.wh > MAX_WH || c.price > MAX_PRICE {
            tally.fail(
                Property::AmountsInRange,
                format!(
                    "{at}: an output command of {} Wh for {} tokens; the producer host sends at most {MAX_WH} Wh for {MAX_PRICE} tokens",
                    c.wh, c.price
                ),
            );
        }
        if c.start_ms >= c.end_ms || c.end_ms > now {
            tally.fail(
                Property::EnergyAccountedFor,
                format!(
                    "{at}: an output command for [{}, {}) at {now}: an empty or future interval",
                    c.start_ms, c.end_ms
                ),
            );
        }
    }
    d.commands.iter().map(|c| u128::from(c.wh)).sum()
}
