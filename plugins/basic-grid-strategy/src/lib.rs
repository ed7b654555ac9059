//! The original proof of concept's grid strategy, with integer money and energy.
//!
//! - Consumers are billed `price-per-kwh` tokens (5) for every *whole* kWh not yet
//!   requested, one request per consumer per tick; the fraction carries over.
//!   (Features `unit-200` and `unit-2000` bill whole 200 Wh or 2000 Wh units at
//!   the same price instead: test variants that carry a different remainder.)
//! - Of what comes in, `producer-tokens-per-kwh`/`price-per-kwh` (4/5) is for the
//!   producers and the rest covers the grid's running costs. The split is taken on
//!   the running total, so no token is lost to rounding.
//! - At most every `payout-interval-ms` (10 s), `floor(available / 40) * 40` is
//!   distributed, each producer getting `floor(distribution * its output / all
//!   output)` by lifetime output; what the floors leave stays available.
//!   Producers' asking prices are ignored, as the original ignored them: a
//!   producer's pay is its share of the output, whatever it asked.

use powerplug_sdk::grid::{GridOut, GridStrategy, GridTick, PaymentRequest};
use powerplug_sdk::{Config, Error, Words};
use serde::{Deserialize, Serialize};

/// Tokens per kWh unless configured. The `premium` feature builds a second,
/// different component of the same rules at 7: a version to swap in (tests,
/// the hot-swap walk-through).
#[cfg(not(feature = "premium"))]
pub const DEFAULT_PRICE_PER_KWH: u64 = 5;
#[cfg(feature = "premium")]
pub const DEFAULT_PRICE_PER_KWH: u64 = 7;

/// The energy billed at once, in Wh; the rest carries over.
#[cfg(not(any(feature = "unit-200", feature = "unit-2000")))]
pub const UNIT_WH: u64 = 1000;
#[cfg(feature = "unit-200")]
pub const UNIT_WH: u64 = 200;
#[cfg(all(feature = "unit-2000", not(feature = "unit-200")))]
pub const UNIT_WH: u64 = 2000;

pub struct BasicGrid {
    price_per_kwh: u64,
    producer_tokens_per_kwh: u64,
    payout_quantum: u64,
    payout_interval_ms: u64,
}

/// What the grid keeps between ticks. Consumers live in cells (there may be
/// 100,000 of them); producers are few and live here.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GridState {
    /// Everything consumers ever paid.
    pub income: u64,
    /// The producers' part of `income` not yet paid out.
    pub available: u64,
    pub running_costs_requested: u64,
    pub last_payout_ms: u64,
    /// Sorted by entity index.
    pub producers: Vec<ProducerTotals>,
    /// The producers' part of `income`, split as each payment came in at the
    /// rates of then: a version with other rates taking over these books
    /// (a swap, a promoted experiment) does not split past income again.
    pub producers_received: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProducerTotals {
    pub index: u32,
    pub output_wh: u64,
    /// Paid out by decision.
    pub owed: u64,
    /// Confirmed by the wallet.
    pub received: u64,
}

/// A consumer's cell.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ConsumerTotals {
    pub usage_wh: u64,
    pub requested_wh: u64,
    pub owed: u64,
    pub paid: u64,
}

impl ConsumerTotals {
    pub fn from_words(w: Words) -> Self {
        Self {
            usage_wh: w[0],
            requested_wh: w[1],
            owed: w[2],
            paid: w[3],
        }
    }

    pub fn to_words(self) -> Words {
        [self.usage_wh, self.requested_wh, self.owed, self.paid]
    }

    pub fn outstanding(&self) -> u64 {
        self.owed.saturating_sub(self.paid)
    }
}

impl GridState {
    fn producer(&mut self, index: u32) -> &mut ProducerTotals {
        let pos = match self.producers.binary_search_by_key(&index, |p| p.index) {
            Ok(pos) => pos,
            Err(pos) => {
                self.producers.insert(
                    pos,
                    ProducerTotals {
                        index,
                        ..Default::default()
                    },
                );
                pos
            }
        };
        &mut self.producers[pos]
    }
}

impl BasicGrid {
    fn producers_part(&self, income: u64) -> u64 {
        mul_div(income, self.producer_tokens_per_kwh, self.price_per_kwh)
    }
}

fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    (u128::from(a) * u128::from(b) / u128::from(c)) as u64
}

