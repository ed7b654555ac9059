//! The basic producer strategy, loaded from its `.wasm`, against a hand-computed
//! scenario (slice boundaries, the 3-slice delay, the idle reset, the price), and
//! against the same code run natively through the SDK.

use basic_producer_strategy::{BasicProducer, ProducerState};
use powerplug::books::{Books, ProducerNews};
use powerplug::strategy::{Limits, ProducerDecision, Runtime, SourceOutput, Transfer};
use powerplug_tests::{basic_producer, convert};

const SLICE: u64 = 30_000;

/// `wh` from `source` during slice number `slice`.
fn out(source: u32, slice: u64, wh: u64) -> SourceOutput {
    SourceOutput {
        source,
        start_ms: slice * SLICE,
        end_ms: (slice + 1) * SLICE,
        wh,
    }
}

fn tick(
    strategy: &powerplug::strategy::ProducerStrategy,
    books: &mut Books,
    now: u64,
    news: ProducerNews,
) -> ProducerDecision {
    let input = books.producer_input(now, &[], news);
    let wasm = strategy
        .tick(&input)
        .unwrap_or_else(|e| panic!("tick at {now}: {e}"))
        .decision;
    let native =
        powerplug_sdk::producer::run::<BasicProducer>(convert(&input)).expect("native tick");
    assert_eq!(
        wasm,
        convert(&native),
        "WASM and native decisions differ at {now}"
    );
    books.apply_producer(&wasm);
    wasm
}

fn commands(d: &ProducerDecision) -> Vec<(u64, u64, u64, u64)> {
    d.commands
        .iter()
        .map(|c| (c.start_ms, c.end_ms, c.wh, c.price))
        .collect()
}

fn metric(d: &ProducerDecision, name: &str) -> i64 {
    d.metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn reports_slices_three_behind_prices_at_4_per_kwh_and_restarts_when_idle() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let producer = runtime.load_producer(&basic_producer()).unwrap();
    let mut books = Books::default();

    // Slice 100 begins: the clock starts. An entry belongs to the slice its
    // end falls in (as in the original): slice 98's entries to 99, slice 99's
    // to 100; they wait their turn. Slice 95's entry (its end in 96) is late:
    // the last finished slice is 99, and 99 − 3 = 96 has had its turn.
    let d = tick(
        &producer,
        &mut books,
        100 * SLICE,
        ProducerNews {
            outputs: vec![
                out(7, 98, 1_500),
                out(8, 98, 2_250),
                out(7, 99, 1_000),
                out(8, 95, 400),
            ],
            ..ProducerNews::default()
        },
    );
    assert_eq!(commands(&d), []);
    assert_eq!(metric(&d, "late-wh"), 400);

    // 104.17 slices: slices 100 to 103 have finished → the turns of 97 to 100:
    // 99 (both sources: 3,750 Wh → 15 tokens) and 100 (1,000 Wh → 4 tokens).
    // Nothing was reported before slice 103 finished: the original's window.
    let d = tick(
        &producer,
        &mut books,
        104 * SLICE + 5_000,
        ProducerNews {
            outputs: vec![out(7, 100, 2_001), out(7, 101, 500)],
            ..ProducerNews::default()
        },
    );
    assert_eq!(
        commands(&d),
        [
            (99 * SLICE, 100 * SLICE, 3_750, 15),
            (100 * SLICE, 101 * SLICE, 1_000, 4)
        ]
    );

    // Slice 104 finished → 101: 2,001 Wh is 8.004 tokens → 8, and 0.004 carries over.
    let d = tick(
        &producer,
        &mut books,
        105 * SLICE + 5_000,
        ProducerNews {
            transfers: vec![Transfer {
                entity: None,
                amount: 23,
                at_ms: 0,
                incoming: true,
            }],
            ..ProducerNews::default()
        },
    );
    assert_eq!(commands(&d), [(101 * SLICE, 102 * SLICE, 2_001, 8)]);
    assert_eq!(metric(&d, "received"), 23);

    // Six slices without a tick (more than 5): the clock restarts at 111 and
    // reports nothing; the 500 Wh of slice 102 can no longer be reported.
    let d = tick(
        &producer,
        &mut books,
        111 * SLICE + 5_000,
        ProducerNews::default(),
    );
    assert_eq!(commands(&d), []);
    assert_eq!(metric(&d, "late-wh"), 500);

    // Slice 111 finished → 108: 250 Wh is 1 token, plus the carried 0.004 → 1.004 → 1.
    let d = tick(
        &producer,
        &mut books,
        112 * SLICE,
        ProducerNews {
            outputs: vec![out(8, 107, 250)],
            ..ProducerNews::default()
        },
    );
    assert_eq!(commands(&d), [(108 * SLICE, 109 * SLICE, 250, 1)]);

    let state: ProducerState = powerplug_sdk::state::decode(&books.state).unwrap();
    assert_eq!(state.last_slice, Some(112));
    assert_eq!(state.price_remainder, 4);
    assert!(state.pending.is_empty());
}

