//! Compiled components on disk, so that a restart does not recompile.
//!
//! The key is the component's SHA-256 *and* the engine's compatibility hash: an
//! artifact compiled with other settings (fuel, epochs, wasmtime version) does not
//! load into this engine, so it must not be found.
//!
//! An artifact is native code that wasmtime maps and runs without checking it
//! (`Component::deserialize` is `unsafe`): whoever can change an entry runs code
//! in the host. So every entry carries an HMAC-SHA256 over its name and bytes
//! under a key of this cache (`cache.key`, 0600, made on first use), entries are
//! 0600 in a directory that group and others cannot write, and an entry whose
//! MAC does not verify is deleted and compiled again from the component. The
//! cache keeps the most recently used entries only ([`crate::limits::CACHE_ENTRIES`]).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::limits::CACHE_ENTRIES;
use powerplug_storage::private;

const KEY_FILE: &str = "cache.key";
const TAG_BYTES: usize = 32;
const DOMAIN: &[u8] = b"powerplug/compiled-cache/v1\0";

pub(crate) struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
    key: [u8; 32],
    /// Entries found but refused (MAC wrong: tampered or damaged).
    rejected: AtomicU64,
}

impl CompiledCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> anyhow::Result<Self> {
        let what = "strategy.cache_dir";
        private::create_dir(dir)
            .map_err(|e| anyhow::anyhow!("{what}: cannot create {}: {e}", dir.display()))?;
        private::check_dir(dir, what, private::Allow::Reading)?;
        let key = cache_key(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
            key,
            rejected: AtomicU64::new(0),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn name(&self, sha256: &powerplug_domain::Sha256) -> String {
        format!("{sha256}-{}.cwasm", self.engine_key)
    }

    fn tag(&self, name: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(DOMAIN);
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(artifact);
        mac
    }

    /// The cached artifact, if there is one that this engine accepts and that
    /// this cache wrote.
    pub(crate) fn get(
        &self,
        engine: &Engine,
        sha256: &powerplug_domain::Sha256,
    ) -> Option<Component> {
        let name = self.name(sha256);
        let path = self.dir.join(&name);
        // Read once and check what was read: checking the file and then
        // mapping it again would let it change in between.
        let bytes = std::fs::read(&path).ok()?;
        let verified = bytes
            .len()
            .checked_sub(TAG_BYTES)
            .map(|split| bytes.split_at(split))
            .filter(|(artifact, tag)| self.tag(&name, artifact).verify_slice(tag).is_ok());
        let Some((artifact, _)) = verified else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                path = %path.display(),
                "a compiled component does not carry this cache's MAC (tampered or damaged); compiling again"
            );
            let _ = std::fs::remove_file(&path);
            return None;
        };
        // SAFETY: the bytes are exactly what `put` wrote for this name under
        // this cache's key (the MAC says so), and `put` writes only what
        // `Component::serialize` produced for an engine with this key. An
        // artifact this engine cannot take fails here and is compiled again.
        let component = unsafe { Component::deserialize(engine, artifact) }.ok()?;
        // Most recently used first when pruning.
        if let Ok(file) = std::fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
        Some(component)
    }

    /// Stores an artifact; written to a temporary file first so that a reader
    /// never sees half of one. Then keeps the cache within [`crate::limits::CACHE_ENTRIES`].
    pub(crate) fn put(
        &self,
        sha256: &powerplug_domain::Sha256,
        component: &Component,
    ) -> anyhow::Result<()> {
        let name = self.name(sha256);
        let mut bytes = component.serialize()?;
        let tag = self.tag(&name, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        let path = self.dir.join(&name);
        // A name of its own per write: two threads compiling the same component
        // at once must not rename each other's file away.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        private::write_new(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        self.prune(CACHE_ENTRIES)?;
        Ok(())
    }

    /// Deletes the least recently used entries beyond `keep`.
    fn prune(&self, keep: usize) -> anyhow::Result<()> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "cwasm")
                && let Ok(meta) = entry.metadata()
            {
                entries.push((meta.mtime(), meta.mtime_nsec(), path));
            }
        }
        if entries.len() <= keep {
            return Ok(());
        }
        entries.sort();
        for (_, _, path) in &entries[..entries.len() - keep] {
            // Another process may have pruned it first; a reader that has it
            // open keeps its copy.
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }
}

