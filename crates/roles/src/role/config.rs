//! Role configuration: a TOML file, overridden by environment variables
//! `POWERPLUG_<KEY>` (nested keys joined by `__`, such as
//! `POWERPLUG_CLOCK__SCALE=60`), over the defaults below.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use powerplug_storage::{ObjectsConfig, StorageConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{Clock, MeterConfig};
use powerplug_strategy::{Limits, Metering, Setting};

/// `POWERPLUG_*` variables the command reads for itself (logs, signing).
const NOT_CONFIGURATION: &[&str] = &["log", "log_format", "signing_key", "checkout", "kits"];

/// Loads a role's configuration: defaults, then the file (if given), then the
/// environment. An unknown key or a wrong type is an error naming the key.
pub fn load<T: Serialize + DeserializeOwned>(
    defaults: T,
    file: Option<&Path>,
) -> anyhow::Result<T> {
    // POWERPLUG_OPERATOR_TOKEN is the command's credential too: a role with
    // no operator routes (a meter host) ignores it rather than refuse to start.
    let mut ignored = NOT_CONFIGURATION.to_vec();
    if serde_json::to_value(&defaults)?
        .get("operator_token")
        .is_none()
    {
        ignored.push("operator_token");
    }
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = file {
        anyhow::ensure!(file.exists(), "config: {} does not exist", file.display());
        figment = figment.merge(Toml::file(file));
    }
    // The command's own variables are not configuration: a role started with
    // `POWERPLUG_LOG=debug` must not be refused for an unknown field `log`.
    figment = figment.merge(Env::prefixed("POWERPLUG_").ignore(&ignored).split("__"));
    figment.extract().map_err(|errors| {
        // Name the key of each error, as every other bad input does. Keys of
        // the flattened `Service` lose their name in serde's flatten: ask for
        // each of them by name to find it.
        let mut each: Vec<String> = errors
            .into_iter()
            .map(|e| match e.path.join(".") {
                key if key.is_empty() => service_error(&figment).unwrap_or(e.kind.to_string()),
                key => format!("{key}: {}", e.kind),
            })
            .collect();
        each.dedup();
        anyhow::anyhow!("config: {}", each.join("; "))
    })
}

/// The first key of [`Service`] whose value is not of its type, named.
fn service_error(figment: &Figment) -> Option<String> {
    fn bad<T: DeserializeOwned>(figment: &Figment, key: &str) -> Option<String> {
        let e = figment.extract_inner::<T>(key).err()?;
        // The error's path holds the inner key and `key`, not in order.
        let inner: Vec<&str> = e
            .path
            .iter()
            .map(String::as_str)
            .filter(|p| *p != key)
            .collect();
        Some(match inner.as_slice() {
            [] => format!("{key}: {}", e.kind),
            inner => format!("{key}.{}: {}", inner.join("."), e.kind),
        })
    }
    bad::<String>(figment, "id")
        .or_else(|| bad::<SocketAddr>(figment, "listen"))
        .or_else(|| bad::<PathBuf>(figment, "data_dir"))
        .or_else(|| bad::<u64>(figment, "poll_ms"))
        .or_else(|| bad::<Clock>(figment, "clock"))
        .or_else(|| bad::<HttpLimits>(figment, "http"))
        .or_else(|| bad::<StorageConfig>(figment, "storage"))
        .or_else(|| {
            figment
                .contains("objects")
                .then(|| bad::<ObjectsConfig>(figment, "objects"))
                .flatten()
        })
        .or_else(|| bad::<u64>(figment, "lease_ms"))
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
    /// Limits and checks of the HTTP API.
    #[serde(default)]
    pub http: HttpLimits,
    /// Where the role's store is: a redb file in `data_dir` (the default) or
    /// a namespace of a PostgreSQL database.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Where `/storage` documents and strategy components are: files in
    /// `data_dir/objects`, the store itself, or an S3 bucket. Unset: files
    /// beside redb, the store beside PostgreSQL (which a standby shares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectsConfig>,
    /// Grid and producer: how long the lease of the host that ticks lasts
    /// without a renewal, real ms. Hosts sharing a PostgreSQL namespace
    /// take over from a lost leader within about this (see `leader`).
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
}

