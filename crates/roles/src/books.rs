//! What the host keeps for a strategy between ticks: its opaque state and the
//! per-entity cells. Builds each tick's input (with exactly the cells of the
//! entities it mentions) and applies a decision's state changes.
//!
//! [`Books`] keeps them in memory; [`StoredBooks`] in the host's redb database,
//! reading only the cells a tick mentions and writing a decision inside the
//! tick's transaction, together with its other effects.

use std::collections::BTreeMap;
use std::convert::Infallible;

use powerplug_storage::{ReadTx, Store, WriteTx, key};

use crate::pages::{self, Pages};

use powerplug_strategy::{
    CellBatch, Entity, GridDecision, GridInput, Output, ProducerDecision, ProducerInput, Setting,
    SourceOutput, Transfer, Usage, UsageBatch,
};

/// A strategy's books.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Books {
    pub state: Vec<u8>,
    pub cells: BTreeMap<u32, [u64; 4]>,
}

/// What arrived for a grid since its last tick.
#[derive(Debug, Clone, Default)]
pub struct GridNews {
    pub joined: Vec<Entity>,
    pub left: Vec<u32>,
    pub usage: Vec<Usage>,
    pub output: Vec<Output>,
    pub transfers: Vec<Transfer>,
}

/// What arrived for a producer since its last tick.
#[derive(Debug, Clone, Default)]
pub struct ProducerNews {
    pub joined: Vec<Entity>,
    pub left: Vec<u32>,
    pub outputs: Vec<SourceOutput>,
    pub transfers: Vec<Transfer>,
}

/// Where a strategy's state and cells are read from.
pub trait BookSource {
    type Error;
    fn state(&self) -> Result<Vec<u8>, Self::Error>;
    /// The entity's cell; all zeros if it has none.
    fn cell(&self, entity: u32) -> Result<[u64; 4], Self::Error>;
    /// Says which cells are about to be read: a store whose reads are round
    /// trips fetches them at once.
    fn prefetch(&self, entities: &[u32]) -> Result<(), Self::Error> {
        let _ = entities;
        Ok(())
    }
}

/// The cells of `entities`, sorted and once each.
fn cells_for<B: BookSource>(
    books: &B,
    entities: impl Iterator<Item = u32>,
) -> Result<CellBatch, B::Error> {
    let mut wanted: Vec<u32> = entities.collect();
    wanted.sort_unstable();
    wanted.dedup();
    books.prefetch(&wanted)?;
    let mut cells = Vec::with_capacity(wanted.len());
    for entity in wanted {
        cells.push((entity, books.cell(entity)?));
    }
    Ok(CellBatch::from_entries(cells))
}

/// A grid tick's input: the news, sorted by entity so the strategy walks its
/// cells in order, with exactly the cells of the entities it mentions.
pub fn grid_input<B: BookSource>(
    books: &B,
    now_ms: u64,
    config: &[Setting],
    mut news: GridNews,
) -> Result<GridInput, B::Error> {
    news.usage.sort_by_key(|u| (u.consumer, u.start_ms));
    news.output.sort_by_key(|o| (o.producer, o.start_ms));
    let mentioned = news.usage.iter().map(|u| u.consumer);
    let mentioned = mentioned.chain(news.output.iter().map(|o| o.producer));
    let cells = cells_for(
        books,
        mentioned.chain(news.transfers.iter().filter_map(|t| t.entity)),
    )?;
    Ok(GridInput {
        now_ms,
        config: config.to_vec(),
        state: books.state()?,
        joined: news.joined,
        left: news.left,
        cells,
        usage: UsageBatch::from_entries(&news.usage),
        output: news.output,
        transfers: news.transfers,
    })
}

/// A producer tick's input, built like [`grid_input`].
pub fn producer_input<B: BookSource>(
    books: &B,
    now_ms: u64,
    config: &[Setting],
    mut news: ProducerNews,
) -> Result<ProducerInput, B::Error> {
    news.outputs.sort_by_key(|o| (o.source, o.start_ms));
    let mentioned = news.outputs.iter().map(|o| o.source);
    let cells = cells_for(
        books,
        mentioned.chain(news.transfers.iter().filter_map(|t| t.entity)),
    )?;
    Ok(ProducerInput {
        now_ms,
        config: config.to_vec(),
        state: books.state()?,
        joined: news.joined,
        left: news.left,
        cells,
        outputs: news.outputs,
        transfers: news.transfers,
    })
}

impl BookSource for Books {
    type Error = Infallible;

    fn state(&self) -> Result<Vec<u8>, Infallible> {
        Ok(self.state.clone())
    }

    fn cell(&self, entity: u32) -> Result<[u64; 4], Infallible> {
        Ok(self.cells.get(&entity).copied().unwrap_or_default())
    }
}

fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

impl Books {
    pub fn grid_input(&self, now_ms: u64, config: &[Setting], news: GridNews) -> GridInput {
        infallible(grid_input(self, now_ms, config, news))
    }

    pub fn producer_input(
        &self,
        now_ms: u64,
        config: &[Setting],
        news: ProducerNews,
    ) -> ProducerInput {
        infallible(producer_input(self, now_ms, config, news))
    }

    fn apply(&mut self, state: &[u8], cells: &CellBatch) {
        self.state = state.to_vec();
        self.cells.extend(cells.iter());
    }

    pub fn apply_grid(&mut self, decision: &GridDecision) {
        self.apply(&decision.state, &decision.cells);
    }

