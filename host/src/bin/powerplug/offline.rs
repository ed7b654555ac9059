//! Offline commands: `simulate`, `demo` and `replay`, and the strategy
//! limits they run under.

use std::path::PathBuf;

use anyhow::Context;
use powerplug::simulate::{self, Scenario, WasmDeciders};
use powerplug::strategy::{Limits, Runtime};

use crate::{read, runtime};

#[derive(clap::Args)]
pub struct SimulateArgs {
    #[arg(long, default_value = "target/strategies/basic_grid_strategy.wasm")]
    grid: PathBuf,
    #[arg(long, default_value = "target/strategies/basic_producer_strategy.wasm")]
    producer: PathBuf,
    #[arg(long, default_value_t = 40)]
    ticks: u32,
    #[arg(long, default_value_t = 3)]
    consumers: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where compiled components are cached between runs.
    #[arg(long, default_value = "target/powerplug-cache")]
    cache: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 2)]
    producers: u32,
    #[arg(long, default_value_t = 3)]
    sources_per_producer: u32,
    #[arg(long, default_value_t = 5)]
    consumers: u32,
    /// Simulated time runs this many times faster than real time.
    #[arg(long, default_value_t = 60)]
    time_scale: u64,
    /// Stop after this many grid ticks (default 60 unless --duration).
    #[arg(long)]
    ticks: Option<u64>,
    /// Stop after this many real seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Where the roles keep their databases (default: a fresh temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep every role's store in this PostgreSQL database
    /// (`postgres://user@host/db`), a namespace each, instead of redb files.
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
    /// With --storage: the namespaces' prefix (default: a fresh one, whose
    /// namespaces are removed at the end, as a temporary data directory is).
    #[arg(long, requires = "storage")]
    namespace: Option<String>,
    /// Where the grid's HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    #[arg(long, default_value = "target/strategies/basic_grid_strategy.wasm")]
    grid: PathBuf,
    #[arg(long, default_value = "target/strategies/basic_producer_strategy.wasm")]
    producer: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    consumer_funds: u64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print only the summary, as JSON.
    #[arg(long)]
    json: bool,
    /// The grid's operator token, for strategy uploads while the demo
    /// runs (default: random, printed at the start).
    #[arg(long, env = "POWERPLUG_OPERATOR_TOKEN")]
    operator_token: Option<String>,
    /// A grid token that may only read (the console for onlookers).
    #[arg(long, env = "POWERPLUG_VIEWER_TOKEN")]
    viewer_token: Option<String>,
    /// How long (simulated ms) the grid and producers keep read channel
    /// messages and received records; the tick log keeps 7 times as long.
    /// Default: an hour, as a grid's `[retention]`.
    #[arg(long)]
    keep_ms: Option<u64>,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The strategy to replay (A).
    #[arg(long)]
    strategy: PathBuf,
    /// A second strategy to compare with (B).
    #[arg(long)]
    against: Option<PathBuf>,
    /// A stopped grid's data directory or database, or a file exported
    /// from a running grid (`GET /ticks/export`).
    #[arg(long)]
    input: PathBuf,
    /// The books whose ticks to replay: `grid`, or an experiment's.
    #[arg(long, default_value = "grid")]
    slot: String,
    /// Consumers listed (largest differences first).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Draw cumulative bills and margins over time into this SVG file.
    #[arg(long)]
    chart: Option<PathBuf>,
    #[arg(long, default_value = "target/powerplug-cache")]
    cache: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Per-tick limits of every strategy call (defaults: `Limits::DEFAULT`).
#[derive(clap::Args)]
struct LimitArgs {
    /// Fuel (roughly, wasm instructions) per tick.
    #[arg(long, default_value_t = Limits::DEFAULT.fuel)]
    fuel: u64,
    /// Wall-clock deadline per tick, in milliseconds.
    #[arg(long, default_value_t = Limits::DEFAULT.deadline.as_millis() as u64)]
    deadline_ms: u64,
    /// Linear memory a strategy may use, in MiB.
    #[arg(long, default_value_t = Limits::DEFAULT.memory_bytes >> 20)]
    memory_mib: usize,
    /// Largest decision accepted, in MiB.
    #[arg(long, default_value_t = Limits::DEFAULT.decision_bytes >> 20)]
    decision_mib: usize,
}

impl TryFrom<LimitArgs> for Limits {
    type Error = anyhow::Error;

    fn try_from(a: LimitArgs) -> anyhow::Result<Self> {
        let mib = |flag: &str, n: usize| {
            n.checked_mul(1 << 20)
                .filter(|&b| b > 0 && b <= 4 << 30)
                .with_context(|| format!("--{flag}: between 1 and 4096 MiB, not {n}"))
        };
        anyhow::ensure!(a.fuel > 0, "--fuel: at least 1");
        anyhow::ensure!(a.deadline_ms > 0, "--deadline-ms: at least 1");
        Ok(Limits {
            fuel: a.fuel,
            deadline: std::time::Duration::from_millis(a.deadline_ms),
            memory_bytes: mib("memory-mib", a.memory_mib)?,
            decision_bytes: mib("decision-mib", a.decision_mib)?,
            ..Limits::DEFAULT
        })
    }
}

