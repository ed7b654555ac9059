//! Host bindings of the WIT contract, one module per world; the producer world
//! reuses the grid world's `types` and `log`.

pub(crate) mod grid_world {
    wasmtime::component::bindgen!({
        world: "grid-strategy",
        path: "../wit",
        additional_derives: [PartialEq, Eq, serde::Serialize, serde::Deserialize],
    });
}

pub(crate) mod producer_world {
    wasmtime::component::bindgen!({
        world: "producer-strategy",
        path: "../wit",
        with: {
            "powerplug:strategy/types": super::grid_world::powerplug::strategy::types,
            "powerplug:strategy/log": super::grid_world::powerplug::strategy::log,
        },
        additional_derives: [PartialEq, Eq, serde::Serialize, serde::Deserialize],
    });
}

pub use grid_world::exports::powerplug::strategy::grid;
pub use grid_world::powerplug::strategy::log;
pub use grid_world::powerplug::strategy::types;
pub use log::Level as LogLevel;
pub use producer_world::exports::powerplug::strategy::producer;

/// Payload bytes of a decision, as the limit counts them: lists at their
/// canonical-ABI element size, strings at their length.
pub trait DecisionSize {
    fn payload_bytes(&self) -> usize;
}

fn metrics_bytes(metrics: &[types::Metric]) -> usize {
    metrics.iter().map(|m| m.name.len() + 8).sum()
}

const CELL_BYTES: usize = 40;

impl DecisionSize for grid::GridDecision {
    fn payload_bytes(&self) -> usize {
        self.state.len()
            + self.cells.len() * CELL_BYTES
            + self.payment_requests.len() * 24
            + self.payouts.len() * 16
            + metrics_bytes(&self.metrics)
    }
}

impl DecisionSize for producer::ProducerDecision {
    fn payload_bytes(&self) -> usize {
        self.state.len()
            + self.cells.len() * CELL_BYTES
            + self.commands.len() * 32
            + metrics_bytes(&self.metrics)
    }
}

pub fn decision_size(decision: &impl DecisionSize) -> usize {
    decision.payload_bytes()
}
