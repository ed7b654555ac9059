//! `powerplug strategy check`: a conformance run that any strategy, in any
//! language, must pass before it is uploaded.
//!
//! The component is loaded as a host loads it (world detected from its
//! exports), then driven through canned scenarios of its world under
//! [`Limits::DEFAULT`]: a first tick with nothing in it, a day of a small grid,
//! a busy tick of 1,000 entities and a tick at the largest amounts the host
//! accepts. Every tick runs twice on the same input (a decision may depend on
//! its input alone), and every decision is checked against a model of the
//! money and energy the scenario put in. The first failure of each property is
//! kept with the scenario and tick where it happened.

pub mod fuzz;
mod grid;
mod producer;
pub mod run;

use std::fmt;
use std::time::{Duration, Instant};

use crate::strategy::{
    AMOUNTS_OVERFLOW, CallError, ComponentInfo, Limits, Loaded, Runtime, TickFailure, TickOutcome,
};

/// What `check` verifies, in the order the report lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Property {
    /// A component of a supported world that imports only `log`, and compiles.
    Loads,
    /// No trap, refusal or malformed decision on valid input.
    Decides,
    /// No tick runs out of fuel, time or memory, or returns too large a decision.
    WithinLimits,
    /// The same input twice gives the same decision.
    Deterministic,
    /// No overflow trap at the host's largest accepted amounts, and no amount
    /// in a decision that looks like a negative number wrapped into a `u64`.
    AmountsInRange,
    /// Payouts never exceed the money received, and go to producers only.
    MoneyConserved,
    /// Wh billed or reported never exceed Wh used or generated, and requests go
    /// to consumers only.
    EnergyAccountedFor,
}

impl Property {
    pub const ALL: [Property; 7] = [
        Property::Loads,
        Property::Decides,
        Property::WithinLimits,
        Property::Deterministic,
        Property::AmountsInRange,
        Property::MoneyConserved,
        Property::EnergyAccountedFor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Property::Loads => "loads",
            Property::Decides => "decides every tick",
            Property::WithinLimits => "within the default limits",
            Property::Deterministic => "deterministic",
            Property::AmountsInRange => "amounts in range",
            Property::MoneyConserved => "money conserved",
            Property::EnergyAccountedFor => "energy accounted for",
        }
    }
}

/// The outcome of one property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub property: Property,
    /// `None`: passed (or, after a failed load, not run: see `run`).
    pub failure: Option<String>,
    /// Further failures of the same property after the first.
    pub more: u32,
    pub run: bool,
}

/// What one scenario cost, tick by tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioStats {
    pub name: String,
    /// Ticks decided (each run twice); fewer than planned if one failed.
    pub ticks: u32,
    pub planned: u32,
    pub fuel_mean: u64,
    pub fuel_max: u64,
    /// Instantiation and call, as the host pays it.
    pub time_mean: Duration,
    pub time_max: Duration,
}

/// Everything `check` found.
#[derive(Debug, Clone)]
pub struct Report {
    pub info: Option<ComponentInfo>,
    pub load_time: Duration,
    pub limits: Limits,
    pub verdicts: Vec<Verdict>,
    pub scenarios: Vec<ScenarioStats>,
    /// Random traces, when asked for (`--fuzz`).
    pub fuzz: Option<fuzz::FuzzReport>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.run && v.failure.is_none())
            && self.fuzz.as_ref().is_none_or(|f| f.failure.is_none())
    }

    pub fn failed(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| v.failure.is_some())
    }

    pub fn verdict(&self, property: Property) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.property == property)
    }
}

/// Runs the conformance check of `bytes` on `runtime`, whose limits should be
/// [`Limits::DEFAULT`] (the report says which it used).
pub fn check(runtime: &Runtime, bytes: &[u8]) -> Report {
    check_fuzzed(runtime, bytes, 0, &mut |_| {})
}

