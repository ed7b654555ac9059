//! The original's producer routes, for the operator: `/closedown` says goodbye
//! and deregisters, `/initialise` registers again on a fresh channel, `/reset`
//! is goodbye, a fresh channel and a new registration of the same id.

use powerplug::http::run;
use powerplug_tests::{Client, OPERATOR, eventually, grid_config, strategy_files};
use serde_json::Value;

fn producers(grid: &Client) -> Value {
    grid.get("/status", Some(OPERATOR)).1["registrations"]["by_kind"]["producers"].clone()
}

/// A grid and a producer registered with it, their data in `dir`.
fn grid_and_producer(
    dir: &std::path::Path,
) -> (
    tokio::runtime::Runtime,
    run::Running<powerplug::role::grid::Grid>,
    run::Running<powerplug::role::producer::Producer>,
) {
    let (grid_wasm, producer_wasm) = strategy_files(dir);
    let rt = powerplug_tests::runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir, grid_wasm, 1_000)))
        .unwrap();
    let config = powerplug_tests::producer_config(dir, producer_wasm, &grid.url);
    let producer = rt.block_on(run::producer(&config)).unwrap();
    (rt, grid, producer)
}

#[test]
fn closedown_initialise_and_reset_change_the_producers_registration() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, grid, producer) = grid_and_producer(dir.path());
    let (grid_api, api) = (Client::new(&grid.url), Client::new(&producer.url));

    eventually("the producer registers", || {
        producers(&grid_api)["open"] == 1
    });
    let (_, status) = api.get("/status", Some(OPERATOR));
    assert_eq!(status["grid"]["url"], grid.url.as_str());
    assert_eq!(
        status["grid"]["balance"], 0,
        "its account at the grid's ledger: {status}"
    );
    let first_index = api.get("/status", None).1["grid"]["index"].clone();

    for route in ["/closedown", "/reset", "/initialise"] {
        assert_eq!(
            api.call("POST", route, None, None).0,
            401,
            "{route} needs the operator"
        );
        assert_eq!(
            api.call("POST", route, Some("wrong"), None).0,
            401,
            "{route} needs the operator"
        );
    }
    assert_eq!(
        producers(&grid_api)["open"],
        1,
        "refused calls changed nothing"
    );

    let (status, body) = api.call("POST", "/closedown", Some(OPERATOR), None);
    assert_eq!(
        (status, &body["closed"], &body["registered"]),
        (200, &Value::Bool(true), &Value::Bool(false)),
        "{body}"
    );
    eventually("the grid forgets the producer", || {
        producers(&grid_api).is_null()
    });

    let (status, body) = api.call("POST", "/initialise", Some(OPERATOR), None);
    assert_eq!(
        (status, &body["registered"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    eventually("the grid knows it again", || {
        producers(&grid_api)["open"] == 1
    });
    let index = body["index"].clone();
    // A new registration, of the same id under its own key: the grid brings
    // it back with its index (its books and balance), as for any id that left.
    assert_eq!(index, first_index, "the producer comes back as itself");

    let (status, body) = api.call("POST", "/reset", Some(OPERATOR), None);
    assert_eq!(
        (status, &body["registered"], &body["index"]),
        (200, &Value::Bool(true), &index),
        "{body}"
    );
    assert_eq!(producers(&grid_api)["open"], 1);
    assert_eq!(api.get("/status", None).1["grid"]["registered"], true);

    rt.block_on(producer.stop()).unwrap();
    rt.block_on(grid.stop()).unwrap();
}

#[test]
fn a_running_producer_takes_a_new_pricing_version_between_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, producer_wasm) = strategy_files(dir.path());
    let premium = powerplug_tests::component("plugins/basic-producer-strategy", &["premium"]);
    let rt = powerplug_tests::runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 1_000)))
        .unwrap();
    let mut config = powerplug_tests::producer_config(dir.path(), producer_wasm, &grid.url);
    config.strategy.tick_ms = 1;
    let producer = rt.block_on(run::producer(&config)).unwrap();
    let api = Client::new(&producer.url);
    let ticks = || {
        api.get("/status", None).1["totals"]["ticks"]
            .as_u64()
            .unwrap_or(0)
    };
    eventually("the producer ticks", || ticks() > 2);

    let (status, answer) = api.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&premium));
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("kind")),
        "{answer}"
    );
    let (status, swapped) = api.call(
        "PUT",
        "/strategies/producer",
        Some(OPERATOR),
        Some(&premium),
    );
    assert_eq!(status, 201, "{swapped}");
    assert!(
        swapped["dry_run"]["candidate"]["commands"].is_u64(),
        "{swapped}"
    );
    let sha = swapped["version"]["sha256"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get("/status", None).1["strategy"]["sha256"],
        sha.as_str()
    );
    let after = ticks();
    eventually("ticks on the new version", || ticks() > after + 2);
    let records =
        powerplug::tick_log::producer_ticks(producer.role.db(), "producer", after, usize::MAX)
            .unwrap();
    assert!(!records.is_empty() && records.iter().all(|r| r.strategy.hex() == sha));

    rt.block_on(producer.stop()).unwrap();
    rt.block_on(grid.stop()).unwrap();
}

/// Source output that comes after its slice's turn is energy produced and
/// never sold: the producer host adds up what its strategy dropped as late
/// (`late-wh`) in `/status`, for the operator to see.
#[test]
fn the_producer_shows_the_source_output_its_strategy_dropped_as_late() {
    use ed25519_dalek::SigningKey;
    use powerplug::channel::{ChannelWriter, HttpTransport};
    use powerplug::domain::{EntityKind, UnixMs, Wh};
    use powerplug::inbox::Command;

    let dir = tempfile::tempdir().unwrap();
    let (_rt, _grid, producer) = grid_and_producer(dir.path());
    let api = Client::new(&producer.url);

    // A source registers, with a token from the producer's operator, and
    // reports a slice from long ago (the producer's clock is real time).
    let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[4; 32]), true).unwrap();
    let token = powerplug_tests::admit(&producer.url, "source", Some("panel"), 1);
    let body =
        powerplug::api::Register::open(EntityKind::Source, &mut writer, Some(&token)).unwrap();
    let (status, answer) = api.put(
        "/registrations/panel",
        None,
        &serde_json::to_value(body).unwrap(),
    );
    assert_eq!(status, 201, "{answer}");
    let old = Command::Output {
        start_ms: UnixMs(0),
        end_ms: UnixMs(30_000),
        wh: Wh(700),
        price: None,
    };
    writer
        .publish(&HttpTransport::new(&producer.url), old.encode())
        .unwrap();
    let totals = || api.get("/status", None).1["totals"].clone();
    eventually("the producer takes the reading", || {
        totals()["records-received"] == 1
    });
    producer.role.tick().unwrap();
    eventually("the late output is counted", || totals()["late-wh"] == 700);
    assert_eq!(totals()["reported-wh"].as_u64().unwrap_or(0), 0);
}
