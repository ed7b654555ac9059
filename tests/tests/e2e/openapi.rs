//! `GET /openapi.json` against a live grid: schemathesis (from PyPI; `.ci/run`
//! installs it) generates requests from the document for every operation,
//! with the operator's token, and checks that no answer is a 5xx and every
//! answer matches the document (status, content type, headers, schema), that
//! invalid data and missing credentials are refused. The grid goes on ticking
//! and its money adds up afterwards.
//!
//! Left out: `positive_data_acceptance` (a request valid by the document is
//! taken): the hosts check more than the schemas say (hex keys of 32 bytes,
//! the id alphabet, the kinds a host takes), so valid-looking data is refused
//! with a 4xx naming the field.

use powerplug::http::run;
use powerplug_tests::{Client, Meter, OPERATOR, eventually, grid_config, runtime, strategy_files};
use std::process::Command;

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let version = Command::new("schemathesis").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "this test runs schemathesis: `pip install schemathesis` (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 50)))
        .unwrap();
    let client = Client::new(&grid.url);
    let mut meter = Meter::register(&grid.url, "steady", 3);
    meter.read_wh(2_000);
    eventually("the grid bills the meter", || {
        client.get("/status", Some(OPERATOR)).1["totals"]["billed-wh"] == 2_000
    });

    // The document names every route with its security.
    let (status, doc) = client.get("/openapi.json", None);
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for scheme in ["operator", "entity", "session"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    assert_eq!(
        doc["paths"]["/wallet/issue"]["post"]["security"][0]["operator"],
        serde_json::json!([])
    );

    let reports = dir.path().join("schemathesis");
    let out = Command::new("schemathesis")
        .args([
            "run",
            &format!("{}/openapi.json", grid.url),
            "--header",
            &format!("Authorization: Bearer {OPERATOR}"),
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--workers",
            "1",
            "--report-dir",
            reports.to_str().unwrap(),
        ])
        // Its caches (.hypothesis, .schemathesis) go with the temp dir.
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert!(operations >= 45, "{operations} operations");
    // Every operation but the document's own route, which schemathesis leaves out.
    let tested = operations - 1;
    assert!(text.contains(&format!("Tested: {tested}")), "{text}");

    // The grid went on: it ticks, bills the next reading, its books add up.
    meter.read_wh(1_000);
    eventually("the grid bills the next kWh", || {
        client.get("/status", Some(OPERATOR)).1["totals"]["billed-wh"] == 3_000
    });
    let status = client.get("/status", Some(OPERATOR)).1;
    assert_eq!(status["strategy"]["failed_ticks_in_a_row"], 0, "{status}");
    // The sum and what was issued, from one snapshot.
    assert_eq!(
        status["wallet"]["conserved"], true,
        "every token issued is held by an account: {status}"
    );
    rt.block_on(grid.stop()).unwrap();
}
