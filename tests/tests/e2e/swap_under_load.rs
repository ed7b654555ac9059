//! Under steady traffic (a tick every round, consumers reading and paying),
//! two versions are activated alternately 50 times: every tick is decided
//! once, by one version, and bills by that version's rules from the first tick
//! after its activation; the money adds up to the token.

use powerplug::domain::EntityKind;
use std::collections::BTreeMap;

use powerplug::http::run;
use powerplug::role::MeterConfig;
use powerplug::role::config::MetersConfig;
use powerplug::tick_log::{self, Outcome};
use powerplug::{storage, versions, wallet};
use powerplug_tests::{
    Client, OPERATOR, component, eventually, grid_config, meters_config, strategy_files,
};
use serde_json::json;

#[test]
fn fifty_swaps_under_traffic_lose_repeat_and_split_no_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let rt = powerplug_tests::runtime();
    let mut config = grid_config(dir.path(), grid_wasm, 15_000);
    // ×600: a grid tick every 25 ms, a 30 s slice every 50 ms.
    let clock = powerplug::role::Clock {
        epoch_ms: powerplug::role::unix_ms(),
        scale: 600,
    };
    config.service.clock = clock;
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);

    let mut consumers = meters_config(
        MetersConfig::consumers(),
        dir.path().join("consumers"),
        &grid.url,
        clock,
    );
    consumers.count = 8;
    consumers.meter = MeterConfig::Random {
        seed: 9,
        min_wh: 0,
        max_wh: 2_000,
    };
    for i in 0..8 {
        // Funded before the meters register.
        let body = json!({ "to": format!("consumer-{i}"), "amount": 1_000_000, "key": format!("fund-{i}"), "unregistered": true });
        assert_eq!(client.post("/wallet/issue", Some(OPERATOR), &body).0, 201);
    }
    let meters = rt
        .block_on(run::meters(&consumers, EntityKind::Consumer))
        .unwrap();
    let requested = || {
        client.get("/status", None).1["totals"]["requested"]
            .as_u64()
            .unwrap_or(0)
    };
    eventually("billing started", || requested() > 0);

    let (status, swapped) = client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&premium));
    assert_eq!(status, 201, "{swapped}");
    let premium_sha = swapped["version"]["sha256"].as_str().unwrap().to_owned();
    let before = requested();
    eventually("a bill under the uploaded version", || requested() > before);
    let basic_sha = versions::history(grid.role.db(), powerplug::strategy::StrategyKind::Grid)
        .unwrap()[0]
        .sha256
        .hex();
    for i in 0..50 {
        let target = if i % 2 == 0 { &basic_sha } else { &premium_sha };
        let (status, answer) = client.call(
            "POST",
            &format!("/strategies/grid/activate/{target}"),
            Some(OPERATOR),
            None,
        );
        assert_eq!(status, 200, "swap {i}: {answer}");
        // The activation waited for the tick in flight: from here on every
        // tick is the new version's.
        let before = requested();
        eventually("a bill under the new version", || requested() > before);
    }
    meters.role.stop_readings();
    eventually(
        "the consumers read every request and paid what they could",
        || {
            let s = meters.role.status().unwrap();
            let totals = client.get("/status", None).1["totals"].clone();
            totals["usage-wh"].as_u64() == Some(s.published_wh)
                && totals["payment-requests"].as_u64() == Some(s.requests)
                && s.pending_payments == 0
                && totals["income"].as_u64() == Some(s.paid)
        },
    );
    let consumer_status = meters.role.status().unwrap();
    rt.block_on(meters.stop()).unwrap();
    rt.block_on(grid.stop()).unwrap();

    let db = storage::RedbStore::open(&dir.path().join("grid/powerplug.redb")).unwrap();
    let log = tick_log::grid_ticks(&db, "grid", 0, usize::MAX).unwrap();
    // Every tick once: numbered without gap, each with one version.
    for (i, record) in log.iter().enumerate() {
        assert_eq!(record.tick, i as u64 + 1, "tick numbers are contiguous");
        assert!(record.strategy.hex() == basic_sha || record.strategy.hex() == premium_sha);
    }
    let counters = storage::counters(&db).unwrap();
    let decided = log
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Decided(_)))
        .count() as u64;
    assert_eq!(counters.get("ticks").copied(), Some(decided));
    assert_eq!(counters.get("ticks-failed"), None, "no tick failed");

    // Each version's ticks bill by its rules; the history has every activation in order.
    let mut requests = BTreeMap::new();
    let mut owed_total = 0;
    for record in &log {
        let Outcome::Decided(decision) = &record.outcome else {
            continue;
        };
        let price = if record.strategy.hex() == premium_sha {
            7
        } else {
            5
        };
        for r in decision.payment_requests.iter() {
            assert_eq!(r.owed, r.wh / 1000 * price, "tick {}", record.tick);
            *requests.entry(price).or_insert(0u64) += 1;
            owed_total += r.owed;
        }
    }
    assert!(requests[&5] > 0 && requests[&7] > 0, "{requests:?}");
    let history = versions::history(&db, powerplug::strategy::StrategyKind::Grid).unwrap();
    assert_eq!(
        history.len(),
        52,
        "configured, uploaded, then 50 activations"
    );
    let switches = log
        .windows(2)
        .filter(|w| w[0].strategy != w[1].strategy)
        .count();
    assert_eq!(
        switches, 51,
        "the upload and 50 activations, each seen by ticks"
    );

    // Money: what consumers were asked is what the grid requested; every token is held.
    assert_eq!(counters.get("requested").copied(), Some(owed_total));
    assert_eq!(consumer_status.requested, owed_total);
    assert_eq!(
        wallet::issued(&db).unwrap().get(),
        wallet::total_balances(&db).unwrap().get()
    );
    let grid_balance = wallet::balance(&db, "grid").unwrap().get();
    assert_eq!(
        grid_balance, consumer_status.paid,
        "no producer here: the grid holds all it was paid"
    );
}
