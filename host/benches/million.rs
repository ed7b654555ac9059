//! A million meters on one grid host (issue 15): an in-process grid on redb
//! with N registered consumers, of which A report a reading a round.
//!
//! - **register**: N consumers in batches of 10,000 (`Registry::register_batch`,
//!   hellos checked), then until the grid has read every hello and its ticks
//!   have taken in every joining;
//! - **ingest**: A readings, sealed beforehand (so that the meters' own
//!   signing does not share the two cores), through the grid's real ingest
//!   path — `Hub::accept` in batches of 256 as `POST /channels/batch` takes
//!   them, from 8 threads as from 8 meter hosts (author, window and
//!   signature checked, stored), then the grid's own
//!   polls (each channel read, signature, chain and decryption checked, the
//!   records stored) — until all A are in its inbox: readings per second;
//! - **tick**: `Grid::tick()` billing the A (books, A payment requests sealed
//!   into the outbox, the invariants, the tick log, one commit);
//! - **quiet**: `GET /status` (the operator's, every consumer holding a
//!   balance) and a poll round with nothing written; beside them the store's
//!   figures that `/status` shows, and the sum of every balance among them,
//!   taken alone (the host takes them behind its askers, not per request);
//! - **RSS** of the process after each size (each size runs in a process of
//!   its own, so one size's memory does not count in the next's, with two
//!   malloc arenas as the `powerplug` binary has them).
//!
//! Beside them, the physical limit: Ed25519 signatures signed and verified
//! per second on one core of this machine.
//!
//! `cargo bench -p powerplug --bench million` (about 25 minutes);
//! `POWERPLUG_BENCH_METERS=10000:10000,100000:25000` for other sizes (N:A),
//! `POWERPLUG_BENCH_ROUNDS=12` for more rounds.
//! Writes `host/benches/results/million.json`;
//! `python3 host/benches/million_report.py` prints the table and draws
//! `host/benches/results/million.svg`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{OPERATOR, component, grid_config, ms};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use powerplug::channel::{ChannelWriter, Message, Sealed};
use powerplug::counter::Counter;
use powerplug::domain::EntityKind;
use powerplug::http::run;
use powerplug::inbox::Command;
use powerplug::registry::{self, Application};
use powerplug::role::grid::Grid;
use rayon::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SIZES: [(usize, usize); 3] = [(10_000, 10_000), (100_000, 100_000), (1_000_000, 250_000)];
/// Rounds per size; `POWERPLUG_BENCH_ROUNDS` for a longer run (a soak of
/// the memory).
const ROUNDS: usize = 3;
/// What `POST /channels/batch` takes at once.
const BATCH: usize = powerplug::channel::BATCH;
/// Meter hosts posting at once.
const FEEDERS: usize = 8;

fn sizes() -> Vec<(usize, usize)> {
    let Ok(spec) = std::env::var("POWERPLUG_BENCH_METERS") else {
        return SIZES.to_vec();
    };
    spec.split(',')
        .map(|pair| {
            let (n, a) = pair.split_once(':').expect("N:A");
            (n.trim().parse().expect("N"), a.trim().parse().expect("A"))
        })
        .collect()
}

/// Meter `i`'s channel, derived from `i` alone: the bench keeps nothing per
/// meter, so that its own memory does not hide the grid's.
fn meter(i: usize, next_index: u64) -> ChannelWriter {
    let derive = |what: &str| -> [u8; 32] {
        Sha256::new()
            .chain_update(what)
            .chain_update((i as u64).to_be_bytes())
            .finalize()
            .into()
    };
    ChannelWriter::resume(
        SigningKey::from_bytes(&derive("key")),
        derive("root"),
        Some(derive("side")),
        next_index,
    )
}

