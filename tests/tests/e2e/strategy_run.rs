//! `powerplug strategy run` (issue 20): an author's own ticks through the
//! built component, with the books carried, payouts confirmed, and the host's
//! validation and the check's rules applied to every decision.

use powerplug::check::run::{Ran, Tick, run};
use powerplug_tests::{basic_grid, basic_producer, cached_runtime, hostile};

fn ticks(json: &str) -> Vec<Tick> {
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_books_carry_from_tick_to_tick_and_payouts_come_back_confirmed() {
    let ran = run(
        cached_runtime(),
        &basic_grid(),
        &ticks(
            r#"[
              {"usage": [{"consumer": 0, "wh": 1500}], "output": [{"producer": 9, "wh": 4000, "price": 16}]},
              {"usage": [{"consumer": 0, "wh": 500}], "config": {"price-per-kwh": "7"}},
              {"now_ms": 1767226000000, "paid": [{"consumer": 0, "amount": 200}]},
              {"now_ms": 1767226100000}
            ]"#,
        ),
    )
    .unwrap();
    let Ran::Grid(reports) = &ran else {
        panic!("the basic grid is a grid strategy")
    };
    assert_eq!(ran.failed(), 0, "{reports:#?}");
    let requests = |t: usize| -> Vec<(u32, u64, u64)> {
        let d = reports[t].decision.as_ref().unwrap();
        d.payment_requests
            .iter()
            .map(|r| (r.consumer, r.wh, r.owed))
            .collect()
    };
    // 1 kWh of 1,500 Wh at 5; then the 500 Wh carried in its cell and 500
    // more make another, at the price set from tick 2 on.
    assert_eq!(requests(0), [(0, 1_000, 5)]);
    assert_eq!(requests(1), [(0, 1_000, 7)]);
    // Ticks without a time come a minute apart from 2026-01-01T00:00Z.
    assert_eq!(reports[1].now_ms, 1_767_225_660_000);
    // 200 paid: at 7 a kWh, 4 of every 7 tokens are the producers' (114),
    // paid out in multiples of 40.
    let payouts = &reports[2].decision.as_ref().unwrap().payouts;
    assert_eq!(payouts.len(), 1, "{:?}", reports[2]);
    assert_eq!((payouts[0].producer, payouts[0].amount), (9, 80));
    assert!(reports[2].fuel > 0);
}

#[test]
fn a_report_above_one_gwh_is_capped_a_failure_shows_live_and_a_broken_rule_is_named() {
    // Each source is within the host's limit; their sum in one slice is not:
    // the basic producer reports the 1 GWh a command may claim, and counts the rest.
    let ran = run(
        cached_runtime(),
        &basic_producer(),
        &ticks(
            r#"[
              {"now_ms": 3000000},
              {"now_ms": 3030000, "sources": [
                {"source": 1, "wh": 600000000, "start_ms": 3000000, "end_ms": 3030000},
                {"source": 2, "wh": 600000000, "start_ms": 3000000, "end_ms": 3030000}]},
              {"now_ms": 3060000}, {"now_ms": 3090000}, {"now_ms": 3120000}, {"now_ms": 3150000},
              {"now_ms": 3180000}, {"now_ms": 3210000}, {"now_ms": 3240000}
            ]"#,
        ),
    )
    .unwrap();
    let Ran::Producer(reports) = &ran else {
        panic!("the basic producer is a producer strategy")
    };
    assert_eq!(ran.failed(), 0, "{reports:#?}");
    let reported: Vec<(u64, i64)> = reports
        .iter()
        .filter_map(|t| t.decision.as_ref())
        .filter(|d| !d.commands.is_empty())
        .map(|d| {
            let over = d.metrics.iter().find(|m| m.name == "over-limit-wh");
            (d.commands[0].wh, over.map_or(0, |m| m.value))
        })
        .collect();
    assert_eq!(reported, [(1_000_000_000, 200_000_000)], "{reports:#?}");

    // A decision the host refuses fails live: nothing of it applies.
    let ran = run(
        cached_runtime(),
        &hostile("ragged-batch"),
        &ticks(r#"[{}, {"usage": [{"consumer": 0, "wh": 5}]}]"#),
    )
    .unwrap();
    let Ran::Grid(reports) = &ran else { panic!() };
    assert_eq!(ran.failed(), 2, "{reports:#?}");
    assert!(reports[0].decision.is_none());
    assert!(
        reports[0]
            .failure
            .as_deref()
            .unwrap_or_default()
            .contains("malformed"),
        "{reports:#?}"
    );

    // A decision the host would carry out but `check` flags: billing more Wh than used.
    let ran = run(
        cached_runtime(),
        &hostile("overbill"),
        &ticks(r#"[{"usage": [{"consumer": 3, "wh": 200}]}]"#),
    )
    .unwrap();
    let Ran::Grid(reports) = &ran else { panic!() };
    assert!(
        reports[0].problems.iter().any(|p| p.contains("billed for")),
        "{reports:#?}"
    );
}

#[test]
fn a_ticks_file_with_a_mistake_names_it() {
    let err = serde_json::from_str::<Vec<Tick>>(r#"[{"usage": [{"consumer": 0, "kwh": 1}]}]"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `kwh`"), "{err}");
    // Time must move forward.
    let err = run(
        cached_runtime(),
        &basic_grid(),
        &ticks(r#"[{"now_ms": 2000000}, {"now_ms": 1000000}]"#),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tick 2: now_ms 1000000"), "{err}");
}

/// `strategy check FILE --ticks T.json`: a ticks file is a scenario of one's
/// own, after the canned ones, and the check fails on a tick that breaks a rule.
#[test]
fn a_ticks_file_is_a_scenario_of_ones_own_for_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("evening.json");
    std::fs::write(
        &file,
        r#"[{"usage": [{"consumer": 3, "wh": 2200}]}, {"paid": [{"consumer": 3, "amount": 10}]}]"#,
    )
    .unwrap();
    let (text, failed) =
        powerplug::check::run::scenario(cached_runtime(), &basic_grid(), &file).unwrap();
    assert_eq!(failed, 0, "{text}");
    assert!(
        text.ends_with("2 ticks, every one kept the rules"),
        "{text}"
    );

    let (text, failed) =
        powerplug::check::run::scenario(cached_runtime(), &hostile("overbill"), &file).unwrap();
    assert_eq!(failed, 1, "{text}");
    assert!(text.contains("1 would fail live or break a rule"), "{text}");
    assert!(text.contains("billed for"), "{text}");

    // Through the command line: the check fails and names the scenario.
    let wasm = dir.path().join("overbill.wasm");
    std::fs::write(&wasm, hostile("overbill").as_slice()).unwrap();
    let err = powerplug::check::cli(
        &wasm,
        &dir.path().join("cache"),
        0,
        std::slice::from_ref(&file),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("evening.json"), "{err}");
}
