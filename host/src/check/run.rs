//! `powerplug strategy run FILE --ticks TICKS.json`: your own inputs through
//! the built component, tick after tick, as a host would run them. The books
//! (state and cells) carry from each tick to the next, payouts come back as
//! confirmed transfers the tick after, every decision gets the host's
//! validation, and the money and energy rules of `strategy check` are kept on
//! the running totals. So what a native test cannot show — a JavaScript
//! fraction truncated, a report above 1 GWh, a negative number that traps —
//! shows here, with the tick and the reason.
//!
//! A file is a JSON array of ticks; every field may be left out:
//!
//! ```json
//! [
//!   {"now_ms": 1767292200000, "config": {"price-per-kwh": "7"},
//!    "usage": [{"consumer": 0, "wh": 2500}], "output": [{"producer": 5, "wh": 3000, "price": 12}]},
//!   {"paid": [{"consumer": 0, "amount": 10}], "left": [5]}
//! ]
//! ```
//!
//! A tick without `now_ms` comes a minute after the one before (the first at
//! 2026-01-01T00:00Z); readings without `start_ms`/`end_ms` cover the time
//! since the tick before. An entity joins at its first reading unless `joined`
//! names it earlier. Settings carry over until changed. A producer's ticks
//! have `sources` readings (`{"source": 1, "wh": 500}`) and `paid` amounts
//! without a consumer.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::grid::{Model, confirmed};
use super::{Tally, grouped};
use crate::books::{Books, GridNews, ProducerNews};
use crate::domain::UnixMs;
use crate::strategy::{
    Entity, EntityKind, GridDecision, GridStrategy, Limits, Loaded, LogLine, Output,
    ProducerDecision, ProducerStrategy, Runtime, Setting, SourceOutput, TickFailure, TickOutcome,
    Transfer, Usage,
};

/// 2026-01-01T00:00Z.
const FIRST_MS: u64 = 1_767_225_600_000;
const EVERY_MS: u64 = 60_000;

