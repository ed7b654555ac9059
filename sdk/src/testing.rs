//! Native tests that run a strategy over several ticks as the host would:
//! state and cells carried from tick to tick, each tick's input holding the
//! cells of exactly the entities it mentions, and every decision held to the
//! host's rules before it is applied — so a test fails where the host would
//! refuse the tick, not only where the strategy's own asserts look.
//!
//! ```
//! # use powerplug_sdk::{Config, Error, grid::{GridOut, GridStrategy, GridTick}};
//! # struct Flat;
//! # impl GridStrategy for Flat {
//! #     type State = ();
//! #     fn new(_: &Config<'_>) -> Result<Self, Error> { Ok(Flat) }
//! #     fn tick(&self, _: &mut (), tick: &GridTick<'_>, out: &mut GridOut) -> Result<(), Error> {
//! #         for u in tick.usage { out.request_payment(u.consumer, u.wh, u.wh / 100) }
//! #         Ok(())
//! #     }
//! # }
//! use powerplug_sdk::testing::GridHarness;
//!
//! let mut grid = GridHarness::<Flat>::new();
//! let alice = grid.consumer();
//! grid.usage(alice, 1_000);
//! let decision = grid.tick().unwrap();
//! assert_eq!(decision.payment_requests.owed, [10]);
//! ```
//!
//! What is checked, as the host checks it: cells of four words per entity; the
//! columns of a batch of equal length; amounts whose sums fit in a `u64`;
//! payment requests only to consumers, and no consumer billed over its life for
//! more Wh than it reported; payouts only to registered producers, of at least
//! one token, within the grid's funds (what consumers paid, less what was paid
//! out); a producer's report starting before it ends, of at most [`MAX_WH`]
//! for at most [`MAX_PRICE`] tokens.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::grid::{GridDecision, GridInput, GridStrategy, Output, UsageBatch};
use crate::producer::{ProducerDecision, ProducerInput, ProducerStrategy, SourceOutput};
use crate::{Cell, CellBatch, Entity, EntityKind, Error, Setting, Transfer, Words};

/// The most energy one report may claim, in Wh (1 GWh), as the grid's inbox
/// takes it; `tests/` asserts this equals the host's limit.
pub const MAX_WH: u64 = 1_000_000_000;
/// The highest price one report may ask, in tokens.
pub const MAX_PRICE: u64 = 1_000_000_000_000;

/// 2026-01-01T00:00:00Z: where a harness's clock starts.
pub const START_MS: u64 = 1_767_225_600_000;

/// The part of a tick's input both worlds share.
struct Next {
    now_ms: u64,
    config: Vec<Setting>,
    state: Vec<u8>,
    joined: Vec<Entity>,
    left: Vec<u32>,
    cells: CellBatch,
    transfers: Vec<Transfer>,
}

/// What both harnesses keep: the clock, settings, entities, state and cells.
#[derive(Debug)]
struct Books {
    now_ms: u64,
    step_ms: u64,
    config: Vec<Setting>,
    state: Vec<u8>,
    cells: BTreeMap<u32, Words>,
    kinds: BTreeMap<u32, EntityKind>,
    next_index: u32,
    joined: Vec<Entity>,
    left: Vec<u32>,
    transfers: Vec<Transfer>,
}

impl Books {
    fn new(step_ms: u64) -> Self {
        Self {
            now_ms: START_MS,
            step_ms,
            config: Vec::new(),
            state: Vec::new(),
            cells: BTreeMap::new(),
            kinds: BTreeMap::new(),
            next_index: 0,
            joined: Vec::new(),
            left: Vec::new(),
            transfers: Vec::new(),
        }
    }

    /// A setting; the last entry of a key wins, as in the host's config.
    fn configure(&mut self, key: &str, value: &str) {
        self.config.push(Setting {
            key: key.into(),
            value: value.into(),
        });
    }

