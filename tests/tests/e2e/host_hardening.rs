//! Issue 11, findings 9, 12 and 13, against running roles: a data directory
//! others can reach is refused; a compiled-cache entry the host did not write
//! is not run (compiled again instead); a stopped role has let go of its
//! database, so the same data directory opens again at once; a panicking
//! scheduler round is caught and shown in `/status` while the role goes on.

use powerplug::domain::EntityKind;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use powerplug::http::run;
use powerplug::role::config::MetersConfig;
use powerplug::storage::RedbStore;
use powerplug_tests::{
    Client, Meter, OPERATOR, basic_grid, component, eventually, grid_config, meters_config,
    strategy_files,
};

#[test]
fn a_data_dir_that_group_or_others_can_reach_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let config = grid_config(dir.path(), grid_wasm, 20);
    let data = &config.service.data_dir;
    std::fs::create_dir(data).unwrap();
    for mode in [0o755, 0o750, 0o705, 0o701] {
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = match rt.block_on(run::grid(&config)) {
            Ok(_) => panic!("a data dir of mode {mode:o} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(&data.display().to_string()) && err.contains("chmod 700"),
            "{mode:o}: {err}"
        );
        assert!(
            std::fs::read_dir(data).unwrap().next().is_none(),
            "nothing is written into a refused data dir"
        );
    }
    // The fix the error names works.
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let grid = rt.block_on(run::grid(&config)).unwrap();
    assert_eq!(Client::new(&grid.url).get("/status", None).0, 200);
    rt.block_on(grid.stop()).unwrap();
}

fn requested(client: &Client) -> u64 {
    client.get("/status", None).1["totals"]["requested"]
        .as_u64()
        .unwrap_or(0)
}

/// An attacker who can write the cache puts the compiled premium strategy (7
/// tokens a kWh) where the basic one's entry (5 a kWh) is. The host must not
/// run it: the grid bills at 5, and the entry is compiled again.
#[test]
fn a_cache_entry_the_host_did_not_write_is_compiled_again_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let basic = basic_grid();
    let cache = dir.path().join("cache");
    let runtime = powerplug::role::runtime(&cache, powerplug::strategy::Limits::DEFAULT).unwrap();
    runtime.load(&basic).unwrap();
    runtime.load(&premium).unwrap();
    let sha = |bytes: &[u8]| powerplug::strategy::inspect(bytes).unwrap().sha256.hex();
    let entry = |sha: &str| {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(sha) && name.ends_with(".cwasm")
            })
            .unwrap()
    };
    let (basic_entry, premium_entry) = (entry(&sha(&basic)), entry(&sha(&premium)));
    std::fs::copy(&premium_entry, &basic_entry).unwrap();
    let before = runtime.cache_stats();

    let rt = powerplug_tests::runtime();
    let mut config = grid_config(dir.path(), grid_wasm, 20);
    config.strategy.cache_dir = Some(cache.clone());
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let mut meters: Vec<Meter> = (0..3u8)
        .map(|i| Meter::register(&grid.url, &format!("c{i}"), i + 1))
        .collect();
    for m in &mut meters {
        m.read();
    }
    eventually("three kWh are billed", || requested(&client) > 0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(requested(&client), 3 * 5, "billed by basic, not by premium");

    let after = runtime.cache_stats();
    assert_eq!(after.cache_rejected - before.cache_rejected, 1);
    assert_eq!(after.compiles - before.compiles, 1, "compiled again");
    assert_ne!(
        std::fs::read(&basic_entry).unwrap(),
        std::fs::read(&premium_entry).unwrap(),
        "the entry was written again"
    );
    rt.block_on(grid.stop()).unwrap();
}

