//! Where the runtime's logs go: standard error, as text or as one JSON object
//! a line, filtered by `POWERPLUG_LOG` (tracing's filter syntax, e.g.
//! `info`, `powerplug_roles=debug`; default `info`). Every event of a tick
//! carries the tick's span: role, slot, tick number, strategy, fuel and
//! duration (a line per tick at `debug`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the process's subscriber.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_env("POWERPLUG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("logs: {e}"))
}
