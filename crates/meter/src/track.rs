//! A device's cumulative energy counter turned into energy over time.
//!
//! Each message carries the counter's total. The difference to the last one
//! is the energy of the time between them, spread evenly over that time (a
//! [`Span`]); a reading takes what of each span falls before its end. The
//! arithmetic is integer and telescoping, so however the spans are cut into
//! readings, they add up to the counter's difference to the Wh.
//!
//! - The first message is the baseline: what the counter held before the
//!   host knew the device was used before it joined.
//! - A counter that went down was reset (a Shelly counts from its last boot,
//!   a Tasmota after `EnergyReset`): its new total is the energy since.
//! - A difference more than the device's power limit could have used in the
//!   time is refused and counted, and the counter is taken as the new
//!   baseline (one glitch costs its own interval, not every later one).
//!   Messages arriving in a burst (a broker handing over what it kept while
//!   the host was down) are judged together, over the time since the message
//!   before the burst: each alone would look like a megawatt.
//! - A message repeated (a broker's redelivery after a restart) adds nothing:
//!   its counter is the one already taken.
//! - Energy never goes to time already read: a span starts where the last
//!   reading ended at the earliest.

use serde::{Deserialize, Serialize};

/// The most spans kept per device: more (a device publishing faster than
/// the host reads) are merged, keeping their energy.
pub const MAX_SPANS: usize = 64;

/// A device's power limit is checked over at least this long, so that two
/// messages a millisecond apart do not look like a megawatt.
pub const MIN_ELAPSED_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub at_ms: u64,
    pub total_wh: u64,
}

/// `wh` spread evenly over `[start_ms, end_ms)`, `taken` of it read already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start_ms: u64,
    pub end_ms: u64,
    pub wh: u64,
    pub taken: u64,
}

impl Span {
    /// Of the span's energy, how much falls before `at_ms`.
    fn before(&self, at_ms: u64) -> u64 {
        let at = at_ms.clamp(self.start_ms, self.end_ms);
        let part = u128::from(self.wh) * u128::from(at - self.start_ms)
            / u128::from(self.end_ms - self.start_ms);
        part as u64
    }
}

/// One device's state: kept in the store, written with every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    pub last: Option<Sample>,
    pub spans: Vec<Span>,
    /// Where the last reading ended.
    pub taken_until: u64,
    /// The time the power limit is judged over, and the energy counted in it.
    pub window: Window,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_ms: u64,
    pub wh: u64,
}

/// What a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The first: the counter's baseline.
    Baseline,
    /// `wh` counted. `reset`: the counter had gone down; `gap`: the last
    /// message was longer ago than the feed's `max_delay_ms`.
    Counted { wh: u64, reset: bool, gap: bool },
    /// More than the power limit allows: `wh` not counted.
    Implausible { wh: u64 },
}

impl Track {
    /// Takes a message: the counter read `total_wh` at `at_ms`. `max_w`: the
    /// device's power limit; `gap_ms`: silence longer than this is a gap.
    pub fn add(&mut self, at_ms: u64, total_wh: u64, max_w: u64, gap_ms: u64) -> Outcome {
        let Some(last) = self.last else {
            self.last = Some(Sample { at_ms, total_wh });
            return Outcome::Baseline;
        };
        let at_ms = at_ms.max(last.at_ms);
        let (wh, reset) = match total_wh.checked_sub(last.total_wh) {
            Some(wh) => (wh, false),
            None => (total_wh, true),
        };
        self.last = Some(Sample { at_ms, total_wh });
        let elapsed = at_ms - last.at_ms;
        if elapsed >= MIN_ELAPSED_MS {
            self.window = Window {
                start_ms: last.at_ms,
                wh: 0,
            };
        }
        let judged = self.window.wh.saturating_add(wh);
        let over = (at_ms - self.window.start_ms).max(MIN_ELAPSED_MS);
        if u128::from(judged) * 3_600_000 > u128::from(max_w) * u128::from(over) {
            return Outcome::Implausible { wh };
        }
        self.window.wh = judged;
        if wh > 0 {
            let start_ms = last.at_ms.max(self.taken_until);
            let end_ms = at_ms.max(start_ms + 1);
            self.spans.push(Span {
                start_ms,
                end_ms,
                wh,
                taken: 0,
            });
            if self.spans.len() > MAX_SPANS {
                self.merge_oldest();
            }
        }
        Outcome::Counted {
            wh,
            reset,
            gap: elapsed > gap_ms,
        }
    }

    /// Takes the energy that falls before `until_ms` and was not taken yet.
    pub fn take(&mut self, until_ms: u64) -> u64 {
        let mut wh = 0;
        for span in &mut self.spans {
            let due = span.before(until_ms);
            wh += due - span.taken;
            span.taken = due;
        }
        self.spans.retain(|s| s.taken < s.wh);
        self.taken_until = self.taken_until.max(until_ms);
        wh
    }

    /// The energy counted and not taken yet.
    pub fn untaken(&self) -> u64 {
        self.spans.iter().map(|s| s.wh - s.taken).sum()
    }