/// Finding 13: `stop` returned while connections and requests still held the
/// role, and reopening the data directory failed with "Database already open".
#[test]
fn a_stopped_role_has_let_go_of_its_database_even_with_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let rt = powerplug_tests::runtime();
    let mut config = grid_config(dir.path(), grid_wasm, 20);
    config.service.poll_ms = 1;
    let db_file = config.service.data_dir.join("powerplug.redb");
    for round in 0..30 {
        let grid = rt.block_on(run::grid(&config)).unwrap();
        let url = grid.url.clone();
        let done = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..4)
            .map(|i| {
                let (url, done, answered) = (url.clone(), done.clone(), answered.clone());
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(std::time::Duration::from_secs(5)))
                        .build()
                        .into();
                    while !done.load(Ordering::Relaxed) {
                        let sent = if i % 2 == 0 {
                            agent.get(&format!("{url}/status")).call().is_ok()
                        } else {
                            agent
                                .post(&format!("{url}/channels/read"))
                                .header("content-type", "application/json")
                                .send(r#"{"addresses":[]}"#)
                                .is_ok()
                        };
                        if sent {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        if round == 0 {
            // A long request whose client goes away: the upload compiles on
            // a thread of its own for a while after the connection is gone.
            use std::io::Write;
            let host = url.trim_start_matches("http://");
            let mut stream = std::net::TcpStream::connect(host).unwrap();
            write!(
                stream,
                "PUT /strategies/grid?activate=false HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {OPERATOR}\r\ncontent-length: {}\r\n\r\n",
                premium.len()
            )
            .unwrap();
            stream.write_all(&premium).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(stream);
        }
        // Idle keep-alive connections: at a stop each one's task winds down
        // on its own, and may still hold the role when the server returns.
        let idle: Vec<std::net::TcpStream> = (0..64)
            .map(|_| {
                use std::io::{Read, Write};
                let host = url.trim_start_matches("http://");
                let mut stream = std::net::TcpStream::connect(host).unwrap();
                write!(stream, "GET /status HTTP/1.1\r\nhost: {host}\r\n\r\n").unwrap();
                let mut head = [0u8; 12];
                stream.read_exact(&mut head).unwrap();
                stream
            })
            .collect();
        eventually("requests are answered", || {
            answered.load(Ordering::Relaxed) > 10
        });
        rt.block_on(grid.stop()).unwrap();
        // At once, and while the clients still knock.
        let reopened = RedbStore::open(&db_file);
        done.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        drop(idle);
        if let Err(e) = reopened {
            panic!("round {round}: the database is still held after stop: {e:#}");
        }
    }
}

/// A meter feed that panics on its first readings, with terminal escapes in
/// its message.
struct Flaky {
    calls: AtomicU64,
}

impl powerplug::role::Meter for Flaky {
    fn take(
        &self,
        _: &dyn powerplug::storage::WriteTx,
        _entity: &str,
        _slice: u64,
        _slice_ms: u64,
    ) -> anyhow::Result<u64> {
        if self.calls.fetch_add(1, Ordering::Relaxed) < 3 {
            panic!("\u{1b}[2Jmeter feed\nlost");
        }
        Ok(1_000)
    }
}

#[test]
fn a_panicking_round_is_caught_shown_in_status_and_the_role_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let clock = powerplug::role::Clock {
        epoch_ms: powerplug::role::unix_ms(),
        scale: 600,
    };
    let mut config = grid_config(dir.path(), grid_wasm, 20);
    config.service.clock = clock;
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let consumers = meters_config(
        MetersConfig::consumers(),
        dir.path().join("consumers"),
        &grid.url,
        clock,
    );
    let feed = Box::new(Flaky {
        calls: AtomicU64::new(0),
    });
    let meters = rt
        .block_on(run::meters_reading(&consumers, EntityKind::Consumer, feed))
        .unwrap();
    let client = Client::new(&meters.url);
    let status = || client.get("/status", None).1;
    eventually("the meter publishes after the panics", || {
        status()["meters"]["published_wh"].as_u64().unwrap_or(0) >= 2_000
    });
    let s = status();
    assert_eq!(s["scheduler"]["panics"], 3, "{s}");
    let last = s["scheduler"]["last_panic"].as_str().unwrap();
    assert_eq!(last, "meter feed lost", "escapes and line breaks are gone");
    assert!(s["scheduler"]["rounds"].as_u64().unwrap() > 3);
    // The grid bills what was published after the panics.
    let grid_client = Client::new(&grid.url);
    eventually("the usage reaches the grid", || {
        grid_client.get("/status", None).1["totals"]["usage-wh"]
            .as_u64()
            .unwrap_or(0)
            >= 2_000
    });
    rt.block_on(meters.stop()).unwrap();
    rt.block_on(grid.stop()).unwrap();
}

/// Found by fuzzing (fuzz/fuzz_targets/json_bodies.rs): a body with more
/// after its JSON value was read as the value alone.
#[test]
fn a_json_body_with_anything_after_it_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 20)))
        .unwrap();
    let client = Client::new(&grid.url);
    let _meter = Meter::register(&grid.url, "c0", 1);
    let issued = || client.get("/status", None).1["wallet"]["issued"].as_u64();
    let one = r#"{"to":"c0","amount":5,"key":"k1"}"#;
    for junk in [" {\"to\":\"c0\",\"amount\":500,\"key\":\"k2\"}", "x", "]"] {
        let body = format!("{one}{junk}");
        let (code, answer) = client.call(
            "POST",
            "/wallet/issue",
            Some(OPERATOR),
            Some(body.as_bytes()),
        );
        assert_eq!(
            (code, answer["field"].as_str()),
            (422, Some("body")),
            "{body}: {answer}"
        );
    }
    assert_eq!(issued(), Some(0));
    let (code, answer) = client.call(
        "POST",
        "/wallet/issue",
        Some(OPERATOR),
        Some(format!("{one} \n").as_bytes()),
    );
    assert!(code < 300, "{code} {answer}");
    assert_eq!(issued(), Some(5));
    rt.block_on(grid.stop()).unwrap();
}
