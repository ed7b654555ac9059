//! Producer strategies: aggregate sources' output into priced output reports.

use serde::{Serialize, de::DeserializeOwned};

pub use crate::bindings::producer::exports::powerplug::strategy::producer::{
    OutputCommand, ProducerDecision, ProducerInput, SourceOutput,
};
use crate::{Cells, Config, Entity, Error, Metric, Transfer, state};

/// A producer's pricing policy. The host calls [`ProducerStrategy::tick`] once
/// per tick and sends the output commands the strategy put in [`ProducerOut`].
pub trait ProducerStrategy: Sized {
    type State: Serialize + DeserializeOwned + Default;

    fn new(config: &Config<'_>) -> Result<Self, Error>;

    fn tick(
        &self,
        state: &mut Self::State,
        tick: &ProducerTick<'_>,
        out: &mut ProducerOut,
    ) -> Result<(), Error>;
}

#[derive(Debug, Clone, Copy)]
pub struct ProducerTick<'a> {
    pub now_ms: u64,
    pub joined: &'a [Entity],
    pub left: &'a [u32],
    pub outputs: &'a [SourceOutput],
    pub transfers: &'a [Transfer],
}

#[derive(Debug, Default)]
pub struct ProducerOut {
    pub cells: Cells,
    pub commands: Vec<OutputCommand>,
    pub metrics: Vec<Metric>,
}

impl ProducerOut {
    pub fn report_output(&mut self, start_ms: u64, end_ms: u64, wh: u64, price: u64) {
        self.commands.push(OutputCommand {
            start_ms,
            end_ms,
            wh,
            price,
        });
    }

    pub fn metric(&mut self, name: &str, value: i64) {
        self.metrics.push(Metric {
            name: name.to_owned(),
            value,
        });
    }
}

/// Runs one tick of `S`: what the exported component does, and what tests call natively.
pub fn run<S: ProducerStrategy>(input: ProducerInput) -> Result<ProducerDecision, Error> {
    crate::log::log_panics();
    let ProducerInput {
        now_ms,
        config,
        state,
        joined,
        left,
        cells,
        outputs,
        transfers,
    } = input;
    let strategy = S::new(&Config::new(&config))?;
    let mut own: S::State = state::decode(&state)?;
    let tick = ProducerTick {
        now_ms,
        joined: &joined,
        left: &left,
        outputs: &outputs,
        transfers: &transfers,
    };
    let mut out = ProducerOut {
        cells: Cells::new(cells)?,
        ..ProducerOut::default()
    };
    strategy.tick(&mut own, &tick, &mut out)?;
    Ok(ProducerDecision {
        state: state::encode(&own)?,
        cells: out.cells.into_changed(),
        commands: out.commands,
        metrics: out.metrics,
    })
}

/// Exports a [`ProducerStrategy`] as the component's `powerplug:strategy/producer` interface.
#[macro_export]
macro_rules! export_producer_strategy {
    ($strategy:ty) => {
        // Only a WebAssembly build exports; natively the crate is a plain library.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
        struct __PowerplugProducerExport;

        impl $crate::bindings::producer::exports::powerplug::strategy::producer::Guest
            for __PowerplugProducerExport
        {
            fn tick(
                input: $crate::producer::ProducerInput,
            ) -> ::core::result::Result<$crate::producer::ProducerDecision, $crate::Error> {
                $crate::producer::run::<$strategy>(input)
            }
        }

        $crate::bindings::producer::__export_producer_world!(__PowerplugProducerExport with_types_in $crate::bindings::producer);
        };
    };
}
