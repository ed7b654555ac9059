//! A grid on PostgreSQL against the same grid on redb (issue 13), in one
//! run: an in-process grid with N consumers, each writing one reading a
//! round into the grid's channel store;
//!
//! - **ingest**: from the readings' write to all N in the inbox (the grid's
//!   poll reads the channels that moved and stores the records);
//! - **tick**: `Grid::tick()` billing all N (the books, N payment requests
//!   sealed into the outbox, the invariants, the tick log, one commit).
//!
//! Rounds alternate between the stores, so drift in the machine spreads over
//! both. Not criterion: the figures are percentiles of raw samples, printed
//! and written to `host/benches/results/grid_store.json`;
//! `python3 host/benches/grid_store_report.py` draws
//! `host/benches/results/grid_store.svg`. PostgreSQL is the local server
//! (`POWERPLUG_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! `cargo bench -p powerplug --bench grid_store` (ten minutes or so).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::{Consumers, component, grid_config, ms, stats};
use powerplug::http::run;
use powerplug::role::grid::Grid;
use powerplug::storage::StorageConfig;
use serde_json::{Value, json};

/// Rounds per store after the warm-up, by consumers.
const ROUNDS: [(usize, usize); 2] = [(1_000, 12), (10_000, 5)];

/// `POWERPLUG_BENCH_ROUNDS=1000:3,10000:1` instead of [`ROUNDS`], for a
/// quick look (then nothing is written to the results).
fn rounds() -> Option<Vec<(usize, usize)>> {
    let spec = std::env::var("POWERPLUG_BENCH_ROUNDS").ok()?;
    let parsed = spec
        .split(',')
        .map(|pair| {
            let (n, rounds) = pair.split_once(':')?;
            Some((n.trim().parse().ok()?, rounds.trim().parse().ok()?))
        })
        .collect::<Option<Vec<_>>>();
    Some(parsed.unwrap_or_else(|| panic!("POWERPLUG_BENCH_ROUNDS: `{spec}` is not N:ROUNDS,…")))
}

struct Running {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    running: run::Running<Grid>,
    consumers: Consumers,
}

fn start(basic: &[u8], storage: StorageConfig, n: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("basic.wasm");
    std::fs::write(&wasm, basic).unwrap();
    let mut config = grid_config(dir.path(), wasm, 5);
    config.service.storage = storage;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let running = rt.block_on(run::grid(&config)).unwrap();
    let consumers = Consumers::register(&running.url, n);
    Running {
        _dir: dir,
        rt,
        running,
        consumers,
    }
}

impl Running {
    /// One round: the readings in, then the tick; (ingest ms, tick ms).
    fn round(&mut self, n: usize) -> (f64, f64) {
        let grid: Arc<Grid> = self.running.role.clone();
        let t = Instant::now();
        self.consumers.feed(&grid);
        let ingest = ms(t.elapsed());
        let t = Instant::now();
        let s = grid.tick().unwrap();
        let tick = ms(t.elapsed());
        assert_eq!((s.failed, s.requests), (None, n as u64));
        (ingest, tick)
    }
}

fn main() {
    // `POWERPLUG_LOG=powerplug_storage=debug`: every PostgreSQL commit with
    // its round trips and time on the server.
    if std::env::var_os("POWERPLUG_LOG").is_some() {
        powerplug::logs::init(Default::default()).unwrap();
    }
    let basic = component("plugins/basic-grid-strategy", &[]);
    let url = std::env::var("POWERPLUG_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut out = serde_json::Map::new();
    let quick = rounds();
    for (n, rounds) in quick.clone().unwrap_or(ROUNDS.to_vec()) {
        let namespace = format!("bench_grid_{}_{n}", std::process::id());
        let stores = [
            ("redb", StorageConfig::default()),
            (
                "postgres",
                StorageConfig::Postgres {
                    url: url.clone(),
                    namespace: namespace.clone(),
                },
            ),
        ];
        let mut grids: Vec<(&str, Running)> = stores
            .into_iter()
            .map(|(name, storage)| (name, start(&basic, storage, n)))
            .collect();
        let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); grids.len()];
        // A warm-up round each, not counted (the first tick meets every
        // consumer), then the stores in turn.
        for (_, g) in &mut grids {
            g.round(n);
        }
        for round in 0..rounds {
            for ((name, g), (ingest, tick)) in grids.iter_mut().zip(&mut samples) {
                let (i, t) = g.round(n);
                eprintln!(
                    "{n:>6} consumers {name:<8} round {round}: ingest {i:>8.1} ms  tick {t:>8.1} ms"
                );
                ingest.push(i);
                tick.push(t);
            }
        }
        let mut by_store = serde_json::Map::new();
        for ((name, g), (ingest, tick)) in grids.into_iter().zip(&samples) {
            by_store.insert(
                name.into(),
                json!({ "ingest": stats(ingest), "tick": stats(tick) }),
            );
            g.rt.block_on(g.running.stop()).unwrap();
        }
        let p50 = |store: &str, what: &str| by_store[store][what]["p50_ms"].as_f64().unwrap();
        for what in ["ingest", "tick"] {
            eprintln!(
                "{n:>6} consumers {what:<6} redb p50 {:>8.1} ms  postgres p50 {:>8.1} ms  ×{:.2}",
                p50("redb", what),
                p50("postgres", what),
                p50("postgres", what) / p50("redb", what)
            );
        }
        out.insert(n.to_string(), Value::Object(by_store));
        powerplug::storage::PgStore::connect(&url, &namespace)
            .and_then(|s| s.drop_namespace())
            .unwrap();
    }
    if quick.is_some() {
        return;
    }
    let machine = std::thread::available_parallelism().map_or(0, |n| n.get());
    let result = json!({ "cores": machine, "consumers": out });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/grid_store.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    eprintln!("wrote {}", path.display());
}
