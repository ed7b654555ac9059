//! A grid's store, by its operator's commands: `backup --url` from the
//! running grid, `restore` into a fresh directory, a grid started there with
//! the same state; `backup --data-dir` and `compact` of a stopped one; and
//! the refusals (wrong token, token without the scope, a running role, an
//! existing store without `--force`).

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use powerplug::storage::{self, RedbStore};
use serde_json::{Value, json};
use support::{free_port, powerplug, root};

const TOKEN: &str = "store-operator";

/// A grid as its own process on `data_dir`, stopped with Ctrl-C on drop.
struct Grid {
    child: Child,
    url: String,
}

impl Grid {
    fn start(work: &Path, data_dir: &Path, component: &Path) -> Self {
        let port = free_port();
        let config = work.join(format!("grid-{port}.toml"));
        std::fs::write(
            &config,
            format!(
                "id = \"grid\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npoll_ms = 20\n\
                 clock = {{ epoch_ms = {}, scale = 120 }}\noperator_token = \"{TOKEN}\"\n\
                 operator_tokens = [{{ token = \"reader\", scopes = [\"read\"] }}, {{ token = \"backer\", scopes = [\"backup\"] }}]\n\
                 [strategy]\ncomponent = \"{}\"\ntick_ms = 15000\ntick_log_keep = 1000\ncache_dir = \"{}\"\n",
                data_dir.display(),
                powerplug::role::unix_ms(),
                component.display(),
                work.join("cache").display(),
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_powerplug"))
            .args(["grid", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let grid = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_for("the grid answers", || grid.status().is_some());
        grid
    }

    /// The full `/status` (operator token).
    fn status(&self) -> Option<Value> {
        ureq::get(format!("{}/status", self.url))
            .header("authorization", format!("Bearer {TOKEN}"))
            .call()
            .ok()?
            .body_mut()
            .read_json()
            .ok()
    }

    fn ticks(&self) -> u64 {
        self.status()
            .and_then(|s| s["totals"]["ticks"].as_u64())
            .unwrap_or(0)
    }

    fn issue(&self, to: &str, amount: u64) {
        let response = ureq::post(format!("{}/wallet/issue", self.url))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send_json(json!({ "to": to, "amount": amount, "key": format!("fund-{to}"), "unregistered": true }))
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    /// Ctrl-C: the scheduler finishes its round, the store closes.
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Grid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `powerplug args` with `token` as the operator's.
fn cli(args: &[&str], token: &str, dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_powerplug"))
        .args(args)
        .current_dir(dir)
        .env("POWERPLUG_OPERATOR_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn timeline(url: &str) -> String {
    let answer: Value = ureq::get(format!("{url}/timeline"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    answer["timeline"].as_str().unwrap().to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_running_grid_is_backed_up_and_restored_into_a_grid_with_the_same_state() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let strategies = w.join("strategies");
    let grid_crate = root().join("plugins/basic-grid-strategy");
    let (ok, _, err) = powerplug(
        &[
            "strategy",
            "build",
            grid_crate.to_str().unwrap(),
            "--out",
            strategies.to_str().unwrap(),
        ],
        w,
    );
    assert!(ok, "{err}");
    let component = strategies.join("basic_grid_strategy.wasm");

    let first_dir = w.join("first");
    let grid = Grid::start(w, &first_dir, &component);
    grid.issue("consumer-0", 100_000);
    wait_for("a few ticks", || grid.ticks() >= 3);
    let before = grid.status().unwrap();
    let first_timeline = timeline(&grid.url);

    // Refused: a wrong token, a token without the scope, the data dir of a
    // running role.
    let backup = w.join("grid.backup");
    let (ok, _, err) = cli(&["backup", "--url", &grid.url, "backup.redb"], "wrong", w);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = cli(&["backup", "--url", &grid.url, "backup.redb"], "reader", w);
    assert!(
        !ok && err.contains("403") && err.contains("back up"),
        "{err}"
    );
    let dir = first_dir.to_str().unwrap();
    let (ok, _, err) = cli(&["backup", "--data-dir", dir, "backup.redb"], "", w);
    assert!(!ok && err.contains("--url"), "{err}");
    assert!(!w.join("backup.redb").exists() && !w.join("backup.redb.partial").exists());

    let (ok, out, err) = cli(
        &["backup", "--url", &grid.url, backup.to_str().unwrap()],
        "backer",
        w,
    );
    assert!(ok, "{err}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["bytes"], std::fs::metadata(&backup).unwrap().len());
    assert_eq!(mode(&backup), 0o600, "a backup holds the secret");
    // After the backup: not in it.
    grid.issue("consumer-1", 7);
    let (ok, _, err) = cli(&["compact", "--data-dir", dir], "", w);
    assert!(!ok && err.contains("stop the role"), "{err}");
    grid.stop();

    // A stopped role: backed up and compacted from its directory.
    let cold = w.join("cold.backup");
    let (ok, _, err) = cli(
        &["backup", "--data-dir", dir, cold.to_str().unwrap()],
        "",
        w,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&["compact", "--data-dir", dir], "", w);
    assert!(ok, "{err}");
    let compacted: Value = serde_json::from_str(&out).unwrap();
    assert!(compacted["after_bytes"].as_u64() <= compacted["before_bytes"].as_u64());

    // Restored into a fresh directory, a grid starts with the backup's state.
    let second_dir = w.join("second");
    let (ok, out, err) = cli(
        &[
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
            second_dir.to_str().unwrap(),
        ],
        "",
        w,
    );
    assert!(ok, "{err}");
    let store = second_dir.join("powerplug.redb");
    assert_eq!((mode(&second_dir), mode(&store)), (0o700, 0o600));
    let grid = Grid::start(w, &second_dir, &component);
    // A restored store is a new history: requests meant for the old one are
    // refused before they change anything, and say so.
    let restored: Value = serde_json::from_str(&out).unwrap();
    let new_timeline = timeline(&grid.url);
    assert_eq!(restored["timeline"], new_timeline.as_str());
    assert_ne!(new_timeline, first_timeline);
    let stale = |named: &str| {
        let mut response = ureq::get(format!("{}/wallet", grid.url))
            .header("powerplug-timeline", named)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_json::<Value>().unwrap_or_default(),
        )
    };
    let (status, body) = stale(&first_timeline);
    assert_eq!(
        (status, body["field"].as_str()),
        (409, Some("timeline")),
        "{body}"
    );
    assert_eq!(
        stale(&new_timeline).0,
        401,
        "the right timeline goes on to the route's own checks"
    );
    let after = grid.status().unwrap();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(
        after["wallet"]["issued"], before["wallet"]["issued"],
        "what was issued before the backup, not after: {after}"
    );
    assert!(after["strategy"]["sha256"].is_string());
    assert_eq!(after["strategy"]["sha256"], before["strategy"]["sha256"]);
    // The component came in the backup and is back among the objects.
    let sha = after["strategy"]["sha256"].as_str().unwrap();
    let id = after["id"].as_str().unwrap();
    let kept = second_dir
        .join("objects")
        .join(id)
        .join("components")
        .join(sha);
    assert!(kept.is_file(), "{} is missing", kept.display());
    assert!(after["totals"]["ticks"].as_u64() >= before["totals"]["ticks"].as_u64());
    // Over a running grid's store: refused, even with --force.
    let (ok, _, err) = cli(
        &[
            "restore",
            cold.to_str().unwrap(),
            "--data-dir",
            second_dir.to_str().unwrap(),
            "--force",
        ],
        "",
        w,
    );
    assert!(!ok && err.contains("stop the role"), "{err}");
    grid.stop();

    // Over an existing store: only with --force.
    let restore_cold = |force: bool| {
        let mut args = vec![
            "restore",
            cold.to_str().unwrap(),
            "--data-dir",
            second_dir.to_str().unwrap(),
        ];
        if force {
            args.push("--force");
        }
        cli(&args, "", w)
    };
    let (ok, _, err) = restore_cold(false);
    assert!(!ok && err.contains("--force"), "{err}");
    let (ok, _, err) = restore_cold(true);
    assert!(ok, "{err}");
    // As on a new machine: the backup alone brings the component back.
    std::fs::remove_dir_all(second_dir.join("objects")).unwrap();
    let grid = Grid::start(w, &second_dir, &component);
    let cold_status = grid.status().unwrap();
    assert_eq!(
        cold_status["wallet"]["issued"].as_u64(),
        before["wallet"]["issued"].as_u64().map(|i| i + 7),
        "the stopped grid's backup has what was issued after the first: {cold_status}"
    );
    grid.stop();
    // The same host: its identity is made from the secret the store holds.
    let secret = |dir: &Path| -> [u8; 32] {
        let db = RedbStore::open_existing(&dir.join("powerplug.redb")).unwrap();
        storage::meta(&db, "secret").unwrap().unwrap()
    };
    assert_eq!(secret(&first_dir), secret(&second_dir));

    // Not a store: refused, and nothing is left in the directory.
    let junk = w.join("junk");
    std::fs::write(&junk, b"not a store").unwrap();
    let fresh = w.join("third");
    let (ok, _, err) = cli(
        &[
            "restore",
            junk.to_str().unwrap(),
            "--data-dir",
            fresh.to_str().unwrap(),
        ],
        "",
        w,
    );
    assert!(!ok && err.contains("not a backup of a store"), "{err}");
    assert_eq!(std::fs::read_dir(&fresh).unwrap().count(), 0);
}