fn default_lease_ms() -> u64 {
    Service::DEFAULT_LEASE_MS
}

impl Service {
    pub const DEFAULT_LEASE_MS: u64 = 5_000;

    /// `objects`, or what it means when unset.
    pub fn objects(&self) -> ObjectsConfig {
        self.objects
            .clone()
            .unwrap_or_else(|| ObjectsConfig::default_for(&self.storage))
    }

    fn new(id: &str, port: u16) -> Self {
        Self {
            id: id.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            data_dir: PathBuf::from(format!("data/{id}")),
            poll_ms: 1_000,
            clock: Clock::default(),
            http: HttpLimits::default(),
            storage: StorageConfig::default(),
            objects: None,
            lease_ms: Self::DEFAULT_LEASE_MS,
        }
    }
}

/// What the HTTP server allows a client: how long it may take to send a
/// request, how many connections and requests it may hold, how fast it may
/// ask, and which names the host answers to. Defaults fit a host on an open
/// network serving meter hosts that batch their requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// A request's headers must arrive within this (ms of real time); an idle
    /// kept-alive connection is closed after it too. Above the 15 s our own
    /// clients keep idle connections, so they never reuse a closed one.
    pub header_timeout_ms: u64,
    /// A request's whole body must arrive within this (ms) of its headers.
    pub body_timeout_ms: u64,
    /// Open connections at once; a connection beyond is closed at once.
    pub max_connections: usize,
    /// Open connections at once from one client address.
    pub max_connections_per_client: usize,
    /// Requests being answered at once; beyond, `503`.
    pub max_requests_in_flight: usize,
    /// Requests per second one client address may make on average…
    pub rate_per_second: u32,
    /// …and in a burst; beyond, `429`.
    pub rate_burst: u32,
    /// Client addresses without a rate or per-client connection limit: the
    /// roles on this machine, or a TLS-terminating proxy in front (which then
    /// has to limit its clients itself).
    pub unlimited_clients: Vec<std::net::IpAddr>,
    /// Names (`name` or `name:port`) this host answers to besides the listen
    /// address, `localhost`, `127.0.0.1` and `[::1]` with its port; a request
    /// with another `Host` is refused (DNS rebinding). `*` allows any.
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout_ms: 20_000,
            body_timeout_ms: 60_000,
            max_connections: 512,
            max_connections_per_client: 64,
            max_requests_in_flight: 256,
            rate_per_second: 50,
            rate_burst: 100,
            unlimited_clients: vec![
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            allowed_hosts: Vec::new(),
        }
    }
}

/// What an operator token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Issue new money (`POST /wallet/issue`).
    Mint,
    /// Change what runs: strategy uploads, activations, deletions,
    /// experiments, shadow runs, a producer's membership.
    Deploy,
    /// Read what the operator sees: strategy versions, experiments, reports,
    /// the tick log export, the full `/status`, the admission tokens.
    Read,
    /// Let entities in: issue registration tokens (`POST /admissions`).
    Admit,
    /// Take a copy of the whole store (`GET /backup`): the host's secret
    /// and every entity's money with it.
    Backup,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Mint => "mint",
            Scope::Deploy => "deploy",
            Scope::Read => "read",
            Scope::Admit => "admit",
            Scope::Backup => "back up the store",
        })
    }
}

/// One operator token and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorToken {
    pub token: String,
    pub scopes: Vec<Scope>,
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
    /// What one tick may use.
    #[serde(default)]
    pub limits: TickLimits,
}

/// What one strategy tick may use (`[strategy.limits]`); the defaults are
/// the runtime's (`powerplug_strategy::Limits::DEFAULT`). A Python or
/// JavaScript strategy carries its interpreter and may need more; a host
/// running untrusted uploads may want less.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TickLimits {
    /// WebAssembly fuel (roughly, instructions) per tick.
    pub fuel: u64,
    /// `fuel` (the default: deterministic) or `epoch` (the deadline alone:
    /// faster guest code, but a tick stopped by time may stop elsewhere in
    /// a replay). See [`Metering`].
    pub metering: Metering,
    /// Wall-clock time per tick.
    pub deadline_ms: u64,
    /// Linear memory a strategy instance may grow to.
    pub memory_mib: u64,
    /// Size of a decision.
    pub decision_mib: u64,
}

