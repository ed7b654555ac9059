//! The `powerplug` binary as a user runs it: build both basic strategies into
//! components, inspect one, run the simulation on them, and run the demo.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{free_port, powerplug, root};

#[test]
fn build_inspect_and_simulate() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("strategies");
    let plugins = root().join("plugins");
    let (ok, stdout, stderr) = powerplug(
        &[
            "strategy",
            "build",
            plugins.join("basic-grid-strategy").to_str().unwrap(),
            plugins.join("basic-producer-strategy").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("basic_grid_strategy.wasm (grid strategy"),
        "{stdout}"
    );

    // A variant built without `--out` goes beside the default components,
    // not over them.
    let (ok, stdout, stderr) = powerplug(
        &[
            "strategy",
            "build",
            plugins.join("basic-producer-strategy").to_str().unwrap(),
            "--features",
            "premium",
        ],
        work.path(),
    );
    assert!(ok, "{stderr}");
    let variant = work
        .path()
        .join("target/strategies/premium/basic_producer_strategy.wasm");
    assert!(variant.exists(), "{stdout}");
    assert!(
        !work
            .path()
            .join("target/strategies/basic_producer_strategy.wasm")
            .exists()
    );

    let grid = out.join("basic_grid_strategy.wasm");
    let (ok, stdout, stderr) = powerplug(
        &["strategy", "inspect", grid.to_str().unwrap()],
        work.path(),
    );
    assert!(ok, "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["kind"], "grid");
    assert_eq!(info["world"], "powerplug:strategy/grid-strategy@0.1.0");
    assert_eq!(
        info["exports"],
        serde_json::json!(["powerplug:strategy/grid@0.1.0"])
    );

    let producer = out.join("basic_producer_strategy.wasm");
    let args = [
        "simulate",
        "--grid",
        grid.to_str().unwrap(),
        "--producer",
        producer.to_str().unwrap(),
        "--ticks",
        "12",
    ];
    let (ok, first, stderr) = powerplug(&args, work.path());
    assert!(ok, "{stderr}");
    assert!(first.contains("2 compiled, 0 from cache"), "{first}");
    assert!(first.contains("money     conserved"), "{first}");
    assert_eq!(
        first
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count(),
        12,
        "{first}"
    );

    // A second run is a restart: the components come from the cache, the run is the same.
    let (ok, second, _) = powerplug(&args, work.path());
    assert!(ok);
    assert!(second.contains("0 compiled, 2 from cache"), "{second}");
    let body = |s: &str| s.lines().skip(3).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&first), body(&second));

    // Piped into a reader that stops early, it ends quietly, as Unix tools
    // do: 3,000 ticks print well over a pipe's 64 KiB, so the writes after
    // `head` has gone meet a closed pipe.
    let long = [&args[..args.len() - 1], &["3000"]].concat();
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!("\"$0\" {} | head -c 1 >/dev/null", long.join(" ")))
        .arg(env!("CARGO_BIN_EXE_powerplug"))
        .current_dir(work.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );

    // The main job: every role as a service, trading; the summary's checks hold.
    let (ok, stdout, stderr) = powerplug(
        &[
            "demo",
            "--grid",
            grid.to_str().unwrap(),
            "--producer",
            producer.to_str().unwrap(),
            "--ticks",
            "30",
            "--time-scale",
            "120",
            "--json",
        ],
        work.path(),
    );
    assert!(ok, "{stdout}\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let checks = summary["checks"].as_array().unwrap();
    assert!(checks.len() >= 10);
    assert!(checks.iter().all(|c| c["holds"] == true), "{stdout}");
    assert!(summary["progress"]["grid_ticks"].as_u64() >= Some(30));
    assert!(summary["payment_requests"].as_u64() > Some(0), "{stdout}");
}

/// `strategy build` names the component after the crate, as cargo names its
/// library, not after the directory it was built from (issue 20).
#[test]
fn a_built_component_is_named_after_its_crate() {
    let work = tempfile::tempdir().unwrap();
    let root_dir = root();
    let (ok, _, stderr) = powerplug(
        &[
            "strategy",
            "new",
            "--lang",
            "rust",
            "my-tariff",
            "--checkout",
            root_dir.to_str().unwrap(),
        ],
        work.path(),
    );
    assert!(ok, "{stderr}");
    std::fs::rename(work.path().join("my-tariff"), work.path().join("v2")).unwrap();
    let (ok, stdout, stderr) = powerplug(&["strategy", "build", "v2", "--out", "out"], work.path());
    assert!(ok, "{stderr}");
    assert!(stdout.contains("my_tariff.wasm (grid strategy"), "{stdout}");
    assert!(work.path().join("out/my_tariff.wasm").exists());
    assert!(!work.path().join("out/v2.wasm").exists());
}

