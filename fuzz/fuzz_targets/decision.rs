//! A strategy's decision, as the host checks it (`strategy::validate`) before
//! applying anything. A decision the check lets through must be one the host
//! can carry out: its batches rectangular, and every total the host adds up
//! from it (owed, billed, paid out, reported, asked) within a u64, since the
//! host adds them without further checks.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use powerplug::inbox::{MAX_PRICE, MAX_WH};
use powerplug::strategy::{
    CellBatch, GridDecision, Limits, Metric, OutputCommand, PaymentRequestBatch, Payout,
    ProducerDecision, validate,
};

#[derive(Arbitrary, Debug)]
struct Cells {
    entity: Vec<u32>,
    words: Vec<u64>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Grid {
        state: Vec<u8>,
        cells: Cells,
        consumer: Vec<u32>,
        wh: Vec<u64>,
        owed: Vec<u64>,
        payouts: Vec<(u32, u64)>,
        metrics: Vec<(String, i64)>,
    },
    Producer {
        state: Vec<u8>,
        cells: Cells,
        commands: Vec<(u64, u64, u64, u64)>,
        metrics: Vec<(String, i64)>,
    },
}

fn cells(c: Cells) -> CellBatch {
    CellBatch {
        entity: c.entity,
        words: c.words,
    }
}

fn metrics(m: Vec<(String, i64)>) -> Vec<Metric> {
    m.into_iter()
        .map(|(name, value)| Metric { name, value })
        .collect()
}

fn sum(values: impl Iterator<Item = u64>) -> Option<u64> {
    values.fold(Some(0u64), |acc, v| acc?.checked_add(v))
}

fuzz_target!(|input: Input| {
    // Small limits, so that the size check is reached too.
    let limits = Limits {
        decision_bytes: 4096,
        ..Limits::DEFAULT
    };
    match input {
        Input::Grid {
            state,
            cells: c,
            consumer,
            wh,
            owed,
            payouts,
            metrics: m,
        } => {
            let d = GridDecision {
                state,
                cells: cells(c),
                payment_requests: PaymentRequestBatch { consumer, wh, owed },
                payouts: payouts
                    .into_iter()
                    .map(|(producer, amount)| Payout { producer, amount })
                    .collect(),
                metrics: metrics(m),
            };
            if validate(&d, &limits).is_err() {
                return;
            }
            assert_eq!(d.cells.iter().count(), d.cells.len());
            assert_eq!(d.payment_requests.iter().count(), d.payment_requests.len());
            assert!(
                sum(d.payment_requests.iter().map(|r| r.owed)).is_some(),
                "owed"
            );
            assert!(
                sum(d.payment_requests.iter().map(|r| r.wh)).is_some(),
                "billed Wh"
            );
            assert!(
                sum(d.payouts.iter().map(|p| p.amount)).is_some(),
                "paid out"
            );
        }
        Input::Producer {
            state,
            cells: c,
            commands,
            metrics: m,
        } => {
            let d = ProducerDecision {
                state,
                cells: cells(c),
                commands: commands
                    .into_iter()
                    .map(|(start_ms, end_ms, wh, price)| OutputCommand {
                        start_ms,
                        end_ms,
                        wh,
                        price,
                    })
                    .collect(),
                metrics: metrics(m),
            };
            if validate(&d, &limits).is_err() {
                return;
            }
            assert_eq!(d.cells.iter().count(), d.cells.len());
            // What the grid's inbox accepts of an output report.
            for c in &d.commands {
                assert!(
                    c.start_ms < c.end_ms && c.wh <= MAX_WH && c.price <= MAX_PRICE,
                    "an output the grid refuses passed the check: {c:?}"
                );
            }
            assert!(
                sum(d.commands.iter().map(|c| c.wh)).is_some(),
                "reported Wh"
            );
            assert!(sum(d.commands.iter().map(|c| c.price)).is_some(), "asked");
        }
    }
});