impl GridStrategy for BasicGrid {
    type State = GridState;

    fn new(config: &Config<'_>) -> Result<Self, Error> {
        let grid = Self {
            price_per_kwh: config.u64_or("price-per-kwh", DEFAULT_PRICE_PER_KWH)?,
            producer_tokens_per_kwh: config.u64_or("producer-tokens-per-kwh", 4)?,
            payout_quantum: config.u64_or("payout-quantum", 40)?,
            payout_interval_ms: config.u64_or("payout-interval-ms", 10_000)?,
        };
        if grid.price_per_kwh == 0 || grid.producer_tokens_per_kwh > grid.price_per_kwh {
            return Err(
                "config `producer-tokens-per-kwh`: must not exceed a non-zero `price-per-kwh`"
                    .into(),
            );
        }
        if grid.payout_quantum == 0 {
            return Err("config `payout-quantum`: must be at least 1".into());
        }
        Ok(grid)
    }

    fn tick(
        &self,
        state: &mut GridState,
        tick: &GridTick<'_>,
        out: &mut GridOut,
    ) -> Result<(), Error> {
        for &index in tick.left {
            if let Ok(pos) = state.producers.binary_search_by_key(&index, |p| p.index) {
                state.producers.remove(pos);
            }
        }

        // Usage, then one request per consumer that has whole kWh to bill.
        for u in tick.usage {
            out.cells.update(u.consumer, |w| w[0] += u.wh);
        }
        let (mut billed_wh, mut requested) = (0u64, 0u64);
        let GridOut {
            cells,
            payment_requests,
            ..
        } = &mut *out;
        cells.for_each_changed(|consumer, w| {
            let mut c = ConsumerTotals::from_words(*w);
            let wh = c.usage_wh.saturating_sub(c.requested_wh) / UNIT_WH * UNIT_WH;
            if wh > 0 {
                let owed = mul_div(wh, self.price_per_kwh, 1000);
                c.requested_wh += wh;
                c.owed += owed;
                *w = c.to_words();
                billed_wh += wh;
                requested += owed;
                payment_requests.push(PaymentRequest { consumer, wh, owed });
            }
        });
        state.running_costs_requested += requested - self.producers_part(requested);

        for o in tick.output {
            state.producer(o.producer).output_wh += o.wh;
        }

        let income_before = state.income;
        for t in tick.transfers {
            match (t.incoming, t.entity) {
                (true, payer) => {
                    state.income += t.amount;
                    if let Some(consumer) = payer {
                        out.cells.update(consumer, |w| w[3] += t.amount);
                    }
                }
                // A producer that left has no totals any more: its payout was
                // counted when it was decided, and a confirmation arriving
                // after it left must not bring it back as a ghost.
                (false, Some(producer)) => {
                    if let Ok(pos) = state.producers.binary_search_by_key(&producer, |p| p.index) {
                        state.producers[pos].received += t.amount;
                    }
                }
                (false, None) => {}
            }
        }
        let income = state.income - income_before;
        let producers = self.producers_part(state.income) - self.producers_part(income_before);
        state.available += producers;
        state.producers_received += producers;

        let mut paid_out = 0;
        if tick.now_ms.saturating_sub(state.last_payout_ms) >= self.payout_interval_ms {
            state.last_payout_ms = tick.now_ms;
            let distribution = state.available / self.payout_quantum * self.payout_quantum;
            let total_output: u64 = state.producers.iter().map(|p| p.output_wh).sum();
            if distribution > 0 && total_output > 0 {
                for p in &mut state.producers {
                    let amount = mul_div(distribution, p.output_wh, total_output);
                    if amount > 0 {
                        p.owed += amount;
                        paid_out += amount;
                        out.pay(p.index, amount);
                    }
                }
                state.available -= paid_out;
            }
        }

        out.metric("billed-wh", billed_wh as i64);
        out.metric("requested", requested as i64);
        out.metric("income", income as i64);
        out.metric("paid-out", paid_out as i64);
        out.metric("available", state.available as i64);
        out.metric(
            "running-costs-received",
            (state.income - state.producers_received) as i64,
        );
        Ok(())
    }
}

// `premium` shares the format: the same state and cells, only the price differs.
powerplug_sdk::books_format!("basic-grid@1");
powerplug_sdk::export_grid_strategy!(BasicGrid);
