//! Hostile and malformed components: each is stopped or refused with an error
//! that names the cause, and a good strategy runs normally right after.

use std::time::Duration;

use powerplug::books::{Books, GridNews};
use powerplug::strategy::{
    CallError, GridInput, GridStrategy, Limits, LoadError, Metering, Runtime, Usage,
};
use powerplug_tests::{basic_grid, hostile};

fn input() -> GridInput {
    Books::default().grid_input(
        60_000,
        &[],
        GridNews {
            usage: vec![Usage {
                consumer: 0,
                start_ms: 0,
                end_ms: 30_000,
                wh: 2_000,
            }],
            ..GridNews::default()
        },
    )
}

/// The good strategy still bills after whatever came before.
fn assert_good_strategy_works(runtime: &Runtime) {
    let grid = runtime.load_grid(&basic_grid()).unwrap();
    let outcome = grid
        .tick(&input())
        .expect("a good strategy runs after a hostile one");
    let requests: Vec<_> = outcome.decision.payment_requests.iter().collect();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].owed, 10);
}

fn hostile_grid(runtime: &Runtime, behaviour: &str) -> GridStrategy {
    runtime
        .load_grid(&hostile(behaviour))
        .expect("hostile guests are valid components")
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 50_000_000,
        deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let runtime = Runtime::new(limits, None).unwrap();
    let guest = hostile_grid(&runtime, "infinite-loop");
    // Twice: a trapped instance is never reused, so the second call fails the same way.
    for _ in 0..2 {
        assert_eq!(
            guest.tick(&input()).unwrap_err().error,
            CallError::OutOfFuel { budget: 50_000_000 }
        );
    }
    assert_good_strategy_works(&runtime);
}

#[test]
fn an_infinite_loop_hits_the_wall_clock_deadline() {
    let deadline = Duration::from_millis(100);
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline,
        ..Limits::default()
    };
    let runtime = Runtime::new(limits, None).unwrap();
    let guest = hostile_grid(&runtime, "infinite-loop");
    let started = std::time::Instant::now();
    assert_eq!(
        guest.tick(&input()).unwrap_err().error,
        CallError::Deadline { limit: deadline }
    );
    // Stopped by the deadline, not by anything slower (generous: CI machines stall).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_good_strategy_works(&runtime);
}

#[test]
fn without_fuel_the_deadline_stops_a_loop_and_a_good_tick_decides_the_same() {
    let deadline = Duration::from_millis(100);
    let epoch_only = Runtime::new(
        Limits {
            metering: Metering::Epoch,
            deadline,
            ..Limits::default()
        },
        None,
    )
    .unwrap();
    let guest = hostile_grid(&epoch_only, "infinite-loop");
    assert_eq!(
        guest.tick(&input()).unwrap_err().error,
        CallError::Deadline { limit: deadline }
    );
    let metered = Runtime::new(Limits::default(), None).unwrap();
    let (with_fuel, without) = (
        metered
            .load_grid(&basic_grid())
            .unwrap()
            .tick(&input())
            .unwrap(),
        epoch_only
            .load_grid(&basic_grid())
            .unwrap()
            .tick(&input())
            .unwrap(),
    );
    assert_eq!(with_fuel.decision, without.decision);
    assert!(with_fuel.fuel_used > 0);
    assert_eq!(without.fuel_used, 0, "not counted");
}

#[test]
fn unbounded_memory_growth_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let runtime = Runtime::new(limits, None).unwrap();
    let guest = hostile_grid(&runtime, "memory-bomb");
    assert_eq!(
        guest.tick(&input()).unwrap_err().error,
        CallError::MemoryLimit { limit: 32 << 20 }
    );
    assert_good_strategy_works(&runtime);
}

#[test]
fn a_panic_is_a_trap() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let guest = hostile_grid(&runtime, "panic");
    let err = guest.tick(&input()).unwrap_err().error;
    assert!(
        matches!(&err, CallError::Trap { message } if message.contains("unreachable")),
        "{err}"
    );
    assert_eq!(err.cause(), "trap");
    assert_good_strategy_works(&runtime);
}

