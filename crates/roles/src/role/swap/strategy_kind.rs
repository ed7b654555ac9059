//! What a strategy slot needs of each kind of strategy (grid, producer):
//! running it, reading its recorded ticks, summarising a decision, and
//! carrying books forward through recorded news.

use std::collections::BTreeMap;

use crate::books::{Books, StoredBooks};
use crate::tick_log::{self, Outcome};
use powerplug_storage::Store;
use powerplug_strategy::{
    CellBatch, ComponentInfo, GridDecision, GridInput, GridStrategy, Loaded, ProducerDecision,
    ProducerInput, ProducerStrategy, Setting, StrategyKind, TickFailure, TickOutcome,
};

/// What a decision would do, in brief: named totals.
pub type Effect = BTreeMap<&'static str, u64>;

/// A recorded tick: its number, input, and decision if it decided.
pub type LastTick<I, D> = Option<(u64, I, Option<D>)>;

/// A kind of strategy a role runs and can replace.
pub trait Strategy: Clone + Send + Sync + 'static {
    type Input: Clone;
    type Decision;
    const KIND: StrategyKind;
    fn from_loaded(loaded: Loaded) -> Option<Self>;
    fn info(&self) -> &ComponentInfo;
    fn tick(&self, input: &Self::Input) -> Result<TickOutcome<Self::Decision>, TickFailure>;
    fn effect(decision: &Self::Decision) -> Effect;
    /// The last recorded tick: its number, input and decision (if it decided).
    fn last_tick(
        db: &dyn Store,
        slot: &str,
    ) -> anyhow::Result<LastTick<Self::Input, Self::Decision>>;
    /// A tick with no news on the live state: the handover check.
    fn idle(books: &StoredBooks, now_ms: u64, settings: &[Setting]) -> anyhow::Result<Self::Input>;
    /// A decision's payment requests: (consumer, Wh, tokens).
    fn bills(decision: &Self::Decision) -> Vec<(u32, u64, u64)>;
    /// The input as a version started on empty books sees it.
    fn forget_books(input: &mut Self::Input);
    /// The recorded ticks after `since` (number, input, decision if it
    /// decided), oldest first, at most `limit`.
    #[allow(clippy::type_complexity)]
    fn recorded_since(
        db: &dyn Store,
        slot: &str,
        since: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<(u64, Self::Input, Option<Self::Decision>)>>;
    /// Runs `recorded`'s news through this version on `books`, keeps what it
    /// decides of them (state and cells) and returns the decision and the
    /// fuel it took; none of its effects are carried out.
    fn carry(
        &self,
        books: &mut Books,
        recorded: &Self::Input,
    ) -> Result<(Self::Decision, u64), String>;
}

impl Strategy for GridStrategy {
    type Input = GridInput;
    type Decision = GridDecision;
    const KIND: StrategyKind = StrategyKind::Grid;

    fn from_loaded(loaded: Loaded) -> Option<Self> {
        match loaded {
            Loaded::Grid(g) => Some(g),
            Loaded::Producer(_) => None,
        }
    }

    fn info(&self) -> &ComponentInfo {
        GridStrategy::info(self)
    }

    fn tick(&self, input: &GridInput) -> Result<TickOutcome<GridDecision>, TickFailure> {
        GridStrategy::tick(self, input)
    }

    fn effect(d: &GridDecision) -> Effect {
        BTreeMap::from([
            ("payment_requests", d.payment_requests.len() as u64),
            ("requested", d.payment_requests.iter().map(|r| r.owed).sum()),
            ("payouts", d.payouts.len() as u64),
            ("paid_out", d.payouts.iter().map(|p| p.amount).sum()),
        ])
    }

    fn last_tick(db: &dyn Store, slot: &str) -> anyhow::Result<LastTick<GridInput, GridDecision>> {
        Ok(tick_log::last_grid(db, slot)?.map(|r| {
            let decided = match r.outcome {
                Outcome::Decided(d) => Some(d),
                Outcome::Failed(_) => None,
            };
            (r.tick, r.input, decided)
        }))
    }

    fn idle(books: &StoredBooks, now_ms: u64, settings: &[Setting]) -> anyhow::Result<GridInput> {
        crate::books::grid_input(books, now_ms, settings, Default::default())
    }

