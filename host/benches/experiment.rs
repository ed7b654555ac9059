//! A/B testing costs (issue 5), in one run:
//!
//! 1. **Replay throughput**: a recording of 1,000,000 usage records (100 ticks
//!    of 10,000 consumers, with producers' output and payments) in a grid's
//!    tick log on disk, replayed as `powerplug replay --input DIR` does: read
//!    and decode the log; replay it through a decider that decides nothing
//!    (the host's own work: books, inputs, totals; the baseline); through the
//!    basic grid component; and through two components (A and B).
//! 2. **Tick overhead of an experiment**: `Grid::tick()` of an in-process grid
//!    with N consumers, each with a fresh reading every tick, without an
//!    experiment (the baseline), then with 2 and with 4 variants (each extra
//!    variant bills its cohort and runs counterfactually on the others, and
//!    the results are recorded), and with a shadow candidate; in blocks,
//!    round after round.
//!
//! Not criterion: the figures are percentiles of raw samples, printed and
//! written to `host/benches/results/experiment.json`;
//! `python3 host/benches/report.py --experiment` draws
//! `host/benches/results/experiment.svg`.
//!
//! `cargo bench -p powerplug --bench experiment` (a few minutes once built);
//! with `POWERPLUG_BENCH_CONSUMERS=N`, only the tick overhead at N consumers,
//! printed and not written (for two builds back to back).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::{Consumers, OPERATOR, component, http, ms, stats};
use powerplug::books::{Books, GridNews};
use powerplug::http::run;
use powerplug::replay::{Decide, recording, replay};
use powerplug::role::grid::Grid;
use powerplug::storage::{RedbStore, Store};
use powerplug::strategy::{
    CellBatch, GridDecision, GridInput, GridStrategy, Limits, Loaded, Output, PaymentRequestBatch,
    Runtime, Transfer, Usage,
};
use powerplug::tick_log::{self, Outcome};
use serde_json::{Value, json};

const REPLAY_TICKS: u32 = 100;
const REPLAY_CONSUMERS: u32 = 10_000;
const RUNS: usize = 5;
/// Rounds of the tick set-ups (each a block of ticks).
const ROUNDS: usize = 4;

fn load(runtime: &Runtime, bytes: &[u8]) -> GridStrategy {
    match runtime.load(bytes).unwrap() {
        Loaded::Grid(g) => g,
        Loaded::Producer(_) => panic!("a grid strategy"),
    }
}

/// Decides nothing: what a replay costs without a strategy.
struct Nothing;

impl Decide for Nothing {
    fn sha256(&self) -> &powerplug::domain::Sha256 {
        // No component: a hash no recorded tick carries.
        const NOTHING: powerplug::domain::Sha256 = powerplug::domain::Sha256([0; 32]);
        &NOTHING
    }

    fn decide(&self, input: &GridInput) -> Result<GridDecision, String> {
        Ok(GridDecision {
            state: input.state.clone(),
            cells: CellBatch::from_entries([]),
            payment_requests: PaymentRequestBatch {
                consumer: vec![],
                wh: vec![],
                owed: vec![],
            },
            payouts: vec![],
            metrics: vec![],
        })
    }
}

/// splitmix64, for usage that varies but is the same every run.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A recorded run: the basic grid deciding 100 ticks of 10,000 consumers,
/// written to a tick log the way the grid writes it.
fn record(db: &dyn Store, grid: &GridStrategy) {
    let mut books = Books::default();
    let producers = [REPLAY_CONSUMERS, REPLAY_CONSUMERS + 1, REPLAY_CONSUMERS + 2];
    for t in 0..REPLAY_TICKS {
        let now = 60_000 * (u64::from(t) + 1);
        let news = GridNews {
            usage: (0..REPLAY_CONSUMERS)
                .map(|c| Usage {
                    consumer: c,
                    start_ms: now - 60_000,
                    end_ms: now,
                    wh: 150 + mix(u64::from(t) << 32 | u64::from(c)) % 1_000,
                })
                .collect(),
            output: producers
                .iter()
                .map(|&p| Output {
                    producer: p,
                    start_ms: now - 60_000,
                    end_ms: now,
                    wh: 2_000_000,
                    price: 4,
                })
                .collect(),
            transfers: (0..REPLAY_CONSUMERS)
                .filter(|c| (c + t) % 10 == 0)
                .map(|c| Transfer {
                    entity: Some(c),
                    amount: 5,
                    at_ms: now - 1,
                    incoming: true,
                })
                .collect(),
            ..GridNews::default()
        };
        let input = books.grid_input(now, &[], news);
        let decision = grid.tick(&input).unwrap().decision;
        books.apply_grid(&decision);
        let tx = db.write().unwrap();
        tick_log::record_grid(
            &*tx,
            "grid",
            &grid.info().sha256,
            input,
            Outcome::Decided(decision),
        )
        .unwrap();
        tx.commit().unwrap();
    }
}

