//! `powerplug strategy new --lang rust|python|js|c [--world producer] NAME`: a
//! buildable strategy project from a template (`templates/` in the checkout, built into
//! the binary): the strategy, its first test, a build script and the WIT.
//!
//! The templates bill a flat price per whole kWh, the same rules in every
//! language, and declare their books format (`<name>@1`). A Python,
//! JavaScript or C project carries its kit's installer and pins in `kit/` (they
//! travel in this binary), with the kit's library of helpers (and, in Python
//! and JavaScript, a test harness), so it builds wherever it is; the kit installs once
//! into a user cache. A Rust project needs the SDK and builder of a Powerplug
//! checkout, whose path is written into it; `POWERPLUG_CHECKOUT` overrides it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};

/// The world a project's strategy lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum World {
    /// Bills consumers and pays producers.
    #[default]
    Grid,
    /// Reports its sources' output to the grid, with a price.
    Producer,
}

impl World {
    fn wit_name(self) -> &'static str {
        match self {
            World::Grid => "grid-strategy",
            World::Producer => "producer-strategy",
        }
    }
}

/// A strategy's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

struct File {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

const fn file(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        executable: false,
    }
}

const fn script(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        executable: true,
    }
}

const WIT: File = file("wit/strategy.wit", include_str!("../../wit/strategy.wit"));

const RUST: &[File] = &[
    file(
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    file(
        "src/lib.rs",
        include_str!("../../templates/rust/src/lib.rs"),
    ),
    script("build.sh", include_str!("../../templates/rust/build.sh")),
    file(".gitignore", "target/\nbuild/\nCargo.lock\n"),
    WIT,
];

/// The kit installer, with the pins of each kit, as in the checkout's `kits/`.
const KIT_INSTALL: File = script("kit/install.sh", include_str!("../../kits/install.sh"));

const PYTHON: &[File] = &[
    KIT_INSTALL,
    file(
        "kit/python/requirements.txt",
        include_str!("../../kits/python/requirements.txt"),
    ),
    file(
        "kit/python/powerplug.py",
        include_str!("../../kits/python/powerplug.py"),
    ),
    file(
        "strategy.py",
        include_str!("../../templates/python/strategy.py"),
    ),
    file(
        "test_strategy.py",
        include_str!("../../templates/python/test_strategy.py"),
    ),
    script("build.sh", include_str!("../../templates/python/build.sh")),
    file(".gitignore", "build/\n__pycache__/\n"),
    WIT,
];

const JS: &[File] = &[
    KIT_INSTALL,
    file(
        "kit/js/package.json",
        include_str!("../../kits/js/package.json"),
    ),
    file(
        "kit/js/package-lock.json",
        include_str!("../../kits/js/package-lock.json"),
    ),
    file(
        "strategy.js",
        include_str!("../../templates/js/strategy.js"),
    ),
    file("test.mjs", include_str!("../../templates/js/test.mjs")),
    file(
        "kit/js/exports.mjs",
        include_str!("../../kits/js/exports.mjs"),
    ),
    file(
        "kit/js/powerplug.mjs",
        include_str!("../../kits/js/powerplug.mjs"),
    ),
    script("build.sh", include_str!("../../templates/js/build.sh")),
    file(".gitignore", "build/\n"),
    WIT,
];

const C: &[File] = &[
    KIT_INSTALL,
    file("kit/c/tools.txt", include_str!("../../kits/c/tools.txt")),
    file(
        "kit/c/powerplug.h",
        include_str!("../../kits/c/powerplug.h"),
    ),
    file(
        "kit/c/powerplug_grid_test.h",
        include_str!("../../kits/c/powerplug_grid_test.h"),
    ),
    file("strategy.c", include_str!("../../templates/c/strategy.c")),
    file("test.c", include_str!("../../templates/c/test.c")),
    script("build.sh", include_str!("../../templates/c/build.sh")),
    file(".gitignore", "build/\n"),
    WIT,
];

/// The producer world's strategy and first test in each language: they
/// replace the grid's files of the same path. (One rule in every language:
/// report what came in since the last report, at a flat price per kWh.)
const PRODUCER: &[File] = &[
    file(
        "src/lib.rs",
        include_str!("../../templates/producer/lib.rs"),
    ),
    file(
        "strategy.py",
        include_str!("../../templates/producer/strategy.py"),
    ),
    file(
        "test_strategy.py",
        include_str!("../../templates/producer/test_strategy.py"),
    ),
    file(
        "strategy.js",
        include_str!("../../templates/producer/strategy.js"),
    ),
    file(
        "test.mjs",
        include_str!("../../templates/producer/test.mjs"),
    ),
    file(
        "strategy.c",
        include_str!("../../templates/producer/strategy.c"),
    ),
    file("test.c", include_str!("../../templates/producer/test.c")),
];

/// What the templates need from a Powerplug checkout.
const CHECKOUT_MARKERS: [&str; 2] = ["sdk/Cargo.toml", "wit/strategy.wit"];

/// Writes a new project into `dir` (which must not exist, or be empty) and
/// returns the files written. `checkout` is the Powerplug checkout a Rust
/// project's build script uses (the other languages' projects need none).
pub fn create(lang: Lang, dir: &Path, checkout: &Path) -> anyhow::Result<Vec<PathBuf>> {
    create_world(lang, World::Grid, dir, checkout)
}

/// [`create`], for a strategy of `world`.
pub fn create_world(
    lang: Lang,
    world: World,
    dir: &Path,
    checkout: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let name = project_name(dir)?;
    let checkout = match lang {
        Lang::Rust => rust_checkout(checkout)?,
        Lang::Python | Lang::Js | Lang::C => String::new(),
    };
    let checkout = checkout.as_str();
    if dir.exists() {
        let empty = dir
            .read_dir()
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        ensure!(empty, "{} exists and is not empty", dir.display());
    }

    let files = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
        Lang::C => C,
    };
    let mut written = Vec::new();
    for f in files {
        let f = match world {
            World::Producer => PRODUCER.iter().find(|p| p.path == f.path).unwrap_or(f),
            World::Grid => f,
        };
        let path = dir.join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = f
            .text
            .replace("{{name}}", &name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{checkout}}", checkout)
            .replace("{{world}}", world.wit_name());
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        if f.executable {
            make_executable(&path)?;
        }
        written.push(path);
    }
    Ok(written)
}

