//! The main job's scenario, end to end: WASM and native runs agree to the token,
//! the run is deterministic, and money is conserved.

use basic_grid_strategy::BasicGrid;
use basic_producer_strategy::BasicProducer;
use powerplug::simulate::{self, Deciders, Scenario, WasmDeciders};
use powerplug::strategy::{
    GridDecision, GridInput, Limits, ProducerDecision, ProducerInput, Runtime,
};
use powerplug_tests::{basic_grid, basic_producer, convert};

struct Native;

impl Deciders for Native {
    fn grid(&mut self, input: &GridInput) -> anyhow::Result<(GridDecision, u64)> {
        let d =
            powerplug_sdk::grid::run::<BasicGrid>(convert(input)).map_err(anyhow::Error::msg)?;
        Ok((convert(&d), 0))
    }
    fn producer(
        &mut self,
        _: usize,
        input: &ProducerInput,
    ) -> anyhow::Result<(ProducerDecision, u64)> {
        let d = powerplug_sdk::producer::run::<BasicProducer>(convert(input))
            .map_err(anyhow::Error::msg)?;
        Ok((convert(&d), 0))
    }
}

fn wasm() -> WasmDeciders {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    WasmDeciders {
        grid: runtime.load_grid(&basic_grid()).unwrap(),
        producer: runtime.load_producer(&basic_producer()).unwrap(),
    }
}

#[test]
fn wasm_and_native_runs_agree_and_conserve_money() {
    let scenario = Scenario {
        ticks: 60,
        consumers: 5,
        producers: vec![3, 1, 2],
        ..Scenario::default()
    };
    let on_wasm = simulate::run(&scenario, &mut wasm()).unwrap();
    let native = simulate::run(&scenario, &mut Native).unwrap();
    assert_eq!(on_wasm.totals, native.totals);
    assert_eq!(on_wasm.grid_books, native.grid_books);

    let t = &on_wasm.totals;
    // Something actually happened, end to end.
    assert!(
        t.billed_wh > 0 && t.paid_by_consumers > 0 && t.paid_to_producers > 0,
        "{t:?}"
    );
    // Billing: 5 tokens per whole kWh, never more than was used.
    assert_eq!(t.billed_wh % 1_000, 0);
    assert_eq!(t.requested, t.billed_wh / 1_000 * 5);
    assert!(t.used_wh - t.billed_wh < 1_000 * u64::from(scenario.consumers));
    // Consumers paid in steps of 25 and owe the rest.
    assert_eq!(t.paid_by_consumers % 25, 0);
    assert_eq!(
        t.paid_by_consumers + t.consumer_outstanding.iter().sum::<u64>(),
        t.requested
    );
    // Producers were paid in whole rounds of 40 minus the floors' remainders,
    // never more than their 4/5 of what came in.
    assert!(t.paid_to_producers <= t.paid_by_consumers * 4 / 5);
    assert_eq!(t.grid_balance, t.paid_by_consumers - t.paid_to_producers);
    // Producers report what their sources generated, up to the 3-slice delay.
    assert!(t.reported_wh <= t.generated_wh);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let scenario = Scenario::default();
    let a = simulate::run(&scenario, &mut wasm()).unwrap();
    let b = simulate::run(&scenario, &mut wasm()).unwrap();
    assert_eq!(a.totals, b.totals);
    assert_eq!(a.to_string(), b.to_string());
    let other = simulate::run(
        &Scenario {
            seed: 8,
            ..scenario
        },
        &mut wasm(),
    )
    .unwrap();
    assert_ne!(a.totals, other.totals);
}

/// Grids of many shapes and seeds: the WASM run equals the native run and the
/// invariants hold in every one of them.
#[test]
fn many_random_grids_agree_and_conserve_money() {
    let mut deciders = wasm();
    for seed in 0..24u64 {
        let scenario = Scenario {
            seed,
            ticks: 20 + (seed as u32 * 7) % 60,
            consumers: 1 + (seed as u32 * 5) % 30,
            producers: (0..1 + seed % 4)
                .map(|p| 1 + ((seed + p) % 4) as u32)
                .collect(),
            tick_ms: [5_000, 15_000, 40_000, 200_000][seed as usize % 4],
            ..Scenario::default()
        };
        let on_wasm = simulate::run(&scenario, &mut deciders)
            .unwrap_or_else(|e| panic!("{scenario:?}: {e:#}"));
        let native = simulate::run(&scenario, &mut Native).unwrap();
        assert_eq!(on_wasm.totals, native.totals, "{scenario:?}");
        assert_eq!(on_wasm.grid_books, native.grid_books, "{scenario:?}");
        let t = &on_wasm.totals;
        assert_eq!(t.requested, t.billed_wh / 1_000 * 5, "{scenario:?}");
        assert!(
            t.billed_wh <= t.used_wh && t.reported_wh <= t.generated_wh,
            "{scenario:?}"
        );
        assert_eq!(
            t.paid_by_consumers + t.consumer_outstanding.iter().sum::<u64>(),
            t.requested
        );
        assert!(
            t.paid_to_producers <= t.paid_by_consumers * 4 / 5,
            "{scenario:?}"
        );
    }
}
