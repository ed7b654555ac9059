//! The strategy boundary's costs, each against its baseline in the same run:
//!
//! - `grid_tick/{wasm,native}/N`: one basic-grid tick for N consumers, through a
//!   component with every limit on (fuel, epoch deadline, memory cap, fresh
//!   pooled instance) vs the same strategy code called natively via the SDK;
//! - `grid_tick/wasm-epoch/N`: the same component with the deadline alone
//!   (`metering = "epoch"`: no fuel counted per basic block);
//! - `grid_tick/json/N`: the same tick through a JSON-in/JSON-out core-module call
//!   (how Extism-style plugin hosts pass data);
//! - `fixed_cost`: an empty tick (instantiate + call set-up), with fuel and
//!   epoch-only;
//! - `load`: compiling a component vs loading it from the on-disk cache.

use std::path::Path;
use std::time::Duration;

use basic_grid_strategy::BasicGrid;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use powerplug::books::{Books, GridNews};
use powerplug::component::{Build, build, build_core};
use powerplug::strategy::{
    GridDecision, GridInput, Limits, Metering, Output, Runtime, Transfer, Usage,
};
use wasmtime::{Linker, Memory, Module, Store, TypedFunc};

/// Builds the guest crate at `dir` (from the workspace root) the way the tests
/// do, in its own target directory, and hands the build to `f`.
fn guest<T>(dir: &str, f: impl FnOnce(&Build<'_>) -> anyhow::Result<T>) -> T {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (crate_dir, target) = (root.join(dir), root.join("target/guests"));
    f(&Build {
        target_dir: Some(&target),
        ..Build::new(&crate_dir)
    })
    .expect("building the guest")
}

fn component(dir: &str) -> Vec<u8> {
    guest(dir, build)
}

/// A busy tick of a grid with `n` consumers: every consumer reports usage and
/// already has a cell; 3 producers report; a tenth of the consumers pay.
fn grid_input(n: u32) -> GridInput {
    let producers = [n, n + 1, n + 2];
    let mut books = Books::default();
    for c in 0..n {
        books.cells.insert(c, [u64::from(c % 900), 0, 0, 0]);
    }
    let news = GridNews {
        usage: (0..n)
            .map(|c| Usage {
                consumer: c,
                start_ms: 0,
                end_ms: 30_000,
                wh: 150 + u64::from(c % 1_000),
            })
            .collect(),
        output: producers
            .iter()
            .map(|&p| Output {
                producer: p,
                start_ms: 0,
                end_ms: 30_000,
                wh: 9_000,
                price: 36,
            })
            .collect(),
        transfers: (0..n)
            .step_by(10)
            .map(|c| Transfer {
                entity: Some(c),
                amount: 25,
                at_ms: 0,
                incoming: true,
            })
            .collect(),
        ..GridNews::default()
    };
    books.grid_input(60_000, &[], news)
}

fn convert<T: serde::Serialize, U: serde::de::DeserializeOwned>(value: &T) -> U {
    serde_json::from_value(serde_json::to_value(value).unwrap()).unwrap()
}

/// The Extism-style baseline: a core module, JSON in and out through its memory.
struct JsonGuest {
    store: Store<()>,
    alloc: TypedFunc<u32, u32>,
    tick: TypedFunc<(u32, u32), u64>,
    memory: Memory,
}

impl JsonGuest {
    fn new(engine: &wasmtime::Engine, module: &Module, limits: &Limits) -> Self {
        let mut store = Store::new(engine, ());
        store.set_fuel(limits.fuel).unwrap();
        store.set_epoch_deadline(1_000);
        // The SDK logs panics through Powerplug's `log`; a plugin host provides a
        // log function too, so this one is a no-op under the same name.
        let mut linker = Linker::new(engine);
        linker
            .func_wrap(
                "powerplug:strategy/log@0.1.0",
                "log",
                |_: i32, _: i32, _: i32| {},
            )
            .unwrap();
        let instance = linker.instantiate(&mut store, module).unwrap();
        Self {
            alloc: instance.get_typed_func(&mut store, "alloc").unwrap(),
            tick: instance.get_typed_func(&mut store, "tick_json").unwrap(),
            memory: instance.get_memory(&mut store, "memory").unwrap(),
            store,
        }
    }

    fn tick(mut self, input: &GridInput) -> GridDecision {
        let json = serde_json::to_vec(input).unwrap();
        let ptr = self.alloc.call(&mut self.store, json.len() as u32).unwrap();
        self.memory
            .write(&mut self.store, ptr as usize, &json)
            .unwrap();
        let packed = self
            .tick
            .call(&mut self.store, (ptr, json.len() as u32))
            .unwrap();
        let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let out = &self.memory.data(&self.store)[out_ptr..out_ptr + out_len];
        serde_json::from_slice::<Result<GridDecision, String>>(out)
            .unwrap()
            .unwrap()
    }
}

/// A runtime that bounds ticks by the deadline alone.
fn epoch_only() -> Runtime {
    let limits = Limits {
        metering: Metering::Epoch,
        ..Limits::default()
    };
    Runtime::new(limits, None).unwrap()
}

fn grid_tick(c: &mut Criterion) {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let basic = component("plugins/basic-grid-strategy");
    let grid = runtime.load_grid(&basic).unwrap();
    let epoch_grid = epoch_only().load_grid(&basic).unwrap();
    let json_module = {
        let path = guest("tests/fixtures/json-grid-guest", build_core);
        Module::from_file(runtime.engine(), path).unwrap()
    };

    let mut group = c.benchmark_group("grid_tick");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [10u32, 1_000, 100_000] {
        let input = grid_input(n);
        let sdk_input: powerplug_sdk::grid::GridInput = convert(&input);
        // All three decide the same.
        let expected = grid.tick(&input).unwrap().decision;
        assert_eq!(
            expected,
            convert(&powerplug_sdk::grid::run::<BasicGrid>(sdk_input.clone()).unwrap())
        );
        assert_eq!(
            expected,
            JsonGuest::new(runtime.engine(), &json_module, runtime.limits()).tick(&input)
        );
        assert_eq!(expected, epoch_grid.tick(&input).unwrap().decision);

        group.throughput(Throughput::Elements(u64::from(n)));
        if n == 100_000 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::new("wasm", n), &input, |b, input| {
            b.iter(|| grid.tick(input).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("wasm-epoch", n), &input, |b, input| {
            b.iter(|| epoch_grid.tick(input).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("native", n), &sdk_input, |b, input| {
            b.iter_batched(
                || input.clone(),
                |i| powerplug_sdk::grid::run::<BasicGrid>(i).unwrap(),
                BatchSize::LargeInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("json", n), &input, |b, input| {
            b.iter_batched(
                || JsonGuest::new(runtime.engine(), &json_module, runtime.limits()),
                |guest| guest.tick(input),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn fixed_cost(c: &mut Criterion) {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let grid = runtime
        .load_grid(&component("plugins/basic-grid-strategy"))
        .unwrap();
    let epoch_grid = epoch_only()
        .load_grid(&component("plugins/basic-grid-strategy"))
        .unwrap();
    let empty = Books::default().grid_input(60_000, &[], GridNews::default());
    c.bench_function("fixed_cost/empty_tick", |b| {
        b.iter(|| grid.tick(&empty).unwrap())
    });
    c.bench_function("fixed_cost/empty_tick_epoch", |b| {
        b.iter(|| epoch_grid.tick(&empty).unwrap())
    });
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    for dir in [
        "plugins/basic-grid-strategy",
        "plugins/basic-producer-strategy",
    ] {
        let bytes = component(dir);
        let name = dir.rsplit('/').next().unwrap();
        let uncached = Runtime::new(Limits::default(), None).unwrap();
        group.bench_function(BenchmarkId::new("compile", name), |b| {
            b.iter(|| uncached.load(&bytes).unwrap())
        });
        let cache = tempfile::tempdir().unwrap();
        let cached = Runtime::new(Limits::default(), Some(cache.path())).unwrap();
        cached.load(&bytes).unwrap();
        group.bench_function(BenchmarkId::new("cached", name), |b| {
            b.iter(|| cached.load(&bytes).unwrap())
        });
        assert_eq!(cached.cache_stats().compiles, 1);
    }
    group.finish();
}

criterion_group!(benches, grid_tick, fixed_cost, load);
criterion_main!(benches);
