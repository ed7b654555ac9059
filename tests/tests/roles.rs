//! The four roles trading over HTTP and channels in one process
//! (`powerplug demo`'s wiring): source → producer → grid output, consumer →
//! grid usage, payment requests on return channels, payments, payouts; and the
//! money adds up to the token.

use powerplug::demo::{self, Options};
use powerplug_tests::strategy_files;

#[test]
fn sources_producers_grid_and_consumers_trade_and_money_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let (grid, producer) = strategy_files(dir.path());
    let options = Options {
        producers: 2,
        sources_per_producer: 2,
        consumers: 4,
        time_scale: 120,
        ticks: Some(60),
        duration: None,
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        grid_component: grid,
        producer_component: producer,
        consumer_funds: 10_000,
        seed: 3,
        operator_token: None,
    };
    let rt = powerplug_tests::runtime();
    let summary = rt.block_on(demo::run(&options, |_| {})).unwrap();
    println!("{summary}");
    for check in &summary.checks {
        assert!(check.holds, "{}: {}", check.name, check.detail);
    }
    let p = &summary.progress;
    assert_eq!(summary.failed_ticks, 0);
    assert_eq!(summary.messages_dropped, 0);
    assert!(
        p.generated_wh > 0 && p.reported_wh > 0,
        "output flowed: {p:?}"
    );
    assert!(
        p.reported_wh <= p.generated_wh,
        "a producer reports no more than its sources made"
    );
    assert!(
        summary.payment_requests > 0 && summary.consumer_payments > 0,
        "{summary:?}"
    );
    // Whole kWh are billed, 5 tokens each; what is left carries over (< 1 kWh per consumer).
    assert_eq!(p.billed_wh % 1000, 0);
    assert_eq!(p.requested, p.billed_wh / 1000 * 5);
    assert!(p.used_wh - p.billed_wh < 1000 * u64::from(options.consumers));
    assert!(p.paid_to_producers > 0, "producers were paid");
    assert!(
        summary.producer_balances.iter().all(|(_, b)| *b > 0),
        "{:?}",
        summary.producer_balances
    );

    // Each producer saw its payouts arrive as transfers (up to its last tick).
    for (id, balance) in &summary.producer_balances {
        let db =
            powerplug::storage::RedbStore::open(&options.data_dir.join(id).join("powerplug.redb"))
                .unwrap();
        let counters = powerplug::storage::counters(&db).unwrap();
        let received = counters.get("received").copied().unwrap_or(0);
        assert!(
            received > 0 && received <= *balance,
            "{id}: saw {received} of {balance}"
        );
        assert!(
            counters.get("source-wh").is_some_and(|wh| *wh > 0),
            "{id} took source output"
        );
    }
}
