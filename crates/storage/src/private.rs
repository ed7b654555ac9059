//! Files only the host's own user may read: the database holds the host's
//! secret (credentials and keys derive from it) and the compiled cache holds
//! native code the host runs. Directories are made 0700 and files 0600
//! whatever the umask, and a directory that others can reach is refused
//! rather than silently used.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode bits of group and others.
const OTHERS: u32 = 0o077;

/// Creates `dir` (and missing parents) as 0700; an existing directory is left
/// as it is (see [`check_dir`]).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// What a directory's mode may allow beyond its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Nothing: a data directory (it holds the host's secret).
    Nothing,
    /// Reading and listing, not writing: a shared compiled-component cache,
    /// whose entries are 0600 and authenticated anyway.
    Reading,
}

/// Refuses a directory that is not ours or that group or others can reach
/// (`Allow::Nothing`) or write (`Allow::Reading`). `what` names the setting in
/// the error, which says how to fix it.
pub fn check_dir(dir: &Path, what: &str, allow: Allow) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| anyhow::anyhow!("{what}: cannot read {}: {e}", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "{what}: {} is not a directory",
        dir.display()
    );
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    anyhow::ensure!(
        meta.uid() == me,
        "{what}: {} belongs to user {}, not to this host's user {me}; give the host a directory of its own",
        dir.display(),
        meta.uid()
    );
    let mode = meta.mode() & 0o7777;
    let forbidden = match allow {
        Allow::Nothing => OTHERS,
        Allow::Reading => 0o022,
    };
    anyhow::ensure!(
        mode & forbidden == 0,
        "{what}: {} is accessible by group or others (mode {mode:04o}); it holds {}. Run `chmod 700 {}`",
        dir.display(),
        match allow {
            Allow::Nothing => "the host's secret",
            Allow::Reading => "native code the host runs",
        },
        dir.display(),
    );
    Ok(())
}

/// Makes an existing file of ours 0600 (a file written by an older version
/// may be 0644).
pub fn restrict_file(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.mode() & OTHERS != 0 {
        std::fs::set_permissions(path, Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Makes an existing directory of ours 0700 (one a library created with the
/// umask's mode).
pub fn restrict_dir(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.mode() & OTHERS != 0 {
        std::fs::set_permissions(path, Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `path` as an empty 0600 file unless it exists (redb then opens it
/// and keeps its mode).
pub fn touch(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes a new 0600 file at `path`, which must not exist yet.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// 32 random bytes from the operating system: keys, secrets, channel roots.
pub fn random32() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_that_others_can_reach_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        create_dir(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        check_dir(&data, "data_dir", Allow::Nothing).unwrap();

        std::fs::set_permissions(&data, Permissions::from_mode(0o755)).unwrap();
        let err = check_dir(&data, "data_dir", Allow::Nothing)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&data.display().to_string()) && err.contains("chmod 700"),
            "{err}"
        );
        check_dir(&data, "strategy.cache_dir", Allow::Reading).unwrap();
        std::fs::set_permissions(&data, Permissions::from_mode(0o775)).unwrap();
        assert!(check_dir(&data, "strategy.cache_dir", Allow::Reading).is_err());

        let file = data.join("f");
        write_new(&file, b"x").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert!(write_new(&file, b"y").is_err(), "never overwrites");
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        restrict_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
    }
}