/// `strategy run` as the guide shows it: a ticks file of one's own, each
/// tick printed; a mistake in the file named (issue 20).
#[test]
fn strategy_run_prints_each_tick_of_a_ticks_file() {
    let work = tempfile::tempdir().unwrap();
    let (basic, _) = basic_and_premium(work.path());
    let grid = basic.join("basic_grid_strategy.wasm");
    let ticks = work.path().join("ticks.json");
    std::fs::write(
        &ticks,
        r#"[{"now_ms": 1767292200000, "usage": [{"consumer": 4, "wh": 2600}]},
            {"config": {"price-per-kwh": "6"}, "usage": [{"consumer": 4, "wh": 400}]}]"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "strategy",
            "run",
            grid.to_str().unwrap(),
            "--ticks",
            ticks.to_str().unwrap(),
        ];
        args.extend(extra);
        powerplug(&args, work.path())
    };
    let (ok, stdout, stderr) = run(&[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("tick 1  2026-01-01 18:30:00 UTC (Thu)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("request     consumer 4: 2,000 Wh for 10 tokens"),
        "{stdout}"
    );
    assert!(
        stdout.contains("request     consumer 4: 1,000 Wh for 6 tokens"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run(&["--json"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json[1]["decision"]["payment_requests"]["owed"][0], 6,
        "{json}"
    );

    std::fs::write(&ticks, r#"[{"usage": [{"consumer": 4, "kwh": 2}]}]"#).unwrap();
    let (ok, _, stderr) = run(&[]);
    assert!(!ok);
    assert!(stderr.contains("unknown field `kwh`"), "{stderr}");
}

#[test]
fn a_missing_or_bad_file_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = powerplug(&["strategy", "inspect", "nope.wasm"], work.path());
    assert!(!ok);
    assert!(stderr.contains("reading nope.wasm"), "{stderr}");

    std::fs::write(work.path().join("text.wasm"), "hello").unwrap();
    let (ok, _, stderr) = powerplug(&["strategy", "inspect", "text.wasm"], work.path());
    assert!(!ok);
    assert!(stderr.contains("not WebAssembly"), "{stderr}");
}

/// Builds the basic grid and producer plugins into `work/basic` and the
/// premium grid (7 a kWh) into `work/premium`, as the walk-throughs do.
fn basic_and_premium(work: &Path) -> (PathBuf, PathBuf) {
    let plugins = root().join("plugins");
    let (basic_dir, premium_dir) = (work.join("basic"), work.join("premium"));
    let (grid, producer) = (
        plugins.join("basic-grid-strategy"),
        plugins.join("basic-producer-strategy"),
    );
    for (out, features, crates) in [
        (&basic_dir, None, vec![&grid, &producer]),
        (&premium_dir, Some("premium"), vec![&grid]),
    ] {
        let mut args = vec!["strategy", "build", "--out", out.to_str().unwrap()];
        if let Some(features) = features {
            args.extend(["--features", features]);
        }
        args.extend(crates.iter().map(|c| c.to_str().unwrap()));
        let (ok, _, stderr) = powerplug(&args, &root());
        assert!(ok, "{stderr}");
    }
    (basic_dir, premium_dir)
}

/// README's "Replace the payment policy of a running grid", step by step.
#[test]
fn the_payment_policy_of_a_running_demo_is_replaced_from_the_command_line() {
    let work = tempfile::tempdir().unwrap();
    let (basic_dir, premium_dir) = basic_and_premium(work.path());
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_powerplug"))
        .args([
            "demo",
            "--duration",
            "120",
            "--time-scale",
            "120",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--grid")
        .arg(basic_dir.join("basic_grid_strategy.wasm"))
        .arg("--producer")
        .arg(basic_dir.join("basic_producer_strategy.wasm"))
        .env("POWERPLUG_OPERATOR_TOKEN", "walk-through")
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_powerplug"))
            .args(args)
            .args(["--url", &url])
            .env("POWERPLUG_OPERATOR_TOKEN", "walk-through")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cli(&["strategy", "list"]).0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo's grid never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Let it bill a while, so the upload has a tick to dry-run on.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let premium = premium_dir.join("basic_grid_strategy.wasm");
    let (ok, out, err) = cli(&[
        "strategy",
        "upload",
        premium.to_str().unwrap(),
        "--name",
        "premium",
    ]);
    assert!(ok, "{out}{err}");
    let swapped: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(swapped["version"]["name"], "premium");
    assert!(swapped["dry_run"]["tick"].as_u64() > Some(0), "{out}");

    let (ok, out, _) = cli(&["strategy", "list"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["active"]["grid"], swapped["version"]["sha256"]);
    let basic = list["history"][0]["sha256"].as_str().unwrap().to_owned();

    let (ok, out, err) = cli(&["strategy", "activate", &basic]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(&["strategy", "delete", &basic]);
    assert!(
        !ok && err.contains("409"),
        "the active version stays: {err}"
    );
    let (ok, _, err) = Command::new(env!("CARGO_BIN_EXE_powerplug"))
        .args(["strategy", "list", "--url", &url])
        .env("POWERPLUG_OPERATOR_TOKEN", "wrong")
        .output()
        .map(|o| {
            (
                o.status.success(),
                (),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        })
        .unwrap();
    assert!(!ok && err.contains("401"), "{err}");
    demo.kill().unwrap();
    demo.wait().unwrap();
}

/// README's "A/B test two payment policies", step by step: keep a second
/// version, start an experiment on a running demo, read the report and its
/// page, promote the winner; then replay the recorded run offline.
#[test]
fn two_payment_policies_are_ab_tested_on_a_running_demo_from_the_command_line() {
    let work = tempfile::tempdir().unwrap();
    let (basic_dir, premium_dir) = basic_and_premium(work.path());
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = work.path().join("ab-demo");
    let demo = Command::new(env!("CARGO_BIN_EXE_powerplug"))
        .args([
            "demo",
            "--consumers",
            "60",
            "--duration",
            "25",
            "--time-scale",
            "120",
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--grid")
        .arg(basic_dir.join("basic_grid_strategy.wasm"))
        .arg("--producer")
        .arg(basic_dir.join("basic_producer_strategy.wasm"))
        .env("POWERPLUG_OPERATOR_TOKEN", "change-me")
        .current_dir(work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_powerplug"))
            .args(args)
            .args(["--url", &url])
            .env("POWERPLUG_OPERATOR_TOKEN", "change-me")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "powerplug {args:?}: {text}{err}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ureq::get(format!("{url}/status")).call().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo's grid never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let premium = premium_dir.join("basic_grid_strategy.wasm");
    let kept = cli(&[
        "strategy",
        "upload",
        premium.to_str().unwrap(),
        "--name",
        "premium",
        "--keep",
    ]);
    assert_eq!(kept["activated"], false);
    let started = cli(&[
        "experiment",
        "start",
        "--id",
        "price",
        "--variant",
        "basic=active:1",
        "--variant",
        "premium=premium:1",
    ]);
    assert_eq!(started["variants"][1]["version"], kept["version"]["sha256"]);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let report = loop {
        let report = cli(&["experiment", "report", "price"]);
        let billed = |v: usize| report["variants"][v]["billed_wh"].as_u64().unwrap_or(0);
        if report["ticks"].as_u64() >= Some(10) && billed(0) > 0 && billed(1) > 0 {
            break report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no bills in both cohorts: {report}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(report["variants"][0]["price_per_kwh"], 5.0);
    assert_eq!(report["variants"][1]["price_per_kwh"], 7.0);
    // The token goes in a header (a browser's login prompt), never the URL.
    let get = |path: &str| {
        ureq::get(format!("{url}{path}"))
            .header("authorization", "Bearer change-me")
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap()
    };
    let page = get("/experiments/price/report.html");
    assert!(page.contains("Experiment <code>price</code>") && page.matches("<svg").count() == 3);
    // Every consumer, by id, in the JSON; and as CSV.
    assert!(
        report["consumers"].as_array().is_some_and(|c| !c.is_empty()
            && c.iter().all(|c| c["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("consumer-")))),
        "{report}"
    );
    let csv = get("/experiments/price/report.csv");
    assert!(
        csv.starts_with("consumer,id,variant,") && csv.contains(",consumer-"),
        "{csv}"
    );
    let promoted = cli(&["experiment", "promote", "price", "premium"]);
    assert!(promoted["status"]["promoted"].is_object(), "{promoted}");

    // The demo ends by itself and its money checks hold with two policies.
    let out = demo.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{summary}");

    let chart = work.path().join("replay.svg");
    let (ok, table, err) = powerplug(
        &[
            "replay",
            "--strategy",
            basic_dir.join("basic_grid_strategy.wasm").to_str().unwrap(),
            "--against",
            premium.to_str().unwrap(),
            "--input",
            data.join("grid").to_str().unwrap(),
            "--chart",
            chart.to_str().unwrap(),
        ],
        work.path(),
    );
    assert!(ok, "{err}");
    println!("{table}");
    // The ticks before the promotion were the basic version's, and replaying
    // it reproduces each of them. Premium was live after, on the books basic
    // had built: from the start on its own books it decides differently.
    let reproduced = table
        .lines()
        .find(|l| l.starts_with("recorded decisions reproduced"))
        .unwrap();
    let counts: Vec<(u64, u64)> = reproduced
        .split_whitespace()
        .filter_map(|w| w.split_once('/'))
        .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        .collect();
    assert_eq!(counts.len(), 2, "{table}");
    assert!(counts[0].0 == counts[0].1 && counts[0].1 > 5, "{table}");
    assert!(
        counts[1].1 > 0 && err.contains("note: B was live for"),
        "{table}{err}"
    );
    assert!(
        err.contains("[##############################]"),
        "a progress bar: {err}"
    );
    // Each policy pays producers from what it took in (issue 19, 3), and
    // consumers are named by id, not by index (5).
    let figures = |label: &str| -> Vec<i64> {
        let line = table.lines().find(|l| l.starts_with(label)).unwrap();
        line[label.len()..]
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect()
    };
    let (income, payouts) = (
        figures("income (payment model)"),
        figures("producer payouts decided"),
    );
    assert!(
        income.len() == 2 && payouts[0] <= income[0] && payouts[1] <= income[1],
        "{table}"
    );
    assert!(
        table.contains("consumer-") && !table.lines().any(|l| l.starts_with('#')),
        "{table}"
    );
    assert!(
        std::fs::read_to_string(&chart)
            .unwrap()
            .matches("<polyline")
            .count()
            == 4
    );
}
