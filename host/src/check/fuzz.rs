//! `powerplug strategy check --fuzz`: random traces run through a strategy
//! and checked after every tick against the same model as the scenarios.
//!
//! - A grid's traces: consumers and producers joining and leaving, usage from
//!   nothing to the largest a host finds plausible, output that is sometimes
//!   zero, consumers paying early, late, in part, too much or never. Two rules
//!   only traces reach are added: no payment request to a consumer that has
//!   left, and (for a strategy that reports them) money in = running costs +
//!   payouts + what is still undistributed.
//! - A producer's traces: sources joining and leaving, readings on time, late
//!   (up to ten slices) or of nothing, the largest amounts, payments now and
//!   then; it may never report more than its sources delivered.
//!
//! A failing trace is shrunk to the shortest one that still fails the same way.

use std::fmt;

use super::grid::{Model, START_MS, confirmed};
use super::{Property, Rng, Tally};
use crate::books::{Books, GridNews, ProducerNews};
use crate::strategy::{
    Entity, EntityKind, GridStrategy, Output, ProducerStrategy, SourceOutput, Transfer, Usage,
};

const TICK_MS: u64 = 15_000;
const SLICE_MS: u64 = 15_000;
/// A producer ticks every minute and its sources read every 30 s, as the roles' defaults.
const PRODUCER_TICK_MS: u64 = 60_000;
const SOURCE_SLICE_MS: u64 = 30_000;
/// Payments to a producer have no entity of their own: shrinking drops them together.
const GRID: u32 = u32::MAX;
/// The most one reading may claim on a host with default plausibility.
const PLAUSIBLE_WH: u64 = 1_000_000;

/// One thing that happens during a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Join(u32, EntityKind),
    Leave(u32),
    Usage(u32, u64),
    Output(u32, u64),
    /// A consumer pays this much, whatever it was asked.
    Pay(u32, u64),
    /// A source's reading of the slice that ended this many slices before
    /// the tick's (0: the last one), arriving now.
    Reading(u32, u64, u64),
    /// The grid pays the producer.
    Paid(u64),
}

impl Event {
    fn entity(self) -> u32 {
        match self {
            Event::Join(e, _)
            | Event::Leave(e)
            | Event::Usage(e, _)
            | Event::Output(e, _)
            | Event::Pay(e, _)
            | Event::Reading(e, _, _) => e,
            Event::Paid(_) => GRID,
        }
    }
}

/// Events per tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace(Vec<Vec<Event>>);

/// What the fuzzing found.
#[derive(Debug, Clone)]
pub struct FuzzReport {
    pub traces: u32,
    pub ticks: u64,
    /// The first failure: the property, what happened, the shortest trace.
    pub failure: Option<(Property, String, Trace)>,
}

/// Runs `traces` random traces of a grid from `seed` on; stops at the first
/// failure and shrinks it. `progress` hears how many traces have run.
pub fn grid(
    strategy: &GridStrategy,
    traces: u32,
    seed: u64,
    progress: &mut dyn FnMut(u32),
) -> FuzzReport {
    run(
        traces,
        seed,
        generate_grid,
        |t| replay_grid(strategy, t),
        progress,
    )
}

/// The same for a producer.
pub fn producer(
    strategy: &ProducerStrategy,
    traces: u32,
    seed: u64,
    progress: &mut dyn FnMut(u32),
) -> FuzzReport {
    run(
        traces,
        seed,
        generate_producer,
        |t| replay_producer(strategy, t),
        progress,
    )
}

type Found = Option<(Property, String)>;

fn run(
    traces: u32,
    seed: u64,
    generate: fn(u64) -> Trace,
    replay: impl Fn(&Trace) -> Found,
    progress: &mut dyn FnMut(u32),
) -> FuzzReport {
    let mut report = FuzzReport {
        traces: 0,
        ticks: 0,
        failure: None,
    };
    for n in 0..traces {
        let trace = generate(seed.wrapping_add(u64::from(n)));
        report.traces += 1;
        report.ticks += trace.0.len() as u64;
        progress(report.traces);
        if let Some((property, _)) = replay(&trace) {
            let shortest = shrink(&replay, trace, property);
            let (property, why) = replay(&shortest).unwrap_or((property, String::new()));
            report.failure = Some((property, why, shortest));
            break;
        }
    }
    report
}

fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.between((1, 100)) <= percent
}

fn generate_grid(seed: u64) -> Trace {
    let mut rng = Rng(seed);
    let consumers = rng.between((1, 5)) as u32;
    let producers = rng.between((1, 3)) as u32;
    let ticks = rng.between((3, 30)) as usize;
    let mut trace = vec![Vec::new(); ticks];
    let mut joined_at = Vec::new();
    for e in 0..consumers + producers {
        let kind = if e < consumers {
            EntityKind::Consumer
        } else {
            EntityKind::Producer
        };
        let at = rng.between((0, (ticks as u64 - 1).min(3))) as usize;
        trace[at].push(Event::Join(e, kind));
        joined_at.push((e, kind, at));
    }
    for (e, kind, at) in joined_at {
        let leaves =
            chance(&mut rng, 25).then(|| rng.between((at as u64 + 1, ticks as u64)) as usize);
        for (t, events) in trace.iter_mut().enumerate().skip(at) {
            if leaves == Some(t) {
                events.push(Event::Leave(e));
                break;
            }
            match kind {
                EntityKind::Consumer => {
                    if chance(&mut rng, 70) {
                        let wh = match rng.between((0, 9)) {
                            0 => 0,
                            1 => PLAUSIBLE_WH,
                            _ => rng.between((1, 2_500)),
                        };
                        events.push(Event::Usage(e, wh));
                    }
                    if chance(&mut rng, 30) {
                        let amount = match rng.between((0, 4)) {
                            0 => rng.between((1, 4)),
                            1 => rng.between((1_000, 10_000_000)),
                            _ => rng.between((5, 60)),
                        };
                        events.push(Event::Pay(e, amount));
                    }
                }
                _ => {
                    if chance(&mut rng, 70) {
                        let wh = match rng.between((0, 4)) {
                            0 => 0,
                            1 => PLAUSIBLE_WH,
                            _ => rng.between((1, 200_000)),
                        };
                        events.push(Event::Output(e, wh));
                    }
                }
            }
        }
    }
    Trace(trace)
}

fn generate_producer(seed: u64) -> Trace {
    let mut rng = Rng(seed);
    let sources = rng.between((1, 4)) as u32;
    let ticks = rng.between((3, 30)) as usize;
    let mut trace = vec![Vec::new(); ticks];
    for s in 0..sources {
        let at = rng.between((0, (ticks as u64 - 1).min(3))) as usize;
        let leaves =
            chance(&mut rng, 25).then(|| rng.between((at as u64 + 1, ticks as u64)) as usize);
        trace[at].push(Event::Join(s, EntityKind::Source));
        for (t, events) in trace.iter_mut().enumerate().skip(at) {
            if leaves == Some(t) {
                events.push(Event::Leave(s));
                break;
            }
            // Two slices a tick, now and then late, once in a while nothing.
            for slice in 0..2 {
                if chance(&mut rng, 85) {
                    let late = if chance(&mut rng, 15) {
                        rng.between((1, 10))
                    } else {
                        0
                    };
                    let wh = match rng.between((0, 9)) {
                        0 => 0,
                        1 => PLAUSIBLE_WH,
                        _ => rng.between((1, 10_000)),
                    };
                    events.push(Event::Reading(s, slice + late, wh));
                }
            }
        }
    }
    for events in trace.iter_mut() {
        if chance(&mut rng, 20) {
            events.push(Event::Paid(rng.between((1, 500))));
        }
    }
    Trace(trace)
}

