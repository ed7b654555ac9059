//! Role configuration: a TOML file, overridden by environment variables
//! `POWERPLUG_<KEY>` (nested keys joined by `__`, such as
//! `POWERPLUG_CLOCK__SCALE=60`), over the defaults below.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Clock, SimulatedMeter};
use crate::strategy::Setting;

/// Loads a role's configuration: defaults, then the file (if given), then the
/// environment. An unknown key or a wrong type is an error naming the key.
pub fn load<T: Serialize + DeserializeOwned>(
    defaults: T,
    file: Option<&Path>,
) -> anyhow::Result<T> {
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = file {
        anyhow::ensure!(file.exists(), "config: {} does not exist", file.display());
        figment = figment.merge(Toml::file(file));
    }
    figment = figment.merge(Env::prefixed("POWERPLUG_").split("__"));
    figment.extract().map_err(|errors| {
        // Name the key of each error, as every other bad input does.
        let each: Vec<String> = errors
            .into_iter()
            .map(|e| match e.path.join(".") {
                key if key.is_empty() => e.kind.to_string(),
                key => format!("{key}: {}", e.kind),
            })
            .collect();
        anyhow::anyhow!("config: {}", each.join("; "))
    })
}

/// What every role has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// How often the scheduler runs a round (polls channels, drains the outbox), real ms.
    pub poll_ms: u64,
    #[serde(default)]
    pub clock: Clock,
}

impl Service {
    fn new(id: &str, port: u16) -> Self {
        Self {
            id: id.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            data_dir: PathBuf::from(format!("data/{id}")),
            poll_ms: 1_000,
            clock: Clock::default(),
        }
    }
}

/// A grid's or producer's strategy and how often it ticks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySlot {
    /// The component file.
    pub component: PathBuf,
    /// Simulated ms between ticks (the original: grid 15 s, producer 60 s).
    pub tick_ms: u64,
    /// Settings handed to the strategy every tick.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// How many ticks the tick log keeps.
    pub tick_log_keep: u64,
    /// Where compiled components are cached (default: `<data_dir>/cache`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// A version that fails this many ticks in a row is replaced by the one
    /// active before it.
    #[serde(default = "rollback_after")]
    pub rollback_after: u32,
    /// How many recent recorded ticks an upload's or activation's dry run
    /// replays (grid).
    #[serde(default = "dry_run_ticks")]
    pub dry_run_ticks: u32,
    /// A new version whose dry-run bills exceed the live version's by more
    /// than this percentage, in total or for a consumer, waits for `force`.
    #[serde(default = "dry_run_bound_percent")]
    pub dry_run_bound_percent: u32,
}

fn rollback_after() -> u32 {
    3
}

fn dry_run_ticks() -> u32 {
    20
}

fn dry_run_bound_percent() -> u32 {
    50
}

