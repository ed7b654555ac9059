//! A meter host without a disk of its own (as in the original): its state
//! lives in the `/storage` of the producer it registers with, its keys and
//! channels derive from a configured secret. Stopped and started again with
//! nothing local, it registers again, reads its state back and goes on:
//! every reading arrives once, with no gap and no junk in its channel.

use powerplug::domain::EntityKind;
use powerplug::http::run;
use powerplug::role::MeterConfig;
use powerplug::role::config::{MetersConfig, StateKeeping};
use powerplug_tests::{Client, OPERATOR, eventually, grid_config, meters_config, strategy_files};

#[test]
fn meters_without_a_disk_keep_their_state_upstream_across_a_restart() {
    let Hosts {
        dir: _dir,
        rt,
        grid,
        producer,
        sources,
        ..
    } = hosts("ab");
    let api = Client::new(&producer.url);
    let read = || messages_read(&api);
    let meters = rt
        .block_on(run::meters(&sources, EntityKind::Source))
        .unwrap();
    eventually("readings arrive", || read() >= 10);
    rt.block_on(meters.stop()).unwrap();
    let before = read();
    // Down for a few slices; then up again with nothing local.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let meters = rt
        .block_on(run::meters(&sources, EntityKind::Source))
        .unwrap();
    eventually("readings go on after the restart", || read() >= before + 20);
    let (_, status) = Client::new(&meters.url).get("/status", None);
    let each = status["each"].as_array().unwrap();
    assert_eq!(each.len(), 2);
    assert!(
        each.iter()
            .all(|m| m["registered"] == true && m["channel_position"].as_u64() > Some(10)),
        "{status}"
    );
    rt.block_on(meters.stop()).unwrap();
    assert!(
        !sources.service.data_dir.exists(),
        "no local state was written"
    );

    // What each meter kept upstream matches what the producer read, exactly.
    let db = producer.role.db();
    let mut published_wh = 0;
    for id in ["source-0", "source-1"] {
        let kept =
            powerplug::documents::get(db, &producer.role.hub.objects, id, "powerplug", "member")
                .unwrap()
                .expect("state kept upstream");
        let kept: serde_json::Value = serde_json::from_slice(&kept).unwrap();
        published_wh += kept["published_wh"].as_u64().unwrap();
        let registration = powerplug::registry::get(db, id).unwrap().unwrap();
        eventually("the producer read the whole channel", || {
            powerplug::registry::get(db, id)
                .unwrap()
                .unwrap()
                .read_index
                == kept["channel"]["next_index"].as_u64().unwrap()
        });
        assert_eq!(
            registration.dropped, 0,
            "{id}: nothing was sent twice or out of place"
        );
        assert_eq!(registration.rejected, 0);
    }
    eventually("the producer took every reading", || {
        let totals = api.get("/status", None).1["totals"].clone();
        totals["source-wh"].as_u64() == Some(published_wh)
    });
    let totals = api.get("/status", None).1["totals"].clone();
    assert_eq!(totals["records-duplicate"].as_u64().unwrap_or(0), 0);

    rt.block_on(producer.stop()).unwrap();
    rt.block_on(grid.stop()).unwrap();
}

/// A meter host that dies after its readings went up but before it kept its
/// new position upstream (kill -9 between the two) comes back behind what
/// the producer holds. It must go on without junk, gap or a stuck channel.
#[test]
fn sources_whose_kept_state_lags_what_they_sent_go_on() {
    let Hosts {
        dir: _dir,
        rt,
        grid,
        producer,
        sources,
        ..
    } = hosts("cd");
    let (url, hub) = (&producer.url, &producer.role.hub);
    lag_and_go_on(&rt, &sources, EntityKind::Source, url, hub, "source-wh");
    rt.block_on(producer.stop()).unwrap();
    rt.block_on(grid.stop()).unwrap();
}

/// The same for consumers at a grid: each slice's usage is billed once.
#[test]
fn consumers_whose_kept_state_lags_what_they_sent_are_billed_once() {
    let Hosts {
        dir,
        rt,
        grid,
        producer,
        clock,
        ..
    } = hosts("ef");
    let consumers = two_without_a_disk(MetersConfig::consumers(), &dir, &grid.url, clock, "ef");
    let (url, hub) = (&grid.url, &grid.role.hub);
    lag_and_go_on(&rt, &consumers, EntityKind::Consumer, url, hub, "usage-wh");
    rt.block_on(producer.stop()).unwrap();
    rt.block_on(grid.stop()).unwrap();
}