/// [`check`], then `traces` random traces of the strategy's world (see
/// [`fuzz`]); none with 0. `progress` hears how many traces have run.
pub fn check_fuzzed(
    runtime: &Runtime,
    bytes: &[u8],
    traces: u32,
    progress: &mut dyn FnMut(u32),
) -> Report {
    let mut tally = Tally::default();
    let start = Instant::now();
    let loaded = runtime.load(bytes);
    let load_time = start.elapsed();
    let info = loaded.as_ref().ok().map(|l| l.info().clone());
    let mut fuzzed = None;
    match loaded {
        Ok(Loaded::Grid(strategy)) => {
            grid::run(&strategy, &mut tally);
            fuzzed = (traces > 0).then(|| fuzz::grid(&strategy, traces, 1, progress));
        }
        Ok(Loaded::Producer(strategy)) => {
            producer::run(&strategy, &mut tally);
            fuzzed = (traces > 0).then(|| fuzz::producer(&strategy, traces, 1, progress));
        }
        Err(e) => tally.fail(Property::Loads, e.to_string()),
    }
    let loaded = info.is_some();
    let verdicts = Property::ALL
        .iter()
        .map(|&property| {
            let failure = tally.failures.iter().find(|f| f.0 == property);
            Verdict {
                property,
                failure: failure.map(|f| f.1.clone()),
                more: failure.map_or(0, |f| f.2),
                run: loaded || property == Property::Loads,
            }
        })
        .collect();
    Report {
        info,
        load_time,
        limits: *runtime.limits(),
        verdicts,
        scenarios: tally.scenarios,
        fuzz: fuzzed,
    }
}

/// Failures and costs as the scenarios run.
#[derive(Default)]
pub(crate) struct Tally {
    /// (property, first failure, how many more).
    failures: Vec<(Property, String, u32)>,
    scenarios: Vec<ScenarioStats>,
    /// Sums for the scenario running now.
    fuel_sum: u64,
    time_sum: Duration,
}

/// Amounts at or above this are what a negative number becomes when a guest
/// wraps it into a `u64`; no real amount of Wh or tokens comes near it.
pub(crate) const WRAPPED_NEGATIVE: u64 = 1 << 63;

impl Tally {
    pub(crate) fn fail(&mut self, property: Property, why: String) {
        match self.failures.iter_mut().find(|f| f.0 == property) {
            Some(f) => f.2 += 1,
            None => self.failures.push((property, why, 0)),
        }
    }

    /// The first failure filed, if any.
    pub(crate) fn first_failure(&self) -> Option<(Property, String)> {
        self.failures.first().map(|f| (f.0, f.1.clone()))
    }

    pub(crate) fn start(&mut self, name: &str, planned: u32) {
        self.fuel_sum = 0;
        self.time_sum = Duration::ZERO;
        self.scenarios.push(ScenarioStats {
            name: name.to_owned(),
            ticks: 0,
            planned,
            fuel_mean: 0,
            fuel_max: 0,
            time_mean: Duration::ZERO,
            time_max: Duration::ZERO,
        });
    }

    /// Runs one tick twice through `call` and checks that it decided, within
    /// the limits, the same both times. `None` if it did not decide: the
    /// scenario cannot go on without the state it would have returned.
    pub(crate) fn tick<D: PartialEq>(
        &mut self,
        at: &str,
        extreme: bool,
        call: impl Fn() -> Result<TickOutcome<D>, TickFailure>,
    ) -> Option<D> {
        let start = Instant::now();
        let first = call();
        let elapsed = start.elapsed();
        let outcome = match first {
            Ok(outcome) => outcome,
            Err(failure) => {
                let property = match failure.error {
                    CallError::OutOfFuel { .. }
                    | CallError::Deadline { .. }
                    | CallError::MemoryLimit { .. }
                    | CallError::DecisionTooLarge { .. } => Property::WithinLimits,
                    CallError::Trap { .. } if extreme => Property::AmountsInRange,
                    CallError::Malformed(ref m) if m.contains(AMOUNTS_OVERFLOW) => {
                        Property::AmountsInRange
                    }
                    _ => Property::Decides,
                };
                self.fail(property, format!("{at}: {failure}"));
                return None;
            }
        };
        match call() {
            Ok(again) if again.decision == outcome.decision => {}
            Ok(_) => self.fail(
                Property::Deterministic,
                format!("{at}: the same input decided differently the second time"),
            ),
            Err(failure) => self.fail(
                Property::Deterministic,
                format!("{at}: the same input failed the second time: {failure}"),
            ),
        }
        self.fuel_sum += outcome.fuel_used;
        self.time_sum += elapsed;
        if let Some(s) = self.scenarios.last_mut() {
            s.ticks += 1;
            s.fuel_max = s.fuel_max.max(outcome.fuel_used);
            s.time_max = s.time_max.max(elapsed);
            s.fuel_mean = self.fuel_sum / u64::from(s.ticks);
            s.time_mean = self.time_sum / s.ticks;
        }
        Some(outcome.decision)
    }