    pub fn apply_producer(&mut self, decision: &ProducerDecision) {
        self.apply(&decision.state, &decision.cells);
    }
}

const STATES: &str = "strategy_state";
/// (slot, entity page) → the page's cells ([`pages`]).
const CELLS: &str = "strategy_cell_pages";
/// (slot, entity) → four big-endian words: cells before pages.
const CELL_ROWS: &str = "strategy_cells";

fn cells(slot: &str) -> Pages<'static> {
    Pages::new(CELLS, &[&slot])
}

/// A strategy's books in the host's store, under a slot name (`grid`,
/// `producer`, or one per experiment variant later).
pub struct StoredBooks<'a> {
    pub slot: &'a str,
    /// Reads see the last committed tick.
    pub tx: &'a dyn ReadTx,
    cells: pages::Reader<'a, [u64; 4]>,
}

impl<'a> StoredBooks<'a> {
    pub fn new(tx: &'a dyn ReadTx, slot: &'a str) -> Self {
        Self {
            slot,
            tx,
            cells: pages::Reader::new(tx, cells(slot)),
        }
    }
}

impl BookSource for StoredBooks<'_> {
    type Error = anyhow::Error;

    fn state(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self
            .tx
            .get(STATES, &key::of(&[&self.slot]))?
            .unwrap_or_default())
    }

    fn cell(&self, entity: u32) -> anyhow::Result<[u64; 4]> {
        Ok(self.cells.get(entity)?.unwrap_or([0; 4]))
    }

    fn prefetch(&self, entities: &[u32]) -> anyhow::Result<()> {
        self.cells.prefetch(entities)
    }
}

/// Writes a decision's state and changed cells into the tick's transaction.
pub fn store_decision(
    tx: &dyn WriteTx,
    slot: &str,
    state: &[u8],
    cells: &CellBatch,
) -> anyhow::Result<()> {
    tx.put(STATES, &key::of(&[&slot]), state)?;
    self::cells(slot).set(tx, cells.iter())
}

/// Makes `to`'s books a copy of `from`'s: an experiment's variant of the live
/// books' format starts from them, as a swapped-in version does.
pub fn copy_books(tx: &dyn WriteTx, from: &str, to: &str) -> anyhow::Result<()> {
    let state = tx.get(STATES, &key::of(&[&from]))?.unwrap_or_default();
    tx.put(STATES, &key::of(&[&to]), &state)?;
    cells(from).copy_to(tx, &cells(to))
}

/// Copies `entity`'s cell from `from` to `to`, if `from` has one: at an
/// experiment's end the grid's books take each consumer's cell from the
/// books that actually billed it.
pub fn copy_cell(tx: &dyn WriteTx, from: &str, to: &str, entity: u32) -> anyhow::Result<bool> {
    match cells(from).get::<[u64; 4]>(tx, entity)? {
        Some(cell) => {
            cells(to).set(tx, [(entity, cell)])?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Removes `entity`'s cell from `slot`: the strategy meets it as new.
pub fn clear_cell(tx: &dyn WriteTx, slot: &str, entity: u32) -> anyhow::Result<()> {
    cells(slot).remove::<[u64; 4]>(tx, entity)
}

/// Every cell of `slot`, with its state: a whole set of books in memory
/// (what a rollback restores and carries forward).
pub fn load_all(tx: &dyn ReadTx, slot: &str) -> anyhow::Result<Books> {
    let state = tx.get(STATES, &key::of(&[&slot]))?.unwrap_or_default();
    let cells = cells(slot).all(tx)?.into_iter().collect();
    Ok(Books { state, cells })
}

/// Makes `slot`'s books exactly `books`: its state, and no cell but theirs.
pub fn replace(tx: &dyn WriteTx, slot: &str, books: &Books) -> anyhow::Result<()> {
    cells(slot).clear(tx)?;
    tx.put(STATES, &key::of(&[&slot]), &books.state)?;
    cells(slot).set(tx, books.cells.iter().map(|(&e, &c)| (e, c)))
}

/// Moves the cells of a store written before pages onto pages (once).
pub fn migrate_cells(db: &dyn Store) -> anyhow::Result<u64> {
    pages::migrate(db, CELL_ROWS, CELLS, |k, v| {
        let mut r = key::Reader::new(k);
        let slot = key::of(&[&r.str()?]);
        let entity = r.u32()?;
        anyhow::ensure!(v.len() == 32, "cell {entity}: {} bytes", v.len());
        let mut words = [0; 4];
        for (word, chunk) in words.iter_mut().zip(v.chunks_exact(8)) {
            *word = key::u64_value(chunk)?;
        }
        Ok((slot, entity, words))
    })
}

/// The news a recorded grid input carried, without the books it was built on:
/// to run it again on other books.
pub fn grid_news(input: &GridInput) -> GridNews {
    let u = &input.usage;
    GridNews {
        joined: input.joined.clone(),
        left: input.left.clone(),
        usage: (0..u.consumer.len())
            .map(|i| Usage {
                consumer: u.consumer[i],
                start_ms: u.start_ms[i],
                end_ms: u.end_ms[i],
                wh: u.wh[i],
            })
            .collect(),
        output: input.output.clone(),
        transfers: input.transfers.clone(),
    }
}

/// The news a recorded producer input carried, as [`grid_news`].
pub fn producer_news(input: &ProducerInput) -> ProducerNews {
    ProducerNews {
        joined: input.joined.clone(),
        left: input.left.clone(),
        outputs: input.outputs.clone(),
        transfers: input.transfers.clone(),
    }
}