/// Runs a producer's trace; the first failure, if any.
fn replay_producer(strategy: &ProducerStrategy, trace: &Trace) -> Found {
    let mut tally = Tally::default();
    tally.start("fuzz", trace.0.len() as u32);
    let mut books = Books::default();
    let (mut delivered, mut reported) = (0u128, 0u128);
    for (t, events) in trace.0.iter().enumerate() {
        let now = START_MS + (t as u64 + 1) * PRODUCER_TICK_MS;
        let mut news = ProducerNews::default();
        for &event in events {
            match event {
                Event::Join(e, kind) => {
                    news.joined
                        .push(Entity::new(e, kind, format!("{kind}-{e}")))
                }
                Event::Leave(e) => news.left.push(e),
                Event::Reading(s, ago, wh) => {
                    let end = (now / SOURCE_SLICE_MS).saturating_sub(ago) * SOURCE_SLICE_MS;
                    news.outputs.push(SourceOutput {
                        source: s,
                        start_ms: end - SOURCE_SLICE_MS,
                        end_ms: end,
                        wh,
                    });
                    delivered += u128::from(wh);
                }
                Event::Paid(amount) => news.transfers.push(Transfer {
                    entity: None,
                    amount,
                    at_ms: now,
                    incoming: true,
                }),
                _ => {}
            }
        }
        let at = format!("tick {}", t + 1);
        let input = books.producer_input(now, &[], news);
        // A tick that did not decide is a failure the tally holds (`?` here
        // would say the trace found nothing).
        let Some(decision) = tally.tick(&at, false, || strategy.tick(&input)) else {
            return tally.first_failure();
        };
        reported += super::producer::check(&decision, now, &at, &mut tally);
        super::producer::within_delivered(reported, delivered, &at, &mut tally);
        if let Some(failure) = tally.first_failure() {
            return Some(failure);
        }
        books.apply_producer(&decision);
    }
    tally.first_failure()
}

/// Runs a grid's trace; the first failure, if any.
fn replay_grid(strategy: &GridStrategy, trace: &Trace) -> Found {
    let mut tally = Tally::default();
    tally.start("fuzz", trace.0.len() as u32);
    let mut model = Model::default();
    let mut books = Books::default();
    let mut confirmations = Vec::new();
    let (mut income, mut paid_out) = (0u128, 0u128);
    for (t, events) in trace.0.iter().enumerate() {
        let now = START_MS + (t as u64 + 1) * TICK_MS;
        model.left_before = model.left.clone();
        let mut news = GridNews {
            transfers: std::mem::take(&mut confirmations),
            ..GridNews::default()
        };
        for &event in events {
            match event {
                Event::Join(e, kind) => {
                    news.joined
                        .push(Entity::new(e, kind, format!("{kind}-{e}")));
                    model.kinds.insert(e, kind);
                }
                Event::Leave(e) => {
                    news.left.push(e);
                    model.left.push(e);
                }
                Event::Usage(c, wh) => {
                    news.usage.push(Usage {
                        consumer: c,
                        start_ms: now - SLICE_MS,
                        end_ms: now,
                        wh,
                    });
                    *model.used_wh.entry(c).or_default() += u128::from(wh);
                }
                Event::Output(p, wh) => news.output.push(Output {
                    producer: p,
                    start_ms: now - SLICE_MS,
                    end_ms: now,
                    wh,
                    price: wh * 4 / 1000,
                }),
                Event::Reading(..) | Event::Paid(_) => {}
                Event::Pay(c, amount) => {
                    model.balance += u128::from(amount);
                    income += u128::from(amount);
                    news.transfers.push(Transfer {
                        entity: Some(c),
                        amount,
                        at_ms: now,
                        incoming: true,
                    });
                }
            }
        }
        let at = format!("tick {}", t + 1);
        let input = books.grid_input(now, &[], news);
        // A tick that did not decide is a failure the tally holds (`?` here
        // would say the trace found nothing).
        let Some(decision) = tally.tick(&at, false, || strategy.tick(&input)) else {
            return tally.first_failure();
        };
        model.check(&decision, &at, &mut tally);
        paid_out += decision
            .payouts
            .iter()
            .map(|p| u128::from(p.amount))
            .sum::<u128>();
        conserved(&decision.metrics, income, paid_out, &at, &mut tally);
        if let Some(failure) = tally.first_failure() {
            return Some(failure);
        }
        // The wallet confirms the payouts; both sides see them next tick.
        confirmations = confirmed(&decision, now);
        books.apply_grid(&decision);
    }
    tally.first_failure()
}