/// Runs two meters, stops them, puts their kept state back to what it was
/// some readings earlier (what a crash between sending and keeping leaves),
/// starts them again and checks that every reading went up once, against
/// the host above at `url` (`hub`), whose `/status` total `total` adds up
/// what the meters reported.
fn lag_and_go_on(
    rt: &tokio::runtime::Runtime,
    meters: &MetersConfig,
    kind: EntityKind,
    url: &str,
    hub: &powerplug::role::Hub,
    total: &str,
) {
    let (api, db, objects) = (Client::new(url), &*hub.db, &hub.objects);
    let read = || messages_read(&api);
    let ids = [0, 1].map(|n| format!("{}-{n}", meters.service.id));
    let kept = |id: &str| {
        powerplug::documents::get(db, objects, id, "powerplug", "member")
            .unwrap()
            .expect("state kept upstream")
    };
    let running = rt.block_on(run::meters(meters, kind)).unwrap();
    eventually("readings arrive", || read() >= 6);
    let old: Vec<_> = ids.iter().map(|id| kept(id)).collect();
    let at = read();
    eventually("more readings arrive", || read() >= at + 10);
    rt.block_on(running.stop()).unwrap();
    for (id, body) in ids.iter().zip(&old) {
        powerplug::documents::put(db, objects, id, "powerplug", "member", body).unwrap();
    }
    let before = read();
    let running = rt.block_on(run::meters(meters, kind)).unwrap();
    eventually("readings go on after the restart", || read() >= before + 20);
    rt.block_on(running.stop()).unwrap();
    let mut published_wh = 0;
    for id in &ids {
        let kept: serde_json::Value = serde_json::from_slice(&kept(id)).unwrap();
        published_wh += kept["published_wh"].as_u64().unwrap();
        let next = kept["channel"]["next_index"].as_u64().unwrap();
        eventually("the host read the whole channel", || {
            powerplug::registry::get(db, id)
                .unwrap()
                .unwrap()
                .read_index
                == next
        });
        let registration = powerplug::registry::get(db, id).unwrap().unwrap();
        assert_eq!(
            registration.dropped, 0,
            "{id}: nothing sealed over what was sent"
        );
        assert_eq!(registration.rejected, 0);
    }
    // Each slice counted once: what went up before the restart is not
    // published again, nor forgotten.
    eventually("the host took every reading", || {
        api.get("/status", None).1["totals"][total].as_u64() == Some(published_wh)
    });
}

/// A grid and a producer, and the configuration of two sources without a
/// disk whose keys and channels derive from `secret` (one byte in hex), on a
/// clock all roles share.
struct Hosts {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    grid: run::Running<powerplug::role::grid::Grid>,
    producer: run::Running<powerplug::role::producer::Producer>,
    sources: MetersConfig,
    /// The clock every role shares.
    clock: powerplug::role::Clock,
}

fn hosts(secret: &str) -> Hosts {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, producer_wasm) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    // A 30 s slice every 50 ms, on a clock all roles share (a host refuses
    // readings from too far in its future).
    let clock = powerplug::role::Clock {
        epoch_ms: powerplug::role::unix_ms(),
        scale: 600,
    };
    let mut config = grid_config(dir.path(), grid_wasm, 1_000);
    config.service.clock = clock;
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let mut config = powerplug_tests::producer_config(dir.path(), producer_wasm, &grid.url);
    config.service.clock = clock;
    let producer = rt.block_on(run::producer(&config)).unwrap();

    let mut sources =
        two_without_a_disk(MetersConfig::sources(), &dir, &producer.url, clock, secret);
    sources.admission_token = Some(powerplug_tests::admit(&producer.url, "source", None, 2));

    Hosts {
        dir,
        rt,
        grid,
        producer,
        sources,
        clock,
    }
}

/// How many messages a host read on its meters' channels.
fn messages_read(host: &Client) -> u64 {
    host.get("/status", Some(OPERATOR)).1["registrations"]["messages_read"]
        .as_u64()
        .unwrap_or(0)
}

/// Two meters of 4 kWh a slice at `upstream`, without a disk: keys and
/// channels derive from `secret` (one byte in hex).
fn two_without_a_disk(
    base: MetersConfig,
    dir: &tempfile::TempDir,
    upstream: &str,
    clock: powerplug::role::Clock,
    secret: &str,
) -> MetersConfig {
    let mut meters = meters_config(base, dir.path().join("must-not-be-used"), upstream, clock);
    meters.count = 2;
    meters.meter = MeterConfig::Fixed { wh: 4_000 };
    meters.state = StateKeeping::Remote {
        secret: secret.repeat(32),
    };
    meters
}