#[test]
fn unbounded_recursion_is_a_trap() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let guest = hostile_grid(&runtime, "stack-overflow");
    let err = guest.tick(&input()).unwrap_err().error;
    assert_eq!(err.cause(), "trap", "{err}");
    assert_good_strategy_works(&runtime);
}

#[test]
fn a_100_mb_decision_is_refused() {
    // Default limits: the 100 MiB fits in memory but not in a decision.
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let guest = hostile_grid(&runtime, "huge-decision");
    let err = guest.tick(&input()).unwrap_err().error;
    assert_eq!(
        err,
        CallError::DecisionTooLarge {
            size: 100 << 20,
            limit: Limits::DEFAULT.decision_bytes
        }
    );
    assert_good_strategy_works(&runtime);
}

#[test]
fn a_batch_with_columns_of_different_lengths_is_refused() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let guest = hostile_grid(&runtime, "ragged-batch");
    let err = guest.tick(&input()).unwrap_err().error;
    assert!(
        matches!(&err, CallError::Malformed(m) if m.contains("payment-requests")),
        "{err}"
    );
    assert_good_strategy_works(&runtime);
}

#[test]
fn a_log_flood_is_capped() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let guest = hostile_grid(&runtime, "log-flood");
    let outcome = guest
        .tick(&input())
        .expect("logging a lot is allowed, keeping it is not");
    assert_eq!(outcome.logs.len(), Limits::DEFAULT.log_lines);
    assert_eq!(
        outcome.logs_dropped as usize,
        10_000 - Limits::DEFAULT.log_lines
    );
    assert!(
        outcome
            .logs
            .iter()
            .all(|l| l.message.len() <= Limits::DEFAULT.log_line_bytes + '…'.len_utf8())
    );
}

fn load_error(bytes: &[u8]) -> LoadError {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let err = runtime.load(bytes).err().expect("refused");
    assert_good_strategy_works(&runtime);
    err
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    assert!(matches!(
        load_error(b"#!/bin/sh\nrm -rf /\n"),
        LoadError::NotWasm
    ));
    assert!(matches!(load_error(b""), LoadError::NotWasm));
}

#[test]
fn a_core_module_is_refused() {
    let module = wat::parse_str("(module (func (export \"tick\")))").unwrap();
    assert!(matches!(load_error(&module), LoadError::CoreModule));
}

/// A component exporting an interface `name` with one function `tick: func()`.
fn component_exporting(name: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $api (export "tick" (func $f)))
            (export "{name}" (instance $api)))"#
    ))
    .unwrap()
}

#[test]
fn an_unknown_world_or_version_is_refused() {
    for name in ["powerplug:strategy/grid@0.9.0", "acme:billing/policy@1.0.0"] {
        match load_error(&component_exporting(name)) {
            LoadError::UnsupportedWorld { exports } => assert_eq!(exports, [name]),
            other => panic!("{name}: {other}"),
        }
    }
}

#[test]
fn the_right_name_with_the_wrong_shape_is_refused() {
    let err = load_error(&component_exporting("powerplug:strategy/grid@0.1.0"));
    assert!(
        matches!(&err, LoadError::Invalid(m) if m.contains("does not match the contract")),
        "{err}"
    );
}

#[test]
fn an_import_other_than_log_is_refused() {
    let wasi =
        wat::parse_str(r#"(component (import "wasi:cli/environment@0.2.0" (instance)))"#).unwrap();
    match load_error(&wasi) {
        LoadError::ForbiddenImport(name) => assert_eq!(name, "wasi:cli/environment@0.2.0"),
        other => panic!("{other}"),
    }
}

#[test]
fn a_producer_is_not_loaded_as_a_grid() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let err = runtime
        .load_grid(&powerplug_tests::basic_producer())
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "expected a grid strategy, this component is a producer strategy"
    );
}
