//! Host bindings of the WIT contract, one module per world; the producer world
//! reuses the grid world's `types` and `log`.

pub(crate) mod grid_world {
    wasmtime::component::bindgen!({
        world: "grid-strategy",
        path: "../../wit",
        additional_derives: [PartialEq, Eq, serde::Serialize, serde::Deserialize],
    });
}

pub(crate) mod producer_world {
    wasmtime::component::bindgen!({
        world: "producer-strategy",
        path: "../../wit",
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

/// The WIT's `entity-kind` is the host's [`powerplug_domain::EntityKind`]
/// on the wire: they convert here, where a tick crosses into the sandbox.
impl From<powerplug_domain::EntityKind> for types::EntityKind {
    fn from(kind: powerplug_domain::EntityKind) -> Self {
        use powerplug_domain::EntityKind as K;
        match kind {
            K::Consumer => Self::Consumer,
            K::Producer => Self::Producer,
            K::Source => Self::Source,
        }
    }
}

impl From<types::EntityKind> for powerplug_domain::EntityKind {
    fn from(kind: types::EntityKind) -> Self {
        use types::EntityKind as K;
        match kind {
            K::Consumer => Self::Consumer,
            K::Producer => Self::Producer,
            K::Source => Self::Source,
        }
    }
}

impl types::Entity {
    pub fn new(index: u32, kind: powerplug_domain::EntityKind, id: String) -> Self {
        Self {
            index,
            kind: kind.into(),
            id,
        }
    }

    /// The entity's kind, in the host's words.
    pub fn kind(&self) -> powerplug_domain::EntityKind {
        self.kind.into()
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

/// Part of the message of a decision whose amounts overflow (the conformance
/// check files it under "amounts in range").
pub const AMOUNTS_OVERFLOW: &str = "add up to more than";

/// The sum of `values`, which the host adds up without further checks (found
/// by fuzzing: two requests of 2^63 tokens wrapped the counters).
fn total(values: impl Iterator<Item = u64> + Clone, what: &str) -> Result<u64, String> {
    values
        .clone()
        .try_fold(0u64, u64::checked_add)
        .ok_or_else(|| {
            let largest = values.max().unwrap_or(0);
            format!(
                "{what} {AMOUNTS_OVERFLOW} {} (the largest is {largest}, {} as a signed number)",
                u64::MAX,
                largest as i64
            )
        })
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
        total(r.owed.iter().copied(), "payment-requests: the amounts owed")?;
        total(r.wh.iter().copied(), "payment-requests: the Wh billed")?;
        total(self.payouts.iter().map(|p| p.amount), "payouts")?;
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
        use crate::limits::{MAX_PRICE, MAX_WH};
        self.cells.check()?;
        // What the grid's inbox takes of an output report: checked here, so
        // that an impossible output is a failed tick (recorded, counted
        // towards a rollback), not an error in every round (found by fuzzing).
        for (i, c) in self.commands.iter().enumerate() {
            if !(c.start_ms < c.end_ms && c.wh <= MAX_WH && c.price <= MAX_PRICE) {
                return Err(format!(
                    "commands[{i}]: an output the grid refuses ({} to {} ms, {} Wh for {} tokens): it must start before it ends, at most {MAX_WH} Wh for at most {MAX_PRICE} tokens",
                    c.start_ms, c.end_ms, c.wh, c.price
                ));
            }
        }
        total(self.commands.iter().map(|c| c.wh), "commands: the Wh")?;
        total(
            self.commands.iter().map(|c| c.price),
            "commands: the prices",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::grid::{GridDecision, PaymentRequestBatch, Payout};
    use super::producer::{OutputCommand, ProducerDecision};
    use super::types::CellBatch;
    use crate::limits::{MAX_PRICE, MAX_WH};
    use crate::{CallError, Limits, validate};

    fn grid(owed: Vec<u64>, payouts: Vec<u64>) -> GridDecision {
        GridDecision {
            state: Vec::new(),
            cells: CellBatch::from_entries([]),
            payment_requests: PaymentRequestBatch {
                consumer: (0..owed.len() as u32).collect(),
                wh: owed.iter().map(|_| 1).collect(),
                owed,
            },
            payouts: payouts
                .into_iter()
                .map(|amount| Payout {
                    producer: 9,
                    amount,
                })
                .collect(),
            metrics: Vec::new(),
        }
    }

    fn refused<D: super::Decision>(d: &D) -> String {
        match validate(d, &Limits::DEFAULT) {
            Err(CallError::Malformed(m)) => m,
            other => panic!("expected a malformed decision, got {other:?}"),
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/decision.rs): amounts whose sum
    /// wraps passed the check, and the host's counters wrapped with them.
    #[test]
    fn a_grid_decision_whose_amounts_overflow_is_malformed() {
        validate(&grid(vec![u64::MAX, 0], vec![u64::MAX]), &Limits::DEFAULT).unwrap();
        let why = refused(&grid(vec![1 << 63, 1 << 63], vec![]));
        assert!(
            why.contains("amounts owed") && why.contains("-9223372036854775808"),
            "{why}"
        );
        let why = refused(&grid(vec![], vec![u64::MAX, 1]));
        assert!(why.starts_with("payouts"), "{why}");
        let mut wh = grid(vec![1, 1], vec![]);
        wh.payment_requests.wh = vec![u64::MAX, 1];
        assert!(refused(&wh).contains("Wh billed"));
    }

    fn producer(commands: Vec<(u64, u64, u64, u64)>) -> ProducerDecision {
        ProducerDecision {
            state: Vec::new(),
            cells: CellBatch::from_entries([]),
            commands: commands
                .into_iter()
                .map(|(start_ms, end_ms, wh, price)| OutputCommand {
                    start_ms,
                    end_ms,
                    wh,
                    price,
                })
                .collect(),
            metrics: Vec::new(),
        }
    }

    /// Found by fuzzing: an output the grid refuses passed the check and
    /// failed the producer's commit in every round, never counted as a failed
    /// tick (so never rolled back).
    #[test]
    fn a_producer_output_the_grid_would_refuse_is_malformed() {
        validate(&producer(vec![(0, 1, MAX_WH, MAX_PRICE)]), &Limits::DEFAULT).unwrap();
        for bad in [
            (5, 5, 1, 1),
            (6, 5, 1, 1),
            (0, 1, MAX_WH + 1, 1),
            (0, 1, 1, MAX_PRICE + 1),
        ] {
            let why = refused(&producer(vec![(0, 1, 1, 1), bad]));
            assert!(why.starts_with("commands[1]"), "{bad:?}: {why}");
        }
    }
}