/// Readings of meters `0..a` for round `round` (channel index `round + 1`).
fn readings(a: usize, round: u64) -> Vec<Sealed> {
    let usage = Command::Usage {
        start_ms: powerplug::domain::UnixMs(round * 30_000),
        end_ms: powerplug::domain::UnixMs(round * 30_000 + 30_000),
        wh: powerplug::domain::Wh(1_000),
        read: None,
    }
    .encode();
    (0..a)
        .into_par_iter()
        .map(|i| {
            meter(i, round + 1)
                .prepare(Message::Data(usage.clone()))
                .unwrap()
        })
        .collect()
}

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap()
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn register(grid: &Grid, n: usize) -> f64 {
    let t = Instant::now();
    for start in (0..n).step_by(10_000) {
        let batch: Vec<(String, ChannelWriter, Sealed)> = (start..n.min(start + 10_000))
            .into_par_iter()
            .map(|i| {
                let mut writer = meter(i, 0);
                let hello = writer.prepare(Message::Hello).unwrap();
                (format!("m{i:07}"), writer, hello)
            })
            .collect();
        let applications = batch
            .iter()
            .map(|(id, writer, hello)| {
                let application = Application {
                    kind: EntityKind::Consumer,
                    channel: writer.info(),
                    hello: Some(&hello.bytes),
                    credential: None,
                    admission: None,
                };
                (id.as_str(), application)
            })
            .collect();
        grid.hub
            .registry
            .register_batch(&*grid.hub.db, applications)
            .unwrap();
        if start % 100_000 == 0 {
            eprintln!("  registered {} of {n}", n.min(start + 10_000));
        }
    }
    let registered = ms(t.elapsed());
    // Every hello read and every joining taken in by a tick (10,000 a tick).
    let deadline = Instant::now() + Duration::from_secs(1_800);
    loop {
        let read: u64 = registry::summary(&*grid.hub.db)
            .unwrap()
            .iter()
            .map(|(_, s)| s.read)
            .sum();
        let (joined, _) = registry::news_since_tick(&*grid.hub.db, 1).unwrap();
        if read >= n as u64 && joined.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the hellos read: {read} of {n}");
        if read >= n as u64 {
            grid.tick().unwrap();
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    registered
}

/// Every consumer holds a balance, as on a grid that bills them: the
/// operator's `/status` sums them all (see *quiet*).
fn fund(grid: &Grid, n: usize) {
    use powerplug::domain::{Tokens, UnixMs};
    for start in (0..n).step_by(10_000) {
        let tx = grid.hub.db.write().unwrap();
        for i in start..n.min(start + 10_000) {
            let (to, key) = (format!("m{i:07}"), format!("fund-m{i:07}"));
            powerplug::wallet::issue(&*tx, &to, Tokens(1_000_000), &key, UnixMs(0)).unwrap();
        }
        tx.commit().unwrap();
    }
}

fn received(grid: &Grid) -> u64 {
    Counter::RecordsReceived.read(&*grid.hub.db).unwrap()
}

fn outbox_empty(grid: &Grid) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while powerplug::outbox::backlog(&*grid.hub.db).unwrap() > 0 {
        assert!(Instant::now() < deadline, "the outbox drains");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// One size in this process: its figures as JSON.
fn one(n: usize, a: usize) -> Value {
    let basic = component("plugins/basic-grid-strategy", &[]);
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("basic.wasm");
    std::fs::write(&wasm, basic).unwrap();
    let config = grid_config(dir.path(), wasm, 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let running = rt.block_on(run::grid(&config)).unwrap();
    let grid: Arc<Grid> = running.role.clone();
    eprintln!("{n} consumers, {a} reporting");
    let register_ms = register(&grid, n);
    fund(&grid, n);
    outbox_empty(&grid);
    let (rss_registered, _) = rss_mib();
    eprintln!("  registered in {register_ms:.0} ms; RSS {rss_registered:.0} MiB");

    let mut rounds = Vec::new();
    let rounds_wanted = std::env::var("POWERPLUG_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    for round in 0..rounds_wanted as u64 {
        let sealed = readings(a, round);
        let before = received(&grid);
        let t = Instant::now();
        // Several meter hosts posting at once, as on a real grid.
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..FEEDERS {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(batch) = sealed.chunks(BATCH).nth(i) else {
                            break;
                        };
                        let verdicts = grid.hub.accept(batch).unwrap();
                        assert!(verdicts.iter().all(Option::is_none), "every reading taken");
                    }
                });
            }
        });
        let accepted_ms = ms(t.elapsed());
        let deadline = Instant::now() + Duration::from_secs(600);
        while received(&grid) < before + a as u64 {
            assert!(Instant::now() < deadline, "the readings reach the inbox");
            std::thread::sleep(Duration::from_millis(2));
        }
        let ingest_ms = ms(t.elapsed());
        drop(sealed);
        let t = Instant::now();
        let summary = grid.tick().unwrap();
        let tick_ms = ms(t.elapsed());
        assert_eq!((summary.failed, summary.requests), (None, a as u64));
        outbox_empty(&grid);
        let (rss, _) = rss_mib();
        eprintln!(
            "  round {round}: accepted in {accepted_ms:.0} ms, ingest {ingest_ms:.0} ms ({:.0}/s), tick {tick_ms:.0} ms, RSS {rss:.0} MiB",
            a as f64 / ingest_ms * 1e3
        );
        rounds.push(json!({
            "accept_ms": accepted_ms,
            "ingest_ms": ingest_ms,
            "readings_per_s": a as f64 / ingest_ms * 1e3,
            "tick_ms": tick_ms,
            "us_per_request": tick_ms * 1e3 / a as f64,
            "rss_mib": rss,
        }));
    }

    // Quiet costs: nothing written.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // Spaced over 10 s, away from the round just ended. The store's figures
    // (the balances' sum among them) are taken behind the askers; only the
    // first asker after a start waits for them: that one is timed alone.
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let money = powerplug::wallet::conservation(&*grid.hub.db).unwrap();
    let held_scan_ms = ms(t.elapsed());
    let t = Instant::now();
    grid.hub.figures.get(&grid.hub.db).unwrap();
    let figures_ms = ms(t.elapsed());
    assert!(
        money.holds() && money.held.get() == n as u64 * 1_000_000,
        "{money:?}"
    );
    // A write while the store's pages are counted for the figures: it
    // waited for the whole count when redb counted in a write transaction.
    let db = grid.hub.db.clone();
    let counting = std::thread::spawn(move || {
        let t = Instant::now();
        db.stats().unwrap();
        ms(t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    let tx = grid.hub.db.write().unwrap();
    tx.put("bench", b"during the count", b"1").unwrap();
    tx.commit().unwrap();
    let write_while_counting_ms = ms(t.elapsed());
    let count_ms = counting.join().unwrap();
    let mut status = Vec::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        let mut response = agent
            .get(format!("{}/status", running.url))
            .header("authorization", format!("Bearer {OPERATOR}"))
            .call()
            .unwrap();
        let _ = response.body_mut().read_to_string().unwrap();
        status.push(ms(t.elapsed()));
    }
    let mut polls = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        grid.hub.poll(powerplug::role::unix_ms()).unwrap();
        polls.push(ms(t.elapsed()));
    }
    let (rss, hwm) = rss_mib();
    rt.block_on(running.stop()).unwrap();
    json!({
        "consumers": n,
        "reporting": a,
        "register_ms": register_ms,
        "rss_registered_mib": rss_registered,
        "rounds": rounds,
        "status_ms": median(status.clone()),
        "status_max_ms": status.iter().copied().fold(0.0, f64::max),
        "held_scan_ms": held_scan_ms,
        "figures_ms": figures_ms,
        "count_pages_ms": count_ms,
        "write_while_counting_ms": write_while_counting_ms,
        "quiet_poll_ms": median(polls),
        "rss_mib": rss,
        "peak_rss_mib": hwm,
    })
}

