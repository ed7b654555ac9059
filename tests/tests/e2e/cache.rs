//! Compiled components are cached on disk: a second runtime (a restart) loads
//! them without compiling.

use powerplug::strategy::{Limits, Runtime};
use powerplug_tests::{basic_grid, basic_producer};

#[test]
fn a_restart_loads_from_the_cache_without_compiling() {
    let dir = tempfile::tempdir().unwrap();

    let first = Runtime::new(Limits::default(), Some(dir.path())).unwrap();
    first.load(&basic_grid()).unwrap();
    first.load(&basic_producer()).unwrap();
    assert_eq!(first.cache_stats().compiles, 2);
    assert_eq!(first.cache_stats().cache_hits, 0);

    let restarted = Runtime::new(Limits::default(), Some(dir.path())).unwrap();
    let grid = restarted.load_grid(&basic_grid()).unwrap();
    restarted.load_producer(&basic_producer()).unwrap();
    assert_eq!(
        restarted.cache_stats().compiles,
        0,
        "nothing is compiled after a restart"
    );
    assert_eq!(restarted.cache_stats().cache_hits, 2);

    // And what came from the cache runs.
    let input = powerplug::books::Books::default().grid_input(0, &[], Default::default());
    grid.tick(&input).unwrap();
}

#[test]
fn a_damaged_cache_entry_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    Runtime::new(Limits::default(), Some(dir.path()))
        .unwrap()
        .load(&basic_grid())
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(path, b"not a compiled component").unwrap();
        }
    }
    let runtime = Runtime::new(Limits::default(), Some(dir.path())).unwrap();
    runtime.load(&basic_grid()).unwrap();
    assert_eq!(runtime.cache_stats().compiles, 1);
    assert_eq!(runtime.cache_stats().cache_hits, 0);
    assert_eq!(runtime.cache_stats().cache_rejected, 1);
}
