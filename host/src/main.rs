//! `powerplug`: the host's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use powerplug::simulate::{self, Scenario, WasmDeciders};
use powerplug::strategy::{Limits, Runtime, inspect};

#[derive(Parser)]
#[command(
    name = "powerplug",
    version,
    about = "Peer-to-peer energy grids with WebAssembly payment policies"
)]
struct Cli {
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
    /// Work with strategy components.
    Strategy {
        #[command(subcommand)]
        command: StrategyCommand,
    },
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
    },
    /// Print a component's kind, world, imports, exports, size and hash.
    Inspect { file: PathBuf },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
        Command::Strategy {
            command: StrategyCommand::Build { crates, out },
        } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for dir in crates {
                let bytes = powerplug::component::build(&powerplug::component::Build::new(&dir))?;
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
    }
    Ok(())
}
