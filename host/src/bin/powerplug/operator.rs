//! The operator's commands to a running host: `admit` and `experiment`.

use anyhow::Context;
use clap::Subcommand;

use crate::client::HostArgs;

#[derive(clap::Args)]
pub struct AdmitArgs {
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
}

#[derive(Subcommand)]
pub enum ExperimentCommand {
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

pub fn admit(a: AdmitArgs) -> anyhow::Result<()> {
    let AdmitArgs {
        kind,
        id,
        uses,
        list,
        url,
    } = a;
    let host = crate::client::operator(&url)?;
    if list {
        crate::client::print(host.get("/admissions"))
    } else {
        let body = serde_json::json!({ "kind": kind, "id": id, "uses": uses });
        crate::client::print(host.post("/admissions", &body))
    }
}

pub fn experiment(command: ExperimentCommand) -> anyhow::Result<()> {
    match command {
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
            let body = serde_json::json!({ "id": id, "variants": variants, "start_ms": start_ms });
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
    }
    Ok(())
}
