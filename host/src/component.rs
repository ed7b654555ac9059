//! Building a Rust strategy crate into a component.
//!
//! `cargo build --target wasm32-unknown-unknown` gives a core module that carries
//! wit-bindgen's description of its world; `wit-component` wraps it into a
//! component whose only import is Powerplug's `log` (a `wasm32-wasip2` build would
//! import a dozen WASI interfaces through std's panic path).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// How to build a strategy crate.
#[derive(Debug, Clone)]
pub struct Build<'a> {
    /// The crate's directory (with its Cargo.toml).
    pub crate_dir: &'a Path,
    /// Where cargo builds; defaults to cargo's own choice.
    pub target_dir: Option<&'a Path>,
    /// The cargo profile; the workspace defines `wasm` (optimised, panic = abort).
    pub profile: &'a str,
    pub features: &'a [&'a str],
}

impl<'a> Build<'a> {
    pub fn new(crate_dir: &'a Path) -> Self {
        Self {
            crate_dir,
            target_dir: None,
            profile: "wasm",
            features: &[],
        }
    }
}

/// Builds the crate and returns its component's bytes.
pub fn build(build: &Build<'_>) -> anyhow::Result<Vec<u8>> {
    Ok(build_named(build)?.1)
}

/// Builds the crate and returns its library's name (as cargo names the
/// `.wasm`: `my_tariff` for the crate `my-tariff`, whatever its directory) and
/// its component's bytes.
pub fn build_named(build: &Build<'_>) -> anyhow::Result<(String, Vec<u8>)> {
    let core = build_core(build)?;
    let name = core
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name", core.display()))?;
    let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    let bytes =
        wrap(&module).with_context(|| format!("wrapping {} into a component", core.display()))?;
    Ok((name, bytes))
}

/// Wraps a core module built with wit-bindgen into a component.
pub fn wrap(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .encode()
}

/// The stack a Rust strategy built here gets, unless its author's flags say
/// otherwise (64 KiB; a deeper recursion traps, and is reported as such).
pub const GUEST_STACK_BYTES: u32 = 64 * 1024;

/// Where cargo takes flags for the WebAssembly target alone (the host's own
/// build, if any, is not changed by them).
const TARGET_RUSTFLAGS: &str = "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS";

/// Builds the crate for the WebAssembly target and returns the core module's path.
pub fn build_core(build: &Build<'_>) -> anyhow::Result<PathBuf> {
    let manifest = build.crate_dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--lib", "--target", WASM_TARGET, "--profile", build.profile])
        .args(["--message-format", "json-render-diagnostics"]);
    if !build.features.is_empty() {
        cmd.arg("--features").arg(build.features.join(","));
    }
    if let Some(dir) = build.target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    // A smaller stack than Rust's 1 MiB: every tick runs a fresh instance,
    // whose memory is reset after it, and the stack is most of what an empty
    // tick touches (the fixed cost per tick halves: BENCHMARKS.md). Flags of
    // the user's own win: they say what their strategy needs.
    let own_flags = ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", TARGET_RUSTFLAGS]
        .iter()
        .any(|var| std::env::var_os(var).is_some());
    if !own_flags {
        cmd.env(
            TARGET_RUSTFLAGS,
            format!("-C link-arg=-zstack-size={GUEST_STACK_BYTES}"),
        );
    }
    let out = cmd
        .output()
        .with_context(|| format!("running cargo for {}", manifest.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("target may not be installed") {
            format!("\nhint: rustup target add {WASM_TARGET}")
        } else {
            String::new()
        };
        bail!(
            "cargo build of {} failed:\n{stderr}{hint}",
            manifest.display()
        );
    }
    // The last `.wasm` artifact cargo reports is the crate's own.
    let artifact = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
        .flat_map(|msg| {
            msg["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"));
    artifact.with_context(|| {
        format!(
            "cargo built no .wasm for {}: is it a cdylib?",
            manifest.display()
        )
    })
}