/// One tick of a ticks file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tick {
    pub now_ms: Option<u64>,
    /// Settings from this tick on; each key replaces its value before.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub joined: Vec<Joined>,
    #[serde(default)]
    pub left: Vec<u32>,
    #[serde(default)]
    pub usage: Vec<UsageIn>,
    #[serde(default)]
    pub output: Vec<OutputIn>,
    #[serde(default)]
    pub sources: Vec<SourceIn>,
    #[serde(default)]
    pub paid: Vec<PaidIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Joined {
    pub index: u32,
    pub kind: EntityKind,
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageIn {
    pub consumer: u32,
    pub wh: u64,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputIn {
    pub producer: u32,
    pub wh: u64,
    #[serde(default)]
    pub price: u64,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceIn {
    pub source: u32,
    pub wh: u64,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaidIn {
    /// The paying consumer (grid); none for a payment to a producer.
    pub consumer: Option<u32>,
    pub amount: u64,
}

/// What one tick came to.
#[derive(Debug, Serialize)]
pub struct TickReport<D> {
    pub tick: usize,
    pub now_ms: u64,
    /// The decision, if the strategy made one.
    pub decision: Option<D>,
    /// Why the tick would fail live: nothing of it would apply.
    pub failure: Option<String>,
    /// Rules of `strategy check` the decision breaks.
    pub problems: Vec<String>,
    pub fuel: u64,
    pub logs: Vec<String>,
}

impl<D> TickReport<D> {
    /// The tick would fail live or broke a rule.
    pub fn broke(&self) -> bool {
        self.failure.is_some() || !self.problems.is_empty()
    }
}

/// Runs `ticks` through a grid or producer component.
pub fn run(runtime: &Runtime, bytes: &[u8], ticks: &[Tick]) -> anyhow::Result<Ran> {
    Ok(match runtime.load(bytes)? {
        Loaded::Grid(s) => Ran::Grid(run_grid(&s, ticks)?),
        Loaded::Producer(s) => Ran::Producer(run_producer(&s, ticks)?),
    })
}

/// The reports of a run, by world.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Ran {
    Grid(Vec<TickReport<GridDecision>>),
    Producer(Vec<TickReport<ProducerDecision>>),
}

impl Ran {
    /// Ticks that failed or broke a rule.
    pub fn failed(&self) -> usize {
        match self {
            Ran::Grid(r) => r.iter().filter(|t| t.broke()).count(),
            Ran::Producer(r) => r.iter().filter(|t| t.broke()).count(),
        }
    }

    /// Each tick as `strategy run` prints it; with `broken_only`, only those
    /// that would fail live or broke a rule.
    fn printed(&self, broken_only: bool) -> Vec<String> {
        fn print<D>(
            r: &[TickReport<D>],
            broken_only: bool,
            body: fn(&D, &mut String),
        ) -> Vec<String> {
            r.iter()
                .filter(|t| !broken_only || t.broke())
                .map(|t| print_tick(t, body))
                .collect()
        }
        match self {
            Ran::Grid(r) => print(r, broken_only, grid_body),
            Ran::Producer(r) => print(r, broken_only, producer_body),
        }
    }
}

/// Each tick's (time of the tick before, time), checked to move forward.
fn times(ticks: &[Tick]) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut times: Vec<(u64, u64)> = Vec::with_capacity(ticks.len());
    for (n, tick) in ticks.iter().enumerate() {
        let time = match (times.last(), tick.now_ms) {
            (None, now) => {
                let now = now.unwrap_or(FIRST_MS);
                (now.saturating_sub(EVERY_MS), now)
            }
            (Some(&(_, before)), None) => (before, before.saturating_add(EVERY_MS)),
            (Some(&(_, before)), Some(now)) => {
                anyhow::ensure!(
                    now > before,
                    "tick {}: now_ms {now} is not after the tick before ({before})",
                    n + 1
                );
                (before, now)
            }
        };
        times.push(time);
    }
    Ok(times)
}

fn settings(config: &mut BTreeMap<String, String>, tick: &Tick) -> Vec<Setting> {
    config.extend(tick.config.clone());
    config
        .iter()
        .map(|(key, value)| Setting {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// Joins `index` as `kind` unless it is known.
fn join(
    known: &mut BTreeMap<u32, EntityKind>,
    joined: &mut Vec<Entity>,
    index: u32,
    kind: EntityKind,
) {
    if let std::collections::btree_map::Entry::Vacant(entry) = known.entry(index) {
        entry.insert(kind);
        joined.push(Entity::new(index, kind, format!("{kind}-{index}")));
    }
}

fn joined(known: &mut BTreeMap<u32, EntityKind>, tick: &Tick) -> Vec<Entity> {
    let mut joined = Vec::new();
    for j in &tick.joined {
        known.insert(j.index, j.kind);
        let id =
            j.id.clone()
                .unwrap_or_else(|| format!("{}-{}", j.kind, j.index));
        joined.push(Entity::new(j.index, j.kind, id));
    }
    joined
}

fn logs(lines: &[LogLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| format!("{}: {}", format!("{:?}", l.level).to_lowercase(), l.message))
        .collect()
}

fn problems(tally: Tally) -> Vec<String> {
    tally.failures.into_iter().map(|(_, why, _)| why).collect()
}

/// Tick `tick`'s report; `decided` checks and applies a decision and returns
/// the rules it breaks. A failed tick has no decision: its news must wait.
fn report<D>(
    tick: usize,
    now_ms: u64,
    outcome: Result<TickOutcome<D>, TickFailure>,
    decided: impl FnOnce(&D) -> Vec<String>,
) -> TickReport<D> {
    match outcome {
        Ok(o) => TickReport {
            tick,
            now_ms,
            problems: decided(&o.decision),
            fuel: o.fuel_used,
            logs: logs(&o.logs),
            failure: None,
            decision: Some(o.decision),
        },
        Err(f) => TickReport {
            tick,
            now_ms,
            decision: None,
            failure: Some(f.to_string()),
            problems: Vec::new(),
            fuel: 0,
            logs: logs(&f.logs),
        },
    }
}

fn run_grid(
    strategy: &GridStrategy,
    ticks: &[Tick],
) -> anyhow::Result<Vec<TickReport<GridDecision>>> {
    let mut books = Books::default();
    let mut model = Model::default();
    let mut config = BTreeMap::new();
    // Payouts confirmed, or a failed tick's news: the next tick's start.
    let mut carried = GridNews::default();
    let mut reports = Vec::new();
    for (n, (tick, (before, now))) in ticks.iter().zip(times(ticks)?).enumerate() {
        let settings = settings(&mut config, tick);
        let mut news = std::mem::take(&mut carried);
        news.joined.extend(joined(&mut model.kinds, tick));
        news.left.extend(&tick.left);
        model.left_before = model.left.clone();
        model.left.extend(&tick.left);
        for u in &tick.usage {
            join(
                &mut model.kinds,
                &mut news.joined,
                u.consumer,
                EntityKind::Consumer,
            );
            *model.used_wh.entry(u.consumer).or_default() += u128::from(u.wh);
            news.usage.push(Usage {
                consumer: u.consumer,
                start_ms: u.start_ms.unwrap_or(before),
                end_ms: u.end_ms.unwrap_or(now),
                wh: u.wh,
            });
        }
        for o in &tick.output {
            join(
                &mut model.kinds,
                &mut news.joined,
                o.producer,
                EntityKind::Producer,
            );
            news.output.push(Output {
                producer: o.producer,
                start_ms: o.start_ms.unwrap_or(before),
                end_ms: o.end_ms.unwrap_or(now),
                wh: o.wh,
                price: o.price,
            });
        }
        for p in &tick.paid {
            let consumer = p.consumer.with_context(|| {
                format!("tick {}: a grid's `paid` entry names its `consumer`", n + 1)
            })?;
            model.balance += u128::from(p.amount);
            news.transfers.push(Transfer {
                entity: Some(consumer),
                amount: p.amount,
                at_ms: now,
                incoming: true,
            });
        }
        let input = books.grid_input(now, &settings, news.clone());
        let report = report(n + 1, now, strategy.tick(&input), |d| {
            let mut tally = Tally::default();
            model.check(d, &format!("tick {}", n + 1), &mut tally);
            books.apply_grid(d);
            carried.transfers = confirmed(d, now);
            problems(tally)
        });
        // As live: nothing of a failed tick applies; its news waits.
        if report.decision.is_none() {
            carried = news;
        }
        reports.push(report);
    }
    Ok(reports)
}

fn run_producer(
    strategy: &ProducerStrategy,
    ticks: &[Tick],
) -> anyhow::Result<Vec<TickReport<ProducerDecision>>> {
    let mut books = Books::default();
    let mut known = BTreeMap::new();
    let mut config = BTreeMap::new();
    let (mut delivered, mut reported) = (0u128, 0u128);
    let mut carried = ProducerNews::default();
    let mut reports = Vec::new();
    for (n, (tick, (before, now))) in ticks.iter().zip(times(ticks)?).enumerate() {
        let at = format!("tick {}", n + 1);
        anyhow::ensure!(
            tick.usage.is_empty() && tick.output.is_empty(),
            "{at}: a producer's ticks have `sources` readings, not `usage` or `output`"
        );
        let settings = settings(&mut config, tick);
        let mut news = std::mem::take(&mut carried);
        news.joined.extend(joined(&mut known, tick));
        news.left.extend(&tick.left);
        for s in &tick.sources {
            join(&mut known, &mut news.joined, s.source, EntityKind::Source);
            delivered += u128::from(s.wh);
            news.outputs.push(SourceOutput {
                source: s.source,
                start_ms: s.start_ms.unwrap_or(before),
                end_ms: s.end_ms.unwrap_or(now),
                wh: s.wh,
            });
        }
        news.transfers.extend(tick.paid.iter().map(|p| Transfer {
            entity: None,
            amount: p.amount,
            at_ms: now,
            incoming: true,
        }));
        let input = books.producer_input(now, &settings, news.clone());
        let report = report(n + 1, now, strategy.tick(&input), |d| {
            let mut tally = Tally::default();
            reported += super::producer::check(d, now, &at, &mut tally);
            super::producer::within_delivered(reported, delivered, &at, &mut tally);
            books.apply_producer(d);
            problems(tally)
        });
        if report.decision.is_none() {
            carried = news;
        }
        reports.push(report);
    }
    Ok(reports)
}

fn print_tick<D>(t: &TickReport<D>, body: impl Fn(&D, &mut String)) -> String {
    let mut out = format!("tick {}  {}", t.tick, UnixMs(t.now_ms).utc());
    match (&t.decision, &t.failure) {
        (Some(d), _) => {
            let _ = writeln!(out, "  {} fuel", grouped(t.fuel));
            body(d, &mut out);
        }
        (None, Some(why)) => {
            let _ = writeln!(
                out,
                "\n  FAILS LIVE  {why}\n  (nothing of it applies; its news waits for the next tick)"
            );
        }
        (None, None) => out.push('\n'),
    }
    for line in &t.logs {
        let _ = writeln!(out, "  log         {line}");
    }
    for p in &t.problems {
        let _ = writeln!(out, "  PROBLEM     {p}");
    }
    out
}

/// What every decision carries: the cells that changed, the state, metrics.
fn print_books(
    cells: &crate::strategy::CellBatch,
    state: &[u8],
    metrics: &[crate::strategy::Metric],
    out: &mut String,
) {
    for (e, words) in cells.entity.iter().zip(cells.words.chunks(4)) {
        let _ = writeln!(out, "  cell        {e}: {words:?}");
    }
    let _ = writeln!(out, "  state       {} bytes", state.len());
    if !metrics.is_empty() {
        let all: Vec<String> = metrics
            .iter()
            .map(|m| format!("{} {}", m.name, m.value))
            .collect();
        let _ = writeln!(out, "  metrics     {}", all.join(" · "));
    }
}

fn grid_body(d: &GridDecision, out: &mut String) {
    for r in d.payment_requests.iter() {
        let _ = writeln!(
            out,
            "  request     consumer {}: {} Wh for {} tokens",
            r.consumer,
            grouped(r.wh),
            grouped(r.owed)
        );
    }
    for p in &d.payouts {
        let _ = writeln!(
            out,
            "  payout      producer {}: {} tokens",
            p.producer,
            grouped(p.amount)
        );
    }
    print_books(&d.cells, &d.state, &d.metrics, out);
}

fn producer_body(d: &ProducerDecision, out: &mut String) {
    for c in &d.commands {
        let _ = writeln!(
            out,
            "  report      [{}, {}): {} Wh for {} tokens",
            UnixMs(c.start_ms).utc(),
            UnixMs(c.end_ms).utc(),
            grouped(c.wh),
            grouped(c.price)
        );
    }
    print_books(&d.cells, &d.state, &d.metrics, out);
}

/// A ticks file, with the file named in its errors.
pub fn read_ticks(path: &std::path::Path) -> anyhow::Result<Vec<Tick>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// `strategy check FILE --ticks TICKS`: a ticks file as a scenario of one's
/// own, after the canned ones. Returns its report line, with every tick that
/// would fail live or break a rule printed in full, and how many did.
pub fn scenario(
    runtime: &Runtime,
    bytes: &[u8],
    path: &std::path::Path,
) -> anyhow::Result<(String, usize)> {
    let ticks = read_ticks(path)?;
    let ran = run(runtime, bytes, &ticks)?;
    let failed = ran.failed();
    let mut text = format!("{}: {} ticks, ", path.display(), ticks.len());
    if failed == 0 {
        text.push_str("every one kept the rules");
    } else {
        let _ = write!(text, "{failed} would fail live or break a rule:");
        for tick in ran.printed(true) {
            text.push('\n');
            text.push_str(&tick);
        }
    }
    Ok((text, failed))
}

/// `powerplug strategy run FILE --ticks TICKS [--json]`: prints each tick; an
/// error if one would fail live or break a rule.
pub fn cli(
    file: &std::path::Path,
    ticks: &std::path::Path,
    cache: &std::path::Path,
    json: bool,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let ticks = read_ticks(ticks)?;
    let runtime = Runtime::new(Limits::DEFAULT, Some(cache))?;
    let ran = run(&runtime, &bytes, &ticks)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&ran)?);
    } else {
        println!("{}", ran.printed(false).join("\n"));
    }
    let failed = ran.failed();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} ticks would fail live or break a rule",
        ticks.len()
    );
    Ok(())
}
