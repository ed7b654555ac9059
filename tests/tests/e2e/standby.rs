//! Two grid hosts on one PostgreSQL namespace, in one process: one leads,
//! the other serves what entities send but refuses what lives in the
//! leader's memory, and follows the version the leader activated; a
//! graceful stop of the leader hands the lease on at once.

use powerplug::http::run;
use powerplug::storage::{PgStore, StorageConfig};
use powerplug_tests::{
    Client, OPERATOR, component, eventually, grid_config, postgres_url, strategy_files,
};
use serde_json::json;

#[test]
fn a_standby_serves_entities_refuses_operators_changes_and_takes_over_on_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let namespace = powerplug_tests::fresh_namespace("standby");
    let _removed = Removed(namespace.clone());
    let config = |host: &str| {
        let mut config = grid_config(&dir.path().join(host), grid_wasm.clone(), 20);
        config.service.storage = StorageConfig::Postgres {
            url: postgres_url(),
            namespace: namespace.clone(),
        };
        config.service.lease_ms = 1_000;
        config
    };
    let rt = powerplug_tests::runtime();
    let leader = rt.block_on(run::grid(&config("a"))).unwrap();
    let standby = rt.block_on(run::grid(&config("b"))).unwrap();
    let (a, b) = (Client::new(&leader.url), Client::new(&standby.url));
    let leading = |c: &Client| c.get("/status", None).1["lease"]["leading"] == true;
    assert!(leading(&a) && !leading(&b), "one leads");

    // Entities and the wallet are served by the standby, into the shared store.
    let (status, body) = b.post(
        "/wallet/issue",
        Some(OPERATOR),
        &json!({ "to": "alice", "amount": 70, "key": "fund", "unregistered": true }),
    );
    assert_eq!(status, 201, "{body}");
    let issued = |c: &Client| c.get("/status", None).1["wallet"]["issued"].clone();
    assert_eq!(
        issued(&a),
        json!(70),
        "the leader sees what the standby took"
    );

    // What lives in the leader's memory is refused by the standby, and
    // changes nothing.
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let versions = |c: &Client| c.get("/strategies", Some(OPERATOR)).1;
    let before = versions(&a);
    let (status, body) = b.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&premium));
    assert_eq!((status, &body["field"]), (503, &json!("host")), "{body}");
    let (status, body) = b.post("/experiments", Some(OPERATOR), &json!({}));
    assert_eq!((status, &body["field"]), (503, &json!("host")), "{body}");
    assert_eq!(versions(&a), before);

    // The leader takes it.
    let (status, body) = a.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&premium));
    assert_eq!(status, 201, "{body}");
    let active = |c: &Client| c.get("/status", None).1["strategy"]["sha256"].clone();
    let premium_sha = active(&a);
    eventually("the standby runs what the leader activated", || {
        active(&b) == premium_sha
    });

    // A graceful stop hands the lease on at once; the new leader ticks with
    // that version.
    let ticks = |c: &Client| {
        c.get("/status", None).1["totals"]["ticks"]
            .as_u64()
            .unwrap_or(0)
    };
    let ticked = ticks(&b);
    rt.block_on(leader.stop()).unwrap();
    eventually("the standby leads", || leading(&b));
    eventually("it ticks", || ticks(&b) > ticked);
    assert_eq!(active(&b), premium_sha);
    rt.block_on(standby.stop()).unwrap();
}

/// A test's namespace, removed when the test ends, passed or not.
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        if let Ok(store) = PgStore::connect(&postgres_url(), &self.0) {
            let _ = store.drop_namespace();
        }
    }
}