    /// Flags amounts that look like wrapped negative numbers.
    pub(crate) fn in_range(&mut self, at: &str, what: &str, amounts: impl Iterator<Item = u64>) {
        if let Some(bad) = amounts.into_iter().find(|&a| a >= WRAPPED_NEGATIVE) {
            self.fail(
                Property::AmountsInRange,
                format!(
                    "{at}: {what} of {bad} (as a signed number {}): a negative amount wrapped?",
                    bad as i64
                ),
            );
        }
    }
}

/// splitmix64: scenarios are the same on every machine and every run.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn between(&mut self, (lo, hi): (u64, u64)) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        lo + (z ^ (z >> 31)) % (hi - lo + 1)
    }
}

/// 1,234,567 for the table.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(info) = &self.info {
            writeln!(
                f,
                "strategy  {} ({} bytes, sha256 {}), loaded in {}",
                info.world,
                grouped(info.size as u64),
                &info.sha256.short(),
                ms(self.load_time)
            )?;
        }
        let l = &self.limits;
        writeln!(
            f,
            "limits    {} fuel, {:?} deadline, {} MiB memory, {} MiB decision per tick{}\n",
            grouped(l.fuel),
            l.deadline,
            l.memory_bytes >> 20,
            l.decision_bytes >> 20,
            if *l == Limits::DEFAULT {
                " (the defaults)"
            } else {
                " (NOT the defaults)"
            }
        )?;
        writeln!(f, "{:<28} result", "check")?;
        for v in &self.verdicts {
            let result = match (&v.failure, v.run) {
                (_, false) => "not run".to_owned(),
                (None, true) => "pass".to_owned(),
                (Some(why), true) if v.more > 0 => {
                    format!("FAIL  {why} (and {} more)", v.more)
                }
                (Some(why), true) => format!("FAIL  {why}"),
            };
            writeln!(f, "{:<28} {result}", v.property.name())?;
        }
        if !self.scenarios.is_empty() {
            writeln!(
                f,
                "\n{:<38} {:>9}  {:>29}  {:>27}",
                "scenario", "ticks", "fuel per tick: mean / max", "time per tick: mean / max"
            )?;
            for s in &self.scenarios {
                let ticks = if s.ticks == s.planned {
                    s.ticks.to_string()
                } else {
                    format!("{} of {}", s.ticks, s.planned)
                };
                writeln!(
                    f,
                    "{:<38} {:>9}  {:>29}  {:>27}",
                    s.name,
                    ticks,
                    format!("{} / {}", grouped(s.fuel_mean), grouped(s.fuel_max)),
                    format!("{} / {}", ms(s.time_mean), ms(s.time_max)),
                )?;
            }
        }
        if let Some(fz) = &self.fuzz {
            let what = format!(
                "\nfuzz      {} random traces, {} ticks",
                grouped(u64::from(fz.traces)),
                grouped(fz.ticks)
            );
            match &fz.failure {
                None => writeln!(f, "{what}: pass")?,
                Some((property, why, trace)) => write!(
                    f,
                    "{what}: FAIL  {}: {why}\nthe shortest trace that shows it:\n{trace}",
                    property.name()
                )?,
            }
        }
        let failed = self.failed().count();
        if failed == 0 && self.passed() {
            write!(f, "\nall {} checks passed", self.verdicts.len())
        } else {
            write!(f, "\n{failed} of {} checks failed", self.verdicts.len())
        }
    }
}

