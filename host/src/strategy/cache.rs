//! Compiled components on disk, so that a restart does not recompile.
//!
//! The key is the component's SHA-256 *and* the engine's compatibility hash: an
//! artifact compiled with other settings (fuel, epochs, wasmtime version) does not
//! load into this engine, so it must not be found.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompiledCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached artifact, if there is one that this engine accepts.
    pub(crate) fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: only this cache writes into its directory, and only artifacts
        // that `Component::serialize` produced for an engine with this key.
        // A damaged file fails to deserialize and is compiled again.
        unsafe { Component::deserialize_file(engine, &path) }.ok()
    }

    /// Stores an artifact; written to a temporary file first so that a reader
    /// never sees half of one.
    pub(crate) fn put(&self, sha256: &str, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        let path = self.path(sha256);
        // A name of its own per write: two threads compiling the same component
        // at once must not rename each other's file away.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
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

    #[test]
    fn threads_storing_the_same_artifact_at_once_all_succeed() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path(), &engine).unwrap();
        let component = Component::new(&engine, wat::parse_str("(component)").unwrap()).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..20 {
                        cache.put("same", &component).unwrap();
                    }
                });
            }
        });
        assert!(cache.get(&engine, "same").is_some());
    }

    #[test]
    fn artifacts_of_differently_configured_engines_have_different_keys() {
        assert_eq!(key(true), key(true));
        assert_ne!(key(true), key(false));
    }
}