    fn bills(d: &GridDecision) -> Vec<(u32, u64, u64)> {
        d.payment_requests
            .iter()
            .map(|r| (r.consumer, r.wh, r.owed))
            .collect()
    }

    fn forget_books(input: &mut GridInput) {
        input.state.clear();
        input.cells = CellBatch::from_entries([]);
    }

    fn recorded_since(
        db: &dyn Store,
        slot: &str,
        since: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<(u64, GridInput, Option<GridDecision>)>> {
        Ok(tick_log::grid_ticks(db, slot, since, limit)?
            .into_iter()
            .map(|r| {
                let decided = match r.outcome {
                    Outcome::Decided(d) => Some(d),
                    Outcome::Failed(_) => None,
                };
                (r.tick, r.input, decided)
            })
            .collect())
    }

    fn carry(
        &self,
        books: &mut Books,
        recorded: &GridInput,
    ) -> Result<(GridDecision, u64), String> {
        let news = crate::books::grid_news(recorded);
        let input = books.grid_input(recorded.now_ms, &recorded.config, news);
        let outcome = GridStrategy::tick(self, &input).map_err(|f| f.to_string())?;
        books.apply_grid(&outcome.decision);
        Ok((outcome.decision, outcome.fuel_used))
    }
}

impl Strategy for ProducerStrategy {
    type Input = ProducerInput;
    type Decision = ProducerDecision;
    const KIND: StrategyKind = StrategyKind::Producer;

    fn from_loaded(loaded: Loaded) -> Option<Self> {
        match loaded {
            Loaded::Producer(p) => Some(p),
            Loaded::Grid(_) => None,
        }
    }

    fn info(&self) -> &ComponentInfo {
        ProducerStrategy::info(self)
    }

    fn tick(&self, input: &ProducerInput) -> Result<TickOutcome<ProducerDecision>, TickFailure> {
        ProducerStrategy::tick(self, input)
    }

    fn effect(d: &ProducerDecision) -> Effect {
        BTreeMap::from([
            ("commands", d.commands.len() as u64),
            ("reported_wh", d.commands.iter().map(|c| c.wh).sum()),
            ("asked", d.commands.iter().map(|c| c.price).sum()),
        ])
    }

    fn last_tick(
        db: &dyn Store,
        slot: &str,
    ) -> anyhow::Result<LastTick<ProducerInput, ProducerDecision>> {
        Ok(tick_log::last_producer(db, slot)?.map(|r| {
            let decided = match r.outcome {
                Outcome::Decided(d) => Some(d),
                Outcome::Failed(_) => None,
            };
            (r.tick, r.input, decided)
        }))
    }

    fn idle(
        books: &StoredBooks,
        now_ms: u64,
        settings: &[Setting],
    ) -> anyhow::Result<ProducerInput> {
        crate::books::producer_input(books, now_ms, settings, Default::default())
    }

    fn bills(_: &ProducerDecision) -> Vec<(u32, u64, u64)> {
        Vec::new()
    }

    fn forget_books(input: &mut ProducerInput) {
        input.state.clear();
        input.cells = CellBatch::from_entries([]);
    }

    fn recorded_since(
        db: &dyn Store,
        slot: &str,
        since: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<(u64, ProducerInput, Option<ProducerDecision>)>> {
        Ok(tick_log::producer_ticks(db, slot, since, limit)?
            .into_iter()
            .map(|r| {
                let decided = match r.outcome {
                    Outcome::Decided(d) => Some(d),
                    Outcome::Failed(_) => None,
                };
                (r.tick, r.input, decided)
            })
            .collect())
    }

    fn carry(
        &self,
        books: &mut Books,
        recorded: &ProducerInput,
    ) -> Result<(ProducerDecision, u64), String> {
        let news = crate::books::producer_news(recorded);
        let input = books.producer_input(recorded.now_ms, &recorded.config, news);
        let outcome = ProducerStrategy::tick(self, &input).map_err(|f| f.to_string())?;
        books.apply_producer(&outcome.decision);
        Ok((outcome.decision, outcome.fuel_used))
    }
}