/// Signatures signed and verified per second on one core.
fn physical_limit() -> Value {
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = [1u8; 200];
    let count = 5_000;
    let t = Instant::now();
    let signatures: Vec<_> = (0..count).map(|_| key.sign(&message)).collect();
    let sign_s = t.elapsed().as_secs_f64();
    let public = key.verifying_key();
    let t = Instant::now();
    for s in &signatures {
        public.verify(&message, s).unwrap();
    }
    let verify_s = t.elapsed().as_secs_f64();
    json!({
        "signs_per_s_per_core": count as f64 / sign_s,
        "verifies_per_s_per_core": count as f64 / verify_s,
    })
}

fn main() {
    if let Ok(spec) = std::env::var("POWERPLUG_BENCH_ONE") {
        let (n, a) = spec.split_once(':').unwrap();
        let figures = one(n.parse().unwrap(), a.parse().unwrap());
        println!("{figures}");
        return;
    }
    // `cargo bench` passes `--bench`; each size runs in a child process.
    let exe = std::env::current_exe().unwrap();
    let mut sizes_out = Vec::new();
    for (n, a) in sizes() {
        // As the `powerplug` binary sets it first thing in main (glibc reads
        // it at start): two malloc arenas, not eight per core.
        let arenas = std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "2".into());
        let output = std::process::Command::new(&exe)
            .env("POWERPLUG_BENCH_ONE", format!("{n}:{a}"))
            .env("MALLOC_ARENA_MAX", arenas)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "the {n}-consumer run failed");
        let figures: Value = serde_json::from_slice(&output.stdout).unwrap();
        sizes_out.push(figures);
    }
    let out = json!({
        "limit": physical_limit(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "sizes": sizes_out,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    if std::env::var_os("POWERPLUG_BENCH_METERS").is_none() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/results/million.json");
        std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    }
}
