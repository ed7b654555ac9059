//! Grid strategies: bill consumers, pay producers.

use serde::{Serialize, de::DeserializeOwned};

pub use crate::bindings::grid::exports::powerplug::strategy::grid::{
    GridDecision, GridInput, Output, PaymentRequestBatch, Payout, UsageBatch,
};
use crate::{Cells, Config, Entity, Error, Metric, Transfer, state};

/// A grid's payment policy. The host calls [`GridStrategy::tick`] once per tick
/// and carries out what the strategy put in [`GridOut`].
pub trait GridStrategy: Sized {
    /// The strategy's own state between ticks (per-entity data goes in cells).
    type State: Serialize + DeserializeOwned + Default;

    /// Reads the strategy's settings; called every tick (settings may change).
    fn new(config: &Config<'_>) -> Result<Self, Error>;

    /// Decides one tick. Returning `Err` refuses the tick: the host applies nothing.
    fn tick(
        &self,
        state: &mut Self::State,
        tick: &GridTick<'_>,
        out: &mut GridOut,
    ) -> Result<(), Error>;
}

/// Energy `consumer` used in [`start_ms`, `end_ms`): one entry of the input's usage batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub consumer: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub wh: u64,
}

/// Ask `consumer` to pay `owed` tokens for `wh` watt-hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentRequest {
    pub consumer: u32,
    pub wh: u64,
    pub owed: u64,
}

/// The input's usage batch, read entry by entry without copying.
#[derive(Debug, Clone, Copy)]
pub struct Usages<'a> {
    batch: &'a UsageBatch,
}

impl<'a> Usages<'a> {
    /// Refuses a batch whose columns differ in length.
    pub fn new(batch: &'a UsageBatch) -> Result<Self, Error> {
        let n = batch.consumer.len();
        if [batch.start_ms.len(), batch.end_ms.len(), batch.wh.len()] != [n; 3] {
            return Err("usage: the batch's columns differ in length".into());
        }
        Ok(Self { batch })
    }

    pub fn len(&self) -> usize {
        self.batch.consumer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.consumer.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<Usage> {
        let b = self.batch;
        Some(Usage {
            consumer: *b.consumer.get(i)?,
            start_ms: b.start_ms[i],
            end_ms: b.end_ms[i],
            wh: b.wh[i],
        })
    }

    pub fn iter(&self) -> UsageIter<'a> {
        UsageIter {
            batch: self.batch,
            next: 0,
        }
    }
}

impl<'a> IntoIterator for Usages<'a> {
    type Item = Usage;
    type IntoIter = UsageIter<'a>;

    fn into_iter(self) -> UsageIter<'a> {
        self.iter()
    }
}

/// The entries of a [`Usages`], in order.
#[derive(Debug, Clone)]
pub struct UsageIter<'a> {
    batch: &'a UsageBatch,
    next: usize,
}

impl Iterator for UsageIter<'_> {
    type Item = Usage;

    fn next(&mut self) -> Option<Usage> {
        let usage = Usages { batch: self.batch }.get(self.next)?;
        self.next += 1;
        Some(usage)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batch.consumer.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for UsageIter<'_> {}

impl PaymentRequestBatch {
    pub fn push(&mut self, request: PaymentRequest) {
        self.consumer.push(request.consumer);
        self.wh.push(request.wh);
        self.owed.push(request.owed);
    }
}

// wit-bindgen generates the type, so the impl cannot be derived.
#[allow(clippy::derivable_impls)]
impl Default for PaymentRequestBatch {
    fn default() -> Self {
        Self {
            consumer: Vec::new(),
            wh: Vec::new(),
            owed: Vec::new(),
        }
    }
}

/// What happened since the last tick.
#[derive(Debug, Clone, Copy)]
pub struct GridTick<'a> {
    pub now_ms: u64,
    pub joined: &'a [Entity],
    pub left: &'a [u32],
    pub usage: Usages<'a>,
    pub output: &'a [Output],
    pub transfers: &'a [Transfer],
}

/// The decision being built, and the cells of the entities this tick mentions.
#[derive(Debug, Default)]
pub struct GridOut {
    pub cells: Cells,
    pub payment_requests: PaymentRequestBatch,
    pub payouts: Vec<Payout>,
    pub metrics: Vec<Metric>,
}

impl GridOut {
    pub fn request_payment(&mut self, consumer: u32, wh: u64, owed: u64) {
        self.payment_requests
            .push(PaymentRequest { consumer, wh, owed });
    }

    pub fn pay(&mut self, producer: u32, amount: u64) {
        self.payouts.push(Payout { producer, amount });
    }

    pub fn metric(&mut self, name: &str, value: i64) {
        self.metrics.push(Metric {
            name: name.to_owned(),
            value,
        });
    }
}

/// Runs one tick of `S`: what the exported component does, and what tests call natively.
pub fn run<S: GridStrategy>(input: GridInput) -> Result<GridDecision, Error> {
    crate::log::log_panics();
    let GridInput {
        now_ms,
        config,
        state,
        joined,
        left,
        cells,
        usage,
        output,
        transfers,
    } = input;
    let strategy = S::new(&Config::new(&config))?;
    let mut own: S::State = state::decode(&state)?;
    let tick = GridTick {
        now_ms,
        joined: &joined,
        left: &left,
        usage: Usages::new(&usage)?,
        output: &output,
        transfers: &transfers,
    };
    let mut out = GridOut {
        cells: Cells::new(cells)?,
        ..GridOut::default()
    };
    strategy.tick(&mut own, &tick, &mut out)?;
    Ok(GridDecision {
        state: state::encode(&own)?,
        cells: out.cells.into_changed(),
        payment_requests: out.payment_requests,
        payouts: out.payouts,
        metrics: out.metrics,
    })
}

/// Exports a [`GridStrategy`] as the component's `powerplug:strategy/grid` interface.
#[macro_export]
macro_rules! export_grid_strategy {
    ($strategy:ty) => {
        // Only a WebAssembly build exports; natively the crate is a plain library.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
        struct __PowerplugGridExport;

        impl $crate::bindings::grid::exports::powerplug::strategy::grid::Guest
            for __PowerplugGridExport
        {
            fn tick(
                input: $crate::grid::GridInput,
            ) -> ::core::result::Result<$crate::grid::GridDecision, $crate::Error> {
                $crate::grid::run::<$strategy>(input)
            }
        }

        $crate::bindings::grid::__export_grid_world!(__PowerplugGridExport with_types_in $crate::bindings::grid);
        };
    };
}