    fn join(&mut self, kind: EntityKind) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        self.kinds.insert(index, kind);
        let name = match kind {
            EntityKind::Consumer => "consumer",
            EntityKind::Producer => "producer",
            EntityKind::Source => "source",
        };
        self.joined.push(Entity {
            index,
            kind,
            id: format!("{name}-{index}"),
        });
        index
    }

    fn leave(&mut self, index: u32) {
        if self.kinds.remove(&index).is_some() {
            self.left.push(index);
        }
    }

    /// The stored cells of `mentioned`, sorted and once each (zeros if none).
    fn cells_of(&self, mentioned: impl Iterator<Item = u32>) -> CellBatch {
        let mut entity: Vec<u32> = mentioned.collect();
        entity.sort_unstable();
        entity.dedup();
        let words = entity
            .iter()
            .flat_map(|e| self.cells.get(e).copied().unwrap_or_default())
            .collect();
        CellBatch { entity, words }
    }

    /// The next tick, `step_ms` later: what its input holds in either world,
    /// with the cells of the `mentioned` entities and of the transfers'
    /// counterparties.
    fn next(&mut self, mentioned: impl Iterator<Item = u32>) -> Next {
        self.now_ms += self.step_ms;
        let counterparties = self.transfers.iter().filter_map(|t| t.entity);
        Next {
            now_ms: self.now_ms,
            config: self.config.clone(),
            state: self.state.clone(),
            joined: self.joined.clone(),
            left: self.left.clone(),
            cells: self.cells_of(mentioned.chain(counterparties)),
            transfers: self.transfers.clone(),
        }
    }

    /// Stores what a decision returns, after it passed the checks.
    fn apply(&mut self, state: Vec<u8>, cells: &CellBatch) {
        self.state = state;
        for (i, &e) in cells.entity.iter().enumerate() {
            let w = &cells.words[4 * i..4 * i + 4];
            self.cells.insert(e, [w[0], w[1], w[2], w[3]]);
        }
        self.joined.clear();
        self.left.clear();
        self.transfers.clear();
    }

    fn cell<C: Cell>(&self, entity: u32) -> C {
        C::from_words(self.cells.get(&entity).copied().unwrap_or_default())
    }
}

fn check_cells(cells: &CellBatch) -> Result<(), Error> {
    if cells.words.len() != cells.entity.len() * 4 {
        return Err(format!(
            "host: cells: {} entities but {} words",
            cells.entity.len(),
            cells.words.len()
        ));
    }
    Ok(())
}

fn total(mut values: impl Iterator<Item = u64>, what: &str) -> Result<u64, Error> {
    values
        .try_fold(0u64, u64::checked_add)
        .ok_or_else(|| format!("host: {what} add up to more than {}", u64::MAX))
}

/// The methods both harnesses have, over their `books`.
macro_rules! shared {
    () => {
        /// A setting, as in the role's config file.
        pub fn setting(mut self, key: &str, value: &str) -> Self {
            self.books.configure(key, value);
            self
        }

        /// Ticks `step_ms` apart from now on.
        pub fn every(mut self, step_ms: u64) -> Self {
            self.books.step_ms = step_ms;
            self
        }

        /// The operator changes a setting, from the next tick on.
        pub fn configure(&mut self, key: &str, value: &str) {
            self.books.configure(key, value);
        }

        /// The entity says goodbye (in the next tick's `left`).
        pub fn leave(&mut self, index: u32) {
            self.books.leave(index);
        }

        /// The entity's stored cell, as `C` (`Words` for the raw words).
        pub fn cell<C: Cell>(&self, entity: u32) -> C {
            self.books.cell(entity)
        }

        /// The strategy's state as the last applied tick left it.
        pub fn state(&self) -> Result<S::State, Error> {
            crate::state::decode(&self.books.state)
        }

        /// The time of the last tick.
        pub fn now_ms(&self) -> u64 {
            self.books.now_ms
        }
    };
}

/// Runs a grid strategy `S` tick by tick, as the host would.
#[derive(Debug)]
pub struct GridHarness<S> {
    books: Books,
    usage: Vec<(u32, u64, u64, u64)>,
    output: Vec<Output>,
    /// consumer → (Wh reported, Wh billed) over its life.
    energy: BTreeMap<u32, (u64, u64)>,
    funds: u64,
    /// Consumers pay every request in full, confirmed at the next tick.
    pub pays_bills: bool,
    strategy: PhantomData<S>,
}

