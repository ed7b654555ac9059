//! The money side most grid strategies share, tested once: what consumers pay
//! is split between the producers and the grid's running costs on running
//! totals (no token lost to rounding), and the producers' part is paid out in
//! quanta, by each producer's share of all the output it reported.
//!
//! A strategy decides its bills; [`Books::settle`] does the rest of a tick:
//!
//! ```
//! # use powerplug_sdk::{Config, payout::{Books, Rules, Share}, grid::{GridOut, GridTick}};
//! # fn tick(config: &Config<'_>, books: &mut Books, tick: &GridTick<'_>, out: &mut GridOut) -> Result<(), String> {
//! // Producers get 4 of every 5 tokens consumers pay.
//! let rules = Rules::from_config(Share::new(4, 5)?, config)?;
//! let requested = 0; // … bill consumers with out.request_payment(…)
//! books.requested(&rules, requested);
//! books.settle(&rules, tick, out, |cells, consumer, amount| {
//!     cells.update(consumer, |w| w[3] += amount) // where this strategy keeps "paid"
//! });
//! # Ok(()) }
//! ```
//!
//! It reports the metrics `income`, `paid-out`, `available` and
//! `running-costs-received`, by which `powerplug demo` and `strategy check`
//! verify that what consumers paid equals running costs + paid out + available.

use serde::{Deserialize, Serialize};

use crate::grid::{GridOut, GridTick};
use crate::{Cells, Config, Error};

/// `part` of every `of` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    part: u64,
    of: u64,
}

impl Share {
    /// Refuses a share of nothing (`of` = 0) or more than the whole.
    pub fn new(part: u64, of: u64) -> Result<Self, Error> {
        if of == 0 || part > of {
            return Err(format!(
                "a share of {part} in {of}: must be at most the whole, of a whole of at least 1"
            ));
        }
        Ok(Self { part, of })
    }

    /// The share of `amount`, rounded down.
    pub fn of(self, amount: u64) -> u64 {
        // part <= of, so the result fits.
        (u128::from(amount) * u128::from(self.part) / u128::from(self.of)) as u64
    }
}

/// How the producers' part is paid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The producers' share of what consumers pay.
    pub producers: Share,
    /// Payouts are whole multiples of this many tokens (all producers together).
    pub quantum: u64,
    /// At most one payout per this many milliseconds.
    pub interval_ms: u64,
}

impl Rules {
    /// `payout-quantum` (default 40, at least 1) and `payout-interval-ms`
    /// (default 10,000) from the settings.
    pub fn from_config(producers: Share, config: &Config<'_>) -> Result<Self, Error> {
        let rules = Self {
            producers,
            quantum: config.u64_or("payout-quantum", 40)?,
            interval_ms: config.u64_or("payout-interval-ms", 10_000)?,
        };
        if rules.quantum == 0 {
            return Err("config `payout-quantum`: must be at least 1".into());
        }
        Ok(rules)
    }
}

/// The grid's money books: keep them in the strategy's state. (Serialized as
/// the basic grid's state, `basic-grid@1`, field for field.)
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Books {
    /// Everything consumers ever paid.
    pub income: u64,
    /// The producers' part of `income` not yet paid out.
    pub available: u64,
    /// The running costs' part of every bill, as requested.
    pub running_costs_requested: u64,
    pub last_payout_ms: u64,
    /// Sorted by entity index; a producer that left is forgotten.
    pub producers: Vec<ProducerTotals>,
    /// The producers' part of `income`, split as each payment came in at the
    /// rules of then: a version with another share taking over these books
    /// does not split past income again.
    pub producers_received: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProducerTotals {
    pub index: u32,
    pub output_wh: u64,
    /// Paid out by decision.
    pub owed: u64,
    /// Confirmed by the wallet.
    pub received: u64,
}

/// What one tick's [`Books::settle`] moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Consumers' payments confirmed this tick.
    pub income: u64,
    /// Paid out to producers this tick.
    pub paid_out: u64,
}

impl Books {
    /// The producer's totals, created at zero if it has none.
    pub fn producer(&mut self, index: u32) -> &mut ProducerTotals {
        let pos = match self.producers.binary_search_by_key(&index, |p| p.index) {
            Ok(pos) => pos,
            Err(pos) => {
                let fresh = ProducerTotals {
                    index,
                    ..Default::default()
                };
                self.producers.insert(pos, fresh);
                pos
            }
        };
        &mut self.producers[pos]
    }

