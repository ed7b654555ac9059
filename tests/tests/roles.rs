//! The four roles trading over HTTP and channels in one process
//! (`powerplug demo`'s wiring): source → producer → grid output, consumer →
//! grid usage, payment requests on return channels, payments, payouts; and the
//! money adds up to the token.

use powerplug::demo::{self, DemoStorage, Options};
use powerplug_tests::strategy_files;

#[test]
fn sources_producers_grid_and_consumers_trade_and_money_adds_up() {
    trade_and_add_up(DemoStorage::Redb);
}

/// The same on PostgreSQL: every role's store a namespace of one database.
#[test]
fn on_postgres_they_trade_and_money_adds_up() {
    trade_and_add_up(DemoStorage::Postgres {
        url: powerplug_tests::postgres_url(),
        prefix: powerplug_tests::fresh_namespace("roles"),
    });
}

fn trade_and_add_up(storage: DemoStorage) {
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
        viewer_token: None,
        retention: Default::default(),
        storage,
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
        summary.producer_balances.iter().all(|(_, b)| b.get() > 0),
        "{:?}",
        summary.producer_balances
    );

    // Each producer saw its payouts arrive as transfers (up to its last tick).
    for (id, balance) in &summary.producer_balances {
        let at = options.storage.config(id);
        let db = powerplug::storage::open(&at, &options.data_dir.join(id)).unwrap();
        let counters = powerplug::storage::counters(&*db).unwrap();
        let received = counters.get("received").copied().unwrap_or(0);
        assert!(
            received > 0 && received <= balance.get(),
            "{id}: saw {received} of {balance}"
        );
        assert!(
            counters.get("source-wh").is_some_and(|wh| *wh > 0),
            "{id} took source output"
        );
    }
    options.storage.remove(&options).unwrap();
}

/// Every tick runs in a span naming the role, the books slot, the strategy
/// version, the tick's number, the fuel its strategy used and how long it
/// took; with `--log-format json` each event is one JSON line carrying it.
/// Every event of this test binary, as JSON lines with their thread: the
/// subscriber is the global default, installed once. (A scoped subscriber,
/// `with_default`, lost the tick's line about once in eight runs: tracing
/// caches per call site whether anyone listens, and a site first reached
/// while only a scoped subscriber is alive is cached by what the global
/// default, here none, wants.)
fn captured() -> &'static std::sync::Mutex<Vec<u8>> {
    use std::sync::{Mutex, OnceLock};
    static LINES: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct Writer(&'static Mutex<Vec<u8>>);
        impl std::io::Write for Writer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_thread_ids(true)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Writer(lines))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        lines
    })
}

#[test]
fn a_tick_logs_its_role_slot_number_strategy_fuel_and_duration() {
    let lines = captured();
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let grid = rt
        .block_on(powerplug::http::run::grid(&powerplug_tests::grid_config(
            dir.path(),
            grid_wasm,
            60_000,
        )))
        .unwrap();
    // Other tests and the scheduler log too: this tick is the one on this thread.
    let summary = grid.role.tick().unwrap();
    assert_eq!(summary.failed, None);
    let thread = format!("{:?}", std::thread::current().id());
    let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["fields"]["message"] == "tick" && l["threadId"] == thread.as_str())
        .unwrap_or_else(|| panic!("a line for the tick on {thread}: {text}"));
    let span = &line["span"];
    let sha = grid.role.strategy().info().sha256.short();
    assert_eq!(span["name"], "tick", "{line}");
    assert_eq!(span["role"], "grid", "{line}");
    assert_eq!(span["slot"], "grid", "{line}");
    assert_eq!(span["strategy"], sha, "{line}");
    assert_eq!(span["tick"], summary.tick, "{line}");
    assert!(span["fuel"].as_u64().is_some_and(|f| f > 0), "{line}");
    assert!(span["duration_us"].as_u64().is_some(), "{line}");
    rt.block_on(grid.stop()).unwrap();
}

/// `[strategy.limits]`: an operator who lowers a role's fuel gets ticks that
/// stop for fuel (the same strategy decides under the defaults, above).
#[test]
fn a_role_runs_its_strategy_under_the_limits_its_operator_set() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let mut config = powerplug_tests::grid_config(dir.path(), grid_wasm, 60_000);
    config.strategy.limits.fuel = 1_000;
    let grid = rt.block_on(powerplug::http::run::grid(&config)).unwrap();
    let summary = grid.role.tick().unwrap();
    let failed = summary.failed.unwrap_or_default();
    assert!(failed.contains("fuel"), "{failed}");
    rt.block_on(grid.stop()).unwrap();

    config.strategy.limits.memory_mib = 0;
    let refused = match rt.block_on(powerplug::http::run::grid(&config)) {
        Ok(_) => panic!("a role started with no memory for its strategy"),
        Err(e) => format!("{e:#}"),
    };
    assert!(refused.contains("strategy.limits.memory_mib"), "{refused}");
}

/// A grid on a demo's fast clock says in `/status` what time its strategy
/// sees, which is not the wall clock's (issue 20).
#[test]
fn status_shows_the_clock_the_strategy_sees() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let mut config = powerplug_tests::grid_config(dir.path(), grid_wasm, 60_000);
    let real = powerplug::domain::UnixMs::now().get();
    // Started an hour ago at 60× real time: the grid is 59 hours ahead.
    config.service.clock = powerplug::role::Clock {
        epoch_ms: real - 3_600_000,
        scale: 60,
    };
    let grid = rt.block_on(powerplug::http::run::grid(&config)).unwrap();
    let status = powerplug_tests::Client::new(&grid.url)
        .get("/status", None)
        .1;
    let clock = &status["clock"];
    assert_eq!(clock["scale"], 60, "{status}");
    let now = clock["now_ms"].as_u64().unwrap();
    assert!(now >= real + 59 * 3_600_000, "{clock}");
    assert!(now < real + 60 * 3_600_000, "{clock}");
    assert_eq!(
        clock["utc"],
        powerplug::domain::UnixMs(now).utc(),
        "{clock}"
    );
    rt.block_on(grid.stop()).unwrap();
}