    /// The oldest two spans as one, with what is left of both.
    fn merge_oldest(&mut self) {
        let second = self.spans.remove(1);
        let first = &mut self.spans[0];
        *first = Span {
            start_ms: first.start_ms.max(self.taken_until),
            end_ms: second.end_ms,
            wh: (first.wh - first.taken) + (second.wh - second.taken),
            taken: 0,
        };
        if first.end_ms <= first.start_ms {
            first.end_ms = first.start_ms + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_W: u64 = 10_000;
    const GAP: u64 = 60_000;

    #[test]
    fn the_first_message_is_the_baseline_and_later_ones_are_spread_over_time() {
        let mut t = Track::default();
        assert_eq!(t.add(10_000, 5_000, MAX_W, GAP), Outcome::Baseline);
        // 30 Wh over 30 s (3.6 kW): 10 Wh in each 10 s.
        assert_eq!(
            t.add(40_000, 5_030, MAX_W, GAP),
            Outcome::Counted {
                wh: 30,
                reset: false,
                gap: false
            }
        );
        assert_eq!(t.take(20_000), 10);
        assert_eq!(t.take(30_000), 10);
        assert_eq!(t.take(40_000), 10);
        assert_eq!(t.take(50_000), 0);
        assert!(t.spans.is_empty());
    }

    #[test]
    fn readings_cut_anywhere_add_up_to_the_counter_to_the_wh() {
        let mut t = Track::default();
        t.add(0, 0, u64::MAX / 4_000_000, GAP);
        let mut total = 0;
        let mut taken = 0;
        let mut at = 0;
        for i in 1..200u64 {
            at += 7_001 + (i * 37) % 5_000;
            total += (i * 7919) % 97;
            t.add(at, total, MAX_W * 100, GAP);
            if i % 3 == 0 {
                taken += t.take(at - (i * 13) % 4_000);
            }
        }
        taken += t.take(u64::MAX);
        assert_eq!(taken, total);
    }

    #[test]
    fn a_reset_counts_the_new_total_and_a_repeat_counts_nothing() {
        let mut t = Track::default();
        t.add(0, 1_000, MAX_W, GAP);
        t.add(60_000, 1_050, MAX_W, GAP);
        // Redelivered: the same counter again.
        assert_eq!(
            t.add(60_000, 1_050, MAX_W, GAP),
            Outcome::Counted {
                wh: 0,
                reset: false,
                gap: false
            }
        );
        // Rebooted: counts from zero.
        assert_eq!(
            t.add(120_000, 20, MAX_W, GAP),
            Outcome::Counted {
                wh: 20,
                reset: true,
                gap: false
            }
        );
        assert_eq!(t.take(u64::MAX), 70);
    }

    #[test]
    fn an_implausible_jump_is_refused_and_becomes_the_baseline() {
        let mut t = Track::default();
        t.add(0, 1_000, MAX_W, GAP);
        // 10 kW for 60 s is 166 Wh: a million is a glitch.
        assert_eq!(
            t.add(60_000, 1_001_000, MAX_W, GAP),
            Outcome::Implausible { wh: 1_000_000 }
        );
        assert_eq!(
            t.add(120_000, 1_001_100, MAX_W, GAP),
            Outcome::Counted {
                wh: 100,
                reset: false,
                gap: false
            }
        );
        assert_eq!(t.take(u64::MAX), 100);
    }

    #[test]
    fn a_burst_is_judged_over_the_time_before_it() {
        let mut t = Track::default();
        t.add(0, 0, MAX_W, GAP);
        // Kept by the broker for ten minutes (10 kW: up to 1,666 Wh), then
        // handed over within milliseconds.
        for (i, total) in [400, 800, 1_200, 1_600].into_iter().enumerate() {
            let at = 600_000 + i as u64;
            assert!(matches!(
                t.add(at, total, MAX_W, GAP),
                Outcome::Counted { .. }
            ));
        }
        assert_eq!(
            t.add(600_010, 2_000, MAX_W, GAP),
            Outcome::Implausible { wh: 400 },
            "past what ten minutes allow"
        );
        assert_eq!(t.take(u64::MAX), 1_600);
    }

    #[test]
    fn energy_after_a_gap_goes_to_time_not_read_yet() {
        let mut t = Track::default();
        t.add(0, 0, MAX_W, GAP);
        // Read up to 90 s while the device was silent (or the host down).
        assert_eq!(t.take(90_000), 0);
        assert_eq!(
            t.add(120_000, 90, MAX_W, GAP),
            Outcome::Counted {
                wh: 90,
                reset: false,
                gap: true
            }
        );
        assert_eq!(t.spans[0].start_ms, 90_000, "not before the last reading");
        assert_eq!(t.take(105_000), 45);
        assert_eq!(t.take(120_000), 45);
    }

    #[test]
    fn spans_stay_few_and_keep_their_energy() {
        let mut t = Track::default();
        t.add(0, 0, u64::MAX / 4_000_000, GAP);
        for i in 1..=1_000u64 {
            t.add(i * 1_000, i * 3, u64::MAX / 4_000_000, GAP);
        }
        assert!(t.spans.len() <= MAX_SPANS);
        assert_eq!(t.untaken(), 3_000);
        assert_eq!(t.take(500_000) + t.take(1_000_000), 3_000);
    }
}
