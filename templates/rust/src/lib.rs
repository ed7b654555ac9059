//! {{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
//! unless configured) for every whole kWh it used; the fraction carries over.
//! Of what consumers pay, `producer-tokens-per-kwh` (4) of every
//! `price-per-kwh` goes to the producers, paid out by their share of the
//! output (the SDK's `payout` module).
//!
//! Cells: a [`Consumer`] per consumer; state: the SDK's money [`Books`]. All
//! money and energy are integers (tokens, Wh). See docs/strategy-guide.md in
//! the Powerplug checkout for the contract.

use powerplug_sdk::grid::{GridOut, GridStrategy, GridTick, PaymentRequest};
use powerplug_sdk::payout::{Books, Rules, Share};
use powerplug_sdk::{Cell, Config, Error};

pub struct FlatRate {
    price_per_kwh: u64,
    payouts: Rules,
}

/// A consumer's cell: fields packed into the cell's four words
/// (narrower ones, `u32`, `u8`, `bool`, share a word).
#[derive(Debug, Default, Clone, Copy, PartialEq, Cell)]
pub struct Consumer {
    pub billed_wh: u64,
    pub carried_wh: u64,
    pub owed: u64,
    pub paid: u64,
}

impl GridStrategy for FlatRate {
    /// Anything serde can encode; per-consumer data goes in cells.
    type State = Books;

    fn new(config: &Config<'_>) -> Result<Self, Error> {
        let price_per_kwh = config.u64_or("price-per-kwh", 5)?;
        let producers = config.u64_or("producer-tokens-per-kwh", 4)?;
        let share = Share::new(producers, price_per_kwh)
            .map_err(|e| format!("config `producer-tokens-per-kwh`: {e}"))?;
        Ok(Self {
            price_per_kwh,
            payouts: Rules::from_config(share, config)?,
        })
    }

    fn tick(&self, books: &mut Books, tick: &GridTick<'_>, out: &mut GridOut) -> Result<(), Error> {
        for u in tick.usage {
            out.cells
                .update_as(u.consumer, |c: &mut Consumer| c.carried_wh += u.wh);
        }
        let (mut billed_wh, mut requested) = (0, 0);
        let GridOut {
            cells,
            payment_requests,
            ..
        } = &mut *out;
        cells.for_each_changed_as(|consumer, c: &mut Consumer| {
            let kwh = c.carried_wh / 1000;
            c.carried_wh %= 1000;
            if kwh > 0 {
                let owed = kwh * self.price_per_kwh;
                c.billed_wh += kwh * 1000;
                c.owed += owed;
                payment_requests.push(PaymentRequest {
                    consumer,
                    wh: kwh * 1000,
                    owed,
                });
                billed_wh += kwh * 1000;
                requested += owed;
            }
        });
        out.metric("billed-wh", billed_wh as i64);
        out.metric("requested", requested as i64);
        books.requested(&self.payouts, requested);
        books.settle(&self.payouts, tick, out, |cells, consumer, amount| {
            cells.update_as(consumer, |c: &mut Consumer| c.paid += amount)
        });
        Ok(())
    }
}

// What the state and cells mean, by name and version: the host hands this
// strategy only books of the same format (change the version when you change
// a field of `Consumer` or the state).
powerplug_sdk::books_format!("{{name}}@1");
powerplug_sdk::export_grid_strategy!(FlatRate);

/// The first tests: the same code, run natively (`cargo test`) by the SDK's
/// harness, which carries state and cells from tick to tick as the host does
/// and fails a tick the host would refuse (a bill for more than a consumer
/// used, a payout the wallet cannot make). Consumers pay at the next tick.
#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_sdk::testing::GridHarness;

    #[test]
    fn bills_whole_kwh_and_carries_the_rest() {
        let mut grid = GridHarness::<FlatRate>::new();
        let (alice, bob) = (grid.consumer(), grid.consumer());
        grid.usage(alice, 1_600);
        grid.usage(bob, 300);
        let first = grid.tick().unwrap();
        assert_eq!(first.payment_requests.consumer, [alice]);
        assert_eq!(first.payment_requests.owed, [5]);
        grid.usage(alice, 1_900); // 600 carried + 1,900: 2 kWh billed, 500 carried
        assert_eq!(grid.tick().unwrap().payment_requests.owed, [10]);
        let cell: Consumer = grid.cell(alice);
        assert_eq!(
            cell,
            Consumer {
                billed_wh: 3_000,
                carried_wh: 500,
                owed: 15,
                paid: 5
            }
        );
    }

    #[test]
    fn producers_are_paid_their_share_of_what_consumers_paid() {
        let mut grid = GridHarness::<FlatRate>::new();
        let (alice, sun, wind) = (grid.consumer(), grid.producer(), grid.producer());
        let mut paid_out = 0;
        for _ in 0..30 {
            grid.usage(alice, 4_000);
            grid.output(sun, 100, 6);
            grid.output(wind, 300, 6);
            paid_out += grid.tick().unwrap().payouts.iter().map(|p| p.amount).sum::<u64>();
        }
        let books = grid.state().unwrap();
        // Money is neither lost nor created: the producers' part = paid out + available.
        assert_eq!(books.producers_received, paid_out + books.available);
        assert_eq!(books.producers_received, books.income * 4 / 5);
        assert!(paid_out > 0);
    }

    #[test]
    fn the_price_is_a_setting() {
        let mut grid = GridHarness::<FlatRate>::new().setting("price-per-kwh", "7");
        let alice = grid.consumer();
        grid.usage(alice, 3_000);
        assert_eq!(grid.tick().unwrap().payment_requests.owed, [21]);
        let mut bad = GridHarness::<FlatRate>::new().setting("price-per-kwh", "seven");
        assert!(bad.tick().unwrap_err().contains("price-per-kwh"));
    }
}