impl Default for TickLimits {
    fn default() -> Self {
        let d = Limits::DEFAULT;
        Self {
            fuel: d.fuel,
            metering: d.metering,
            deadline_ms: d.deadline.as_millis() as u64,
            memory_mib: (d.memory_bytes >> 20) as u64,
            decision_mib: (d.decision_bytes >> 20) as u64,
        }
    }
}

impl TickLimits {
    /// The runtime's limits, or the key that is out of its range.
    pub fn limits(&self) -> anyhow::Result<Limits> {
        let within = |key: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
            anyhow::ensure!(
                range.contains(&value),
                "strategy.limits.{key}: {value} is outside {} to {}",
                range.start(),
                range.end()
            );
            Ok(())
        };
        within("fuel", self.fuel, 1..=1_000_000_000_000)?;
        within("deadline_ms", self.deadline_ms, 10..=60_000)?;
        // The pool reserves address space for this much per instance.
        within("memory_mib", self.memory_mib, 1..=4_096)?;
        within("decision_mib", self.decision_mib, 1..=1_024)?;
        Ok(Limits {
            fuel: self.fuel,
            metering: self.metering,
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_bytes: (self.memory_mib as usize) << 20,
            decision_bytes: (self.decision_mib as usize) << 20,
            ..Limits::DEFAULT
        })
    }
}

fn rollback_after() -> u32 {
    3
}

/// Messages per channel kept after the host above took them, to send again
/// if it is restored from an older backup: a day of one reading a minute.
pub fn resend_window() -> u64 {
    1_440
}

fn backlog() -> u64 {
    10
}

/// The grid's and producer's default `plausible.max_span_ms`.
fn max_reading_ms() -> u64 {
    crate::inbox::Plausible::default().max_span_ms
}

/// The grid's and producer's default `plausible.max_wh`.
fn max_reading_wh() -> u64 {
    crate::inbox::Plausible::default().max_wh
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

/// Why an operator token was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// This host has no operator token configured.
    NoOperator,
    /// No token, or not one of this host's.
    Unknown,
    /// A token of this host that may not do this.
    OutOfScope(Scope),
}

/// The operator tokens of a host: the single `operator_token` may do
/// everything, each of `operator_tokens` what its scopes say.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    tokens: Vec<(String, Vec<Scope>)>,
}

impl Operators {
    pub fn new(all: Option<&str>, scoped: &[OperatorToken]) -> Self {
        let mut tokens = Vec::new();
        if let Some(all) = all.filter(|t| !t.is_empty()) {
            tokens.push((
                all.to_owned(),
                vec![
                    Scope::Mint,
                    Scope::Deploy,
                    Scope::Read,
                    Scope::Admit,
                    Scope::Backup,
                ],
            ));
        }
        for t in scoped.iter().filter(|t| !t.token.is_empty()) {
            tokens.push((t.token.clone(), t.scopes.clone()));
        }
        Self { tokens }
    }

