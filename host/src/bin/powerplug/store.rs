//! A role's store, for its operator: `backup`, `restore`, `compact`.
//!
//! Files are written beside their destination under a temporary name,
//! synced, then renamed: an interrupted command never leaves half a file
//! where a whole one is expected. Every file is 0600: a store holds the
//! host's secret.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use powerplug::storage::{self, InUse, RedbStore, Store, private};

/// The store's file in a data directory, as the roles name it.
const STORE: &str = "powerplug.redb";

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["url", "data_dir"])))]
pub struct BackupArgs {
    /// A running grid or producer (operator token with the backup scope:
    /// POWERPLUG_OPERATOR_TOKEN).
    #[arg(long)]
    url: Option<String>,
    /// A stopped role's data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the backup goes (replaced if it exists).
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A file `powerplug backup` wrote.
    backup: PathBuf,
    /// The stopped role's data directory (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Replace the store the directory holds.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
pub struct CompactArgs {
    /// A stopped role's data directory.
    #[arg(long)]
    data_dir: PathBuf,
}

pub fn backup(a: BackupArgs) -> anyhow::Result<()> {
    let partial = with_suffix(&a.out, ".partial");
    // A leftover of an interrupted run is ours to replace.
    remove_if_there(&partial)?;
    let bytes = match (&a.url, &a.data_dir) {
        (Some(url), _) => download(url, &partial),
        (None, Some(dir)) => {
            back_up_stopped(dir, &partial).with_context(|| format!("backing up {}", dir.display()))
        }
        (None, None) => anyhow::bail!("say where from: --url or --data-dir"),
    };
    let bytes = bytes.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, &a.out)
        .with_context(|| format!("renaming {} to {}", partial.display(), a.out.display()))?;
    sync_dir(&a.out)?;
    println!(
        "{}",
        serde_json::json!({ "backup": a.out.display().to_string(), "bytes": bytes })
    );
    Ok(())
}

/// Streams `GET /backup` into `path`, checks it is whole, syncs it.
fn download(url: &str, path: &Path) -> anyhow::Result<u64> {
    let token = std::env::var("POWERPLUG_OPERATOR_TOKEN")
        .context("POWERPLUG_OPERATOR_TOKEN: set it to an operator token with the backup scope")?;
    // No overall limit: a large store takes a while to copy, then to send.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(3600)))
        .build()
        .into();
    let uri = format!("{}/backup", url.trim_end_matches('/'));
    let mut response = agent
        .get(&uri)
        .header("authorization", format!("Bearer {token}"))
        .call()
        .with_context(|| format!("GET {uri}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        let text = response.body_mut().read_to_string().unwrap_or_default();
        anyhow::bail!("GET {uri}: {status}: {}", powerplug::text::for_log(&text));
    }
    let expected = response.body().content_length();
    let mut file = create_private(path)?;
    let bytes = std::io::copy(&mut response.body_mut().as_reader(), &mut file)
        .with_context(|| format!("receiving the backup into {}", path.display()))?;
    anyhow::ensure!(
        expected.is_none_or(|e| e == bytes),
        "the backup arrived cut short: {bytes} of {expected:?} bytes"
    );
    file.sync_all()?;
    drop(file);
    storage::check_store_file(path)?;
    Ok(bytes)
}

pub fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.backup.is_file(),
        "{}: no such backup file",
        a.backup.display()
    );
    private::create_dir(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    private::check_dir(&a.data_dir, "--data-dir", private::Allow::Nothing)?;
    let target = a.data_dir.join(STORE);
    // Held open until the new file is in place, so no role starts on the old
    // one meanwhile (redb locks the file).
    let mut old = None;
    if target.exists() {
        anyhow::ensure!(
            a.force,
            "{} already holds a store; --force replaces it (back it up first)",
            target.display()
        );
        match RedbStore::open_existing(&target) {
            Ok(store) => old = Some(store),
            Err(e) if e.downcast_ref::<InUse>().is_some() => {
                anyhow::bail!("{e}: stop the role before restoring over its store")
            }
            // A store that does not open is one to replace.
            Err(_) => {}
        }
    }
    let restoring = with_suffix(&target, ".restoring");
    remove_if_there(&restoring)?;
    let placed = copy_checked(&a.backup, &restoring).and_then(|bytes| {
        // The copy goes back in time: the entities that report to this role
        // see its new timeline and send again what it lacks.
        let timeline = storage::begin_timeline(&RedbStore::open_existing(&restoring)?)?;
        File::open(&restoring)?.sync_all()?;
        std::fs::rename(&restoring, &target)
            .with_context(|| format!("renaming {} to {}", restoring.display(), target.display()))?;
        Ok((bytes, timeline))
    });
    if placed.is_err() {
        let _ = std::fs::remove_file(&restoring);
    }
    let (bytes, timeline) = placed?;
    drop(old);
    sync_dir(&target)?;
    println!(
        "{}",
        serde_json::json!({ "restored": target.display().to_string(), "bytes": bytes, "timeline": timeline })
    );
    Ok(())
}

