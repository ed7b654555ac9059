//! The SDK's native test harness against the host it stands in for: the same
//! limits, and the basic strategies' decisions held to its rules over many
//! ticks of mixed traffic, money checked at every tick.

use basic_grid_strategy::{BasicGrid, ConsumerTotals};
use basic_producer_strategy::BasicProducer;
use powerplug_sdk::testing::{self, GridHarness, ProducerHarness};

#[test]
fn the_harness_holds_reports_to_the_hosts_limits() {
    assert_eq!(testing::MAX_WH, powerplug::strategy::MAX_WH);
    assert_eq!(testing::MAX_PRICE, powerplug::strategy::MAX_PRICE);
}

fn metric(d: &powerplug_sdk::grid::GridDecision, name: &str) -> u64 {
    let m = d.metrics.iter().find(|m| m.name == name);
    m.map_or_else(|| panic!("no metric {name}"), |m| m.value as u64)
}

#[test]
fn the_basic_grid_keeps_the_books_under_the_hosts_rules() {
    let mut grid = GridHarness::<BasicGrid>::new().setting("payout-interval-ms", "30000");
    let consumers: Vec<u32> = (0..7).map(|_| grid.consumer()).collect();
    let mut producers: Vec<u32> = (0..3).map(|_| grid.producer()).collect();
    let mut paid_out = 0;
    for t in 0..300u64 {
        for (i, &c) in consumers.iter().enumerate() {
            grid.usage(c, (t * 37 + i as u64 * 101) % 900);
        }
        for (i, &p) in producers.iter().enumerate() {
            grid.output(p, 50 + i as u64 * 70, 6);
        }
        if t == 150 {
            // A producer leaves while payouts to it are still being confirmed.
            grid.leave(producers.remove(1));
        }
        let d = grid.tick().unwrap_or_else(|e| panic!("tick {t}: {e}"));
        paid_out += d.payouts.iter().map(|p| p.amount).sum::<u64>();
        let books = grid.state().unwrap();
        assert_eq!(
            books.income,
            metric(&d, "running-costs-received") + paid_out + books.available,
            "tick {t}"
        );
        assert_eq!(grid.funds(), books.income - paid_out + pending(&d));
    }
    // Every consumer was billed whole kWh of what it used, and paid it.
    for &c in &consumers {
        let cell: ConsumerTotals = grid.cell(c);
        assert_eq!(cell.requested_wh, cell.usage_wh / 1000 * 1000);
        assert_eq!(cell.owed, cell.requested_wh / 1000 * 5);
    }
    assert!(paid_out > 0);
}

/// What the harness's consumers pay for this tick's bills: in its wallet
/// already, in the books at the next tick.
fn pending(d: &powerplug_sdk::grid::GridDecision) -> u64 {
    d.payment_requests.owed.iter().sum()
}

#[test]
fn the_basic_producer_never_reports_what_the_grid_refuses() {
    let mut producer = ProducerHarness::<BasicProducer>::new();
    let sources: Vec<u32> = (0..3).map(|_| producer.source()).collect();
    let mut reported = 0;
    for _ in 0..6 {
        // Three sources at the largest reading each: more than one report may claim.
        for &s in &sources {
            producer.output(s, testing::MAX_WH);
        }
        let d = producer.tick().unwrap();
        assert!(d.commands.iter().all(|c| c.wh <= testing::MAX_WH));
        reported += d.commands.iter().map(|c| c.wh).sum::<u64>();
    }
    assert!(reported > 0 && reported <= 18 * testing::MAX_WH);
}