impl StrategySlot {
    pub fn settings(&self) -> Vec<Setting> {
        self.settings
            .iter()
            .map(|(key, value)| Setting {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    #[serde(flatten)]
    pub service: Service,
    pub strategy: StrategySlot,
    /// Needed by operator routes (`POST /wallet/issue`); unset, they are refused.
    #[serde(default)]
    pub operator_token: Option<String>,
    /// Ed25519 public keys (hex): when set, an uploaded strategy must carry a
    /// signature by one of them over its SHA-256.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

impl Default for GridConfig {
    fn default() -> Self {
        Self {
            service: Service::new("grid", 4000),
            strategy: StrategySlot {
                component: PathBuf::from("target/strategies/basic_grid_strategy.wasm"),
                tick_ms: 15_000,
                settings: BTreeMap::new(),
                tick_log_keep: 10_000,
                cache_dir: None,
                rollback_after: rollback_after(),
                dry_run_ticks: dry_run_ticks(),
                dry_run_bound_percent: dry_run_bound_percent(),
            },
            operator_token: None,
            trusted_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerConfig {
    #[serde(flatten)]
    pub service: Service,
    pub strategy: StrategySlot,
    /// The grid this producer reports to.
    pub grid_url: String,
    #[serde(default)]
    pub operator_token: Option<String>,
    /// As the grid's: keys an uploaded strategy must be signed by.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            service: Service::new("producer-0", 4001),
            strategy: StrategySlot {
                component: PathBuf::from("target/strategies/basic_producer_strategy.wasm"),
                tick_ms: 60_000,
                settings: BTreeMap::new(),
                tick_log_keep: 10_000,
                cache_dir: None,
                rollback_after: rollback_after(),
                dry_run_ticks: dry_run_ticks(),
                dry_run_bound_percent: dry_run_bound_percent(),
            },
            grid_url: "http://127.0.0.1:4000".into(),
            operator_token: None,
            trusted_keys: Vec::new(),
        }
    }
}

/// Consumers or sources: `count` simulated meters named `<id>-<n>` (or just
/// `<id>` when `count` is 1), each one an entity with its own channel and
/// registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetersConfig {
    #[serde(flatten)]
    pub service: Service,
    /// The grid (consumers) or producer (sources) the meters register with.
    pub upstream_url: String,
    pub count: u32,
    pub meter: SimulatedMeter,
    /// Simulated ms per reading (the original: 30 s).
    pub slice_ms: u64,
    /// Consumers pay in multiples of this (the original: 25).
    pub payment_step: u64,
    /// Where the meters keep their state.
    #[serde(default)]
    pub state: StateKeeping,
}

/// A meter host keeps its state in its own database (`data_dir`), or — a
/// meter without a disk, as in the original — in the `/storage` of the host it
/// registers with. Then its keys and channels derive from `secret` (32 bytes,
/// hex), so that after a restart it can register again, get its credential and
/// read its state back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum StateKeeping {
    #[default]
    Local,
    Remote {
        secret: String,
    },
}

impl MetersConfig {
    pub fn consumers() -> Self {
        Self {
            service: Service::new("consumer", 4002),
            upstream_url: "http://127.0.0.1:4000".into(),
            count: 1,
            meter: SimulatedMeter::CONSUMER,
            slice_ms: 30_000,
            payment_step: 25,
            state: StateKeeping::Local,
        }
    }

    pub fn sources() -> Self {
        Self {
            service: Service::new("source", 4003),
            upstream_url: "http://127.0.0.1:4001".into(),
            meter: SimulatedMeter::SOURCE,
            ..Self::consumers()
        }
    }

    pub fn ids(&self) -> Vec<String> {
        if self.count == 1 {
            vec![self.service.id.clone()]
        } else {
            (0..self.count)
                .map(|n| format!("{}-{n}", self.service.id))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grid.toml");
        std::fs::write(
            &file,
            "id = \"north\"\npoll_ms = 5\n[clock]\nepoch_ms = 10\nscale = 2\n[strategy]\ncomponent = \"g.wasm\"\ntick_ms = 1000\ntick_log_keep = 7\n",
        )
        .unwrap();
        // SAFETY: no other test of this binary reads or writes these variables.
        unsafe {
            std::env::set_var("POWERPLUG_CLOCK__SCALE", "60");
            std::env::set_var("POWERPLUG_STRATEGY__TICK_MS", "123");
        }
        let config = load(GridConfig::default(), Some(&file));
        unsafe {
            std::env::remove_var("POWERPLUG_CLOCK__SCALE");
            std::env::remove_var("POWERPLUG_STRATEGY__TICK_MS");
        }
        let config = config.unwrap();
        assert_eq!(config.service.id, "north");
        assert_eq!(config.service.poll_ms, 5);
        assert_eq!(config.service.listen, GridConfig::default().service.listen);
        assert_eq!(
            (config.service.clock.epoch_ms, config.service.clock.scale),
            (10, 60)
        );
        assert_eq!(
            (config.strategy.tick_ms, config.strategy.tick_log_keep),
            (123, 7)
        );

        std::fs::write(&file, "id = \"x\"\npol_ms = 5\n").unwrap();
        let err = load(GridConfig::default(), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pol_ms"), "{err}");
        std::fs::write(&file, "[strategy]\ntick_ms = \"soon\"\n").unwrap();
        let err = load(GridConfig::default(), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("strategy.tick_ms"), "{err}");
        let err = load(GridConfig::default(), Some(&dir.path().join("none.toml"))).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
