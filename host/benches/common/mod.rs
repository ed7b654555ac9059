//! What the grid benches share: building a guest, percentiles, an
//! in-process grid's consumers and the HTTP calls to it.

#![allow(dead_code)] // each bench uses its part

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use powerplug::api;
use powerplug::channel::{ChannelWriter, Message, Transport};
use powerplug::component::{Build, build};
use powerplug::domain::EntityKind;
use powerplug::inbox::{self, Command};
use powerplug::role::config::GridConfig;
use powerplug::role::grid::Grid;
use serde_json::{Value, json};

pub const OPERATOR: &str = "operator-token-for-the-grid-benches";

/// A bench's grid in `dir`: on a free port, its operator token [`OPERATOR`],
/// open to producers (benches start their own), and ticking once at start,
/// then not for a day: the bench ticks.
pub fn grid_config(dir: &Path, component: PathBuf, poll_ms: u64) -> GridConfig {
    let mut config = GridConfig::default();
    config.service.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.service.data_dir = dir.join("grid");
    config.service.poll_ms = poll_ms;
    config.strategy.component = component;
    config.strategy.tick_ms = 86_400_000;
    config.strategy.cache_dir = Some(dir.join("cache"));
    config.operator_token = Some(OPERATOR.into());
    config.admission.producer = powerplug::admission::Rule::Open;
    config
}

pub fn component(dir: &str, features: &[&str]) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (crate_dir, target) = (root.join(dir), root.join("target/guests"));
    build(&Build {
        target_dir: Some(&target),
        features,
        ..Build::new(&crate_dir)
    })
    .expect("building the guest")
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn stats(samples: &[f64]) -> Value {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    json!({
        "n": sorted.len(),
        "p50_ms": pct(&sorted, 50.0),
        "p90_ms": pct(&sorted, 90.0),
        "p99_ms": pct(&sorted, 99.0),
        "min_ms": sorted[0],
        "max_ms": sorted[sorted.len() - 1],
        "mean_ms": sorted.iter().sum::<f64>() / sorted.len() as f64,
        "samples_ms": samples,
    })
}

/// Consumers writing one 1 kWh reading each per tick into the grid's store.
pub struct Consumers {
    writers: Vec<ChannelWriter>,
    round: u64,
}

impl Consumers {
    pub fn register(url: &str, n: usize) -> Self {
        let writers = (0..n)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                let mut writer = ChannelWriter::new(SigningKey::from_bytes(&seed), true).unwrap();
                let body = api::Register::open(EntityKind::Consumer, &mut writer, None).unwrap();
                let body = serde_json::to_value(body).unwrap();
                http(url, "PUT", &format!("/registrations/c{i}"), &body);
                writer
            })
            .collect();
        Self { writers, round: 0 }
    }

    pub fn feed(&mut self, grid: &Grid) {
        let start_ms = self.round * 30_000;
        self.round += 1;
        let usage = Command::Usage {
            start_ms: powerplug::domain::UnixMs(start_ms),
            end_ms: powerplug::domain::UnixMs(start_ms + 30_000),
            wh: powerplug::domain::Wh(1_000),
            read: None,
        }
        .encode();
        let messages: Vec<_> = self
            .writers
            .iter_mut()
            .map(|w| w.prepare(Message::Data(usage.clone())).unwrap())
            .collect();
        grid.hub.store.put_many(&messages).unwrap();
        let n = self.writers.len();
        let deadline = Instant::now() + Duration::from_secs(120);
        while inbox::pending(grid.db(), n + 1).unwrap().len() < n {
            assert!(Instant::now() < deadline, "the readings reach the inbox");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

pub fn http(url: &str, method: &str, path: &str, body: &Value) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("authorization", format!("Bearer {OPERATOR}"))
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}
