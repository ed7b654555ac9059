//! The basic grid strategy, loaded from its `.wasm`, against a hand-computed
//! scenario, and against the same code run natively through the SDK.

use basic_grid_strategy::BasicGrid;
use powerplug::books::{Books, GridNews};
use powerplug::strategy::{GridDecision, GridInput, Limits, Output, Runtime, Transfer, Usage};
use powerplug_tests::{basic_grid, convert};

const C0: u32 = 0;
const C1: u32 = 1;
const P2: u32 = 2;
const P3: u32 = 3;
const P4: u32 = 4;

fn usage(consumer: u32, wh: u64) -> Usage {
    Usage {
        consumer,
        start_ms: 0,
        end_ms: 30_000,
        wh,
    }
}

fn output(producer: u32, wh: u64) -> Output {
    Output {
        producer,
        start_ms: 0,
        end_ms: 30_000,
        wh,
        price: wh * 4 / 1000,
    }
}

fn paid(entity: Option<u32>, amount: u64) -> Transfer {
    Transfer {
        entity,
        amount,
        at_ms: 0,
        incoming: true,
    }
}

fn confirmed(producer: u32, amount: u64) -> Transfer {
    Transfer {
        entity: Some(producer),
        amount,
        at_ms: 0,
        incoming: false,
    }
}

/// Runs one tick on WASM and natively; they must agree exactly.
fn tick(
    strategy: &powerplug::strategy::GridStrategy,
    books: &mut Books,
    now: u64,
    news: GridNews,
) -> GridDecision {
    let input: GridInput = books.grid_input(now, &[], news);
    let wasm = strategy
        .tick(&input)
        .unwrap_or_else(|e| panic!("tick at {now}: {e}"))
        .decision;
    let native = powerplug_sdk::grid::run::<BasicGrid>(convert(&input)).expect("native tick");
    assert_eq!(
        wasm,
        convert(&native),
        "WASM and native decisions differ at {now}"
    );
    books.apply_grid(&wasm);
    wasm
}

fn requests(d: &GridDecision) -> Vec<(u32, u64, u64)> {
    d.payment_requests
        .iter()
        .map(|r| (r.consumer, r.wh, r.owed))
        .collect()
}

fn payouts(d: &GridDecision) -> Vec<(u32, u64)> {
    d.payouts.iter().map(|p| (p.producer, p.amount)).collect()
}

fn metric(d: &GridDecision, name: &str) -> i64 {
    d.metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn bills_whole_kwh_splits_income_and_pays_producers_in_multiples_of_40() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let grid = runtime.load_grid(&basic_grid()).unwrap();
    let mut books = Books::default();

    // t=10s: 12.3 kWh → 12 whole kWh billed at 5 (300 Wh carried); 0.7 kWh → nothing.
    // The first payout round comes due but nothing is available yet.
    let d = tick(
        &grid,
        &mut books,
        10_000,
        GridNews {
            usage: vec![usage(C0, 12_300), usage(C1, 700)],
            output: vec![output(P2, 5_000), output(P3, 3_000), output(P4, 1_000)],
            ..GridNews::default()
        },
    );
    assert_eq!(requests(&d), [(C0, 12_000, 60)]);
    assert_eq!(payouts(&d), []);
    assert_eq!(books.cells[&C0], [12_300, 12_000, 60, 0]);
    assert_eq!(books.cells[&C1], [700, 0, 0, 0]);

    // t=15s: the carried 300 Wh + 800 → 1 kWh; 0.7 + 1.45 → 2 kWh (150 carried).
    // C0 pays 60: 4/5 (48) becomes available to producers. No payout: 5 s since the last round.
    let d = tick(
        &grid,
        &mut books,
        15_000,
        GridNews {
            usage: vec![usage(C0, 800), usage(C1, 1_450)],
            transfers: vec![paid(Some(C0), 60)],
            ..GridNews::default()
        },
    );
    assert_eq!(requests(&d), [(C0, 1_000, 5), (C1, 2_000, 10)]);
    assert_eq!(payouts(&d), []);
    assert_eq!(metric(&d, "available"), 48);
    assert_eq!(metric(&d, "running-costs-received"), 12);
    assert_eq!(books.cells[&C0], [13_100, 13_000, 65, 60]);
    assert_eq!(books.cells[&C1], [2_150, 2_000, 10, 0]);

    // t=20s: C1 pays 10 and an unidentified payer 7: income 77, producers' part
    // floor(77·4/5) = 61. Payout round: floor(61/40)·40 = 40 split by lifetime output
    // 5000:5000:1000 → 18, 18, 3; the floors leave 1, so 61 − 39 = 22 stays available.
    let d = tick(
        &grid,
        &mut books,
        20_000,
        GridNews {
            output: vec![output(P3, 2_000)],
            transfers: vec![paid(Some(C1), 10), paid(None, 7)],
            ..GridNews::default()
        },
    );
    assert_eq!(requests(&d), []);
    assert_eq!(payouts(&d), [(P2, 18), (P3, 18), (P4, 3)]);
    assert_eq!(metric(&d, "income"), 17);
    assert_eq!(metric(&d, "paid-out"), 39);
    assert_eq!(metric(&d, "available"), 22);
    assert_eq!(metric(&d, "running-costs-received"), 16);
    assert_eq!(books.cells[&C1], [2_150, 2_000, 10, 10]);

    // t=25s: the payouts are confirmed; C0 pays 5: floor(82·4/5) − 61 = 4 more available.
    let d = tick(
        &grid,
        &mut books,
        25_000,
        GridNews {
            transfers: vec![
                confirmed(P2, 18),
                confirmed(P3, 18),
                confirmed(P4, 3),
                paid(Some(C0), 5),
            ],
            ..GridNews::default()
        },
    );
    assert_eq!(payouts(&d), []);
    assert_eq!(metric(&d, "available"), 26);

    // t=30s: a round is due, but 26 < 40: nothing is paid and all 26 stay.
    let d = tick(&grid, &mut books, 30_000, GridNews::default());
    assert_eq!(payouts(&d), []);
    assert_eq!(metric(&d, "available"), 26);

    // Every token that came in is accounted for: running costs + available + paid out.
    assert_eq!(17 + 26 + 39, 60 + 10 + 7 + 5);

    // The state the host kept is the strategy's own: decode and check the producers.
    let state: basic_grid_strategy::GridState = powerplug_sdk::state::decode(&books.state).unwrap();
    let totals: Vec<_> = state
        .producers
        .iter()
        .map(|p| (p.index, p.output_wh, p.owed, p.received))
        .collect();
    assert_eq!(
        totals,
        [(P2, 5_000, 18, 18), (P3, 5_000, 18, 18), (P4, 1_000, 3, 3)]
    );
    assert_eq!(state.income, 82);
    assert_eq!(state.running_costs_requested, 12 + 3);
}

