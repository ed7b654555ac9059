//! `strategy …`: build, inspect, check, sign and scaffold components, and
//! manage the versions of a running host.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use powerplug::strategy::inspect;

use crate::client::{HostArgs, print};
use crate::read;
use powerplug_client::Swap;

#[derive(Subcommand)]
pub enum StrategyCommand {
    /// Build Rust strategy crates into components (`<out>/<crate>.wasm`, named
    /// after the crate's library as cargo names it, whatever its directory).
    Build {
        /// Crate directories.
        #[arg(required = true)]
        crates: Vec<PathBuf>,
        /// Where the components go (default: `target/strategies`, or with
        /// features `target/strategies/<features>`, so that a variant never
        /// replaces the default component the demo and the roles run).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Cargo features of the crates (comma-separated).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
    },
    /// Print a component's kind, world, imports, exports, size and hash.
    Inspect { file: PathBuf },
    /// Write a new strategy project into NAME: the strategy (a flat price per
    /// kWh: billed by a grid, or asked by a producer), its first test, a build
    /// script and the WIT.
    New {
        /// The project's directory; its last part names the strategy.
        name: PathBuf,
        #[arg(long, value_enum)]
        lang: powerplug::scaffold::Lang,
        /// The strategy's world: a grid's payment policy, or a producer's pricing.
        #[arg(long, value_enum, default_value = "grid")]
        world: powerplug::scaffold::World,
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
        /// Then run this many random traces through the strategy (joins,
        /// leaves, payers early, late, partial or absent, readings late or of
        /// nothing, zero and huge amounts), checking money and energy after
        /// every tick; a failure prints the shortest trace that shows it.
        #[arg(long, value_name = "TRACES", num_args = 0..=1, default_missing_value = "200")]
        fuzz: Option<u32>,
        /// Then your own scenarios: ticks files as `strategy run` takes them,
        /// held to the same rules (repeat for several).
        #[arg(long, value_name = "TICKS")]
        ticks: Vec<PathBuf>,
    },
    /// Run your own ticks (a JSON array; see docs/strategy-guide.md) through a
    /// component as a host would: books carried from tick to tick, payouts
    /// confirmed, the host's validation and the check's money and energy
    /// rules on every decision. Prints each tick; exits non-zero if one would
    /// fail live or break a rule.
    Run {
        file: PathBuf,
        #[arg(long)]
        ticks: PathBuf,
        /// Where compiled components are cached between runs.
        #[arg(long, default_value = "target/powerplug-cache")]
        cache: PathBuf,
        /// Print the ticks as JSON (decisions, failures, problems, fuel, logs).
        #[arg(long)]
        json: bool,
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

impl StrategyCommand {
    /// Whether it calls a running host (upload, list, activate, delete).
    pub fn talks_to_a_host(&self) -> bool {
        matches!(
            self,
            Self::Upload { .. } | Self::List { .. } | Self::Activate { .. } | Self::Delete { .. }
        )
    }
}

pub fn run(command: StrategyCommand) -> anyhow::Result<()> {
    match command {
        StrategyCommand::Build {
            crates,
            out,
            features,
        } => {
            let features: Vec<&str> = features.iter().map(String::as_str).collect();
            let out = out.unwrap_or_else(|| match features.as_slice() {
                [] => PathBuf::from("target/strategies"),
                some => PathBuf::from("target/strategies").join(some.join("-")),
            });
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for dir in crates {
                let (name, bytes) =
                    powerplug::component::build_named(&powerplug::component::Build {
                        features: &features,
                        ..powerplug::component::Build::new(&dir)
                    })?;
                let info = inspect(&bytes).with_context(|| {
                    format!("checking the component built from {}", dir.display())
                })?;
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
        StrategyCommand::Inspect { file } => {
            let info = inspect(&read(&file)?)?;
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        StrategyCommand::Check {
            file,
            cache,
            fuzz,
            ticks,
        } => powerplug::check::cli(&file, &cache, fuzz.unwrap_or(0), &ticks)?,
        StrategyCommand::Run {
            file,
            ticks,
            cache,
            json,
        } => powerplug::check::run::cli(&file, &ticks, &cache, json)?,
        StrategyCommand::New {
            name,
            lang,
            world,
            checkout,
        } => powerplug::scaffold::cli(lang, world, &name, checkout.as_deref())?,
        StrategyCommand::Upload {
            file,
            host,
            name,
            notes,
            fresh,
            force,
            signature,
            keep,
        } => {
            let swap = Swap {
                name,
                notes,
                fresh,
                force,
                activate: keep.then_some(false),
            };
            let bytes = read(&file)?;
            print(
                host.client()?
                    .upload(host.kind, &bytes, signature.as_deref(), &swap),
            )?;
        }
        StrategyCommand::Sign { file } => {
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
        StrategyCommand::List { host } => host.call("GET", "/strategies", None)?,
        StrategyCommand::Activate {
            version,
            host,
            fresh,
            force,
        } => {
            let swap = Swap {
                fresh,
                force,
                ..Swap::default()
            };
            print(host.client()?.activate(host.kind, &version, &swap))?;
        }
        StrategyCommand::Delete { version, host } => {
            print(host.client()?.remove(host.kind, &version))?
        }
    }
    Ok(())
}
