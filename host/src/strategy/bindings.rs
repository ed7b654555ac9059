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

/// One entry of a usage batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub consumer: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub wh: u64,
}

/// One entry of a payment-request batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaymentRequest {
    pub consumer: u32,
    pub wh: u64,
    pub owed: u64,
}

impl grid::UsageBatch {
    pub fn from_entries(entries: &[Usage]) -> Self {
        Self {
            consumer: entries.iter().map(|u| u.consumer).collect(),
            start_ms: entries.iter().map(|u| u.start_ms).collect(),
            end_ms: entries.iter().map(|u| u.end_ms).collect(),
            wh: entries.iter().map(|u| u.wh).collect(),
        }
    }
}

impl grid::PaymentRequestBatch {
    pub fn len(&self) -> usize {
        self.consumer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.consumer.is_empty()
    }

    /// The entries; a batch from a strategy has been checked to be rectangular.
    pub fn iter(&self) -> impl Iterator<Item = PaymentRequest> + '_ {
        self.consumer
            .iter()
            .zip(&self.wh)
            .zip(&self.owed)
            .map(|((&consumer, &wh), &owed)| PaymentRequest { consumer, wh, owed })
    }
}

impl types::CellBatch {
    pub fn from_entries(entries: impl IntoIterator<Item = (u32, [u64; 4])>) -> Self {
        let mut batch = Self {
            entity: Vec::new(),
            words: Vec::new(),
        };
        for (entity, words) in entries {
            batch.entity.push(entity);
            batch.words.extend_from_slice(&words);
        }
        batch
    }

    pub fn len(&self) -> usize {
        self.entity.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entity.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, [u64; 4])> + '_ {
        self.entity
            .iter()
            .zip(self.words.chunks_exact(4))
            .map(|(&e, w)| (e, [w[0], w[1], w[2], w[3]]))
    }

    fn check(&self) -> Result<(), String> {
        if self.words.len() != self.entity.len() * 4 {
            return Err(format!(
                "cells: {} entities but {} words",
                self.entity.len(),
                self.words.len()
            ));
        }
        Ok(())
    }
}

/// What the host checks of a decision before anything is applied.
pub trait Decision {
    /// Payload bytes, as the limit counts them: list elements at their
    /// canonical-ABI size, strings at their length.
    fn payload_bytes(&self) -> usize;
    /// Batches are rectangular.
    fn check(&self) -> Result<(), String>;
}

fn metrics_bytes(metrics: &[types::Metric]) -> usize {
    metrics.iter().map(|m| m.name.len() + 8).sum()
}

impl Decision for grid::GridDecision {
    fn payload_bytes(&self) -> usize {
        self.state.len()
            + self.cells.entity.len() * 4
            + self.cells.words.len() * 8
            + self.payment_requests.consumer.len() * 4
            + (self.payment_requests.wh.len() + self.payment_requests.owed.len()) * 8
            + self.payouts.len() * 16
            + metrics_bytes(&self.metrics)
    }

    fn check(&self) -> Result<(), String> {
        self.cells.check()?;
        let r = &self.payment_requests;
        if r.wh.len() != r.consumer.len() || r.owed.len() != r.consumer.len() {
            return Err("payment-requests: the batch's columns differ in length".into());
        }
        Ok(())
    }
}

impl Decision for producer::ProducerDecision {
    fn payload_bytes(&self) -> usize {
        self.state.len()
            + self.cells.entity.len() * 4
            + self.cells.words.len() * 8
            + self.commands.len() * 32
            + metrics_bytes(&self.metrics)
    }

    fn check(&self) -> Result<(), String> {
        self.cells.check()
    }
}
