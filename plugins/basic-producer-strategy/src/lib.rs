//! The original proof of concept's producer strategy, with integer energy and money.
//!
//! Time runs in slices of `slice-ms` (30 s). A source's entry belongs to the
//! slice its *end* falls in, as in the original. Each tick, for every slice that
//! has finished since the last tick, the producer reports the entries of the
//! slice `delay-slices` (3) before it, so late source data can still arrive (up
//! to about 90–120 s after its slice ended), priced at `price-per-kwh` (4)
//! tokens; the fraction of a token carries over. A producer idle for more than
//! `idle-slices` (5) restarts its clock instead of reporting the gap. Source
//! output that arrives after its slice was reported is dropped and counted as
//! `late-wh` (the producer host adds it up in `/status`). A slice's report is
//! capped at the 1 GWh the host lets a command claim, the rest counted as
//! `over-limit-wh`: a larger command would fail the tick, and every tick after
//! it (its news waits), so sources reading at their limit together would
//! block their producer.

use powerplug_sdk::producer::{ProducerOut, ProducerStrategy, ProducerTick};
use powerplug_sdk::{Config, Error};
use serde::{Deserialize, Serialize};

/// Tokens asked per kWh unless configured; the `premium` feature builds a
/// second, different component of the same rules at 6 (a version to swap in).
#[cfg(not(feature = "premium"))]
pub const DEFAULT_PRICE_PER_KWH: u64 = 4;
#[cfg(feature = "premium")]
pub const DEFAULT_PRICE_PER_KWH: u64 = 6;

/// The most one output command may claim: the host refuses more.
pub const MAX_REPORT_WH: u64 = 1_000_000_000;

pub struct BasicProducer {
    slice_ms: u64,
    delay_slices: u64,
    idle_slices: u64,
    price_per_kwh: u64,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProducerState {
    /// The last slice the clock reached; `None` until the first tick.
    pub last_slice: Option<u64>,
    /// Source output waiting for its slice's turn: (slice, Wh), sorted by slice.
    pub pending: Vec<(u64, u64)>,
    /// Thousandths of a token not yet asked for.
    pub price_remainder: u64,
    pub received: u64,
}

impl ProducerStrategy for BasicProducer {
    type State = ProducerState;

    fn new(config: &Config<'_>) -> Result<Self, Error> {
        let producer = Self {
            slice_ms: config.u64_or("slice-ms", 30_000)?,
            delay_slices: config.u64_or("delay-slices", 3)?,
            idle_slices: config.u64_or("idle-slices", 5)?,
            price_per_kwh: config.u64_or("price-per-kwh", DEFAULT_PRICE_PER_KWH)?,
        };
        if producer.slice_ms == 0 {
            return Err("config `slice-ms`: must be at least 1".into());
        }
        Ok(producer)
    }

    fn tick(
        &self,
        state: &mut ProducerState,
        tick: &ProducerTick<'_>,
        out: &mut ProducerOut,
    ) -> Result<(), Error> {
        for o in tick.outputs {
            let slice = o.end_ms / self.slice_ms;
            match state.pending.binary_search_by_key(&slice, |p| p.0) {
                Ok(pos) => state.pending[pos].1 += o.wh,
                Err(pos) => state.pending.insert(pos, (slice, o.wh)),
            }
        }

        let now = tick.now_ms / self.slice_ms;
        let (mut reported_wh, mut asked, mut over_limit_wh) = (0u64, 0u64, 0u64);
        match state.last_slice {
            Some(last) if now >= last && now - last <= self.idle_slices => {
                // `slice` has begun, so the one before it has finished; its
                // turn is `delay_slices` slices back.
                for slice in last + 1..=now {
                    let Some(target) = slice.checked_sub(1 + self.delay_slices) else {
                        continue;
                    };
                    let Ok(pos) = state.pending.binary_search_by_key(&target, |p| p.0) else {
                        continue;
                    };
                    let (_, wh) = state.pending.remove(pos);
                    let over = wh.saturating_sub(MAX_REPORT_WH);
                    over_limit_wh += over;
                    let wh = wh - over;
                    // Sources that produced nothing: no command (the original sent one).
                    if wh == 0 {
                        continue;
                    }
                    let milli = u128::from(wh) * u128::from(self.price_per_kwh)
                        + u128::from(state.price_remainder);
                    let price = u64::try_from(milli / 1000).map_err(|_| "price overflows u64")?;
                    state.price_remainder = (milli % 1000) as u64;
                    // The report names the slice, as the original's did: the
                    // one its entries' ends fell in.
                    let start = target * self.slice_ms;
                    out.report_output(start, start + self.slice_ms, wh, price);
                    reported_wh += wh;
                    asked += price;
                }
            }
            // First tick, idle too long, or a clock that went backwards: restart.
            _ => {}
        }
        state.last_slice = Some(now);

        // Slices whose turn has come and gone will never be reported.
        let mut late_wh = 0;
        if let Some(done) = now.checked_sub(1 + self.delay_slices) {
            state.pending.retain(|&(slice, wh)| {
                let keep = slice > done;
                if !keep {
                    late_wh += wh;
                }
                keep
            });
        }

        for t in tick.transfers.iter().filter(|t| t.incoming) {
            state.received += t.amount;
        }

        out.metric("reported-wh", reported_wh as i64);
        out.metric("asked", asked as i64);
        out.metric("late-wh", late_wh as i64);
        out.metric("over-limit-wh", over_limit_wh as i64);
        out.metric("received", state.received as i64);
        Ok(())
    }
}

powerplug_sdk::books_format!("basic-producer@1");
powerplug_sdk::export_producer_strategy!(BasicProducer);
