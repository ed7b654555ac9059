//! The operator's console in a real browser: `powerplug demo` running, and
//! Debian's Chromium driven by playwright-core (`tests/browser/console.mjs`)
//! signing in, watching ticks, uploading and activating a second version
//! through the page, rolling back, running an experiment to its promotion,
//! issuing an admission token and signing out. Screenshots of each page go
//! to `target/console-screenshots` (or `$CONSOLE_SCREENSHOTS`); the ones in
//! `docs/console/` were taken so.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const TOKEN: &str = "console-operator-token";
const READ_TOKEN: &str = "console-viewer-token";

#[test]
fn the_console_signs_in_deploys_runs_an_experiment_and_signs_out_in_chromium() {
    let root = support::root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "this test drives Chromium at {chromium}: `apt-get install chromium` (.ci/run does)"
    );
    let browser = root.join("tests/browser");
    if !browser.join("node_modules/playwright-core").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&browser)
            .status()
            .expect("npm (Node.js) runs the browser test");
        assert!(ok.success(), "npm ci in tests/browser");
    }

    // Two grid versions: the basic one runs, premium (7 a kWh instead of
    // 5) is uploaded through the page.
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name);
    for (plugin, features, to) in [
        ("plugins/basic-grid-strategy", None, "basic"),
        ("plugins/basic-producer-strategy", None, "basic"),
        ("plugins/basic-grid-strategy", Some("premium"), "premium"),
    ] {
        let to = out(to);
        let mut args = vec!["strategy", "build", plugin, "--out", to.to_str().unwrap()];
        if let Some(f) = features {
            args.extend(["--features", f]);
        }
        let (ok, _, err) = support::powerplug(&args, &root);
        assert!(ok, "strategy build {plugin}: {err}");
    }

    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_powerplug"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--duration",
            "900",
            "--consumers",
            "12",
            "--data-dir",
            out("data").to_str().unwrap(),
            "--grid",
            out("basic/basic_grid_strategy.wasm").to_str().unwrap(),
            "--producer",
            out("basic/basic_producer_strategy.wasm").to_str().unwrap(),
        ])
        .env("POWERPLUG_OPERATOR_TOKEN", TOKEN)
        .env("POWERPLUG_VIEWER_TOKEN", READ_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The demo says where its console is once the grid listens.
    let lines = BufReader::new(demo.stdout.take().unwrap());
    let mut lines = lines.lines();
    let console = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("console "))
        .expect("the demo announces its console");
    assert!(console.contains(&format!("{url}/console")), "{console}");
    // Its progress lines go on; keep reading them so it never blocks.
    std::thread::spawn(move || lines.for_each(drop));

    let shots = std::env::var("CONSOLE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target/console-screenshots"));
    let run = Command::new("node")
        .arg("console.mjs")
        .current_dir(&browser)
        .env("URL", &url)
        .env("TOKEN", TOKEN)
        .env("READ_TOKEN", READ_TOKEN)
        .env("CANDIDATE", out("premium/basic_grid_strategy.wasm"))
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .status()
        .expect("node runs the browser test");
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(
        run.success(),
        "the browser test failed (its steps above; a screenshot in {})",
        shots.display()
    );
}
