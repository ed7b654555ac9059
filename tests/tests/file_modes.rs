//! Issue 11, finding 9: what a host writes is readable by its own user alone,
//! whatever the umask. Its own test binary: it sets the process's umask to 0.

use powerplug::domain::EntityKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use powerplug::http::run;
use powerplug::role::config::MetersConfig;
use powerplug_tests::{Client, eventually, grid_config, meters_config, strategy_files};

fn everything_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(everything_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn files_and_directories_a_host_writes_are_its_users_alone_whatever_the_umask() {
    // SAFETY: umask cannot fail; this binary holds this one test.
    unsafe { libc::umask(0) };
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let mut config = grid_config(dir.path(), grid_wasm, 20);
    // The default cache, in the data directory: the grid compiles into it.
    config.strategy.cache_dir = None;
    let clock = powerplug::role::Clock {
        epoch_ms: powerplug::role::unix_ms(),
        scale: 600,
    };
    config.service.clock = clock;
    let grid = rt.block_on(run::grid(&config)).unwrap();

    let mut consumers = meters_config(
        MetersConfig::consumers(),
        dir.path().join("deep/er/consumers"),
        &grid.url,
        clock,
    );
    consumers.count = 2;
    consumers.meter = powerplug::role::MeterConfig::Fixed { wh: 1_000 };
    let meters = rt
        .block_on(run::meters(&consumers, EntityKind::Consumer))
        .unwrap();
    let client = Client::new(&grid.url);
    eventually("the consumers are billed", || {
        client.get("/status", None).1["totals"]["payment-requests"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    });
    rt.block_on(meters.stop()).unwrap();
    rt.block_on(grid.stop()).unwrap();

    let written: Vec<PathBuf> = everything_under(&dir.path().join("grid"))
        .into_iter()
        .chain(everything_under(&dir.path().join("deep")))
        .collect();
    let names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    // The objects: the configured component, by its hash.
    for expected in [
        "powerplug.redb",
        "cache",
        "cache.key",
        "objects",
        "components",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.ends_with(".cwasm")), "{names:?}");
    for path in &written {
        let mode = std::fs::metadata(path).unwrap().mode() & 0o777;
        assert_eq!(
            mode & 0o077,
            0,
            "{} is {mode:o}: group or others can reach it",
            path.display()
        );
    }
}
