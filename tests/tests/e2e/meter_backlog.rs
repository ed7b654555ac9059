//! Meters whose host above is away keep what waits to go up bounded: past
//! `backlog` readings per meter they take no new ones, and once the host is
//! back they read the time they missed in fewer, longer readings. No energy
//! is lost on the way: the grid bills every Wh the meters read.

use std::time::{Duration, Instant};

use powerplug::domain::EntityKind;
use powerplug::http::run;
use powerplug::role::MeterConfig;
use powerplug::role::config::MetersConfig;
use powerplug_tests::{Client, OPERATOR, eventually, grid_config, meters_config, strategy_files};

const SLICE_MS: u64 = 30_000;
const SCALE: u64 = 600;
const WH: u64 = 100;
const COUNT: u64 = 3;
const BACKLOG: u64 = 2;
/// Slices one reading covers at most (by `max_reading_wh`).
const MOST_SLICES: u64 = 8;

#[test]
fn meters_hold_their_backlog_while_the_grid_is_away_and_lose_no_energy() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let clock = powerplug::role::Clock {
        epoch_ms: powerplug::role::unix_ms(),
        scale: SCALE,
    };
    // The grid's address, free now; the grid takes it later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let mut consumers = meters_config(
        MetersConfig::consumers(),
        dir.path().join("consumers"),
        &format!("http://127.0.0.1:{port}"),
        clock,
    );
    consumers.count = COUNT as u32;
    consumers.meter = MeterConfig::Fixed { wh: WH };
    consumers.backlog = BACKLOG;
    consumers.max_reading_wh = MOST_SLICES * WH;
    let started = Instant::now();
    let meters = rt
        .block_on(run::meters(&consumers, EntityKind::Consumer))
        .unwrap();
    let meters_api = Client::new(&meters.url);
    let status = || meters_api.get("/status", None).1;

    // Away for 40 slices: what waits stops growing at the backlog (plus
    // the last round's readings).
    eventually("the meters hold their readings", || {
        status()["meters"]["holding"] == true
    });
    let away_until = Instant::now() + Duration::from_millis(40 * SLICE_MS / SCALE);
    while Instant::now() < away_until {
        let s = status();
        let waiting = s["meters"]["waiting"].as_u64().unwrap();
        assert!(waiting <= (BACKLOG + 1) * COUNT, "{s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let read_while_away = status()["meters"]["published_wh"].as_u64().unwrap();

    // The grid comes: the missed time arrives, in longer readings.
    let mut config = grid_config(dir.path(), grid_wasm, 1_000);
    config.service.clock = clock;
    config.service.listen = ([127, 0, 0, 1], port).into();
    let grid = rt.block_on(run::grid(&config)).unwrap();
    eventually("the meters read again", || {
        let s = status();
        s["meters"]["holding"] == false
            && s["meters"]["published_wh"].as_u64().unwrap() > read_while_away + 40 * WH * COUNT
    });
    rt.block_on(meters.stop()).unwrap();
    let elapsed_slices = started.elapsed().as_millis() as u64 * SCALE / SLICE_MS;

    let meters_db =
        powerplug::storage::RedbStore::open(&consumers.service.data_dir.join("powerplug.redb"))
            .unwrap();
    let read_wh = meters_db_total(&meters_db);
    let readings = powerplug::storage::counter(&meters_db, "readings").unwrap();
    // Every slice up to the last round was read (a few at the end may not
    // have been yet), in fewer readings than slices, none of more than
    // `max_reading_wh`.
    let slices = read_wh / WH;
    assert!(
        slices >= (elapsed_slices - 10) * COUNT,
        "{COUNT} meters read {slices} slices in {elapsed_slices}"
    );
    assert!(
        readings < slices && readings * MOST_SLICES >= slices,
        "{readings} readings for {slices} slices"
    );

    // The grid bills what was read, to the Wh.
    let grid_api = Client::new(&grid.url);
    eventually("the grid took every reading", || {
        grid_api.get("/status", Some(OPERATOR)).1["totals"]["usage-wh"].as_u64() == Some(read_wh)
    });
    let totals = &grid_api.get("/status", Some(OPERATOR)).1["totals"];
    assert_eq!(
        totals["records-received"].as_u64(),
        Some(readings),
        "{totals}"
    );
    assert_eq!(
        totals["commands-rejected"].as_u64().unwrap_or(0),
        0,
        "{totals}"
    );
    rt.block_on(grid.stop()).unwrap();
}

/// What the meters in `db` read, in Wh: the sum of their published totals.
fn meters_db_total(db: &powerplug::storage::RedbStore) -> u64 {
    (0..COUNT)
        .map(|n| {
            powerplug::role::member::MemberState::load(db, &format!("consumer-{n}"))
                .unwrap()
                .expect("the meter's state")
                .published_wh
        })
        .sum()
}
