//! Hot-swap of a running grid's payment policy (issue 4), in one run:
//!
//! 1. **Upload-to-active latency** over HTTP, against a grid started in-process
//!    with `powerplug::http::run::grid` (operator token set): the time from
//!    sending `PUT /strategies/grid` (or `POST /strategies/grid/activate/{sha}`)
//!    to its answer, by which time the version is active (checked after each
//!    request). An upload inspects, compiles or loads from the cache, dry-runs
//!    the last recorded tick's input, hands the candidate the live state and
//!    commits the activation. Two versions alternate: the basic grid plugin and
//!    its `premium` build, so every request changes the active version.
//!    - *cold*: the grid's compiled-component cache directory (private to this
//!      bench) is emptied before each upload, so every upload compiles;
//!    - *cached*: the artifact is in the cache: re-uploads (`PUT`) and
//!      activations (`POST …/activate/{sha}`), alternately.
//! 2. **Tick latency with and without swaps**: `Grid::tick()` timed N times, each
//!    tick with one fresh 1 kWh reading from each of the consumers pending,
//!    in alternating blocks without swaps and with another thread activating
//!    the two versions one after the other as fast as it can
//!    (`Swappable::activate`, no HTTP). For each tick with swaps it also counts
//!    the activations it waited for: those that ended between its call and its
//!    return, up to the one whose version it ran on (the tick log says which).
//!
//! The grid's own scheduler keeps polling channels (it ingests the readings)
//! but does not tick: its `tick_ms` is a day, so every tick is one of ours.
//!
//! Not criterion: the figures are percentiles of the raw samples, which this
//! prints and writes to `host/benches/results/swap.json`;
//! `python3 host/benches/report.py --swap` turns that into the tables and
//! `host/benches/results/swap.svg`.
//!
//! `cargo bench -p powerplug --bench swap` (about 30–60 s once built).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Consumers, OPERATOR, component, ms, stats};
use powerplug::http::run;
use powerplug::role::grid::Grid;
use powerplug::role::swap::{SwapOptions, Swappable};

/// Activations as the operator's route makes them.
const ACTIVATE: SwapOptions = SwapOptions {
    fresh: false,
    activate: true,
    force: false,
};
use powerplug::tick_log::{self, Outcome};
use serde_json::{Value, json};

/// Consumers registered with the grid, each with a reading in every tick.
const CONSUMERS: usize = 100;
/// Cold uploads per version (each compiles: ~0.1 s).
const COLD: usize = 30;
/// Cached requests per version and route.
const CACHED: usize = 250;
/// Timed ticks without swaps, and as many with.
const TICKS: usize = 500;
/// Ticks per block; blocks without and with swaps alternate.
const BLOCK: usize = 50;

fn sha256(bytes: &[u8]) -> powerplug::domain::Sha256 {
    powerplug::domain::Sha256::of(bytes)
}

fn show(label: &str, s: &Value) {
    eprintln!(
        "{label:<48} n={:<4} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        s["n"],
        s["p50_ms"],
        s["p99_ms"].as_f64().unwrap(),
        s["max_ms"].as_f64().unwrap()
    );
}

struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    /// (status, JSON answer).
    fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {OPERATOR}"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .expect("a valid request");
        let mut response = self.agent.run(request).expect("the grid answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// One timed tick: (ms, tick number).
fn tick(grid: &Grid) -> (f64, u64) {
    let t = Instant::now();
    let summary = grid.tick().unwrap();
    let took = ms(t.elapsed());
    assert_eq!(summary.failed, None);
    assert_eq!(summary.usage_wh, CONSUMERS as u64 * 1_000, "{summary:?}");
    assert_eq!(summary.requests, CONSUMERS as u64, "{summary:?}");
    (took, summary.tick)
}

/// The 1-, 5- and 15-minute load averages, as `uptime` shows them.
fn loadavg() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loads: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|l| l.parse().ok())
        .collect();
    json!(loads)
}