impl<S: GridStrategy> Default for GridHarness<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: GridStrategy> GridHarness<S> {
    /// A grid ticking every 15 s from [`START_MS`], whose consumers pay their bills.
    pub fn new() -> Self {
        Self {
            books: Books::new(15_000),
            usage: Vec::new(),
            output: Vec::new(),
            energy: BTreeMap::new(),
            funds: 0,
            pays_bills: true,
            strategy: PhantomData,
        }
    }

    shared!();

    /// A consumer joins; its index.
    pub fn consumer(&mut self) -> u32 {
        self.books.join(EntityKind::Consumer)
    }

    /// A producer joins; its index.
    pub fn producer(&mut self) -> u32 {
        self.books.join(EntityKind::Producer)
    }

    /// `consumer` used `wh` in the step before the next tick.
    pub fn usage(&mut self, consumer: u32, wh: u64) {
        let start = self.books.now_ms;
        self.usage
            .push((consumer, start, start + self.books.step_ms, wh));
    }

    /// `producer` delivered `wh` in the step before the next tick, asking `price`.
    pub fn output(&mut self, producer: u32, wh: u64, price: u64) {
        let end_ms = self.books.now_ms + self.books.step_ms;
        self.output.push(Output {
            producer,
            start_ms: end_ms - self.books.step_ms,
            end_ms,
            wh,
            price,
        });
    }

    /// `consumer` pays `amount` into the grid's wallet (confirmed at the next tick).
    pub fn pays(&mut self, consumer: u32, amount: u64) {
        // The ledger holds far less than 2^64; a test of huge amounts saturates.
        self.funds = self.funds.saturating_add(amount);
        self.books.transfers.push(Transfer {
            entity: Some(consumer),
            amount,
            at_ms: self.books.now_ms,
            incoming: true,
        });
    }

    /// Runs the next tick, `step_ms` later. A decision the host would refuse is
    /// an `Err` naming why (starting "host:"), and, as on the host, nothing of
    /// it is applied: the news waits for the next tick.
    pub fn tick(&mut self) -> Result<GridDecision, Error> {
        let mut usage = self.usage.clone();
        usage.sort_unstable_by_key(|u| (u.0, u.1));
        let mut output = self.output.clone();
        output.sort_unstable_by_key(|o| (o.producer, o.start_ms));
        let mentioned = usage.iter().map(|u| u.0);
        let Next {
            now_ms,
            config,
            state,
            joined,
            left,
            cells,
            transfers,
        } = (self.books).next(mentioned.chain(output.iter().map(|o| o.producer)));
        let input = GridInput {
            now_ms,
            config,
            state,
            joined,
            left,
            cells,
            usage: UsageBatch {
                consumer: usage.iter().map(|u| u.0).collect(),
                start_ms: usage.iter().map(|u| u.1).collect(),
                end_ms: usage.iter().map(|u| u.2).collect(),
                wh: usage.iter().map(|u| u.3).collect(),
            },
            output,
            transfers,
        };
        let decision = crate::grid::run::<S>(input)?;
        let energy = self.check(&usage, &decision)?;

        self.energy.extend(energy);
        self.books.apply(decision.state.clone(), &decision.cells);
        self.usage.clear();
        self.output.clear();
        for p in &decision.payouts {
            self.funds -= p.amount;
            self.books.transfers.push(Transfer {
                entity: Some(p.producer),
                amount: p.amount,
                at_ms: self.books.now_ms,
                incoming: false,
            });
        }
        if self.pays_bills {
            let r = &decision.payment_requests;
            for (&consumer, &owed) in r.consumer.iter().zip(&r.owed) {
                if owed > 0 {
                    self.pays(consumer, owed);
                }
            }
        }
        Ok(decision)
    }