/// Data up to about 90 s late still counts, as in the original: an entry of
/// slice 10 (it ends at 330 s) sent at 420 s is reported when slice 14 ends.
#[test]
fn an_entry_that_arrives_ninety_seconds_after_its_slice_still_counts() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let producer = runtime.load_producer(&basic_producer()).unwrap();
    let mut books = Books::default();
    tick(&producer, &mut books, 10 * SLICE, ProducerNews::default());
    for now in 11..14 {
        let d = tick(&producer, &mut books, now * SLICE, ProducerNews::default());
        assert_eq!(commands(&d), []);
    }
    let d = tick(
        &producer,
        &mut books,
        14 * SLICE,
        ProducerNews {
            outputs: vec![out(3, 10, 7_000), out(4, 11, 0)],
            ..ProducerNews::default()
        },
    );
    assert_eq!(commands(&d), []);
    assert_eq!(metric(&d, "late-wh"), 0);
    let d = tick(&producer, &mut books, 15 * SLICE, ProducerNews::default());
    assert_eq!(commands(&d), [(11 * SLICE, 12 * SLICE, 7_000, 28)]);
    // A slice whose sources produced nothing sends no command.
    let d = tick(&producer, &mut books, 16 * SLICE, ProducerNews::default());
    assert_eq!(commands(&d), []);
}

#[test]
fn five_idle_slices_are_still_caught_up() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let producer = runtime.load_producer(&basic_producer()).unwrap();
    let mut books = Books::default();
    tick(
        &producer,
        &mut books,
        10 * SLICE,
        ProducerNews {
            outputs: vec![
                out(0, 6, 1_000),
                out(0, 7, 2_000),
                out(0, 8, 3_000),
                out(0, 9, 4_000),
                out(0, 10, 5_000),
            ],
            ..ProducerNews::default()
        },
    );
    // Exactly 5 slices later: not idle *more* than 5, so the slices that
    // finished (10 to 14) report the turns of 6 to 10: every entry.
    let d = tick(&producer, &mut books, 15 * SLICE, ProducerNews::default());
    let wh: Vec<u64> = d.commands.iter().map(|c| c.wh).collect();
    assert_eq!(wh, [1_000, 2_000, 3_000, 4_000, 5_000]);
    assert_eq!(d.commands.iter().map(|c| c.price).sum::<u64>(), 60);
}

/// The producer comparison of issue 17 on seeded traces: 3 sources read every
/// slice, each reading arriving 0–150 s after its slice ended, the producer
/// ticking every minute as the roles do. Every Wh a source sent is either
/// reported to the grid or counted as `late-wh`, never both and never lost;
/// readings up to 90 s late (the original's three-slice window) are all
/// reported. (`--nocapture` prints the comparison the issue asked for.)
#[test]
fn every_wh_sent_is_reported_or_counted_late_on_seeded_traces() {
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let producer = runtime.load_producer(&basic_producer()).unwrap();
    const TICK: u64 = 2 * SLICE;
    for seed in 1..=5u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = |below: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % below
        };
        // (arrival ms, reading, delay ms)
        let mut readings: Vec<(u64, SourceOutput, u64)> = Vec::new();
        for slice in 100..300 {
            for source in 0..3 {
                let delay = next(151) * 1_000;
                let reading = out(source, slice, next(5_000));
                readings.push(((slice + 1) * SLICE + delay, reading, delay));
            }
        }
        readings.sort_by_key(|r| r.0);
        let mut books = Books::default();
        let (mut reported, mut late) = (0u64, 0i64);
        let mut now = 100 * SLICE;
        let mut pending = readings.iter().peekable();
        while now < 320 * SLICE {
            let mut outputs = Vec::new();
            while let Some((_, reading, _)) = pending.next_if(|r| r.0 <= now) {
                outputs.push(*reading);
            }
            let news = ProducerNews {
                outputs,
                ..ProducerNews::default()
            };
            let d = tick(&producer, &mut books, now, news);
            reported += d.commands.iter().map(|c| c.wh).sum::<u64>();
            late += metric(&d, "late-wh");
            now += TICK;
        }
        let sent: u64 = readings.iter().map(|r| r.1.wh).sum();
        let sent_after = |delay: u64| -> u64 {
            readings
                .iter()
                .filter(|r| r.2 > delay)
                .map(|r| r.1.wh)
                .sum()
        };
        let late = u64::try_from(late).unwrap();
        println!(
            "seed {seed}: sent {sent} Wh, reported {reported} ({:.1} %), late {late} ({:.1} %); \
             sent more than 90 s late {}, more than 120 s late {}",
            reported as f64 * 100.0 / sent as f64,
            late as f64 * 100.0 / sent as f64,
            sent_after(90_000),
            sent_after(120_000),
        );
        assert_eq!(
            reported + late,
            sent,
            "seed {seed}: nothing lost or doubled"
        );
        assert!(
            late <= sent_after(90_000),
            "seed {seed}: a reading up to 90 s late was dropped"
        );
    }
}
