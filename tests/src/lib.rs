//! Shared by the end-to-end tests: components built from this repository's
//! sources (once per test process), and conversions between the host's and the
//! SDK's generated types, which are the same WIT records in two crates.

use powerplug::domain::EntityKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use powerplug::component::{Build, build};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The component built from the crate at `dir` (relative to the workspace root)
/// with `features`. Guests build in their own target directory, so this works
/// while the outer `cargo test` holds the main one.
pub fn component(dir: &str, features: &[&str]) -> Arc<Vec<u8>> {
    type Key = (String, Vec<String>);
    static BUILT: OnceLock<Mutex<HashMap<Key, Arc<Vec<u8>>>>> = OnceLock::new();
    let key = (
        dir.to_owned(),
        features.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
    );
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(bytes) = built.get(&key) {
        return bytes.clone();
    }
    let root = workspace_root();
    let crate_dir = root.join(dir);
    let target = root.join("target").join("guests");
    let bytes = build(&Build {
        target_dir: Some(&target),
        features,
        ..Build::new(&crate_dir)
    })
    .unwrap_or_else(|e| panic!("building {dir}: {e:#}"));
    let bytes = Arc::new(bytes);
    built.insert(key, bytes.clone());
    bytes
}

pub fn basic_grid() -> Arc<Vec<u8>> {
    component("plugins/basic-grid-strategy", &[])
}

pub fn basic_producer() -> Arc<Vec<u8>> {
    component("plugins/basic-producer-strategy", &[])
}

/// A hostile grid strategy: one of the `hostile-guest` crate's features.
pub fn hostile(behaviour: &str) -> Arc<Vec<u8>> {
    component("tests/fixtures/hostile-guest", &[behaviour])
}

/// Writes both basic strategies to files in `dir` (roles load components from
/// files): (grid, producer).
pub fn strategy_files(dir: &Path) -> (PathBuf, PathBuf) {
    let grid = dir.join("basic_grid_strategy.wasm");
    let producer = dir.join("basic_producer_strategy.wasm");
    std::fs::write(&grid, &*basic_grid()).expect("writing the grid strategy");
    std::fs::write(&producer, &*basic_producer()).expect("writing the producer strategy");
    (grid, producer)
}

/// The same WIT value as the other crate's generated type.
pub fn convert<T: serde::Serialize, U: serde::de::DeserializeOwned>(value: &T) -> U {
    serde_json::from_value(serde_json::to_value(value).expect("WIT values serialize"))
        .expect("both crates generate the same shape from the same WIT")
}

/// The roles' API as the tests call it: the shared typed client
/// ([`powerplug_client::Client`]), every answer as (status, JSON), and
/// bodies above the hosts' limit sent raw.
pub struct Client {
    api: powerplug_client::Client,
    pub base: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let api = powerplug_client::Client::new(base);
        Self {
            base: api.base().to_owned(),
            api,
        }
    }

    /// The shared client, as the holder of `token`.
    pub fn api(&self, token: &str) -> powerplug_client::Client {
        self.api.with_token(token)
    }

    /// Any method, an optional bearer token, an optional raw body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, serde_json::Value) {
        if body.is_some_and(|b| b.len() > 1 << 20) {
            return self.oversized(method, path, body.map_or(0, <[u8]>::len));
        }
        let api = match token {
            Some(token) => self.api.with_token(token),
            None => self.api.clone(),
        };
        let body = body.map_or(powerplug_client::Body::Empty, powerplug_client::Body::Json);
        let answer = api.send(method, path, body).expect("the host answers");
        (answer.status, answer.body)
    }

    /// A request with a body above the hosts' limit, sent raw: the host
    /// answers once it has read past its limit and closes, so sending the whole
    /// body would race the close (a broken pipe instead of the answer).
    fn oversized(&self, method: &str, path: &str, length: usize) -> (u16, serde_json::Value) {
        use std::io::{Read, Write};
        let host = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(host).expect("the host answers");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
        )
        .expect("sending the headers");
        // The host reads up to its limit, answers and closes: send a little
        // more than the limit (a write error here is that close), then read.
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..(length.min((1 << 20) + (128 << 10)) / piece.len()) {
            if stream.write_all(&piece).is_err() {
                break;
            }
        }
        // The host may keep the connection open for the body it refused:
        // read the answer until it stops coming.
        stream
            .set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .expect("a read timeout");
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        let answer = String::from_utf8_lossy(&bytes).into_owned();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        // The body may be chunked: take the JSON object inside.
        let json = match (body.find('{'), body.rfind('}')) {
            (Some(a), Some(b)) => serde_json::from_str(&body[a..=b]).unwrap_or_default(),
            _ => serde_json::Value::String(body.to_owned()),
        };
        (status, json)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.call("GET", path, token, None)
    }

    pub fn put(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call("PUT", path, token, Some(body.to_string().as_bytes()))
    }

    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call("POST", path, token, Some(body.to_string().as_bytes()))
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.call("DELETE", path, token, None)
    }
}

/// The operator token of the roles the tests start.
pub const OPERATOR: &str = "operator-token-for-tests";