    /// The host's checks; the consumers' lifetime energy if they pass.
    fn check(
        &self,
        usage: &[(u32, u64, u64, u64)],
        d: &GridDecision,
    ) -> Result<BTreeMap<u32, (u64, u64)>, Error> {
        check_cells(&d.cells)?;
        let r = &d.payment_requests;
        if r.wh.len() != r.consumer.len() || r.owed.len() != r.consumer.len() {
            return Err("host: payment-requests: the batch's columns differ in length".into());
        }
        total(r.owed.iter().copied(), "payment-requests: the amounts owed")?;
        total(r.wh.iter().copied(), "payment-requests: the Wh billed")?;
        let paid_out = total(d.payouts.iter().map(|p| p.amount), "payouts")?;
        for p in &d.payouts {
            if self.books.kinds.get(&p.producer) != Some(&EntityKind::Producer) {
                return Err(format!("host: payout to {}, not a producer", p.producer));
            }
            if p.amount == 0 {
                return Err(format!("host: a payout of 0 tokens to {}", p.producer));
            }
        }
        if paid_out > self.funds {
            return Err(format!(
                "host: payouts of {paid_out} tokens, but the grid's wallet holds {}",
                self.funds
            ));
        }
        let mut energy = BTreeMap::new();
        for &(consumer, _, _, wh) in usage {
            let e = energy
                .entry(consumer)
                .or_insert_with(|| self.energy_of(consumer));
            e.0 += wh;
        }
        for (&consumer, &wh) in r.consumer.iter().zip(&r.wh) {
            let e = energy
                .entry(consumer)
                .or_insert_with(|| self.energy_of(consumer));
            let is_consumer = match self.books.kinds.get(&consumer) {
                Some(kind) => *kind == EntityKind::Consumer,
                None => e.0 > 0,
            };
            if !is_consumer {
                return Err(format!(
                    "host: a payment request to entity {consumer}, which is not a registered consumer"
                ));
            }
            e.1 += wh;
            if e.1 > e.0 {
                return Err(format!(
                    "host: consumer {consumer} would have been billed {} Wh in all, more than the {} Wh it reported",
                    e.1, e.0
                ));
            }
        }
        Ok(energy)
    }

    fn energy_of(&self, consumer: u32) -> (u64, u64) {
        self.energy.get(&consumer).copied().unwrap_or_default()
    }

    /// Tokens in the grid's wallet: what consumers paid, less what was paid out.
    pub fn funds(&self) -> u64 {
        self.funds
    }
}

/// Runs a producer strategy `S` tick by tick, as the host would.
#[derive(Debug)]
pub struct ProducerHarness<S> {
    books: Books,
    outputs: Vec<SourceOutput>,
    strategy: PhantomData<S>,
}

impl<S: ProducerStrategy> Default for ProducerHarness<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: ProducerStrategy> ProducerHarness<S> {
    /// A producer ticking every 60 s from [`START_MS`].
    pub fn new() -> Self {
        Self {
            books: Books::new(60_000),
            outputs: Vec::new(),
            strategy: PhantomData,
        }
    }

    shared!();

    /// A source joins; its index.
    pub fn source(&mut self) -> u32 {
        self.books.join(EntityKind::Source)
    }

    /// `source` generated `wh` in the step before the next tick.
    pub fn output(&mut self, source: u32, wh: u64) {
        let end_ms = self.books.now_ms + self.books.step_ms;
        self.outputs.push(SourceOutput {
            source,
            start_ms: end_ms - self.books.step_ms,
            end_ms,
            wh,
        });
    }

    /// The grid paid the producer `amount` (confirmed at the next tick).
    pub fn paid(&mut self, amount: u64) {
        self.books.transfers.push(Transfer {
            entity: None,
            amount,
            at_ms: self.books.now_ms,
            incoming: true,
        });
    }