/// Money in = running costs + payouts + undistributed, for a strategy that
/// reports the two it keeps (`running-costs-received`, `available`).
fn conserved(
    metrics: &[crate::strategy::Metric],
    income: u128,
    paid_out: u128,
    at: &str,
    tally: &mut Tally,
) {
    let metric = |name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
    let (Some(costs), Some(available)) = (metric("running-costs-received"), metric("available"))
    else {
        return;
    };
    let kept = i128::from(costs) + i128::from(available) + paid_out as i128;
    if kept != income as i128 {
        tally.fail(
            Property::MoneyConserved,
            format!(
                "{at}: {income} tokens paid in, but running costs {costs} + payouts {paid_out} + undistributed {available} = {kept}"
            ),
        );
    }
}

/// The smallest trace that still fails with `property`: whole entities,
/// then whole ticks, then single events are left out while it does.
fn shrink(replay: &impl Fn(&Trace) -> Found, mut trace: Trace, property: Property) -> Trace {
    let fails = |t: &Trace| replay(t).is_some_and(|(p, _)| p == property);
    loop {
        let better = candidates(&trace).into_iter().find(|c| fails(c));
        match better {
            Some(c) => trace = c,
            None => return trace,
        }
    }
}

/// Traces one step smaller than `trace`, entities first.
fn candidates(trace: &Trace) -> Vec<Trace> {
    let mut out = Vec::new();
    let mut entities: Vec<u32> = trace.0.iter().flatten().map(|e| e.entity()).collect();
    entities.sort_unstable();
    entities.dedup();
    for e in entities {
        let t = trace.0.iter().map(|events| {
            events
                .iter()
                .copied()
                .filter(|ev| ev.entity() != e)
                .collect()
        });
        out.push(Trace(t.collect()));
    }
    // A tick left out: its joins move to the tick after it, or before the end.
    for t in 0..trace.0.len() {
        let mut ticks = trace.0.clone();
        let removed = ticks.remove(t);
        let joins: Vec<Event> = removed
            .into_iter()
            .filter(|e| matches!(e, Event::Join(..)))
            .collect();
        if !joins.is_empty() {
            let Some(last) = ticks.len().checked_sub(1) else {
                continue;
            };
            ticks[t.min(last)].splice(0..0, joins);
        }
        out.push(Trace(ticks));
    }
    for t in 0..trace.0.len() {
        for i in 0..trace.0[t].len() {
            if matches!(trace.0[t][i], Event::Join(..)) {
                continue;
            }
            let mut ticks = trace.0.clone();
            ticks[t].remove(i);
            out.push(Trace(ticks));
        }
    }
    out
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (t, events) in self.0.iter().enumerate() {
            let said: Vec<String> = events
                .iter()
                .map(|e| match *e {
                    Event::Join(e, kind) => format!("{kind} {e} joins"),
                    Event::Leave(e) => format!("{e} leaves"),
                    Event::Usage(c, wh) => format!("consumer {c} uses {wh} Wh"),
                    Event::Output(p, wh) => format!("producer {p} reports {wh} Wh"),
                    Event::Pay(c, amount) => format!("consumer {c} pays {amount}"),
                    Event::Reading(s, 0, wh) => format!("source {s} reads {wh} Wh"),
                    Event::Reading(s, ago, wh) => {
                        format!("source {s} reads {wh} Wh for {ago} slices before")
                    }
                    Event::Paid(amount) => format!("the grid pays {amount}"),
                })
                .collect();
            let said = if said.is_empty() {
                "nothing happens".to_owned()
            } else {
                said.join("; ")
            };
            writeln!(f, "  tick {}: {said}", t + 1)?;
        }
        Ok(())
    }
}
