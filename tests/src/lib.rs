//! Shared by the end-to-end tests: components built from this repository's
//! sources (once per test process), and conversions between the host's and the
//! SDK's generated types, which are the same WIT records in two crates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use powerplug::component::{Build, build};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The component built from the crate at `dir` (relative to the workspace root)
/// with `features`. Guests build in their own target directory, so this works
/// while the outer `cargo test` holds the main one.
pub fn component(dir: &str, features: &[&str]) -> Arc<Vec<u8>> {
    type Key = (String, Vec<String>);
    static BUILT: OnceLock<Mutex<HashMap<Key, Arc<Vec<u8>>>>> = OnceLock::new();
    let key = (
        dir.to_owned(),
        features.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
    );
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(bytes) = built.get(&key) {
        return bytes.clone();
    }
    let root = workspace_root();
    let crate_dir = root.join(dir);
    let target = root.join("target").join("guests");
    let bytes = build(&Build {
        target_dir: Some(&target),
        features,
        ..Build::new(&crate_dir)
    })
    .unwrap_or_else(|e| panic!("building {dir}: {e:#}"));
    let bytes = Arc::new(bytes);
    built.insert(key, bytes.clone());
    bytes
}

pub fn basic_grid() -> Arc<Vec<u8>> {
    component("plugins/basic-grid-strategy", &[])
}

pub fn basic_producer() -> Arc<Vec<u8>> {
    component("plugins/basic-producer-strategy", &[])
}

/// A hostile grid strategy: one of the `hostile-guest` crate's features.
pub fn hostile(behaviour: &str) -> Arc<Vec<u8>> {
    component("tests/fixtures/hostile-guest", &[behaviour])
}

/// The same WIT value as the other crate's generated type.
pub fn convert<T: serde::Serialize, U: serde::de::DeserializeOwned>(value: &T) -> U {
    serde_json::from_value(serde_json::to_value(value).expect("WIT values serialize"))
        .expect("both crates generate the same shape from the same WIT")
}