/// The cache's MAC key: read, or made on first use. Made under a name of its
/// own and linked into place, so that processes sharing the cache that start
/// at once agree on one key.
fn cache_key(dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        let tmp = dir.join(format!("{KEY_FILE}.tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        private::write_new(&tmp, &private::random32()?)?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => anyhow::bail!("strategy.cache_dir: cannot create {}: {e}", path.display()),
        }
    }
    let meta = std::fs::metadata(&path)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    anyhow::ensure!(
        meta.uid() == me && meta.mode() & 0o077 == 0,
        "strategy.cache_dir: {} must belong to this host's user and be readable by it alone (mode 0600); delete it and the cache starts again",
        path.display()
    );
    std::fs::read(&path)?.try_into().map_err(|_| {
        anyhow::anyhow!(
            "strategy.cache_dir: {} is not a 32-byte key; delete it and the cache starts again",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fuel: bool) -> String {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(fuel);
        let engine = Engine::new(&config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        CompiledCache::new(dir.path(), &engine).unwrap().engine_key
    }

    /// A component id for a test name.
    fn id(name: &str) -> powerplug_domain::Sha256 {
        powerplug_domain::Sha256::of(name.as_bytes())
    }

    fn empty(engine: &Engine) -> Component {
        Component::new(engine, wat::parse_str("(component)").unwrap()).unwrap()
    }

    #[test]
    fn threads_storing_the_same_artifact_at_once_all_succeed() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path(), &engine).unwrap();
        let component = empty(&engine);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..20 {
                        cache.put(&id("same"), &component).unwrap();
                    }
                });
            }
        });
        assert!(cache.get(&engine, &id("same")).is_some());
    }

    #[test]
    fn artifacts_of_differently_configured_engines_have_different_keys() {
        assert_eq!(key(true), key(true));
        assert_ne!(key(true), key(false));
    }

    #[test]
    fn an_entry_without_this_caches_mac_is_refused_and_deleted() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path(), &engine).unwrap();
        cache.put(&id("a"), &empty(&engine)).unwrap();
        let path = dir.path().join(cache.name(&id("a")));
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let good = std::fs::read(&path).unwrap();

        // The same bytes under another name: the MAC binds the name.
        std::fs::copy(&path, dir.path().join(cache.name(&id("b")))).unwrap();
        assert!(cache.get(&engine, &id("b")).is_none());
        // A raw artifact, as wasmtime serialises it, without a MAC.
        std::fs::write(&path, empty(&engine).serialize().unwrap()).unwrap();
        assert!(cache.get(&engine, &id("a")).is_none());
        assert!(!path.exists(), "a refused entry is deleted");
        // One flipped byte of the artifact.
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(cache.get(&engine, &id("a")).is_none());
        assert_eq!(cache.rejected(), 3);
        // Another cache (another key) does not accept this one's entries.
        std::fs::write(&path, &good).unwrap();
        assert!(cache.get(&engine, &id("a")).is_some());
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let other = CompiledCache::new(dir.path(), &engine).unwrap();
        assert!(other.get(&engine, &id("a")).is_none());
    }

    #[test]
    fn the_least_recently_used_entries_beyond_the_bound_are_pruned() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path(), &engine).unwrap();
        let component = empty(&engine);
        for n in 0..CACHE_ENTRIES + 5 {
            cache.put(&id(&format!("v{n}")), &component).unwrap();
            // v0 is used all along: it stays.
            assert!(cache.get(&engine, &id("v0")).is_some(), "v0 after {n}");
        }
        let entries = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "cwasm")
            })
            .count();
        assert_eq!(entries, CACHE_ENTRIES);
        assert!(cache.get(&engine, &id("v0")).is_some());
        assert!(
            cache.get(&engine, &id("v1")).is_none(),
            "the oldest unused went"
        );
    }
}