/// The machine's CPU time counters (`/proc/stat`, first line).
fn cpu_times() -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// Shares of the machine's CPU time between two readings: busy (user, nice,
/// system, irq, softirq), iowait, and steal (taken by the hypervisor).
fn cpu_share(before: &[u64], after: &[u64]) -> Value {
    let d: Vec<f64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b) as f64)
        .collect();
    if d.len() < 8 {
        return Value::Null;
    }
    let total: f64 = d[..8].iter().sum::<f64>().max(1.0);
    json!({
        "busy": (d[0] + d[1] + d[2] + d[5] + d[6]) / total,
        "iowait": d[4] / total,
        "steal": d[7] / total,
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let basic = component("plugins/basic-grid-strategy", &[]);
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let (basic_sha, premium_sha) = (sha256(&basic), sha256(&premium));
    assert_ne!(basic_sha, premium_sha);
    let (load_before, cpu_before) = (loadavg(), cpu_times());

    let dir = tempfile::tempdir().unwrap();
    let cache: PathBuf = dir.path().join("cache");
    let wasm = dir.path().join("basic_grid_strategy.wasm");
    std::fs::write(&wasm, &basic).unwrap();
    let config = common::grid_config(dir.path(), wasm, 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let running = rt.block_on(run::grid(&config)).unwrap();
    let grid: Arc<Grid> = running.role.clone();
    let http = Http {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        base: running.url.clone(),
    };
    let compiles = || {
        powerplug::role::runtime(&cache, powerplug::strategy::Limits::DEFAULT)
            .unwrap()
            .cache_stats()
            .compiles
    };

    let mut consumers = Consumers::register(&running.url, CONSUMERS);
    // Recorded ticks, the last of which the dry runs replay (100 usage records).
    for _ in 0..5 {
        consumers.feed(&grid);
        tick(&grid);
    }
    let last = tick_log::grid_ticks(grid.db(), "grid", 0, usize::MAX)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.input.usage.wh.len(), CONSUMERS);

    let versions = [
        ("basic-grid-strategy", &basic, &basic_sha, 5u64),
        (
            "basic-grid-strategy --features premium",
            &premium,
            &premium_sha,
            7,
        ),
    ];
    let mut upload = serde_json::Map::new();
    let mut dry_run_us: Vec<(String, Vec<f64>)> = Vec::new();

    // 1a. Cold: premium first (basic is active), so every upload swaps.
    let before = compiles();
    let mut cold: [Vec<f64>; 2] = Default::default();
    let mut cold_dry: Vec<f64> = Vec::new();
    for i in 0..2 * COLD {
        let v = (i + 1) % 2;
        let (_, bytes, sha, price) = versions[v];
        for entry in std::fs::read_dir(&cache).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let t = Instant::now();
        let (status, answer) = http.call("PUT", "/strategies/grid", bytes);
        let took = ms(t.elapsed());
        assert_eq!(status, 201, "{answer}");
        assert_eq!(&grid.strategy().info().sha256, sha);
        assert_eq!(
            answer["dry_run"]["candidate"]["requested"],
            CONSUMERS as u64 * price
        );
        cold[v].push(took);
        cold_dry.push(answer["dry_run"]["elapsed_us"].as_f64().unwrap());
    }
    assert_eq!(
        compiles() - before,
        2 * COLD as u64,
        "every cold upload compiled"
    );
    dry_run_us.push(("cold".into(), cold_dry));

    // 1b. Cached: re-upload premium, re-upload basic, activate premium,
    // activate basic, … — every request swaps, nothing compiles. The cold
    // phase left only basic's artifact: one untimed round puts premium's back.
    for (_, bytes, ..) in [versions[1], versions[0]] {
        assert_eq!(http.call("PUT", "/strategies/grid", bytes).0, 201);
    }
    let before = compiles();
    let mut cached_put: [Vec<f64>; 2] = Default::default();
    let mut cached_post: [Vec<f64>; 2] = Default::default();
    let mut cached_dry: Vec<f64> = Vec::new();
    for i in 0..4 * CACHED {
        let v = (i + 1) % 2;
        let (_, bytes, sha, _) = versions[v];
        let put = (i / 2) % 2 == 0;
        let t = Instant::now();
        let (status, answer) = if put {
            http.call("PUT", "/strategies/grid", bytes)
        } else {
            http.call("POST", &format!("/strategies/grid/activate/{sha}"), b"")
        };
        let took = ms(t.elapsed());
        assert!(status == 200 || status == 201, "{status}: {answer}");
        assert_eq!(&grid.strategy().info().sha256, sha);
        let samples = if put {
            &mut cached_put
        } else {
            &mut cached_post
        };
        samples[v].push(took);
        cached_dry.push(answer["dry_run"]["elapsed_us"].as_f64().unwrap());
    }
    assert_eq!(compiles(), before, "cached uploads compile nothing");
    dry_run_us.push(("cached".into(), cached_dry));

    eprintln!("upload-to-active, {CONSUMERS} consumers in the dry-run tick:");
    for (v, (name, ..)) in versions.iter().enumerate() {
        let (c, p, a) = (
            stats(&cold[v]),
            stats(&cached_put[v]),
            stats(&cached_post[v]),
        );
        let mut all = cached_put[v].clone();
        all.extend(&cached_post[v]);
        let both = stats(&all);
        show(&format!("{name}: cold PUT"), &c);
        show(&format!("{name}: cached PUT"), &p);
        show(&format!("{name}: cached POST activate"), &a);
        show(&format!("{name}: cached, both"), &both);
        upload.insert(
            (*name).into(),
            json!({ "sha256": versions[v].2, "cold_put": c, "cached_put": p,
                    "cached_activate": a, "cached": both }),
        );
    }
    // 1c. The producer plugin, on a producer reporting to this grid: the same
    // route and code (one Slot per role), its own cache.
    let pcache: PathBuf = dir.path().join("producer-cache");
    let pwasm = dir.path().join("basic_producer_strategy.wasm");
    let pbasic = component("plugins/basic-producer-strategy", &[]);
    let ppremium = component("plugins/basic-producer-strategy", &["premium"]);
    std::fs::write(&pwasm, &pbasic).unwrap();
    let mut pconfig = powerplug::role::config::ProducerConfig::default();
    pconfig.service.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    pconfig.service.data_dir = dir.path().join("producer");
    pconfig.service.poll_ms = 10;
    pconfig.strategy.component = pwasm;
    pconfig.strategy.tick_ms = 1;
    pconfig.strategy.cache_dir = Some(pcache.clone());
    pconfig.grid_url = running.url.clone();
    pconfig.operator_token = Some(OPERATOR.into());
    let producer = rt.block_on(run::producer(&pconfig)).unwrap();
    let phttp = Http {
        agent: http.agent.clone(),
        base: producer.url.clone(),
    };
    // Recorded ticks for the dry runs.
    while tick_log::producer_ticks(producer.role.db(), "producer", 0, 10)
        .unwrap()
        .len()
        < 3
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pversions = [
        ("basic-producer-strategy", pbasic.clone(), sha256(&pbasic)),
        (
            "basic-producer-strategy --features premium",
            ppremium.clone(),
            sha256(&ppremium),
        ),
    ];
    let mut pcold: [Vec<f64>; 2] = Default::default();
    for i in 0..2 * COLD {
        let v = (i + 1) % 2;
        for entry in std::fs::read_dir(&pcache).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let t = Instant::now();
        let (status, answer) = phttp.call("PUT", "/strategies/producer", &pversions[v].1);
        pcold[v].push(ms(t.elapsed()));
        assert_eq!(status, 201, "{answer}");
        assert_eq!(producer.role.strategy().info().sha256, pversions[v].2);
    }
    for (_, bytes, _) in [&pversions[1], &pversions[0]] {
        assert_eq!(phttp.call("PUT", "/strategies/producer", bytes).0, 201);
    }
    let mut pput: [Vec<f64>; 2] = Default::default();
    let mut ppost: [Vec<f64>; 2] = Default::default();
    for i in 0..4 * CACHED {
        let v = (i + 1) % 2;
        let (_, bytes, sha) = &pversions[v];
        let put = (i / 2) % 2 == 0;
        let t = Instant::now();
        let (status, answer) = if put {
            phttp.call("PUT", "/strategies/producer", bytes)
        } else {
            phttp.call("POST", &format!("/strategies/producer/activate/{sha}"), b"")
        };
        let took = ms(t.elapsed());
        assert!(status == 200 || status == 201, "{status}: {answer}");
        assert_eq!(&producer.role.strategy().info().sha256, sha);
        if put {
            pput[v].push(took)
        } else {
            ppost[v].push(took)
        }
    }
    for (v, (name, _, sha)) in pversions.iter().enumerate() {
        let (c, p, a) = (stats(&pcold[v]), stats(&pput[v]), stats(&ppost[v]));
        let mut all = pput[v].clone();
        all.extend(&ppost[v]);
        let both = stats(&all);
        show(&format!("{name}: cold PUT"), &c);
        show(&format!("{name}: cached, both"), &both);
        upload.insert(
            (*name).into(),
            json!({ "sha256": sha, "cold_put": c, "cached_put": p,
                    "cached_activate": a, "cached": both }),
        );
    }
    rt.block_on(producer.stop()).unwrap();

    let dry: serde_json::Map<String, Value> = dry_run_us
        .into_iter()
        .map(|(k, us)| {
            let ms: Vec<f64> = us.iter().map(|u| u / 1e3).collect();
            let mut s = stats(&ms);
            s.as_object_mut().unwrap().remove("samples_ms");
            (k, s)
        })
        .collect();

    // 2. Tick latency, alternating blocks without and with swaps; basic first.
    if grid.strategy().info().sha256 != basic_sha {
        grid.activate(&basic_sha, ACTIVATE).unwrap();
    }
    let mut first_tick = 0;
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut activations: Vec<f64> = Vec::new();
    let mut swapping_s = 0.0;
    let mut with_ticks = std::collections::BTreeSet::new();
    // Per tick with swaps: its number, and the activations that ended between
    // its call and its return (ms after the call, version activated), in order.
    let mut overlaps: Vec<(u64, Vec<(f64, powerplug::domain::Sha256)>)> = Vec::new();
    while with.len() < TICKS {
        for _ in 0..BLOCK {
            consumers.feed(&grid);
            let (took, n) = tick(&grid);
            if first_tick == 0 {
                first_tick = n;
            }
            without.push(took);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (grid, stop) = (grid.clone(), stop.clone());
            let shas = [premium_sha, basic_sha];
            std::thread::spawn(move || {
                let mut spans = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    grid.activate(&shas[i % 2], ACTIVATE).unwrap();
                    spans.push((t, Instant::now(), i % 2));
                    i += 1;
                }
                spans
            })
        };
        // Let it swap a few times first.
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        let mut windows = Vec::new();
        for _ in 0..BLOCK {
            consumers.feed(&grid);
            let start = Instant::now();
            let (took, n) = tick(&grid);
            windows.push((n, start, Instant::now()));
            with.push(took);
            with_ticks.insert(n);
        }
        swapping_s += t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let spans = swapper.join().unwrap();
        let shas = [&premium_sha, &basic_sha];
        for (n, start, end) in windows {
            let inside = spans
                .iter()
                .filter(|&&(_, e, _)| e > start && e < end)
                .map(|&(_, e, v)| (ms(e - start), *shas[v]))
                .collect();
            overlaps.push((n, inside));
        }
        activations.extend(spans.iter().map(|&(s, e, _)| ms(e - s)));
    }

    // Every tick ran on one version and billed by its rules.
    let mut by_version = std::collections::BTreeMap::<u64, usize>::new();
    let mut with_by_version = std::collections::BTreeMap::<u64, usize>::new();
    let mut ran_on = std::collections::HashMap::<u64, powerplug::domain::Sha256>::new();
    for record in tick_log::grid_ticks(grid.db(), "grid", first_tick - 1, usize::MAX).unwrap() {
        if record.tick < first_tick {
            continue;
        }
        let Outcome::Decided(decision) = &record.outcome else {
            panic!("tick {} failed", record.tick);
        };
        let price = if record.strategy == premium_sha { 7 } else { 5 };
        assert_eq!(decision.payment_requests.len(), CONSUMERS);
        for r in decision.payment_requests.iter() {
            assert_eq!(r.owed, r.wh / 1000 * price, "tick {}", record.tick);
        }
        *by_version.entry(price).or_default() += 1;
        ran_on.insert(record.tick, record.strategy);
        if with_ticks.contains(&record.tick) {
            *with_by_version.entry(price).or_default() += 1;
        }
    }
    assert_eq!(by_version.values().sum::<usize>(), 2 * TICKS);

    // How many activations each tick waited for: those that ended inside it
    // up to the one whose version it ran on (the versions alternate, so an
    // activation that ended inside it after that one ran once it had let go of
    // the turn), and how long after its call the last of them ended.
    let mut waited_for = std::collections::BTreeMap::<usize, usize>::new();
    let mut waits: Vec<f64> = Vec::new();
    for (n, inside) in &overlaps {
        let ran = &ran_on[n];
        let k = match inside.last() {
            None => 0,
            Some((_, v)) if v == ran => inside.len(),
            Some(_) => inside.len() - 1,
        };
        *waited_for.entry(k).or_default() += 1;
        if k > 0 {
            waits.push(inside[k - 1].0);
        }
    }

    let (w, s, a) = (stats(&without), stats(&with), stats(&activations));
    eprintln!("Grid::tick(), {CONSUMERS} readings and {CONSUMERS} payment requests a tick:");
    show("without swaps", &w);
    show("with swaps", &s);
    show(
        &format!(
            "activations meanwhile ({:.0}/s)",
            activations.len() as f64 / swapping_s
        ),
        &a,
    );
    eprintln!("ticks with swaps on basic (5/kWh) / premium (7/kWh): {with_by_version:?}");
    eprintln!("ticks by activations they waited for: {waited_for:?}");
    let wait = (!waits.is_empty()).then(|| stats(&waits));
    if let Some(wait) = &wait {
        show("a tick's wait for an activation, when it waited", wait);
    }
    let cpu_after = cpu_times();

    let result = json!({
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpu_during_run": cpu_share(&cpu_before, &cpu_after),
        "consumers": CONSUMERS,
        "upload": upload,
        "dry_run": dry,
        "tick": {
            "without_swaps": w,
            "with_swaps": s,
            "activations": a,
            "activations_per_s": activations.len() as f64 / swapping_s,
            "with_swaps_ticks_by_price": with_by_version,
            "block": BLOCK,
            "waited_for_activations": waited_for,
            "wait_when_waiting": wait,
        },
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/swap.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    eprintln!("wrote {}", out.display());
    rt.block_on(running.stop()).unwrap();
}
