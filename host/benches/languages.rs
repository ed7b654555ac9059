//! Strategies in other languages (issue 6), each against the Rust plugin in
//! the same run:
//!
//! - `languages/tick/{strategy}/{N}`: one busy grid tick of N consumers
//!   (as `tick.rs` builds it), under limits raised far enough that every
//!   language finishes: at 100,000 consumers Python and JavaScript need more
//!   than the default fuel (the figures below say how much more);
//! - `languages/empty_tick/{strategy}`: a tick with no input, i.e.
//!   instantiation plus the call's set-up;
//!
//! and, measured once and written to `results/languages.json`: component
//! size, compile time and load from the compiled cache, fuel per consumer at
//! both sizes, and the largest grid each strategy bills within one tick under
//! `Limits::DEFAULT` (found by bisection, each probe a real tick). The flat
//! templates of every language implement the same rules and are checked to
//! decide the same before anything is timed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use powerplug::books::{Books, GridNews};
use powerplug::component::{Build, build};
use powerplug::scaffold::{Lang, create};
use powerplug::strategy::{
    CallError, GridInput, GridStrategy, Limits, Output, Runtime, Transfer, Usage,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A strategy under test: its label, and how it was built.
struct Subject {
    label: &'static str,
    lang: &'static str,
    bytes: Vec<u8>,
}

/// Runs a project's own build script (which installs its pinned kit).
fn scripted(project: &Path) -> Vec<u8> {
    let out = project.join("build/bench.wasm");
    let status = Command::new("sh")
        .arg(project.join("build.sh"))
        .arg(&out)
        .env("POWERPLUG_CHECKOUT", root())
        .status()
        .expect("running build.sh");
    assert!(status.success(), "{}/build.sh failed", project.display());
    std::fs::read(out).expect("the built component")
}

fn rust(crate_dir: &Path) -> Vec<u8> {
    let target = root().join("target/guests");
    build(&Build {
        target_dir: Some(&target),
        ..Build::new(crate_dir)
    })
    .expect("building the Rust guest")
}

fn subjects(templates: &Path) -> Vec<Subject> {
    for (lang, name) in [
        (Lang::Rust, "flat-rust"),
        (Lang::Python, "flat-python"),
        (Lang::Js, "flat-js"),
        (Lang::C, "flat-c"),
    ] {
        create(lang, &templates.join(name), &root()).expect("writing the template");
    }
    let subject = |label, lang, bytes| Subject { label, lang, bytes };
    vec![
        subject(
            "rust-basic-plugin",
            "Rust",
            rust(&root().join("plugins/basic-grid-strategy")),
        ),
        subject(
            "rust-flat-template",
            "Rust",
            rust(&templates.join("flat-rust")),
        ),
        subject(
            "python-flat-template",
            "Python",
            scripted(&templates.join("flat-python")),
        ),
        subject(
            "js-flat-template",
            "JavaScript",
            scripted(&templates.join("flat-js")),
        ),
        subject("c-flat-template", "C", scripted(&templates.join("flat-c"))),
        subject(
            "python-time-of-use",
            "Python",
            scripted(&root().join("examples/time-of-use-python")),
        ),
        subject(
            "js-tiered-price",
            "JavaScript",
            scripted(&root().join("examples/tiered-price-js")),
        ),
        subject(
            "c-weekend-rate",
            "C",
            scripted(&root().join("examples/weekend-rate-c")),
        ),
    ]
}

/// A busy tick of `n` consumers, as `tick.rs` measures the basic plugin:
/// every consumer reports usage and has a cell, 3 producers report, a tenth
/// of the consumers pay.
fn grid_input(n: u32) -> GridInput {
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
        output: (n..n + 3)
            .map(|p| Output {
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
    // 2026-01-01T18:00Z: the time-of-use example's peak hour.
    books.grid_input(1_767_290_400_000, &[], news)
}

/// Limits high enough for every language to finish a 100,000-consumer tick.
const GENEROUS: Limits = Limits {
    fuel: 1_000_000_000_000,
    deadline: Duration::from_secs(600),
    memory_bytes: 2 << 30,
    decision_bytes: 512 << 20,
    ..Limits::DEFAULT
};

#[derive(serde::Serialize)]
struct Measured {
    label: &'static str,
    lang: &'static str,
    bytes: usize,
    compile_ms: f64,
    cached_load_ms: f64,
    /// Fuel of one tick at 1,000 and 100,000 consumers, per consumer.
    fuel_per_consumer: [f64; 2],
    /// The largest grid billed in one tick under the default limits, and
    /// what stopped the next size up.
    largest: u32,
    stopped_by: String,
}

/// Bisects for the largest n whose busy tick succeeds under the defaults.
fn largest(strategy: &GridStrategy) -> (u32, String) {
    let fits = |n: u32| strategy.tick(&grid_input(n)).map(drop).map_err(|f| f.error);
    let (mut lo, mut hi) = (1_000u32, 2_000u32);
    let mut why = loop {
        match fits(hi) {
            Ok(()) if hi < 4_000_000 => (lo, hi) = (hi, hi * 2),
            Ok(()) => return (hi, "nothing up to 4,000,000".into()),
            Err(e) => break cause(&e),
        }
    };
    while hi - lo > lo / 100 {
        let mid = lo + (hi - lo) / 2;
        match fits(mid) {
            Ok(()) => lo = mid,
            Err(e) => (hi, why) = (mid, cause(&e)),
        }
    }
    (lo, why)
}

fn cause(e: &CallError) -> String {
    e.cause().to_owned()
}

fn main() {
    let templates = tempfile::tempdir().expect("a temporary directory");
    let subjects = subjects(templates.path());
    let generous = Runtime::new(GENEROUS, None).expect("a runtime");
    let default = Runtime::new(Limits::DEFAULT, None).expect("a runtime");
    let inputs = [grid_input(1_000), grid_input(100_000)];

    // One-shot measurements, and the strategies loaded for criterion.
    let mut measured = Vec::new();
    let mut loaded = Vec::new();
    for s in &subjects {
        let start = Instant::now();
        let strategy = generous.load_grid(&s.bytes).expect("loading");
        let compile_ms = start.elapsed().as_secs_f64() * 1e3;
        let cache = tempfile::tempdir().expect("a temporary directory");
        let cached = Runtime::new(GENEROUS, Some(cache.path())).expect("a runtime");
        cached.load_grid(&s.bytes).expect("loading");
        let start = Instant::now();
        cached.load_grid(&s.bytes).expect("loading from the cache");
        let cached_load_ms = start.elapsed().as_secs_f64() * 1e3;
        let fuel = |i: usize, n: f64| {
            let outcome = strategy.tick(&inputs[i]).expect("a tick");
            outcome.fuel_used as f64 / n
        };
        let fuel_per_consumer = [fuel(0, 1e3), fuel(1, 1e5)];
        let (largest, stopped_by) = largest(&default.load_grid(&s.bytes).expect("loading"));
        eprintln!(
            "{}: {} bytes, compile {compile_ms:.0} ms, fuel/consumer {fuel_per_consumer:?}, largest {largest} ({stopped_by})",
            s.label,
            s.bytes.len()
        );
        measured.push(Measured {
            label: s.label,
            lang: s.lang,
            bytes: s.bytes.len(),
            compile_ms,
            cached_load_ms,
            fuel_per_consumer,
            largest,
            stopped_by,
        });
        loaded.push((s.label, strategy));
    }
    // The four flat templates are the same rules in four languages, each on
    // its SDK's or kit's money books. Rust and C keep them in the same bytes
    // (postcard); Python and JavaScript in JSON, so their state is left out.
    for input in &inputs {
        let decide = |label: &str| {
            let (_, s) = loaded.iter().find(|(l, _)| *l == label).expect("loaded");
            s.tick(input).expect("a tick").decision
        };
        let rust = decide("rust-flat-template");
        assert_eq!(rust, decide("c-flat-template"), "C decided otherwise");
        let stateless = |mut d: powerplug::strategy::GridDecision| {
            d.state.clear();
            d
        };
        let rust = stateless(rust);
        assert_eq!(
            rust,
            stateless(decide("python-flat-template")),
            "Python decided otherwise"
        );
        assert_eq!(
            rust,
            stateless(decide("js-flat-template")),
            "JavaScript decided otherwise"
        );
    }
    let json = serde_json::to_string_pretty(&measured).expect("JSON");
    let path = root().join("host/benches/results/languages.json");
    std::fs::write(&path, json).expect("writing results/languages.json");

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("languages");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    let empty = Books::default().grid_input(1_767_290_400_000, &[], GridNews::default());
    for (label, strategy) in &loaded {
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("empty_tick", label), |b| {
            b.iter(|| strategy.tick(&empty).expect("a tick"))
        });
        for (input, n) in inputs.iter().zip([1_000u64, 100_000]) {
            group.throughput(Throughput::Elements(n));
            group.bench_with_input(
                BenchmarkId::new(format!("tick/{label}"), n),
                input,
                |b, input| b.iter(|| strategy.tick(input).expect("a tick")),
            );
        }
    }
    group.finish();
    c.final_summary();
}