/// The checkout a Rust project builds with: its SDK and `powerplug strategy build`.
fn rust_checkout(checkout: &Path) -> anyhow::Result<String> {
    let checkout = checkout
        .canonicalize()
        .with_context(|| format!("the Powerplug checkout {}", checkout.display()))?;
    for marker in CHECKOUT_MARKERS {
        ensure!(
            checkout.join(marker).exists(),
            "{} is not a Powerplug checkout (no {marker}): a Rust strategy builds on its SDK; pass --checkout",
            checkout.display()
        );
    }
    checkout
        .to_str()
        .filter(|p| !p.contains(['"', '\\', '$', '`', '\n']))
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "the checkout's path {} has characters a build script cannot quote",
                checkout.display()
            )
        })
}

/// The project's name is its directory's: a crate name and a file name in
/// every language.
fn project_name(dir: &Path) -> anyhow::Result<String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: a project needs a directory name", dir.display()))?;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "{name:?}: a project name is lowercase letters, digits, `-` and `_`, starting with a letter"
        );
    }
    Ok(name.to_owned())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// The checkout to use: `--checkout`, else `POWERPLUG_CHECKOUT`, else the
/// working directory or one above it if it is a checkout, else the checkout
/// this binary was built from.
pub fn find_checkout(given: Option<&Path>) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_owned();
    }
    if let Some(dir) = std::env::var_os("POWERPLUG_CHECKOUT") {
        return dir.into();
    }
    let is_checkout = |d: &Path| CHECKOUT_MARKERS.iter().all(|m| d.join(m).exists());
    if let Ok(cwd) = std::env::current_dir()
        && let Some(dir) = cwd.ancestors().find(|d| is_checkout(d))
    {
        return dir.to_owned();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_owned()
}

/// `powerplug strategy new`: writes the project and says what to do next.
pub fn cli(lang: Lang, world: World, dir: &Path, checkout: Option<&Path>) -> anyhow::Result<()> {
    let checkout = find_checkout(checkout);
    let written = create_world(lang, world, dir, &checkout)?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    let name = project_name(dir)?;
    let wasm = match lang {
        Lang::Rust => format!("build/{}.wasm", name.replace('-', "_")),
        Lang::Python | Lang::Js | Lang::C => format!("build/{name}.wasm"),
    };
    // A Python, JavaScript or C project needs no checkout; the guide may not be here.
    let guide = checkout.join("docs/strategy-guide.md");
    let guide = match guide.exists() {
        true => guide.display().to_string(),
        false => "docs/strategy-guide.md in the Powerplug repository".to_owned(),
    };
    println!(
        "\nnext:\n  {dir}/build.sh    # runs the first test, then builds {dir}/{wasm}\n  powerplug strategy check {dir}/{wasm}\n  powerplug strategy upload {dir}/{wasm} --url http://127.0.0.1:4000\nthe contract, the rules and each language's traps: {guide}",
        dir = dir.display(),
    );
    Ok(())
}
