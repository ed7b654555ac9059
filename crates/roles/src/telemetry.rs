//! What a host did since it started, for `/metrics` and the console: ticks by
//! outcome, how long they took and the fuel they burnt, how long channel
//! polls took, and the last ticks in a ring. Kept in memory (Prometheus
//! counters may start again at zero; the totals that must survive a restart
//! are the stored [`crate::counter`]s), per host rather than in a global
//! recorder, so that hosts sharing a process (the tests, the demo) keep
//! their own figures.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Ticks the ring keeps: a day of 30-second ticks.
pub const RECENT_TICKS: usize = 2_880;

/// Tick and poll durations, seconds.
const SECONDS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Fuel per tick (wasmtime's units, about one per instruction).
const FUEL: &[f64] = &[1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// A histogram with fixed bounds, as Prometheus reads one.
pub struct Histogram {
    pub bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum, in millionths of the unit (integer: no float to add up).
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64, micros: u64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// (upper bound, observations at or below it) for each bound, the
    /// observation count and their sum.
    pub fn read(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut below = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                below += c.load(Relaxed);
                (*b, below)
            })
            .collect();
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        (buckets, self.count.load(Relaxed), sum)
    }
}

/// How a tick ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Decided and carried out.
    Decided,
    /// The strategy failed or its decision was refused: nothing applied.
    Failed,
    /// The host could not run it (its store, say).
    Error,
}

impl Ended {
    pub const ALL: [Ended; 3] = [Ended::Decided, Ended::Failed, Ended::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Decided => "decided",
            Ended::Failed => "failed",
            Ended::Error => "error",
        }
    }
}

/// One tick as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TickSeen {
    pub tick: u64,
    /// The tick's time on the role's clock, ms since 1970.
    pub at_ms: u64,
    pub duration_us: u64,
    pub fuel: u64,
    /// The strategy version that decided (as hex in JSON).
    pub strategy: powerplug_strategy::Sha256,
    pub ended: Ended,
    /// Why it failed.
    pub why: Option<String>,
    pub usage_wh: u64,
    pub output_wh: u64,
    pub requested: u64,
    pub paid_out: u64,
}

pub struct Telemetry {
    ticks: [AtomicU64; 3],
    pub tick_seconds: Histogram,
    pub fuel: Histogram,
    pub poll_seconds: Histogram,
    recent: Mutex<VecDeque<TickSeen>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            ticks: Default::default(),
            tick_seconds: Histogram::new(SECONDS),
            fuel: Histogram::new(FUEL),
            poll_seconds: Histogram::new(SECONDS),
            recent: Mutex::new(VecDeque::new()),
        }
    }
}

/// A reason kept with a failed tick: enough to read, bounded.
const WHY_BYTES: usize = 500;

impl Telemetry {
    pub fn tick(&self, mut seen: TickSeen) {
        self.ticks[seen.ended as usize].fetch_add(1, Relaxed);
        self.tick_seconds
            .observe(seen.duration_us as f64 / 1e6, seen.duration_us);
        if seen.ended == Ended::Decided {
            self.fuel.observe(seen.fuel as f64, seen.fuel * 1_000_000);
        }
        if let Some(why) = seen.why.as_mut()
            && why.len() > WHY_BYTES
        {
            let mut end = WHY_BYTES;
            while !why.is_char_boundary(end) {
                end -= 1;
            }
            why.truncate(end);
            why.push('…');
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_TICKS {
            recent.pop_front();
        }
        recent.push_back(seen);
    }

    pub fn poll(&self, took: std::time::Duration) {
        let us = took.as_micros() as u64;
        self.poll_seconds.observe(us as f64 / 1e6, us);
    }

    pub fn ticks(&self, ended: Ended) -> u64 {
        self.ticks[ended as usize].load(Relaxed)
    }

    /// The newest ticks first, at most `limit`, older than tick `before`.
    pub fn recent(&self, limit: usize, before: Option<u64>) -> Vec<TickSeen> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .rev()
            .filter(|t| before.is_none_or(|b| t.tick < b))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(tick: u64, ended: Ended, duration_us: u64) -> TickSeen {
        TickSeen {
            tick,
            at_ms: tick * 1000,
            duration_us,
            fuel: 2_000,
            strategy: powerplug_strategy::Sha256([7; 32]),
            ended,
            why: (ended != Ended::Decided).then(|| "é".repeat(400)),
            usage_wh: 1,
            output_wh: 2,
            requested: 3,
            paid_out: 4,
        }
    }

    #[test]
    fn buckets_are_cumulative_and_the_ring_keeps_the_newest() {
        let t = Telemetry::default();
        t.tick(seen(1, Ended::Decided, 50));
        t.tick(seen(2, Ended::Decided, 3_000));
        t.tick(seen(3, Ended::Failed, 20_000_000));
        let (buckets, count, sum) = t.tick_seconds.read();
        assert_eq!(count, 3);
        assert!((sum - 20.00305).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (0.000_1, 1));
        assert_eq!(buckets.iter().find(|b| b.0 == 0.005).map(|b| b.1), Some(2));
        // 20 s is above every bound: only in the count (`+Inf`).
        assert_eq!(buckets.last().map(|b| b.1), Some(2));
        assert_eq!(t.ticks(Ended::Failed), 1);
        assert_eq!(t.fuel.read().1, 2, "fuel of decided ticks only");
        let failed = &t.recent(1, None)[0];
        assert!(
            failed
                .why
                .as_ref()
                .is_some_and(|w| w.len() <= WHY_BYTES + 3)
        );
        for tick in 4..(RECENT_TICKS as u64 + 10) {
            t.tick(seen(tick, Ended::Decided, 1));
        }
        let newest = t.recent(5, None);
        assert_eq!(newest[0].tick, RECENT_TICKS as u64 + 9);
        assert_eq!(t.recent(2, Some(100))[0].tick, 99);
        assert_eq!(t.recent(usize::MAX, None).len(), RECENT_TICKS);
    }
}
