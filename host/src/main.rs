//! `powerplug`: the host's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use powerplug::http::run;
use powerplug::registry::Kind;
use powerplug::role::config;
use powerplug::simulate::{self, Scenario, WasmDeciders};
use powerplug::strategy::{Limits, Runtime, inspect};

#[derive(Parser)]
#[command(
    name = "powerplug",
    version,
    about = "Peer-to-peer energy grids with WebAssembly payment policies"
)]
struct Cli {
    /// Logs on standard error as text or as JSON lines; `POWERPLUG_LOG` filters
    /// them (default `info`; `debug` adds a line per tick).
    #[arg(
        long,
        global = true,
        env = "POWERPLUG_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: powerplug::logs::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a deterministic grid (sources → producers → grid ← consumers) on the
    /// basic strategies and print what each decided, tick by tick.
    Simulate {
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
    },
    /// Run a grid, producers with their sources, and consumers, each a service
    /// with its own database and HTTP API, trading over channels; print
    /// progress and a summary whose money checks must hold.
    Demo {
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
    },
    /// Run a grid: takes consumer and producer registrations, bills and pays.
    Grid(RoleArgs),
    /// Run a producer: takes source registrations, reports priced output to its grid.
    Producer(RoleArgs),
    /// Run consumers: simulated meters that report usage to their grid and pay.
    Consumer(RoleArgs),
    /// Run sources: simulated meters that report output to their producer.
    Source(RoleArgs),
    /// Work with strategy components.
    Strategy {
        #[command(subcommand)]
        command: StrategyCommand,
    },
    /// Replay recorded grid ticks through one or two strategies, offline,
    /// and compare what they bill per consumer and in total.
    Replay {
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
    },
    /// Let an entity register with a running grid or producer: prints a
    /// registration token for its `admission_token` (operator token:
    /// POWERPLUG_OPERATOR_TOKEN). `--list` shows the tokens not used up.
    Admit {
        /// consumer, producer (at a grid) or source (at a producer).
        #[arg(long, required_unless_present = "list")]
        kind: Option<String>,
        /// Only this id may use the token (needed to give a new key an id that left).
        #[arg(long)]
        id: Option<String>,
        /// How many registrations the token admits (a meter host: its `count`).
        #[arg(long, default_value_t = 1)]
        uses: u32,
        #[arg(long)]
        list: bool,
        #[arg(long, default_value = "http://127.0.0.1:4000")]
        url: String,
    },
    /// A/B experiments on a running grid's payment policy (operator token:
    /// POWERPLUG_OPERATOR_TOKEN).
    Experiment {
        #[command(subcommand)]
        command: ExperimentCommand,
    },
}