    /// Books the running costs' part of the tokens a tick's bills request.
    pub fn requested(&mut self, rules: &Rules, requested: u64) {
        self.running_costs_requested += requested - rules.producers.of(requested);
    }

    /// Carries the tick's news into the books and pays out what is due: forgets
    /// producers that left, adds their output, takes the confirmed transfers
    /// (calling `paid` with the cells for each consumer's payment), splits the
    /// new income, pays out at most once per `interval_ms`, and reports the
    /// metrics `income`, `paid-out`, `available`, `running-costs-received`.
    pub fn settle(
        &mut self,
        rules: &Rules,
        tick: &GridTick<'_>,
        out: &mut GridOut,
        mut paid: impl FnMut(&mut Cells, u32, u64),
    ) -> Settled {
        for &index in tick.left {
            if let Ok(pos) = self.producers.binary_search_by_key(&index, |p| p.index) {
                self.producers.remove(pos);
            }
        }
        for o in tick.output {
            self.producer(o.producer).output_wh += o.wh;
        }

        let income_before = self.income;
        for t in tick.transfers {
            match (t.incoming, t.entity) {
                (true, payer) => {
                    self.income += t.amount;
                    if let Some(consumer) = payer {
                        paid(&mut out.cells, consumer, t.amount);
                    }
                }
                // A producer that left has no totals any more: its payout was
                // counted when it was decided, and a confirmation arriving
                // after it left must not bring it back as a ghost.
                (false, Some(producer)) => {
                    if let Ok(pos) = self.producers.binary_search_by_key(&producer, |p| p.index) {
                        self.producers[pos].received += t.amount;
                    }
                }
                (false, None) => {}
            }
        }
        let share = rules.producers;
        let producers = share.of(self.income) - share.of(income_before);
        self.available += producers;
        self.producers_received += producers;

        let paid_out = self.pay_out(rules, tick.now_ms, out);
        let settled = Settled {
            income: self.income - income_before,
            paid_out,
        };
        out.metric("income", settled.income as i64);
        out.metric("paid-out", paid_out as i64);
        out.metric("available", self.available as i64);
        out.metric(
            "running-costs-received",
            (self.income - self.producers_received) as i64,
        );
        settled
    }

