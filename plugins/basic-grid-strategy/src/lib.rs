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
use powerplug_sdk::payout::{Books, Rules, Share};
use powerplug_sdk::{Cell, Config, Error};

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
    payouts: Rules,
}

/// What the grid keeps between ticks: the SDK's money books. Consumers live in
/// cells (there may be 100,000 of them); producers are few and live here.
pub type GridState = Books;

/// A consumer's cell.
#[derive(Debug, Default, Clone, Copy, PartialEq, Cell)]
pub struct ConsumerTotals {
    pub usage_wh: u64,
    pub requested_wh: u64,
    pub owed: u64,
    pub paid: u64,
}

impl ConsumerTotals {
    pub fn outstanding(&self) -> u64 {
        self.owed.saturating_sub(self.paid)
    }
}

impl GridStrategy for BasicGrid {
    type State = GridState;

    fn new(config: &Config<'_>) -> Result<Self, Error> {
        let price_per_kwh = config.u64_or("price-per-kwh", DEFAULT_PRICE_PER_KWH)?;
        let producers = config.u64_or("producer-tokens-per-kwh", 4)?;
        let share = Share::new(producers, price_per_kwh).map_err(|_| {
            "config `producer-tokens-per-kwh`: must not exceed a non-zero `price-per-kwh`"
                .to_owned()
        })?;
        Ok(Self {
            price_per_kwh,
            payouts: Rules::from_config(share, config)?,
        })
    }

    fn tick(
        &self,
        books: &mut GridState,
        tick: &GridTick<'_>,
        out: &mut GridOut,
    ) -> Result<(), Error> {
        // Usage, then one request per consumer that has whole kWh to bill.
        for u in tick.usage {
            out.cells
                .update_as(u.consumer, |c: &mut ConsumerTotals| c.usage_wh += u.wh);
        }
        let (mut billed_wh, mut requested) = (0u64, 0u64);
        let GridOut {
            cells,
            payment_requests,
            ..
        } = &mut *out;
        cells.for_each_changed_as(|consumer, c: &mut ConsumerTotals| {
            let wh = c.usage_wh.saturating_sub(c.requested_wh) / UNIT_WH * UNIT_WH;
            if wh > 0 {
                let owed = (u128::from(wh) * u128::from(self.price_per_kwh) / 1000) as u64;
                c.requested_wh += wh;
                c.owed += owed;
                billed_wh += wh;
                requested += owed;
                payment_requests.push(PaymentRequest { consumer, wh, owed });
            }
        });
        books.requested(&self.payouts, requested);
        out.metric("billed-wh", billed_wh as i64);
        out.metric("requested", requested as i64);

        books.settle(&self.payouts, tick, out, |cells, consumer, amount| {
            cells.update_as(consumer, |c: &mut ConsumerTotals| c.paid += amount)
        });
        Ok(())
    }
}

// `premium` shares the format: the same state and cells, only the price differs.
powerplug_sdk::books_format!("basic-grid@1");
powerplug_sdk::export_grid_strategy!(BasicGrid);

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_sdk::payout::ProducerTotals;

    /// The books are `basic-grid@1` as every earlier version wrote them: the
    /// same fields in the same order, so a swap to or from one keeps them.
    #[test]
    fn the_state_is_encoded_as_basic_grid_at_1() {
        let books = GridState {
            income: 1,
            available: 2,
            running_costs_requested: 3,
            last_payout_ms: 4,
            producers: vec![ProducerTotals {
                index: 5,
                output_wh: 6,
                owed: 7,
                received: 8,
            }],
            producers_received: 9,
        };
        let bytes = powerplug_sdk::state::encode(&books).unwrap();
        assert_eq!(bytes, [1, 2, 3, 4, 1, 5, 6, 7, 8, 9]);
        let cell = ConsumerTotals {
            usage_wh: 1,
            requested_wh: 2,
            owed: 3,
            paid: 4,
        };
        assert_eq!(cell.to_words(), [1, 2, 3, 4]);
    }
}