/// Copies `from` to a new 0600 file `to`, synced, and checks the copy is a
/// whole store (the check may write, so it reads the copy, not the backup).
fn copy_checked(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let mut source = File::open(from).with_context(|| format!("reading {}", from.display()))?;
    let mut file = create_private(to)?;
    let bytes = std::io::copy(&mut source, &mut file)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    file.sync_all()?;
    drop(file);
    storage::check_store_file(to)
        .with_context(|| format!("{} is not a backup of a store", from.display()))?;
    File::open(to)?.sync_all()?;
    Ok(bytes)
}

pub fn compact(a: CompactArgs) -> anyhow::Result<()> {
    let store = open_stopped(&a.data_dir, "compact")?;
    let compacted = store.compact()?;
    println!("{}", serde_json::to_string_pretty(&compacted)?);
    Ok(())
}

/// A stopped role's store; a running role's is refused with what to do.
/// A stopped role's store with the objects in `<dir>/objects` it names (a
/// role whose `objects` are elsewhere is backed up with `--url`).
fn back_up_stopped(dir: &Path, out: &Path) -> anyhow::Result<u64> {
    let db: storage::Db = std::sync::Arc::new(open_stopped(dir, "back up")?);
    let objects = match storage::meta::<String>(&*db, "id")? {
        Some(id) if dir.join("objects").is_dir() => {
            let files = storage::ObjectsConfig::Files { path: None };
            storage::Objects::open(&files, dir, &db, &id)?
        }
        _ => storage::Objects::in_store(&db),
    };
    powerplug::backup::write(&*db, &objects, out)
}

fn open_stopped(dir: &Path, what: &str) -> anyhow::Result<RedbStore> {
    RedbStore::open_existing(&dir.join(STORE)).map_err(|e| {
        if e.downcast_ref::<InUse>().is_none() {
            return e;
        }
        match what {
            "back up" => e.context("a running role's store: back it up with --url instead"),
            _ => e.context(format!("stop the role to {what} its store")),
        }
    })
}

fn create_private(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn remove_if_there(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// `path` with `suffix` after its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes a rename in `file`'s directory durable.
fn sync_dir(file: &Path) -> anyhow::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// `powerplug verify`.
#[cfg(feature = "iota")]
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A grid's store: a file `powerplug backup` wrote, or a stopped grid's
    /// `powerplug.redb`.
    store: PathBuf,
    /// The Stardust node to read the anchors from (a permanode for old ticks).
    #[arg(long)]
    node: String,
    /// The first tick to check.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// How many ticks to check at most.
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
}

#[cfg(feature = "iota")]
pub fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.store.is_file(),
        "{}: no such store file",
        a.store.display()
    );
    let db = RedbStore::open_existing(&a.store)
        .with_context(|| format!("opening {}", a.store.display()))?;
    let node = powerplug_iota::Node::connect(powerplug_iota::NodeConfig::new(&a.node))?;
    let report = powerplug::verify::verify(&db, &node, a.from, a.limit)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    anyhow::ensure!(
        report.failed.is_empty(),
        "{} of {} ticks failed verification",
        report.failed.len(),
        report.checked
    );
    Ok(())
}