#[test]
fn a_departed_producer_gets_no_further_share() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let grid = runtime.load_grid(&basic_grid()).unwrap();
    let mut books = Books::default();
    tick(
        &grid,
        &mut books,
        1_000,
        GridNews {
            output: vec![output(P2, 1_000), output(P3, 1_000)],
            transfers: vec![paid(Some(C0), 100)],
            ..GridNews::default()
        },
    );
    // 100 in → 80 available → paid at t=10s as 40 + 40 to two equal producers.
    let d = tick(&grid, &mut books, 11_000, GridNews::default());
    assert_eq!(payouts(&d), [(P2, 40), (P3, 40)]);
    let d = tick(
        &grid,
        &mut books,
        12_000,
        GridNews {
            left: vec![P3],
            transfers: vec![paid(Some(C0), 50)],
            ..GridNews::default()
        },
    );
    assert_eq!(payouts(&d), []);
    // Its payout's confirmation arrives after it left: it stays gone (no
    // ghost with no output and money received).
    tick(
        &grid,
        &mut books,
        13_000,
        GridNews {
            transfers: vec![confirmed(P2, 40), confirmed(P3, 40)],
            ..GridNews::default()
        },
    );
    let state: basic_grid_strategy::GridState = powerplug_sdk::state::decode(&books.state).unwrap();
    let producers: Vec<_> = state
        .producers
        .iter()
        .map(|p| (p.index, p.output_wh, p.received))
        .collect();
    assert_eq!(producers, [(P2, 1_000, 40)]);
    let d = tick(&grid, &mut books, 22_000, GridNews::default());
    assert_eq!(payouts(&d), [(P2, 40)]);
}

#[test]
fn a_bad_setting_is_refused_with_its_name() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let grid = runtime.load_grid(&basic_grid()).unwrap();
    let config = [powerplug::strategy::Setting {
        key: "price-per-kwh".into(),
        value: "five".into(),
    }];
    let input = Books::default().grid_input(0, &config, GridNews::default());
    let err = grid.tick(&input).unwrap_err().error;
    assert!(
        matches!(&err, powerplug::strategy::CallError::Refused(m) if m.contains("price-per-kwh")),
        "{err}"
    );
}

#[test]
fn an_overflow_refuses_the_tick_and_says_where() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let grid = runtime.load_grid(&basic_grid()).unwrap();
    let mut books = Books::default();
    tick(
        &grid,
        &mut books,
        1_000,
        GridNews {
            usage: vec![usage(C0, 1_000)],
            ..GridNews::default()
        },
    );
    // Money arithmetic never wraps: u64::MAX more Wh overflows the consumer's total.
    let input = books.grid_input(
        2_000,
        &[],
        GridNews {
            usage: vec![usage(C0, u64::MAX)],
            ..GridNews::default()
        },
    );
    let failure = grid.tick(&input).unwrap_err();
    assert_eq!(failure.error.cause(), "trap");
    assert!(failure.to_string().contains("overflow"), "{failure}");
    assert!(
        failure
            .logs
            .iter()
            .any(|l| l.message.contains("basic-grid-strategy/src/lib.rs")),
        "{:?}",
        failure.logs
    );
}