    /// Whether `presented` may act in `scope`. Every configured token is
    /// compared in full, in constant time, so timing tells nothing of them.
    pub fn check(&self, presented: Option<&str>, scope: Scope) -> Result<(), Denied> {
        if self.tokens.is_empty() {
            return Err(Denied::NoOperator);
        }
        let presented = presented.unwrap_or("").as_bytes();
        let mut found: Option<&[Scope]> = None;
        for (token, scopes) in &self.tokens {
            if bool::from(token.as_bytes().ct_eq(presented)) {
                found = Some(scopes);
            }
        }
        match found {
            None => Err(Denied::Unknown),
            Some(scopes) if scopes.contains(&scope) => Ok(()),
            Some(_) => Err(Denied::OutOfScope(scope)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    #[serde(flatten)]
    pub service: Service,
    pub strategy: StrategySlot,
    /// Needed by operator routes (`POST /wallet/issue`); unset, they are refused.
    /// It may do everything; `operator_tokens` may each do less.
    #[serde(default)]
    pub operator_token: Option<String>,
    #[serde(default)]
    pub operator_tokens: Vec<OperatorToken>,
    /// Ed25519 public keys (hex): when set, an uploaded strategy must carry a
    /// signature by one of them over its SHA-256.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// Who may register: by default consumers freely, producers only with a
    /// token the operator issued (`POST /admissions`).
    #[serde(default)]
    pub admission: crate::admission::Policy,
    /// What a reading may claim before the grid refuses it.
    #[serde(default)]
    pub plausible: crate::inbox::Plausible,
    /// How long what the grid has finished with is kept.
    #[serde(default)]
    pub retention: crate::retention::Retention,
    /// The IOTA Tangle: each tick's settlement anchored there, receive
    /// addresses in its Bech32 format. Needs a build with the `iota` feature.
    #[serde(default)]
    pub iota: Option<IotaConfig>,
}

/// A Stardust node (Shimmer, or IOTA before May 2025; today's IOTA mainnet
/// runs Rebased, which Powerplug does not speak).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IotaConfig {
    /// The node's REST API, e.g. `https://api.testnet.shimmer.network`.
    pub node: String,
    /// Post each tick's settlement (a hash of its decision and its ledger
    /// transfers) as a tagged-data block; `powerplug verify` checks them.
    #[serde(default = "yes")]
    pub anchor: bool,
    /// Receive addresses as Bech32 Ed25519 addresses of the wallet seed,
    /// one BIP-44 index a payment request; otherwise Powerplug's `pp2…`.
    #[serde(default = "yes")]
    pub bech32_addresses: bool,
    /// BIP-44 coin type: 4219 Shimmer, 4218 IOTA.
    #[serde(default = "shimmer")]
    pub coin_type: u32,
    /// Seconds between looks at whether an anchor was confirmed.
    #[serde(default = "five")]
    pub confirm_every_secs: u64,
    /// Looks before an anchor is sent again.
    #[serde(default = "forty")]
    pub confirm_attempts: u64,
}

fn yes() -> bool {
    true
}
fn shimmer() -> u32 {
    4219
}
fn five() -> u64 {
    5
}
fn forty() -> u64 {
    40
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
                limits: TickLimits::default(),
            },
            operator_token: None,
            operator_tokens: Vec::new(),
            trusted_keys: Vec::new(),
            admission: Default::default(),
            plausible: Default::default(),
            retention: Default::default(),
            iota: None,
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
    #[serde(default)]
    pub operator_tokens: Vec<OperatorToken>,
    /// As the grid's: keys an uploaded strategy must be signed by.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// The registration token the grid's operator issued for this producer.
    #[serde(default)]
    pub admission_token: Option<String>,
    /// Who may register here: sources only with a token by default.
    #[serde(default)]
    pub admission: crate::admission::Policy,
    /// What a source's reading may claim before the producer refuses it.
    #[serde(default)]
    pub plausible: crate::inbox::Plausible,
    /// How long what the producer has finished with is kept.
    #[serde(default)]
    pub retention: crate::retention::Retention,
    /// Reports kept after the grid took them, for a grid restored from a backup.
    #[serde(default = "resend_window")]
    pub resend_window: u64,
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
                limits: TickLimits::default(),
            },
            grid_url: "http://127.0.0.1:4000".into(),
            operator_token: None,
            operator_tokens: Vec::new(),
            trusted_keys: Vec::new(),
            admission_token: None,
            admission: Default::default(),
            plausible: Default::default(),
            retention: Default::default(),
            resend_window: resend_window(),
        }
    }
}

