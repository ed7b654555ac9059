//! Failover (issue 13): two grid hosts on one PostgreSQL namespace; the one
//! that leads is killed hard (SIGKILL) at a random moment and started again
//! as the standby, 20 times per lease period. Measured: from the kill to
//! the next tick the other host commits (seen in its `/status`, polled
//! every 5 ms). The baseline, measured in the same run, is the gap between
//! two ticks with nobody killed (a tick every 125 ms: `tick_ms` 15 s on a
//! clock 120 times faster than real time). The target is at most two lease
//! periods.
//!
//! Writes `host/benches/results/failover.json`; `python3
//! host/benches/failover_report.py` prints the table and draws
//! `host/benches/results/failover.svg`. PostgreSQL is the local server
//! (`POWERPLUG_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! `cargo bench -p powerplug --bench failover` (three minutes or so).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{component, ms, stats};
use powerplug::storage::PgStore;
use serde_json::{Value, json};

const KILLS: usize = 20;
const LEASES_MS: [u64; 2] = [1_000, 2_000];

struct Host {
    config: PathBuf,
    log: PathBuf,
    url: String,
    child: Option<Child>,
}

impl Host {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_powerplug"))
                .args(["grid", "--config", self.config.to_str().unwrap()])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn status(&self, agent: &ureq::Agent) -> Option<Value> {
        let mut response = agent.get(&format!("{}/status", self.url)).call().ok()?;
        response.body_mut().read_json().ok()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ticks(status: &Value) -> u64 {
    status["totals"]["ticks"].as_u64().unwrap_or(0)
}

fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two grid hosts on a fresh namespace with a lease of `lease_ms`.
fn hosts(dir: &Path, url: &str, namespace: &str, lease_ms: u64, wasm: &Path) -> [Host; 2] {
    let epoch = powerplug::role::unix_ms();
    ["a", "b"].map(|name| {
        let port = free_port();
        let config = dir.join(format!("grid-{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "id = \"grid\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npoll_ms = 20\n\
                 lease_ms = {lease_ms}\nclock = {{ epoch_ms = {epoch}, scale = 120 }}\n\
                 storage = {{ type = \"postgres\", url = \"{url}\", namespace = \"{namespace}\" }}\n\
                 operator_token = \"{}\"\n[strategy]\ncomponent = \"{}\"\ntick_ms = 15000\n\
                 cache_dir = \"{}\"\n",
                dir.join(format!("grid-{name}")).display(),
                common::OPERATOR,
                wasm.display(),
                dir.join("cache").display()
            ),
        )
        .unwrap();
        Host {
            config,
            log: dir.join(format!("grid-{name}.log")),
            url: format!("http://127.0.0.1:{port}"),
            child: None,
        }
    })
}

fn run(dir: &Path, url: &str, lease_ms: u64, wasm: &Path, seed: &mut u64) -> Value {
    let namespace = format!("bench_failover_{}_{lease_ms}", std::process::id());
    let mut hosts = hosts(dir, url, &namespace, lease_ms, wasm);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    hosts[0].start();
    wait_for("the first host leads", || {
        hosts[0]
            .status(&agent)
            .filter(|s| s["lease"]["leading"] == true)
    });
    hosts[1].start();
    wait_for("the second host answers", || hosts[1].status(&agent));

    // The baseline: the gaps between ticks while nobody is killed.
    let mut gaps = Vec::new();
    let mut last = (ticks(&hosts[0].status(&agent).unwrap()), Instant::now());
    while gaps.len() < 40 {
        let now = ticks(&hosts[0].status(&agent).unwrap());
        if now > last.0 {
            gaps.push(ms(last.1.elapsed()) / (now - last.0) as f64);
            last = (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut failovers = Vec::new();
    for kill in 0..KILLS {
        let leader = wait_for("one host leads", || {
            let leading: Vec<usize> = (0..2)
                .filter(|&i| {
                    hosts[i]
                        .status(&agent)
                        .is_some_and(|s| s["lease"]["leading"] == true)
                })
                .collect();
            (leading.len() == 1).then(|| leading[0])
        });
        let other = 1 - leader;
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        std::thread::sleep(Duration::from_millis(*seed % lease_ms));
        hosts[leader].kill();
        let killed = Instant::now();
        let before = ticks(&hosts[other].status(&agent).unwrap());
        wait_for("the other host ticks", || {
            hosts[other].status(&agent).filter(|s| ticks(s) > before)
        });
        let took = ms(killed.elapsed());
        println!("lease {lease_ms} ms, kill {kill}: next tick after {took:.0} ms");
        failovers.push(took);
        hosts[leader].start();
        wait_for("the killed host answers again", || {
            hosts[leader].status(&agent)
        });
    }
    drop(hosts);
    if let Ok(store) = PgStore::connect(url, &namespace) {
        let _ = store.drop_namespace();
    }
    let failover = stats(&failovers);
    let p99 = failover["p99_ms"].as_f64().unwrap();
    json!({
        "lease_ms": lease_ms,
        "tick_gap": stats(&gaps),
        "failover": failover,
        "p99_in_leases": p99 / lease_ms as f64,
    })
}

fn main() {
    let url = std::env::var("POWERPLUG_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("grid.wasm");
    std::fs::write(&wasm, component("plugins/basic-grid-strategy", &[])).unwrap();
    let mut seed = powerplug::role::unix_ms();
    println!("seed {seed}");
    let runs: Vec<Value> = LEASES_MS
        .iter()
        .map(|&lease| run(dir.path(), &url, lease, &wasm, &mut seed))
        .collect();
    let result = json!({ "kills_per_lease": KILLS, "runs": runs });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/failover.json");
    std::fs::write(&out, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    for r in &runs {
        println!(
            "lease {} ms: failover p50 {:.0} ms, p99 {:.0} ms ({:.2} leases); a tick every {:.0} ms otherwise",
            r["lease_ms"],
            r["failover"]["p50_ms"].as_f64().unwrap(),
            r["failover"]["p99_ms"].as_f64().unwrap(),
            r["p99_in_leases"].as_f64().unwrap(),
            r["tick_gap"]["p50_ms"].as_f64().unwrap(),
        );
    }
}