fn replay_throughput(runtime: &Runtime, basic: &[u8], premium: &[u8]) -> Value {
    let (a, b) = (load(runtime, basic), load(runtime, premium));
    let dir = tempfile::tempdir().unwrap();
    let stored = {
        let db = RedbStore::open(&dir.path().join("powerplug.redb")).unwrap();
        record(&db, &a);
        tick_log::held(&db, "grid").unwrap().bytes
    };
    let records = recording::read(dir.path(), "grid").unwrap();
    let usage: u64 = records.iter().map(|r| r.input.usage.wh.len() as u64).sum();
    // Varied readings (150–1,150 Wh): what compression does with real ones.
    let whole: u64 = (records.iter())
        .map(|r| postcard::to_allocvec(r).unwrap().len() as u64 + 2)
        .sum();
    eprintln!("replay tick log {stored} bytes ({whole} uncompressed)");
    assert_eq!(usage, u64::from(REPLAY_TICKS * REPLAY_CONSUMERS));
    let timed = |f: &dyn Fn()| -> Vec<f64> {
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                ms(t.elapsed())
            })
            .collect()
    };
    let read = timed(&|| {
        recording::read(dir.path(), "grid").unwrap();
    });
    let nothing = timed(&|| {
        replay(&Nothing, &records, None, &mut |_| {}).unwrap();
    });
    let one = timed(&|| {
        let r = replay(&a, &records, None, &mut |_| {}).unwrap();
        assert_eq!(
            r.reproduced,
            u64::from(REPLAY_TICKS),
            "the recorded version reproduces"
        );
    });
    let two = timed(&|| {
        replay(&a, &records, None, &mut |_| {}).unwrap();
        replay(&b, &records, None, &mut |_| {}).unwrap();
    });
    let result = json!({
        "usage_records": usage,
        "tick_log_bytes": stored,
        "tick_log_bytes_uncompressed": whole,
        "read": stats(&read),
        "host_only": stats(&nothing),
        "one_strategy": stats(&one),
        "two_strategies": stats(&two),
    });
    for key in ["read", "host_only", "one_strategy", "two_strategies"] {
        let s = &result[key];
        eprintln!(
            "replay {key:<16} p50 {:>9.1} ms  min {:>9.1} ms  ({:.2} M records/s)",
            s["p50_ms"].as_f64().unwrap(),
            s["min_ms"].as_f64().unwrap(),
            usage as f64 / 1e3 / s["p50_ms"].as_f64().unwrap()
        );
    }
    result
}

