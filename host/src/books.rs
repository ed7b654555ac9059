//! What the host keeps for a strategy between ticks: its opaque state and the
//! per-entity cells. Builds each tick's input (with exactly the cells of the
//! entities it mentions) and applies a decision's state changes.
//!
//! In memory for now; the roles will keep the same books in their store.

use std::collections::BTreeMap;

use crate::strategy::{
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

impl Books {
    /// The cells of `entities` (all zeros for one without a cell), sorted.
    fn cells_for(&self, entities: impl Iterator<Item = u32>) -> CellBatch {
        let mut wanted: Vec<u32> = entities.collect();
        wanted.sort_unstable();
        wanted.dedup();
        CellBatch::from_entries(
            wanted
                .into_iter()
                .map(|e| (e, self.cells.get(&e).copied().unwrap_or_default())),
        )
    }

    fn apply_cells(&mut self, state: &[u8], cells: &CellBatch) {
        self.state = state.to_vec();
        self.cells.extend(cells.iter());
    }

    pub fn grid_input(&self, now_ms: u64, config: &[Setting], mut news: GridNews) -> GridInput {
        // Entity order lets the strategy walk its cells sequentially.
        news.usage.sort_by_key(|u| (u.consumer, u.start_ms));
        news.output.sort_by_key(|o| (o.producer, o.start_ms));
        let cells = self.cells_for(
            news.usage
                .iter()
                .map(|u| u.consumer)
                .chain(news.output.iter().map(|o| o.producer))
                .chain(news.transfers.iter().filter_map(|t| t.entity)),
        );
        GridInput {
            now_ms,
            config: config.to_vec(),
            state: self.state.clone(),
            joined: news.joined,
            left: news.left,
            cells,
            usage: UsageBatch::from_entries(&news.usage),
            output: news.output,
            transfers: news.transfers,
        }
    }

    pub fn apply_grid(&mut self, decision: &GridDecision) {
        self.apply_cells(&decision.state, &decision.cells);
    }

    pub fn producer_input(
        &self,
        now_ms: u64,
        config: &[Setting],
        mut news: ProducerNews,
    ) -> ProducerInput {
        news.outputs.sort_by_key(|o| (o.source, o.start_ms));
        let cells = self.cells_for(
            news.outputs
                .iter()
                .map(|o| o.source)
                .chain(news.transfers.iter().filter_map(|t| t.entity)),
        );
        ProducerInput {
            now_ms,
            config: config.to_vec(),
            state: self.state.clone(),
            joined: news.joined,
            left: news.left,
            cells,
            outputs: news.outputs,
            transfers: news.transfers,
        }
    }

    pub fn apply_producer(&mut self, decision: &ProducerDecision) {
        self.apply_cells(&decision.state, &decision.cells);
    }
}
