//! Running one role as a service until Ctrl-C: `grid`, `producer`,
//! `consumer`, `source`.

use powerplug::domain::EntityKind;
use std::path::PathBuf;

use powerplug::http::run;
use powerplug::role::config::{self, GridConfig, MetersConfig, ProducerConfig};

use crate::runtime;

/// A role's configuration: a TOML file, overridden by `POWERPLUG_*` variables.
#[derive(clap::Args)]
pub struct RoleArgs {
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn grid(args: RoleArgs) -> anyhow::Result<()> {
    let config = config::load(GridConfig::default(), args.config.as_deref())?;
    runtime()?.block_on(async {
        let running = run::grid(&config).await?;
        println!("grid `{}` on {}", config.service.id, running.url);
        running.until_ctrl_c().await
    })
}

pub fn producer(args: RoleArgs) -> anyhow::Result<()> {
    let config = config::load(ProducerConfig::default(), args.config.as_deref())?;
    runtime()?.block_on(async {
        let running = run::producer(&config).await?;
        println!("producer `{}` on {}", config.service.id, running.url);
        running.until_ctrl_c().await
    })
}

pub fn consumers(args: RoleArgs) -> anyhow::Result<()> {
    meters(args, MetersConfig::consumers(), EntityKind::Consumer)
}

pub fn sources(args: RoleArgs) -> anyhow::Result<()> {
    meters(args, MetersConfig::sources(), EntityKind::Source)
}

fn meters(args: RoleArgs, defaults: MetersConfig, kind: EntityKind) -> anyhow::Result<()> {
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