fn tick_overhead(basic: &[u8], premium: &[u8], n: usize, ticks: usize) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("basic.wasm");
    std::fs::write(&wasm, basic).unwrap();
    let config = common::grid_config(dir.path(), wasm, 5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let running = rt.block_on(run::grid(&config)).unwrap();
    let grid: Arc<Grid> = running.role.clone();
    let url = running.url.clone();
    let mut consumers = Consumers::register(&url, n);
    let control = grid.strategy().info().sha256.hex();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .run(
            ureq::http::Request::builder()
                .method("PUT")
                .uri(format!("{url}/strategies/grid?activate=false"))
                .header("authorization", format!("Bearer {OPERATOR}"))
                .body(premium.to_vec())
                .unwrap(),
        )
        .unwrap();
    let kept: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let other = kept["version"]["sha256"].as_str().unwrap().to_owned();
    let time = |consumers: &mut Consumers| -> Vec<f64> {
        (0..ticks)
            .map(|_| {
                consumers.feed(&grid);
                let t = Instant::now();
                let s = grid.tick().unwrap();
                let took = ms(t.elapsed());
                assert_eq!((s.failed, s.requests), (None, n as u64));
                took
            })
            .collect()
    };
    // Warm-up, then the set-ups in turn, round after round, so that drift
    // in the machine spreads over all of them; the first tick of each block
    // (which starts the experiment: copies the books) is not counted.
    time(&mut consumers);
    let setups = ["none", "2_variants", "4_variants", "shadow"];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut logged = vec![(0u64, 0u64); setups.len()];
    for round in 0..ROUNDS {
        for (i, setup) in setups.iter().enumerate() {
            let id = format!("{setup}-{round}");
            let variants = match *setup {
                "2_variants" => 2,
                "4_variants" => 4,
                _ => 0,
            };
            if variants > 0 {
                let list: Vec<Value> = (0..variants)
                    .map(|v| json!({ "name": format!("v{v}"), "version": if v == 0 { &control } else { &other }, "weight": 1 }))
                    .collect();
                http(
                    &url,
                    "POST",
                    "/experiments",
                    &json!({ "id": id, "variants": list }),
                );
            } else if *setup == "shadow" {
                http(
                    &url,
                    "POST",
                    "/strategies/grid/shadow",
                    &json!({ "version": other }),
                );
            }
            samples[i].extend(time(&mut consumers).into_iter().skip(1));
            logged[i] = last_tick_logged(&*grid.hub.db);
            if variants > 0 {
                http(&url, "POST", &format!("/experiments/{id}/stop"), &json!({}));
            } else if *setup == "shadow" {
                http(&url, "DELETE", "/strategies/grid/shadow", &json!({}));
            }
        }
    }
    let mut out = serde_json::Map::new();
    for ((setup, s), (stored, whole)) in setups.iter().zip(&samples).zip(&logged) {
        let mut s = stats(s);
        s["tick_log_bytes"] = json!(stored);
        s["tick_log_bytes_uncompressed"] = json!(whole);
        eprintln!(
            "tick {n:>6} consumers {setup:<11} tick log {stored} bytes a tick ({whole} uncompressed)"
        );
        out.insert((*setup).into(), s);
    }
    rt.block_on(running.stop()).unwrap();
    let base = out["none"]["p50_ms"].as_f64().unwrap();
    for (k, s) in &out {
        let p50 = s["p50_ms"].as_f64().unwrap();
        eprintln!(
            "tick {n:>6} consumers {k:<11} p50 {p50:>8.2} ms  p90 {:>8.2} ms  ×{:.2}",
            s["p90_ms"].as_f64().unwrap(),
            p50 / base
        );
    }
    Value::Object(out)
}

/// What the last tick wrote to the tick log, over all its runs' slots: as
/// stored, and as the record's postcard alone (the format before records
/// were compressed).
fn last_tick_logged(db: &dyn Store) -> (u64, u64) {
    let mut newest = Vec::new();
    for slot in tick_log::slots(db).unwrap() {
        if let Some((at_ms, bytes)) = tick_log::newest(db, &slot).unwrap() {
            newest.push((at_ms, bytes, slot));
        }
    }
    let last = newest.iter().map(|n| n.0).max().unwrap_or(0);
    let (mut stored, mut whole) = (0, 0);
    for (_, bytes, slot) in newest.iter().filter(|n| n.0 == last) {
        let record = tick_log::last_grid(db, slot).unwrap().unwrap();
        stored += bytes;
        whole += postcard::to_allocvec(&record).unwrap().len() as u64 + 2;
    }
    (stored, whole)
}

fn main() {
    let basic = component("plugins/basic-grid-strategy", &[]);
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    // One size's tick overhead alone (nothing written): for comparing two
    // builds back to back.
    if let Ok(n) = std::env::var("POWERPLUG_BENCH_CONSUMERS") {
        let n = n.parse().expect("POWERPLUG_BENCH_CONSUMERS: a number");
        tick_overhead(&basic, &premium, n, 6);
        return;
    }
    let runtime = Runtime::new(Limits::DEFAULT, None).unwrap();
    let replay = replay_throughput(&runtime, &basic, &premium);
    let mut ticks = serde_json::Map::new();
    // Ticks per block (one more, not counted, starts each).
    for (n, count) in [(1_000usize, 16usize), (10_000, 6)] {
        ticks.insert(n.to_string(), tick_overhead(&basic, &premium, n, count));
    }
    let machine = std::thread::available_parallelism().map_or(0, |n| n.get());
    let result = json!({ "cores": machine, "replay": replay, "tick": ticks });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/experiment.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    eprintln!("wrote {}", path.display());
}