    /// Distributes `floor(available / quantum) * quantum` by lifetime output, if
    /// `interval_ms` has passed since the last payout; what the floors of the
    /// shares leave stays available.
    fn pay_out(&mut self, rules: &Rules, now_ms: u64, out: &mut GridOut) -> u64 {
        if now_ms.saturating_sub(self.last_payout_ms) < rules.interval_ms {
            return 0;
        }
        self.last_payout_ms = now_ms;
        let distribution = self.available / rules.quantum * rules.quantum;
        let total_output: u64 = self.producers.iter().map(|p| p.output_wh).sum();
        if distribution == 0 || total_output == 0 {
            return 0;
        }
        let mut paid_out = 0;
        for p in &mut self.producers {
            let amount = (u128::from(distribution) * u128::from(p.output_wh)
                / u128::from(total_output)) as u64;
            if amount > 0 {
                p.owed += amount;
                paid_out += amount;
                out.pay(p.index, amount);
            }
        }
        self.available -= paid_out;
        paid_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::GridStrategy;
    use crate::testing::GridHarness;

    /// Bills every whole kWh at 5 tokens and leaves the rest to the books.
    struct Flat {
        rules: Rules,
    }

    impl GridStrategy for Flat {
        type State = Books;

        fn new(config: &Config<'_>) -> Result<Self, Error> {
            let share = Share::new(config.u64_or("producers", 4)?, 5)?;
            Ok(Self {
                rules: Rules::from_config(share, config)?,
            })
        }

        fn tick(
            &self,
            books: &mut Books,
            tick: &GridTick<'_>,
            out: &mut GridOut,
        ) -> Result<(), Error> {
            let mut requested = 0;
            for u in tick.usage {
                let owed = u.wh / 1000 * 5;
                out.request_payment(u.consumer, u.wh / 1000 * 1000, owed);
                requested += owed;
            }
            books.requested(&self.rules, requested);
            books.settle(&self.rules, tick, out, |cells, consumer, amount| {
                cells.update(consumer, |w| w[3] += amount)
            });
            Ok(())
        }
    }

    fn metric(d: &crate::grid::GridDecision, name: &str) -> i64 {
        d.metrics
            .iter()
            .find(|m| m.name == name)
            .map_or(-1, |m| m.value)
    }

    #[test]
    fn income_is_split_on_running_totals_and_paid_in_quanta_by_output() {
        let mut grid = GridHarness::<Flat>::new();
        grid.pays_bills = false;
        let (alice, solar, wind) = (grid.consumer(), grid.producer(), grid.producer());
        let mut paid_out = 0;
        for _ in 0..40 {
            // 3 tokens a tick: 4/5 of it is 2.4, so the producers' part is
            // taken on the running total (2, 4, 7, 9, 12 …), losing no fraction.
            grid.usage(alice, 600);
            grid.pays(alice, 3);
            grid.output(solar, 100, 9);
            grid.output(wind, 300, 9);
            let d = grid.tick().unwrap();
            paid_out += d.payouts.iter().map(|p| p.amount).sum::<u64>();
            let books = grid.state().unwrap();
            assert_eq!(books.producers_received, books.income * 4 / 5);
            // Money is neither lost nor created: paid = running costs + paid out + available.
            let running_costs = metric(&d, "running-costs-received") as u64;
            assert_eq!(books.income, running_costs + paid_out + books.available);
        }
        let books = grid.state().unwrap();
        assert_eq!(books.income, 40 * 3);
        assert_eq!(grid.cell::<crate::Words>(alice)[3], 40 * 3);
        // Whole quanta of 40, split 1:3 by output; less than a quantum left over.
        let (s, w) = (&books.producers[0], &books.producers[1]);
        assert_eq!((s.owed + w.owed, s.owed * 3), (80, w.owed));
        assert_eq!(books.available, 96 - 80);
    }

    #[test]
    fn a_producer_that_leaves_is_forgotten_even_when_a_payout_confirms_late() {
        let mut grid = GridHarness::<Flat>::new();
        let (alice, solar, wind) = (grid.consumer(), grid.producer(), grid.producer());
        for _ in 0..10 {
            grid.usage(alice, 10_000);
            grid.output(solar, 100, 9);
            grid.output(wind, 100, 9);
            grid.tick().unwrap();
        }
        let owed_wind = grid.state().unwrap().producers[1].owed;
        assert!(owed_wind > 0);
        grid.leave(wind);
        // The tick where wind leaves also confirms its last payout.
        let d = grid.tick().unwrap();
        let books = grid.state().unwrap();
        assert_eq!(books.producers.len(), 1, "{books:?}");
        // From now on, everything goes to solar.
        grid.usage(alice, 10_000);
        grid.output(solar, 100, 9);
        let d2 = grid.tick().unwrap();
        assert!(
            d.payouts
                .iter()
                .chain(&d2.payouts)
                .all(|p| p.producer == solar)
        );
    }

    #[test]
    fn a_version_with_another_share_does_not_split_past_income_again() {
        let mut grid = GridHarness::<Flat>::new();
        let (alice, solar) = (grid.consumer(), grid.producer());
        grid.usage(alice, 10_000);
        grid.output(solar, 100, 9);
        grid.tick().unwrap();
        grid.tick().unwrap(); // the 50 tokens come in: 40 for the producers
        assert_eq!(grid.state().unwrap().producers_received, 40);
        // From now on 2 of 5: the 40 stay the producers', the next 50 give 20.
        grid.configure("producers", "2");
        grid.usage(alice, 10_000);
        grid.tick().unwrap();
        let d = grid.tick().unwrap();
        assert_eq!(grid.state().unwrap().producers_received, 60);
        assert_eq!(metric(&d, "running-costs-received"), 100 - 60);
    }

    #[test]
    fn a_share_of_more_than_the_whole_is_refused() {
        assert!(Share::new(6, 5).is_err());
        assert!(Share::new(0, 0).is_err());
        assert_eq!(
            Share::new(4, 5).unwrap().of(u64::MAX),
            14_757_395_258_967_641_292
        );
    }
}