/// `powerplug strategy check FILE [--fuzz N] [--ticks TICKS …]`: prints the
/// report, then each ticks file's; an error if a check failed.
pub fn cli(
    file: &std::path::Path,
    cache: &std::path::Path,
    fuzz: u32,
    ticks: &[std::path::PathBuf],
) -> anyhow::Result<()> {
    use anyhow::Context;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let runtime = Runtime::new(Limits::DEFAULT, Some(cache))?;
    // A trace of a Python strategy takes a second or so: say how far it is.
    let started = Instant::now();
    let mut last = Instant::now();
    let report = check_fuzzed(&runtime, &bytes, fuzz, &mut |done| {
        if last.elapsed() >= Duration::from_secs(2) || done == fuzz {
            last = Instant::now();
            eprintln!(
                "fuzz: {done} of {fuzz} traces, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    });
    println!("{report}");
    let mut failed: Vec<String> = report
        .failed()
        .map(|v| v.property.name().to_owned())
        .collect();
    if report.fuzz.as_ref().is_some_and(|f| f.failure.is_some()) {
        failed.push("fuzz".into());
    }
    // Scenarios of one's own, as `strategy run` runs them.
    if !ticks.is_empty() {
        println!("\nyour scenarios");
    }
    for path in ticks {
        let (text, broke) = run::scenario(&runtime, &bytes, path)?;
        println!("{text}");
        if broke > 0 {
            failed.push(path.display().to_string());
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "{} failed the conformance check: {}",
        file.display(),
        failed.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::strategy::{CellBatch, GridDecision, PaymentRequestBatch};

    fn decided(state: u8) -> Result<TickOutcome<GridDecision>, TickFailure> {
        Ok(TickOutcome {
            decision: GridDecision {
                state: vec![state],
                cells: CellBatch::from_entries([]),
                payment_requests: PaymentRequestBatch {
                    consumer: vec![],
                    wh: vec![],
                    owed: vec![],
                },
                payouts: vec![],
                metrics: vec![],
            },
            fuel_used: 7,
            elapsed: Duration::ZERO,
            logs: vec![],
            logs_dropped: 0,
        })
    }

    fn failed(error: CallError) -> Result<TickOutcome<GridDecision>, TickFailure> {
        Err(error.into())
    }

    // No guest can decide differently on the same input under this host (a
    // fresh instance per tick, no imports but `log`), so this is where the
    // determinism check is shown to fail.
    #[test]
    fn a_second_run_that_decides_otherwise_fails_determinism_once_per_tick() {
        let mut tally = Tally::default();
        tally.start("s", 2);
        let runs = Cell::new(0);
        let flaky = || {
            runs.set(runs.get() + 1);
            decided(runs.get())
        };
        assert!(tally.tick("s, tick 1", false, flaky).is_some());
        assert!(tally.tick("s, tick 2", false, || decided(1)).is_some());
        assert_eq!(runs.get(), 2, "every tick runs twice");
        assert_eq!(tally.failures.len(), 1);
        let (property, why, more) = &tally.failures[0];
        assert_eq!(*property, Property::Deterministic);
        assert!(why.starts_with("s, tick 1: "), "{why}");
        assert_eq!(*more, 0);
        assert_eq!(tally.scenarios[0].ticks, 2);
        assert_eq!(tally.scenarios[0].fuel_max, 7);
    }

    #[test]
    fn failures_are_filed_under_the_property_they_break() {
        let cases = [
            (
                CallError::OutOfFuel { budget: 1 },
                false,
                Property::WithinLimits,
            ),
            (
                CallError::MemoryLimit { limit: 1 },
                false,
                Property::WithinLimits,
            ),
            (CallError::Refused("no".into()), false, Property::Decides),
            (
                CallError::Trap {
                    message: "x".into(),
                },
                false,
                Property::Decides,
            ),
            // At the host's largest amounts, a trap is an overflow.
            (
                CallError::Trap {
                    message: "x".into(),
                },
                true,
                Property::AmountsInRange,
            ),
        ];
        for (error, extreme, property) in cases {
            let mut tally = Tally::default();
            tally.start("s", 1);
            assert!(tally.tick("s", extreme, || failed(error.clone())).is_none());
            assert_eq!(tally.failures[0].0, property, "{error}");
            assert_eq!(tally.scenarios[0].ticks, 0);
        }
    }

    #[test]
    fn amounts_that_are_wrapped_negatives_are_flagged() {
        let mut tally = Tally::default();
        tally.in_range("t", "a payout", [5, WRAPPED_NEGATIVE - 1].into_iter());
        assert!(tally.failures.is_empty());
        tally.in_range("t", "a payout", [(-3i64) as u64].into_iter());
        assert!(
            tally.failures[0].1.contains("-3"),
            "{}",
            tally.failures[0].1
        );
    }
}
