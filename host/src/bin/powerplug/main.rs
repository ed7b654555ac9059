//! `powerplug`: the host's command line, one module per group of commands.
//!
//! - `roles`: run a grid, a producer, consumers or sources as a service;
//! - `offline`: `simulate`, `demo`, `replay`;
//! - `strategy`: components and the versions of a running host;
//! - `operator`: admissions and experiments on a running host;
//! - `store`: a role's store: backup, restore, compaction;
//! - `client`: the operator's HTTP requests they share.

mod client;
mod offline;
mod operator;
mod roles;
mod store;
mod strategy;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    Simulate(offline::SimulateArgs),
    /// Run a grid, producers with their sources, and consumers, each a service
    /// with its own database and HTTP API, trading over channels; print
    /// progress and a summary whose money checks must hold.
    Demo(offline::DemoArgs),
    /// Run a grid: takes consumer and producer registrations, bills and pays.
    Grid(roles::RoleArgs),
    /// Run a producer: takes source registrations, reports priced output to its grid.
    Producer(roles::RoleArgs),
    /// Run consumers: meters (simulated, a CSV profile or devices over MQTT)
    /// that report usage to their grid and pay.
    Consumer(roles::RoleArgs),
    /// Run sources: meters (simulated, a CSV profile or devices over MQTT)
    /// that report output to their producer.
    Source(roles::RoleArgs),
    /// Work with strategy components.
    Strategy {
        #[command(subcommand)]
        command: strategy::StrategyCommand,
    },
    /// Replay recorded grid ticks through one or two strategies, offline,
    /// and compare what they bill per consumer and in total.
    Replay(offline::ReplayArgs),
    /// Let an entity register with a running grid or producer: prints a
    /// registration token for its `admission_token` (operator token:
    /// POWERPLUG_OPERATOR_TOKEN). `--list` shows the tokens not used up.
    Admit(operator::AdmitArgs),
    /// A/B experiments on a running grid's payment policy (operator token:
    /// POWERPLUG_OPERATOR_TOKEN).
    Experiment {
        #[command(subcommand)]
        command: operator::ExperimentCommand,
    },
    /// Copy a grid's or producer's store to a file: from the running host
    /// (`--url`; operator token with the backup scope:
    /// POWERPLUG_OPERATOR_TOKEN) or from a stopped role's `--data-dir`. The
    /// copy holds the host's secret: keep it as safe as the host.
    Backup(store::BackupArgs),
    /// Put a backup in place as a stopped role's store.
    Restore(store::RestoreArgs),
    /// Give the free pages of a stopped role's store back to the file system.
    Compact(store::CompactArgs),
    /// Check a grid's recorded ticks against their settlements anchored on
    /// the IOTA Tangle (Stardust; a build with `--features iota`).
    #[cfg(feature = "iota")]
    Verify(store::VerifyArgs),
}

fn main() -> ExitCode {
    fewer_malloc_arenas();
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
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    let offline = match &command {
        Command::Simulate(_) | Command::Replay(_) => true,
        Command::Strategy { command } => !command.talks_to_a_host(),
        _ => false,
    };
    if offline {
        quiet_on_closed_stdout();
    }
    match command {
        Command::Simulate(args) => offline::simulate(args),
        Command::Demo(args) => offline::demo(args),
        Command::Replay(args) => offline::replay(args),
        Command::Grid(args) => roles::grid(args),
        Command::Producer(args) => roles::producer(args),
        Command::Consumer(args) => roles::consumers(args),
        Command::Source(args) => roles::sources(args),
        Command::Strategy { command } => strategy::run(command),
        Command::Admit(args) => operator::admit(args),
        Command::Experiment { command } => operator::experiment(command),
        Command::Backup(args) => store::backup(args),
        Command::Restore(args) => store::restore(args),
        Command::Compact(args) => store::compact(args),
        #[cfg(feature = "iota")]
        Command::Verify(args) => store::verify(args),
    }
}

/// `powerplug simulate | head`: a command that only prints ends quietly when
/// its reader goes, as other Unix tools do, instead of panicking on the
/// broken pipe. Not for commands with sockets: there an ignored SIGPIPE turns
/// a peer's close into an error to report, which is what they need.
fn quiet_on_closed_stdout() {
    // SAFETY: called before any thread of ours starts; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// glibc gives threads that allocate at once arenas of their own (up to 8
/// per core) and hands little of a fragmented arena back. A demo of 1,000
/// consumers rose from 140 MB to 745 MB of RSS in four minutes while its heap
/// peaked at 176 MB (heaptrack); with two arenas it stays near 225 MB, for
/// 1.5 % fewer ticks (BENCHMARKS.md, *Memory*). `MALLOC_ARENA_MAX` in the
/// environment still decides.
fn fewer_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread
        // exists; M_ARENA_MAX takes any positive count.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