pub fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let SimulateArgs {
        grid,
        producer,
        ticks,
        consumers,
        seed,
        cache,
        limits,
    } = a;
    let runtime = Runtime::new(limits.try_into()?, Some(&cache))?;
    let grid = runtime
        .load_grid(&read(&grid)?)
        .with_context(|| grid.display().to_string())?;
    let producer = runtime
        .load_producer(&read(&producer)?)
        .with_context(|| producer.display().to_string())?;
    println!(
        "grid strategy      {} ({} bytes, sha256 {})",
        grid.info().world,
        grid.info().size,
        &grid.info().sha256.short()
    );
    println!(
        "producer strategy  {} ({} bytes, sha256 {})",
        producer.info().world,
        producer.info().size,
        &producer.info().sha256.short()
    );
    let stats = runtime.cache_stats();
    println!(
        "components         {} compiled, {} from cache\n",
        stats.compiles, stats.cache_hits
    );
    let scenario = Scenario {
        ticks,
        consumers,
        seed,
        ..Scenario::default()
    };
    let report = simulate::run(&scenario, &mut WasmDeciders { grid, producer })?;
    println!("{report}");
    Ok(())
}

pub fn demo(a: DemoArgs) -> anyhow::Result<()> {
    let DemoArgs {
        producers,
        sources_per_producer,
        consumers,
        time_scale,
        ticks,
        duration,
        data_dir,
        listen,
        grid,
        producer,
        consumer_funds,
        seed,
        json,
        operator_token,
        viewer_token,
        keep_ms,
        storage,
        namespace,
    } = a;
    let mut retention = powerplug::retention::Retention::default();
    if let Some(keep) = keep_ms {
        retention.messages_ms = keep;
        retention.tick_log_ms = keep.saturating_mul(7);
    }
    let temp = tempfile_dir(data_dir.is_none())?;
    let fresh_namespace = namespace.is_none();
    let storage = match storage {
        None => powerplug::demo::DemoStorage::Redb,
        Some(url) => {
            anyhow::ensure!(
                url.starts_with("postgres://") || url.starts_with("postgresql://"),
                "--storage: `{url}` is not a postgres:// URL"
            );
            let prefix = match namespace {
                Some(prefix) => prefix,
                None => format!(
                    "demo_{}",
                    &hex::encode(powerplug::channel::random32()?)[..8]
                ),
            };
            powerplug::demo::DemoStorage::Postgres { url, prefix }
        }
    };
    let options = powerplug::demo::Options {
        producers,
        sources_per_producer,
        consumers,
        time_scale,
        ticks: ticks.or(if duration.is_none() { Some(60) } else { None }),
        duration: duration.map(std::time::Duration::from_secs),
        data_dir: data_dir.or(temp.clone()).context("--data-dir")?,
        listen,
        grid_component: grid,
        producer_component: producer,
        consumer_funds,
        seed,
        operator_token: operator_token
            .or_else(|| Some(hex::encode(powerplug::channel::random32().ok()?))),
        viewer_token,
        retention,
        storage,
    };
    let token = options.operator_token.clone().unwrap_or_default();
    let mut announced = false;
    if !json {
        println!(
            "demo: grid, {producers} producers × {sources_per_producer} sources, {consumers} consumers, time ×{time_scale}, data in {}",
            options.data_dir.display()
        );
    }
    let summary = runtime()?.block_on(powerplug::demo::run(&options, |p| {
        if !json {
            if !announced {
                println!("grid API {} · operator token {token}", p.grid_url);
                println!("console {}/console (sign in with the token)", p.grid_url);
                announced = true;
            }
            println!("{p}");
        }
    }))?;
    if let Some(temp) = temp {
        let _ = std::fs::remove_dir_all(temp);
    }
    if fresh_namespace {
        options.storage.remove(&options)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    anyhow::ensure!(summary.ok(), "a money check failed");
    Ok(())
}

/// A fresh directory under the system's temporary directory, if `wanted`.
fn tempfile_dir(wanted: bool) -> anyhow::Result<Option<PathBuf>> {
    if !wanted {
        return Ok(None);
    }
    let dir = std::env::temp_dir().join(format!(
        "powerplug-demo-{}-{}",
        std::process::id(),
        powerplug::role::unix_ms()
    ));
    // 0700: the roles' databases below it hold their secrets.
    powerplug::storage::private::create_dir(&dir)?;
    Ok(Some(dir))
}

pub fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    let ReplayArgs {
        strategy,
        against,
        input,
        slot,
        top,
        chart,
        cache,
        limits,
    } = a;
    let runtime = Runtime::new(limits.try_into()?, Some(&cache))?;
    let options = powerplug::replay_cli::Options {
        strategy,
        against,
        input,
        slot,
        top,
        chart,
    };
    powerplug::replay_cli::run(&options, &runtime)?;
    Ok(())
}