#[derive(Subcommand)]
enum ExperimentCommand {
    /// Start one: `--variant NAME=VERSION[:WEIGHT]`, two or more, where
    /// VERSION is a SHA-256, the name a version was uploaded with, or
    /// `active`; one of them must be the active version (the control).
    Start {
        #[arg(long)]
        id: Option<String>,
        #[arg(long = "variant", required = true)]
        variants: Vec<String>,
        /// Grid time (unix ms) of its first tick; default now.
        #[arg(long)]
        start_ms: Option<u64>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// List every experiment.
    List {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Stop one: everyone goes back to the active version from the next tick.
    Stop {
        id: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Make a variant the active version for everyone from the next tick.
    Promote {
        id: String,
        variant: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Print the report (JSON); the page with charts is at
    /// `/experiments/ID/report.html` (the browser asks for the token: any
    /// user name, the token as password).
    Report {
        id: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Run a stored version beside the active one on live inputs, without
    /// effects, and keep how its decisions differ.
    Shadow {
        version: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// How the shadow run's decisions differ from the active version's.
    ShadowReport {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Stop the shadow run (its report stays).
    ShadowStop {
        #[command(flatten)]
        host: HostArgs,
    },
}

/// `NAME=VERSION[:WEIGHT]` → a variant.
fn variant(spec: &str) -> anyhow::Result<serde_json::Value> {
    let (name, rest) = spec
        .split_once('=')
        .with_context(|| format!("--variant {spec}: NAME=VERSION[:WEIGHT]"))?;
    let (version, weight) = match rest.split_once(':') {
        Some((v, w)) => (
            v,
            w.parse::<u32>()
                .with_context(|| format!("--variant {spec}: the weight is a whole number"))?,
        ),
        None => (rest, 1),
    };
    Ok(serde_json::json!({ "name": name, "version": version, "weight": weight }))
}

/// A role's configuration: a TOML file, overridden by `POWERPLUG_*` variables.
#[derive(clap::Args)]
struct RoleArgs {
    #[arg(long)]
    config: Option<PathBuf>,
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

#[derive(Subcommand)]
enum StrategyCommand {
    /// Build Rust strategy crates into components (`<out>/<crate>.wasm`).
    Build {
        /// Crate directories.
        #[arg(required = true)]
        crates: Vec<PathBuf>,
        #[arg(long, default_value = "target/strategies")]
        out: PathBuf,
        /// Cargo features of the crates (comma-separated).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
    },
    /// Print a component's kind, world, imports, exports, size and hash.
    Inspect { file: PathBuf },
    /// Write a new grid strategy project into NAME: the strategy (a flat price
    /// per kWh), its first test, a build script and the WIT.
    New {
        /// The project's directory; its last part names the strategy.
        name: PathBuf,
        #[arg(long, value_enum)]
        lang: powerplug::scaffold::Lang,
        /// The Powerplug checkout whose SDK and kits the build script uses
        /// (default: the one around the working directory, else this binary's).
        #[arg(long)]
        checkout: Option<PathBuf>,
    },
    /// Run a component through the canned scenarios of its world under the
    /// default limits (loads, decides, deterministic, amounts in range, money
    /// and energy accounted for); print what passed, fuel and time per tick.
    /// Exits non-zero if a check fails.
    Check {
        file: PathBuf,
        /// Where compiled components are cached between runs.
        #[arg(long, default_value = "target/powerplug-cache")]
        cache: PathBuf,
    },
    /// Upload a component to a running grid: checked, dry-run on the recent
    /// ticks, and activated between ticks (with the live books only if it
    /// declares their format). Token: POWERPLUG_OPERATOR_TOKEN.
    Upload {
        file: PathBuf,
        #[command(flatten)]
        host: HostArgs,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        notes: Option<String>,
        /// Start the new version on empty books (state and cells) whatever it declares.
        #[arg(long)]
        fresh: bool,
        /// Activate it even if its dry run is refused (bills above the bound,
        /// or above what consumers used).
        #[arg(long)]
        force: bool,
        /// A detached signature (hex) from `strategy sign`, for hosts with trusted keys.
        #[arg(long)]
        signature: Option<String>,
        /// Check and store it without activating it (for an experiment or a shadow run).
        #[arg(long)]
        keep: bool,
    },
    /// Sign a component for hosts that take only signed uploads. The key is an
    /// Ed25519 secret key (32 bytes, hex) in POWERPLUG_SIGNING_KEY; prints the
    /// public key to trust and the signature to upload with.
    Sign { file: PathBuf },
    /// List a running grid's strategy versions, the active one and the history.
    List {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Activate a stored version again (roll back or forward).
    Activate {
        version: String,
        #[command(flatten)]
        host: HostArgs,
        /// Start it on empty books (state and cells).
        #[arg(long)]
        fresh: bool,
        /// Activate it even if its dry run is refused.
        #[arg(long)]
        force: bool,
    },
    /// Delete an inactive version.
    Delete {
        version: String,
        #[command(flatten)]
        host: HostArgs,
    },
}

/// Which running host, and which kind of strategy there.
#[derive(clap::Args)]
struct HostArgs {
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    url: String,
    #[arg(long, default_value = "grid")]
    kind: String,
}

impl HostArgs {
    /// Sends an operator request; prints the JSON answer, fails on a refusal.
    fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<()> {
        self.call_with(method, path, body, None)
    }

    fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        signature: Option<&str>,
    ) -> anyhow::Result<()> {
        let token = std::env::var("POWERPLUG_OPERATOR_TOKEN")
            .context("POWERPLUG_OPERATOR_TOKEN: set it to the host's operator token")?;
        // An upload compiles the component before it answers: tens of
        // seconds for an interpreter inside (a Python component is 19 MB).
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(600)))
            .http_status_as_error(false)
            .build()
            .into();
        let uri = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {token}"));
        if let Some(signature) = signature {
            request = request.header("x-powerplug-signature", signature);
        }
        // Hosts read JSON only when it says it is JSON; an upload is the component.
        if body.is_some() {
            let kind = if signature.is_some() || method == "PUT" {
                "application/wasm"
            } else {
                "application/json"
            };
            request = request.header("content-type", kind);
            // A host checks the token before it reads an upload and closes on
            // a refusal: wait for its `100 Continue` so that a refusal arrives
            // as an answer, not as a reset in the middle of sending.
            request = request.header("expect", "100-continue");
        }
        let request = request.body(body.unwrap_or_default())?;
        let mut response = agent
            .run(request)
            .with_context(|| format!("{method} {uri}"))?;
        let status = response.status();
        let text = response.body_mut().read_to_string()?;
        let pretty = serde_json::from_str::<serde_json::Value>(&text)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(text);
        anyhow::ensure!(status.is_success(), "{status}: {pretty}");
        println!("{pretty}");
        Ok(())
    }
}

/// `key=value&…` of the options that are set, percent-encoded.
fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

fn main() -> ExitCode {
    // A panic's message may carry outside text (a meter feed's, a strategy's
    // via the host): no terminal control on its way to stderr.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("a thread");
        eprintln!(
            "{name} panicked: {}",
            powerplug::text::for_log(&info.to_string())
        );
    }));
    let cli = Cli::parse();
    if let Err(e) = powerplug::logs::init(cli.log_format) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
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

fn meters(args: RoleArgs, defaults: config::MetersConfig, kind: Kind) -> anyhow::Result<()> {
    let config = config::load(defaults, args.config.as_deref())?;
    runtime()?.block_on(async {
        let running = run::meters(&config, kind).await?;
        println!(
            "{} {kind:?} meters `{}` on {}",
            config.count, config.service.id, running.url
        );
        running.until_ctrl_c().await
    })
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate {
            grid,
            producer,
            ticks,
            consumers,
            seed,
            cache,
            limits,
        } => {
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
                &grid.info().sha256[..12]
            );
            println!(
                "producer strategy  {} ({} bytes, sha256 {})",
                producer.info().world,
                producer.info().size,
                &producer.info().sha256[..12]
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
        }
        Command::Demo {
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
        } => {
            let temp = tempfile_dir(data_dir.is_none())?;
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
                        announced = true;
                    }
                    println!("{p}");
                }
            }))?;
            if let Some(temp) = temp {
                let _ = std::fs::remove_dir_all(temp);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{summary}");
            }
            anyhow::ensure!(summary.ok(), "a money check failed");
        }
        Command::Grid(args) => {
            let config = config::load(config::GridConfig::default(), args.config.as_deref())?;
            runtime()?.block_on(async {
                let running = run::grid(&config).await?;
                println!("grid `{}` on {}", config.service.id, running.url);
                running.until_ctrl_c().await
            })?;
        }
        Command::Producer(args) => {
            let config = config::load(config::ProducerConfig::default(), args.config.as_deref())?;
            runtime()?.block_on(async {
                let running = run::producer(&config).await?;
                println!("producer `{}` on {}", config.service.id, running.url);
                running.until_ctrl_c().await
            })?;
        }
        Command::Consumer(args) => meters(args, config::MetersConfig::consumers(), Kind::Consumer)?,
        Command::Source(args) => meters(args, config::MetersConfig::sources(), Kind::Source)?,
        Command::Strategy {
            command:
                StrategyCommand::Build {
                    crates,
                    out,
                    features,
                },
        } => {
            let features: Vec<&str> = features.iter().map(String::as_str).collect();
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for dir in crates {
                let bytes = powerplug::component::build(&powerplug::component::Build {
                    features: &features,
                    ..powerplug::component::Build::new(&dir)
                })?;
                let info = inspect(&bytes).with_context(|| {
                    format!("checking the component built from {}", dir.display())
                })?;
                let name = dir
                    .canonicalize()?
                    .file_name()
                    .map(|n| n.to_string_lossy().replace('-', "_"))
                    .context("crate directory has no name")?;
                let path = out.join(format!("{name}.wasm"));
                std::fs::write(&path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!(
                    "{} ({} strategy, {} bytes)",
                    path.display(),
                    info.kind,
                    info.size
                );
            }
        }
        Command::Strategy {
            command: StrategyCommand::Inspect { file },
        } => {
            let info = inspect(&read(&file)?)?;
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        Command::Strategy {
            command: StrategyCommand::Check { file, cache },
        } => powerplug::check::cli(&file, &cache)?,
        Command::Strategy {
            command:
                StrategyCommand::New {
                    name,
                    lang,
                    checkout,
                },
        } => powerplug::scaffold::cli(lang, &name, checkout.as_deref())?,
        Command::Strategy {
            command:
                StrategyCommand::Upload {
                    file,
                    host,
                    name,
                    notes,
                    fresh,
                    force,
                    signature,
                    keep,
                },
        } => {
            let q = query(&[
                ("name", name.as_deref()),
                ("notes", notes.as_deref()),
                ("fresh", fresh.then_some("true")),
                ("force", force.then_some("true")),
                ("activate", keep.then_some("false")),
            ]);
            let path = format!("/strategies/{}{q}", host.kind);
            host.call_with("PUT", &path, Some(read(&file)?), signature.as_deref())?;
        }
        Command::Replay {
            strategy,
            against,
            input,
            slot,
            top,
            chart,
            cache,
            limits,
        } => {
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
        }
        Command::Admit {
            kind,
            id,
            uses,
            list,
            url,
        } => {
            let host = HostArgs {
                url,
                kind: String::new(),
            };
            if list {
                host.call("GET", "/admissions", None)?;
            } else {
                let body = serde_json::json!({ "kind": kind, "id": id, "uses": uses });
                host.call("POST", "/admissions", Some(serde_json::to_vec(&body)?))?;
            }
        }
        Command::Experiment { command } => match command {
            ExperimentCommand::Start {
                id,
                variants,
                start_ms,
                host,
            } => {
                let variants = variants
                    .iter()
                    .map(|v| variant(v))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let body =
                    serde_json::json!({ "id": id, "variants": variants, "start_ms": start_ms });
                host.call("POST", "/experiments", Some(serde_json::to_vec(&body)?))?;
            }
            ExperimentCommand::List { host } => host.call("GET", "/experiments", None)?,
            ExperimentCommand::Stop { id, host } => {
                host.call("POST", &format!("/experiments/{id}/stop"), None)?
            }
            ExperimentCommand::Promote { id, variant, host } => host.call(
                "POST",
                &format!("/experiments/{id}/promote/{variant}"),
                None,
            )?,
            ExperimentCommand::Report { id, host } => {
                host.call("GET", &format!("/experiments/{id}/report"), None)?
            }
            ExperimentCommand::Shadow { version, host } => {
                let body = serde_json::json!({ "version": version });
                host.call(
                    "POST",
                    "/strategies/grid/shadow",
                    Some(serde_json::to_vec(&body)?),
                )?
            }
            ExperimentCommand::ShadowReport { host } => {
                host.call("GET", "/strategies/grid/shadow", None)?
            }
            ExperimentCommand::ShadowStop { host } => {
                host.call("DELETE", "/strategies/grid/shadow", None)?
            }
        },
        Command::Strategy {
            command: StrategyCommand::Sign { file },
        } => {
            let secret = std::env::var("POWERPLUG_SIGNING_KEY")
                .context("POWERPLUG_SIGNING_KEY: an Ed25519 secret key, 32 bytes in hex")?;
            let secret: [u8; 32] = hex::decode(secret.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("POWERPLUG_SIGNING_KEY: 32 bytes in hex")?;
            let key = ed25519_dalek::SigningKey::from_bytes(&secret);
            let bytes = read(&file)?;
            let info = inspect(&bytes)?;
            let answer = serde_json::json!({
                "sha256": info.sha256,
                "public_key": hex::encode(key.verifying_key().to_bytes()),
                "signature": powerplug::versions::sign(&key, &bytes),
            });
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        Command::Strategy {
            command: StrategyCommand::List { host },
        } => host.call("GET", "/strategies", None)?,
        Command::Strategy {
            command:
                StrategyCommand::Activate {
                    version,
                    host,
                    fresh,
                    force,
                },
        } => {
            let q = query(&[
                ("fresh", fresh.then_some("true")),
                ("force", force.then_some("true")),
            ]);
            host.call(
                "POST",
                &format!("/strategies/{}/activate/{version}{q}", host.kind),
                None,
            )?;
        }
        Command::Strategy {
            command: StrategyCommand::Delete { version, host },
        } => host.call(
            "DELETE",
            &format!("/strategies/{}/{version}", host.kind),
            None,
        )?,
    }
    Ok(())
}