/// A grid on a free loopback port with its data in `dir/grid`, ticking every
/// round (`tick_ms` of simulated time at scale 1).
pub fn grid_config(
    dir: &Path,
    component: PathBuf,
    tick_ms: u64,
) -> powerplug::role::config::GridConfig {
    let mut config = powerplug::role::config::GridConfig::default();
    config.service.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.service.data_dir = dir.join("grid");
    config.service.poll_ms = 10;
    config.strategy.component = component;
    config.strategy.tick_ms = tick_ms;
    config.strategy.cache_dir = Some(workspace_root().join("target/guests/powerplug-cache"));
    config.operator_token = Some(OPERATOR.into());
    config
}

/// Waits up to 20 s for `done`.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The async runtime the roles of a test run on.
/// The PostgreSQL server the tests use (`POWERPLUG_TEST_POSTGRES`; by
/// default the local one). `.ci/run` makes sure it runs.
pub fn postgres_url() -> String {
    std::env::var("POWERPLUG_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A namespace (prefix) no other test or earlier run uses.
pub fn fresh_namespace(what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t_{what}_{}_{nanos}_{n}", std::process::id())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A producer on a free loopback port reporting to `grid_url`, its data in
/// `dir/producer`, polling every 10 ms, with the tests' operator token.
pub fn producer_config(
    dir: &Path,
    component: PathBuf,
    grid_url: &str,
) -> powerplug::role::config::ProducerConfig {
    let mut config = powerplug::role::config::ProducerConfig::default();
    config.service.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.service.data_dir = dir.join("producer");
    config.service.poll_ms = 10;
    config.strategy.component = component;
    config.strategy.cache_dir = Some(workspace_root().join("target/guests/powerplug-cache"));
    config.grid_url = grid_url.to_owned();
    config.operator_token = Some(OPERATOR.into());
    config.admission_token = Some(admit(grid_url, "producer", None, 1));
    config
}

/// `config` (`MetersConfig::consumers()` or `::sources()`) on a free
/// loopback port, its data in `data_dir`, polling every 10 ms on `clock`,
/// publishing to `upstream_url`.
pub fn meters_config(
    mut config: powerplug::role::config::MetersConfig,
    data_dir: PathBuf,
    upstream_url: &str,
    clock: powerplug::role::Clock,
) -> powerplug::role::config::MetersConfig {
    config.service.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.service.data_dir = data_dir;
    config.service.poll_ms = 10;
    config.service.clock = clock;
    config.upstream_url = upstream_url.to_owned();
    config
}

/// A registration token from the host at `url`, issued with the tests'
/// operator token: for `uses` registrations of `kind` (bound to `id` if given).
pub fn admit(url: &str, kind: &str, id: Option<&str>, uses: u32) -> String {
    let kind = kind.parse().expect("an entity kind");
    Client::new(url)
        .api(OPERATOR)
        .admit(kind, id, uses)
        .unwrap_or_else(|e| panic!("admission at {url}: {e:#}"))
}

/// A strategy component built by its project's own `build.sh` (the Python and
/// JavaScript examples, `strategy new` projects): the script installs the
/// pinned kit on first use (the network is needed once) and runs the
/// project's first test before it builds. Once per project per test process;
/// parallel callers for one project wait for the one build.
pub fn scripted_component(project: &Path) -> Arc<Vec<u8>> {
    type Cell = Arc<OnceLock<Arc<Vec<u8>>>>;
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, Cell>>> = OnceLock::new();
    let cell = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(project.to_owned())
        .or_default()
        .clone();
    cell.get_or_init(|| Arc::new(run_build_script(project)))
        .clone()
}

/// Runs `project/build.sh OUT` against this checkout and returns OUT's bytes
/// (OUT is in the project's `build/`).
pub fn run_build_script(project: &Path) -> Vec<u8> {
    let name = project.file_name().unwrap_or_default().to_string_lossy();
    let out = project.join("build").join(format!("{name}.wasm"));
    let output = std::process::Command::new("sh")
        .arg(project.join("build.sh"))
        .arg(&out)
        .env("POWERPLUG_CHECKOUT", workspace_root())
        // One kit install for every test process (a project's default is the user cache).
        .env("POWERPLUG_KITS", workspace_root().join("target/kits"))
        .output()
        .unwrap_or_else(|e| panic!("running {}/build.sh: {e}", project.display()));
    assert!(
        output.status.success(),
        "{}/build.sh failed ({}):\n{}\n{}",
        project.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(&out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()))
}

/// One runtime per test process with the default limits and the guests'
/// compiled-component cache, so that each (large) component of another
/// language is compiled once across the test processes that use it.
pub fn cached_runtime() -> &'static powerplug::strategy::Runtime {
    static RUNTIME: OnceLock<powerplug::strategy::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let cache = workspace_root().join("target/guests/powerplug-cache");
        powerplug::strategy::Runtime::new(powerplug::strategy::Limits::DEFAULT, Some(&cache))
            .expect("a strategy runtime")
    })
}