    /// Runs the next tick; a decision the host would refuse is an `Err`
    /// starting "host:", and nothing of it is applied.
    pub fn tick(&mut self) -> Result<ProducerDecision, Error> {
        let mut outputs = self.outputs.clone();
        outputs.sort_unstable_by_key(|o| (o.source, o.start_ms));
        let Next {
            now_ms,
            config,
            state,
            joined,
            left,
            cells,
            transfers,
        } = (self.books).next(outputs.iter().map(|o| o.source));
        let input = ProducerInput {
            now_ms,
            config,
            state,
            joined,
            left,
            cells,
            outputs,
            transfers,
        };
        let decision = crate::producer::run::<S>(input)?;
        check_cells(&decision.cells)?;
        for (i, c) in decision.commands.iter().enumerate() {
            if !(c.start_ms < c.end_ms && c.wh <= MAX_WH && c.price <= MAX_PRICE) {
                return Err(format!(
                    "host: commands[{i}]: an output the grid refuses ({} to {} ms, {} Wh for {} tokens): it must start before it ends, at most {MAX_WH} Wh for at most {MAX_PRICE} tokens",
                    c.start_ms, c.end_ms, c.wh, c.price
                ));
            }
        }
        total(decision.commands.iter().map(|c| c.wh), "commands: the Wh")?;
        total(
            decision.commands.iter().map(|c| c.price),
            "commands: the prices",
        )?;
        self.books.apply(decision.state.clone(), &decision.cells);
        self.outputs.clear();
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{GridOut, GridTick};
    use crate::producer::{ProducerOut, ProducerTick};
    use crate::{Config, Words};

    /// Does what its `bug` setting says, to show what the harness refuses;
    /// otherwise bills each reading at a token per Wh and counts its ticks.
    struct Buggy;

    impl GridStrategy for Buggy {
        type State = u64;

        fn new(_: &Config<'_>) -> Result<Self, Error> {
            Ok(Buggy)
        }

        fn tick(
            &self,
            ticks: &mut u64,
            tick: &GridTick<'_>,
            out: &mut GridOut,
        ) -> Result<(), Error> {
            let bug = tick.usage.get(0).map_or(0, |u| u.wh);
            *ticks += 1;
            for u in tick.usage {
                out.cells.update(u.consumer, |w| w[0] += u.wh);
                match bug {
                    // Bills one Wh more than the consumer ever reported.
                    7 => out.request_payment(u.consumer, u.wh + 1, 1),
                    // Bills an entity that is a producer.
                    8 => out.request_payment(1, 1, 1),
                    // Pays more than the wallet holds.
                    9 => out.pay(1, 1_000),
                    // Pays a consumer.
                    10 => out.pay(u.consumer, 1),
                    _ => out.request_payment(u.consumer, u.wh, u.wh),
                }
            }
            Ok(())
        }
    }

    #[test]
    fn a_decision_the_host_would_refuse_fails_and_applies_nothing() {
        let mut grid = GridHarness::<Buggy>::new();
        let (alice, _solar) = (grid.consumer(), grid.producer());
        grid.usage(alice, 5);
        grid.tick().unwrap();
        for (bug, says) in [
            (7, "billed 13 Wh in all, more than the 12 Wh"),
            (8, "entity 1, which is not a registered consumer"),
            (9, "payouts of 1000 tokens, but the grid's wallet holds 5"),
            (10, "payout to 0, not a producer"),
        ] {
            grid.usage(alice, bug);
            let error = grid.tick().unwrap_err();
            assert!(error.contains(says), "bug {bug}: {error}");
            // Nothing applied: the state, the cells and the news are as before.
            assert_eq!(grid.state().unwrap(), 1, "bug {bug}");
            assert_eq!(grid.cell::<Words>(alice)[0], 5, "bug {bug}");
            grid.usage = grid.usage.iter().filter(|u| u.3 != bug).copied().collect();
        }
        grid.usage(alice, 3);
        let d = grid.tick().unwrap();
        assert_eq!(d.payment_requests.owed, [3]);
        assert_eq!(grid.state().unwrap(), 2);
    }

    struct Greedy;

    impl ProducerStrategy for Greedy {
        type State = ();

        fn new(_: &Config<'_>) -> Result<Self, Error> {
            Ok(Greedy)
        }

        fn tick(
            &self,
            _: &mut (),
            tick: &ProducerTick<'_>,
            out: &mut ProducerOut,
        ) -> Result<(), Error> {
            let wh: u64 = tick.outputs.iter().map(|o| o.wh).sum();
            out.report_output(tick.now_ms - 60_000, tick.now_ms, wh, 1);
            Ok(())
        }
    }

    #[test]
    fn a_report_above_one_gwh_fails_the_tick() {
        let mut producer = ProducerHarness::<Greedy>::new();
        let (a, b) = (producer.source(), producer.source());
        producer.output(a, MAX_WH);
        producer.tick().unwrap();
        producer.output(a, MAX_WH);
        producer.output(b, 1);
        let error = producer.tick().unwrap_err();
        assert!(error.contains("an output the grid refuses"), "{error}");
    }
}