/// Consumers or sources: `count` meters named `<id>-<n>` (or just `<id>`
/// when `count` is 1), each one an entity with its own channel and
/// registration, read from `meter` (simulated, a recorded profile, or
/// devices over MQTT).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetersConfig {
    #[serde(flatten)]
    pub service: Service,
    /// The grid (consumers) or producer (sources) the meters register with.
    pub upstream_url: String,
    pub count: u32,
    pub meter: MeterConfig,
    /// Simulated ms per reading (the original: 30 s).
    pub slice_ms: u64,
    /// Consumers pay in multiples of this (the original: 25).
    pub payment_step: u64,
    /// Where the meters keep their state.
    #[serde(default)]
    pub state: StateKeeping,
    /// The registration token the upstream operator issued (one use per meter),
    /// where the upstream host needs one.
    #[serde(default)]
    pub admission_token: Option<String>,
    /// Readings kept per meter after the host above took them, for a host
    /// restored from a backup.
    #[serde(default = "resend_window")]
    pub resend_window: u64,
    /// Readings per meter that may wait to go up. With more waiting (the
    /// host above is away, or takes less than the meters read), the meters
    /// take no new readings until it caught up; then they read the time they
    /// missed in fewer, longer readings. What waits stays bounded.
    #[serde(default = "backlog")]
    pub backlog: u64,
    /// The longest time and the most energy one reading covers: at most the
    /// host above's `plausible.max_span_ms` and `plausible.max_wh`.
    #[serde(default = "max_reading_ms")]
    pub max_reading_ms: u64,
    #[serde(default = "max_reading_wh")]
    pub max_reading_wh: u64,
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
            meter: MeterConfig::CONSUMER,
            slice_ms: 30_000,
            payment_step: 25,
            state: StateKeeping::Local,
            admission_token: None,
            resend_window: resend_window(),
            backlog: backlog(),
            max_reading_ms: max_reading_ms(),
            max_reading_wh: max_reading_wh(),
        }
    }

    pub fn sources() -> Self {
        Self {
            service: Service::new("source", 4003),
            upstream_url: "http://127.0.0.1:4001".into(),
            meter: MeterConfig::SOURCE,
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

    /// Loading a configuration reads the process's environment, which the
    /// first test changes: the tests that load one take turns.
    static ENVIRONMENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn environment() -> std::sync::MutexGuard<'static, ()> {
        ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn a_meter_host_names_its_meter_feed_and_a_bad_one_is_named() {
        let _environment = environment();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("consumers.toml");
        std::fs::write(
            &file,
            "count = 3\n[meter.mqtt]\nurl = \"mqtt://127.0.0.1\"\ntopic = \"tele/{id}/SENSOR\"\nformat = \"shelly\"\n",
        )
        .unwrap();
        let config = load(MetersConfig::consumers(), Some(&file)).unwrap();
        let MeterConfig::Mqtt(mqtt) = &config.meter else {
            panic!("{:?}", config.meter)
        };
        assert_eq!(mqtt.format, powerplug_meter::Format::Shelly);
        assert_eq!(mqtt.max_delay_ms, 300_000);
        std::fs::write(
            &file,
            "meter = { csv = { path = \"load.csv\", interval_ms = 900000 } }\n",
        )
        .unwrap();
        let config = load(MetersConfig::consumers(), Some(&file)).unwrap();
        assert!(
            matches!(config.meter, MeterConfig::Csv(_)),
            "{:?}",
            config.meter
        );
        std::fs::write(
            &file,
            "meter = { mqtt = { url = \"mqtt://x\", topic = \"t\", format = \"modbus\" } }\n",
        )
        .unwrap();
        let err = load(MetersConfig::consumers(), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("meter") && err.contains("modbus"), "{err}");
    }

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let _environment = environment();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grid.toml");
        std::fs::write(
            &file,
            "id = \"north\"\npoll_ms = 5\n[clock]\nepoch_ms = 10\nscale = 2\n[strategy]\ncomponent = \"g.wasm\"\ntick_ms = 1000\ntick_log_keep = 7\n",
        )
        .unwrap();
        // SAFETY: no other test of this binary reads or writes these variables
        // except through `load`, and those take turns (`environment`).
        // The command's own variables (logs, signing) are not configuration.
        let vars = [
            ("POWERPLUG_CLOCK__SCALE", "60"),
            ("POWERPLUG_STRATEGY__TICK_MS", "123"),
            ("POWERPLUG_LOG", "debug"),
            ("POWERPLUG_LOG_FORMAT", "json"),
            ("POWERPLUG_SIGNING_KEY", "00"),
            ("POWERPLUG_OPERATOR_TOKEN", "change-me"),
        ];
        unsafe {
            for (k, v) in vars {
                std::env::set_var(k, v);
            }
        }
        let config = load(GridConfig::default(), Some(&file));
        // A meter host has no strategy (its variable goes), and no operator
        // token of its own: it ignores the command's.
        unsafe { std::env::remove_var("POWERPLUG_STRATEGY__TICK_MS") };
        let meters = load(MetersConfig::consumers(), None);
        unsafe {
            for (k, _) in vars {
                std::env::remove_var(k);
            }
        }
        let config = config.unwrap();
        assert_eq!(config.operator_token.as_deref(), Some("change-me"));
        assert!(meters.is_ok(), "{:?}", meters.err());
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
        // A key of the part every role has (flattened) is named too.
        std::fs::write(&file, "poll_ms = \"fast\"\n").unwrap();
        let err = load(GridConfig::default(), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("poll_ms") && err.contains("\"fast\""), "{err}");
        std::fs::write(&file, "[clock]\nscale = \"fast\"\n").unwrap();
        let err = load(GridConfig::default(), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("clock.scale"), "{err}");
        let err = load(GridConfig::default(), Some(&dir.path().join("none.toml"))).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn a_roles_tick_limits_come_from_the_file_and_out_of_range_ones_name_their_key() {
        let _environment = environment();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grid.toml");
        std::fs::write(
            &file,
            "[strategy]\ncomponent = \"g.wasm\"\ntick_ms = 1000\ntick_log_keep = 7\n[strategy.limits]\nfuel = 5000\nmemory_mib = 64\nmetering = \"epoch\"\n",
        )
        .unwrap();
        let config = load(GridConfig::default(), Some(&file)).unwrap();
        let limits = config.strategy.limits.limits().unwrap();
        assert_eq!((limits.fuel, limits.memory_bytes), (5_000, 64 << 20));
        assert_eq!(limits.metering, Metering::Epoch);
        // What the file leaves out stays the runtime's default.
        assert_eq!(limits.deadline, Limits::DEFAULT.deadline);
        assert_eq!(limits.log_lines, Limits::DEFAULT.log_lines);
        assert_eq!(
            GridConfig::default().strategy.limits.limits().unwrap(),
            Limits::DEFAULT
        );

        std::fs::write(&file, "[strategy.limits]\ndeadline_ms = 0\n").unwrap();
        let config = load(GridConfig::default(), Some(&file)).unwrap();
        let err = config.strategy.limits.limits().unwrap_err().to_string();
        assert!(err.contains("strategy.limits.deadline_ms"), "{err}");
        std::fs::write(&file, "[strategy.limits]\nfule = 1\n").unwrap();
        let err = load(GridConfig::default(), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("fule"), "{err}");
    }

    #[test]
    fn the_store_is_chosen_in_the_file_and_mixed_keys_are_refused() {
        let _environment = environment();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grid.toml");
        let load_storage = |toml: &str| {
            std::fs::write(&file, toml).unwrap();
            load(GridConfig::default(), Some(&file)).map(|c| c.service.storage)
        };
        assert_eq!(
            load_storage("").unwrap(),
            StorageConfig::Redb { path: None }
        );
        assert_eq!(
            load_storage("[storage]\ntype = \"postgres\"\nurl = \"postgres://db/grid\"\nnamespace = \"north\"\n")
                .unwrap(),
            StorageConfig::Postgres {
                url: "postgres://db/grid".into(),
                namespace: "north".into()
            }
        );
        assert_eq!(
            load_storage("[storage]\ntype = \"redb\"\npath = \"/srv/grid.redb\"\n").unwrap(),
            StorageConfig::Redb {
                path: Some("/srv/grid.redb".into())
            }
        );
        // A redb path and a postgres url both given; an unknown type; a
        // postgres store without its namespace: each names `storage`.
        for bad in [
            "[storage]\ntype = \"postgres\"\nurl = \"postgres://db/grid\"\nnamespace = \"n\"\npath = \"x\"\n",
            "[storage]\ntype = \"dynamodb\"\n",
            "[storage]\ntype = \"postgres\"\nurl = \"postgres://db/grid\"\n",
        ] {
            let err = load_storage(bad).unwrap_err().to_string();
            assert!(err.contains("storage"), "{bad}: {err}");
        }

        let load_objects = |toml: &str| {
            std::fs::write(&file, toml).unwrap();
            load(GridConfig::default(), Some(&file)).map(|c| c.service.objects())
        };
        assert_eq!(
            load_objects("").unwrap(),
            ObjectsConfig::Files { path: None }
        );
        assert_eq!(
            load_objects("[storage]\ntype = \"postgres\"\nurl = \"postgres://db/grid\"\nnamespace = \"north\"\n")
                .unwrap(),
            ObjectsConfig::Store,
            "a standby on another machine reads what the leader stored"
        );
        assert_eq!(
            load_objects("[objects]\ntype = \"s3\"\nbucket = \"grid\"\nendpoint = \"http://127.0.0.1:9000\"\n").unwrap(),
            ObjectsConfig::S3 {
                bucket: "grid".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: None,
                prefix: String::new(),
                access_key_id: None,
                secret_access_key: None,
            }
        );
        for bad in [
            "[objects]\ntype = \"s3\"\n",
            "[objects]\ntype = \"dynamodb\"\n",
            "[objects]\ntype = \"files\"\nbucket = \"b\"\n",
        ] {
            let err = load_objects(bad).unwrap_err().to_string();
            assert!(err.contains("objects"), "{bad}: {err}");
        }
    }

    #[test]
    fn http_limits_and_scoped_tokens_come_from_the_file_and_scopes_are_kept() {
        let _environment = environment();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grid.toml");
        std::fs::write(
            &file,
            "operator_token = \"all\"\noperator_tokens = [{ token = \"r\", scopes = [\"read\"] }]\n[http]\nrate_per_second = 5\nallowed_hosts = [\"grid.example.org\"]\nunlimited_clients = [\"10.0.0.1\"]\n",
        )
        .unwrap();
        let config = load(GridConfig::default(), Some(&file)).unwrap();
        assert_eq!(config.service.http.rate_per_second, 5);
        assert_eq!(
            config.service.http.rate_burst,
            HttpLimits::default().rate_burst
        );
        assert_eq!(config.service.http.allowed_hosts, ["grid.example.org"]);
        assert_eq!(
            config.service.http.unlimited_clients,
            [std::net::IpAddr::from([10, 0, 0, 1])]
        );
        let ops = Operators::new(config.operator_token.as_deref(), &config.operator_tokens);
        assert_eq!(ops.check(Some("all"), Scope::Mint), Ok(()));
        assert_eq!(ops.check(Some("r"), Scope::Read), Ok(()));
        assert_eq!(
            ops.check(Some("r"), Scope::Deploy),
            Err(Denied::OutOfScope(Scope::Deploy))
        );
        assert_eq!(ops.check(Some("x"), Scope::Read), Err(Denied::Unknown));
        assert_eq!(ops.check(None, Scope::Read), Err(Denied::Unknown));
        assert_eq!(
            Operators::new(None, &[]).check(Some("all"), Scope::Read),
            Err(Denied::NoOperator)
        );

        std::fs::write(&file, "[http]\nrate = 5\n").unwrap();
        let err = load(GridConfig::default(), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rate"), "{err}");
        std::fs::write(
            &file,
            "operator_tokens = [{ token = \"r\", scopes = [\"root\"] }]\n",
        )
        .unwrap();
        let err = load(GridConfig::default(), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("operator_tokens"), "{err}");
    }
}