/// A consumer meter registered with a grid over HTTP: each `read` publishes
/// 1 kWh for the next 30 s slice, billed whole at the grid's next tick.
pub struct Meter {
    pub id: String,
    writer: powerplug::channel::ChannelWriter,
    /// Where it publishes: the grid's channel store.
    pub store: powerplug::channel::HttpTransport,
    slice: u64,
    /// Its registration's credential (for the wallet).
    pub credential: String,
    grid: Client,
}

impl Meter {
    /// Opens its channel (keys from `seed`) and registers it as consumer `id`.
    pub fn register(grid_url: &str, id: &str, seed: u8) -> Self {
        use powerplug::channel::{ChannelWriter, HttpTransport};
        let store = HttpTransport::new(grid_url);
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let mut writer = ChannelWriter::new(key, true).expect("a channel");
        let body = powerplug::api::Register::open(EntityKind::Consumer, &mut writer, None).unwrap();
        let body = serde_json::to_value(body).unwrap();
        let (status, answer) =
            Client::new(grid_url).put(&format!("/registrations/{id}"), None, &body);
        assert_eq!(status, 201, "registering {id}: {answer}");
        Self {
            id: id.to_owned(),
            writer,
            store,
            slice: 0,
            credential: answer["credential"].as_str().unwrap_or_default().to_owned(),
            grid: Client::new(grid_url),
        }
    }

    pub fn read(&mut self) {
        self.read_wh(1_000);
    }

    /// Publishes `wh` for the next 30 s slice.
    pub fn read_wh(&mut self, wh: u64) {
        let usage = powerplug::inbox::Command::Usage {
            start_ms: powerplug::domain::UnixMs(self.slice * 30_000),
            end_ms: powerplug::domain::UnixMs((self.slice + 1) * 30_000),
            wh: powerplug::domain::Wh(wh),
            read: None,
        };
        self.writer
            .publish(&self.store, usage.encode())
            .expect("the grid takes the reading");
        self.slice += 1;
    }
}

impl Meter {
    /// Gets `amount` new tokens from the operator and pays them to the grid
    /// (`n` makes the idempotency keys).
    pub fn pay(&self, amount: u64, n: u32) {
        let body = serde_json::json!({ "to": self.id, "amount": amount, "key": format!("fund-{}-{n}", self.id) });
        let (status, answer) = self.grid.post("/wallet/issue", Some(OPERATOR), &body);
        assert_eq!(status, 201, "issuing to {}: {answer}", self.id);
        let body = serde_json::json!({ "to": "grid", "amount": amount, "key": format!("pay-{}-{n}", self.id) });
        let (status, answer) = self
            .grid
            .post("/wallet/transfers", Some(&self.credential), &body);
        assert_eq!(status, 201, "{} paying: {answer}", self.id);
    }
}

/// A small tmpfs mounted on a temporary directory (a disk a test can fill),
/// unmounted on drop. Never skipped: the suite runs as root, where mounting
/// works, and without the mount the test would prove nothing.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `size` as mount takes it: `8m`.
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Self { dir },
            Ok(out) => panic!(
                "this test mounts a tmpfs (run as root): {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("this test mounts a tmpfs (run as root): {e}"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A host's `GET /metrics`, read once.
pub struct Metrics(String);

impl Metrics {
    pub fn of(url: &str) -> Self {
        let text = ureq::get(format!("{url}/metrics"))
            .call()
            .expect("the host answers /metrics")
            .into_body()
            .read_to_string()
            .expect("a text body");
        Self(text)
    }

    /// The value of the sample named `name` (without labels).
    pub fn get(&self, name: &str) -> u64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {}", self.0))
    }

    /// The value of the sample `name{...}` whose labels contain `labels`.
    pub fn labelled(&self, name: &str, labels: &str) -> u64 {
        self.samples(name)
            .find(|(l, _)| l.contains(labels))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{name}{{{labels}}} in {}", self.0))
    }

    /// The sum of every sample of `name` with labels.
    pub fn sum_of(&self, name: &str) -> u64 {
        self.samples(name).map(|(_, v)| v).sum()
    }

    fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.0.lines().filter_map(move |l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            Some((labels, value.parse().ok()?))
        })
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.0
    }
}

/// What the grid wrote on a registered consumer's return channel, in its
/// store: the commands, decoded.
pub fn return_channel(
    grid: &powerplug::role::grid::Grid,
    consumer: &powerplug::registry::Registration,
) -> Vec<powerplug::inbox::Command> {
    let back = consumer
        .return_channel
        .as_ref()
        .expect("a consumer has a return channel");
    let info = powerplug::channel::ChannelInfo {
        root: back.root,
        author: grid.hub.registry.key().verifying_key().to_bytes(),
        side_key: back.side_key,
    };
    let mut reader = powerplug::channel::ChannelReader::new(&info).expect("a channel to read");
    let poll = reader
        .poll(&grid.hub.store)
        .expect("the return channel reads");
    poll.data
        .iter()
        .map(|d| powerplug::inbox::Command::decode(d).expect("a command"))
        .collect()
}
