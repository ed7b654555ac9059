//! Whose books a version gets (issue 18) and what a rollback brings back
//! (issue 19, item 2), over HTTP on running grids: the live books go only to
//! a version of the same declared format; the host refuses, on every tick, a
//! decision that bills a consumer for more Wh than it reported, and rolls the
//! version back; an upload whose dry run bills beyond what was used waits for
//! `force`; a rollback across formats restores the books the version had,
//! carried forward by what happened since; experiment variants of another
//! format run on books of their own.

use std::path::Path;

use powerplug::books::{BookSource, StoredBooks, load_all};
use powerplug::http::run;
use powerplug::role::grid::invariants;
use powerplug::scaffold::{Lang, create};
use powerplug::tick_log::{self, Outcome};
use powerplug_tests::{
    Client, Meter, OPERATOR, component, eventually, grid_config, hostile, strategy_files,
    workspace_root,
};
use serde_json::json;

fn total(client: &Client, name: &str) -> u64 {
    client.get("/status", None).1["totals"][name]
        .as_u64()
        .unwrap_or(0)
}

fn metric(client: &Client, name: &str) -> Option<i64> {
    client.get("/status", None).1["metrics"][name].as_i64()
}

/// `consumer`'s cell in the grid's own books.
fn cell(grid: &run::Running<powerplug::role::grid::Grid>, consumer: &str) -> [u64; 4] {
    let db = grid.role.db();
    let index = powerplug::registry::get(db, consumer)
        .unwrap()
        .unwrap()
        .index;
    let read = db.read().unwrap();
    StoredBooks::new(&*read, "grid").cell(index).unwrap()
}

/// Waits until `n` more ticks have run.
fn ticks(client: &Client, n: u64) {
    let from = total(client, "ticks");
    eventually("ticks run", || total(client, "ticks") >= from + n);
}

#[test]
fn basic_to_premium_to_basic_keeps_the_books() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let rt = powerplug_tests::runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 20)))
        .unwrap();
    let client = Client::new(&grid.url);
    let mut meter = Meter::register(&grid.url, "c", 31);
    let basic = grid.role.strategy().info().sha256.hex();

    // 1,500 Wh: 1 kWh billed at 5, 500 Wh carried in the basic books.
    meter.read_wh(1_500);
    eventually("billed", || total(&client, "requested") == 5);

    let (status, swapped) = client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&premium));
    assert_eq!(status, 201, "{swapped}");
    assert_eq!(swapped["activated"], true, "{swapped}");
    assert_eq!(swapped["books"]["books"], "live", "{swapped}");
    assert_eq!(swapped["books"]["format"], "basic-grid@1");
    assert_eq!(swapped["books"]["live_format"], "basic-grid@1");
    // Premium bills the carried 500 Wh with the next 1,500: 2 kWh at 7.
    meter.read_wh(1_500);
    eventually("premium bills", || total(&client, "requested") == 5 + 14);

    let (status, back) = client.call(
        "POST",
        &format!("/strategies/grid/activate/{basic}"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["books"]["books"], "live", "{back}");
    meter.read_wh(1_000);
    eventually("basic bills again", || {
        total(&client, "requested") == 5 + 14 + 5
    });
    assert_eq!(total(&client, "billed-wh"), 4_000);
    assert_eq!(total(&client, "usage-wh"), 4_000);
    assert_eq!(cell(&grid, "c"), [4_000, 4_000, 24, 0]);
    rt.block_on(grid.stop()).unwrap();
}

/// A strategy that bills each reading a kWh beyond it: its dry run on the
/// recent ticks is refused and it is only stored; forced live, every tick it
/// bills is refused by the host's invariant, and after three it is rolled back.
#[test]
fn a_version_billing_more_than_was_used_waits_for_force_then_is_refused_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let mut config = grid_config(dir.path(), grid_wasm, 20);
    // This grid ticks every few ms: the dry run replays its whole log.
    config.strategy.dry_run_ticks = 100_000;
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let mut meter = Meter::register(&grid.url, "c", 32);
    let basic = grid.role.strategy().info().sha256.hex();
    meter.read();
    eventually("billed", || total(&client, "requested") == 5);

    let overbill = hostile("overbill");
    let (status, kept) = client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&overbill));
    assert_eq!(status, 201, "{kept}");
    assert_eq!(kept["activated"], false, "{kept}");
    assert!(
        kept["waiting"].as_str().unwrap().contains("--force"),
        "{kept}"
    );
    let history = &kept["dry_run"]["history"];
    assert!(
        history["refused"][0]
            .as_str()
            .unwrap()
            .contains("more Wh than they reported"),
        "{history}"
    );
    let row = &history["consumers"][0];
    assert_eq!(
        (
            row["id"].as_str(),
            row["live_wh"].as_u64(),
            row["candidate_wh"].as_u64()
        ),
        (Some("c"), Some(1_000), Some(2_000)),
        "{history}"
    );
    assert_eq!(
        grid.role.strategy().info().sha256.hex(),
        basic,
        "still basic"
    );
    let sha = kept["version"]["sha256"].as_str().unwrap().to_owned();

    let (status, forced) = client.call(
        "POST",
        &format!("/strategies/grid/activate/{sha}?force=true"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(status, 200, "{forced}");
    assert_eq!(forced["activated"], true, "{forced}");
    assert_eq!(forced["books"]["books"], "empty", "{forced}");

    meter.read();
    eventually("basic is back and bills the reading once", || {
        total(&client, "requested") == 10
    });
    assert_eq!(grid.role.strategy().info().sha256.hex(), basic);
    let failures: Vec<String> = tick_log::grid_ticks(grid.role.db(), "grid", 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|r| r.strategy.hex() == sha)
        .filter_map(|r| match r.outcome {
            Outcome::Failed(why) => Some(why),
            Outcome::Decided(d) => {
                assert!(d.payment_requests.consumer.is_empty(), "nothing billed");
                None
            }
        })
        .collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    let index = powerplug::registry::get(grid.role.db(), "c")
        .unwrap()
        .unwrap()
        .index;
    for why in &failures {
        // Nothing of a refused tick applies: each of the three says the same.
        assert!(
            why.contains(&format!("invariant: consumer c (index {index}) would have been billed 3000 Wh in all, more than the 2000 Wh it reported (this tick: 2000 Wh for 5 tokens)")),
            "{why}"
        );
    }
    let rollback = &client.get("/status", None).1["strategy"]["last_rollback"];
    assert!(
        rollback["why"].as_str().unwrap().contains("invariant"),
        "{rollback}"
    );
    assert_eq!(total(&client, "billed-wh"), 2_000);
    assert_eq!(total(&client, "usage-wh"), 2_000);
    let read = grid.role.db().read().unwrap();
    assert_eq!(invariants::energy(&*read, index).unwrap(), (2_000, 2_000));
    drop(read);
    rt.block_on(grid.stop()).unwrap();
}

/// Issue 19, item 2: a version of another format goes live, takes a payment,
/// then fails on usage and is rolled back. The basic strategy comes back with
/// the books it had, carried forward through the payment; its running totals
/// and the consumer's cell equal those of a grid that never swapped.
#[test]
fn a_rollback_across_formats_restores_the_books_carried_forward() {
    let rt = powerplug_tests::runtime();
    let run_grid = |dir: &Path, swap: bool| {
        let (grid_wasm, _) = strategy_files(dir);
        let mut config = grid_config(dir, grid_wasm, 20);
        // The failing version passes a dry run of the last (idle) tick.
        config.strategy.dry_run_ticks = 1;
        let grid = rt.block_on(run::grid(&config)).unwrap();
        let client = Client::new(&grid.url);
        let mut meter = Meter::register(&grid.url, "c", 33);
        meter.read_wh(1_500);
        meter.pay(5, 1);
        eventually("billed and paid", || cell(&grid, "c")[3] == 5);
        ticks(&client, 2);
        if swap {
            let flaky = hostile("fail-on-usage");
            let (status, swapped) =
                client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&flaky));
            assert_eq!(status, 201, "{swapped}");
            assert_eq!(swapped["books"]["books"], "empty", "{swapped}");
        }
        // Paid while the other version is live: its ticks take the payment.
        meter.pay(8, 2);
        eventually("the payment is consumed", || total(&client, "income") == 13);
        ticks(&client, 2);
        meter.read_wh(1_500);
        eventually("the second reading is billed", || {
            total(&client, "requested") == 15
        });
        let status = client.get("/status", None).1;
        let answer = (
            cell(&grid, "c"),
            metric(&client, "available"),
            metric(&client, "running-costs-received"),
            status["strategy"]["last_rollback"]["why"].clone(),
        );
        rt.block_on(grid.stop()).unwrap();
        answer
    };
    let (never, swapped) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let never = run_grid(never.path(), false);
    let swapped = run_grid(swapped.path(), true);
    assert_eq!(never.0, [3_000, 3_000, 15, 13]);
    assert_eq!(swapped.0, never.0, "the consumer's cell");
    // 13 in: 10 for the producers (4/5, rounded down), 3 running costs.
    assert_eq!((never.1, never.2), (Some(10), Some(3)));
    assert_eq!((swapped.1, swapped.2), (never.1, never.2), "running totals");
    assert!(
        swapped.3.as_str().unwrap().contains("automatic rollback"),
        "{}",
        swapped.3
    );
}

/// An experiment of the basic strategy against a version of another format
/// (a `strategy new --lang rust` project): the variant's cohort is billed on
/// books of its own, from empty, never on a copy of the basic books.
#[test]
fn an_experiment_with_variants_of_two_formats_runs_each_on_its_own_books() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("flat");
    create(Lang::Rust, &project, &workspace_root()).unwrap();
    let target = workspace_root().join("target/guests");
    let flat = powerplug::component::build(&powerplug::component::Build {
        target_dir: Some(&target),
        ..powerplug::component::Build::new(&project)
    })
    .unwrap();
    assert_eq!(
        powerplug::strategy::inspect(&flat)
            .unwrap()
            .books
            .as_deref(),
        Some("flat@1")
    );

    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 20)))
        .unwrap();
    let client = Client::new(&grid.url);
    let ids = ["a", "b", "c", "d", "e", "f"];
    let mut meters: Vec<Meter> = ids
        .iter()
        .zip(40..)
        .map(|(id, seed)| Meter::register(&grid.url, id, seed))
        .collect();
    for m in &mut meters {
        m.read_wh(1_500);
    }
    eventually("everyone billed", || total(&client, "requested") == 30);

    let (status, kept) = client.call(
        "PUT",
        "/strategies/grid?activate=false&name=flat",
        Some(OPERATOR),
        Some(&flat),
    );
    assert_eq!(status, 201, "{kept}");
    let body = json!({ "id": "formats", "variants": [
        { "name": "basic", "version": "active", "weight": 1 },
        { "name": "flat", "version": "flat", "weight": 1 },
    ]});
    let (status, created) = client.post("/experiments", Some(OPERATOR), &body);
    assert_eq!(status, 201, "{created}");
    let e = powerplug::experiment::get(grid.role.db(), "formats")
        .unwrap()
        .unwrap();
    let flat_cohort: Vec<&str> = ids.iter().copied().filter(|id| e.cohort(id) == 1).collect();
    assert!(
        !flat_cohort.is_empty() && flat_cohort.len() < ids.len(),
        "both cohorts have consumers: {flat_cohort:?}"
    );
    eventually("the experiment runs", || {
        client.get("/experiments/formats", Some(OPERATOR)).1["status"]["running"].is_object()
    });

    for m in &mut meters {
        m.read_wh(1_500);
    }
    // Control: the carried 500 Wh and the new 1,500, 2 kWh; the flat variant
    // starts on its own books, so 1 kWh, and 500 Wh carried in them.
    let expected = 30 + 5 * (2 * (ids.len() - flat_cohort.len()) + flat_cohort.len()) as u64;
    eventually("both cohorts billed", || {
        total(&client, "requested") == expected
    });
    let read = grid.role.db().read().unwrap();
    let flat_books = load_all(&*read, &e.live_slot(1)).unwrap();
    let mut indexes = Vec::new();
    for id in &flat_cohort {
        let index = powerplug::registry::read(&*read, id)
            .unwrap()
            .unwrap()
            .index;
        assert_eq!(
            flat_books.cells.get(&index),
            Some(&[1_000, 500, 5, 0]),
            "{id}: [billed, carried, owed, paid] in the variant's own books"
        );
        indexes.push(index);
    }
    assert_eq!(
        flat_books.cells.keys().copied().collect::<Vec<_>>(),
        indexes,
        "no copy of the basic books: only its cohort's cells"
    );
    for id in ids {
        let index = powerplug::registry::read(&*read, id)
            .unwrap()
            .unwrap()
            .index;
        let (reported, billed) = invariants::energy(&*read, index).unwrap();
        assert_eq!(reported, 3_000, "{id}");
        assert!(billed <= reported, "{id}: billed {billed} > {reported}");
    }
    drop(read);
    rt.block_on(grid.stop()).unwrap();
}

/// A grid whose database predates the host's energy counts: when it opens,
/// each consumer's reported Wh start at the usage its ticks consumed, so the
/// strategy goes on billing the Wh it carries instead of being refused.
#[test]
fn a_grid_from_before_the_counts_starts_them_from_what_it_consumed() {
    use powerplug::storage::{RedbStore, Store, key};
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let mut config = grid_config(dir.path(), grid_wasm, 20);
    // The same address after the restart: the meter publishes there.
    config.service.listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let rt = powerplug_tests::runtime();
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let mut meter = Meter::register(&grid.url, "c", 34);
    meter.read_wh(1_500);
    eventually("billed", || total(&client, "requested") == 5);
    let index = powerplug::registry::get(grid.role.db(), "c")
        .unwrap()
        .unwrap()
        .index;
    rt.block_on(grid.stop()).unwrap();

    // Forget the counts, as a database written before them.
    let db = RedbStore::open(&config.service.data_dir.join("powerplug.redb")).unwrap();
    let tx = db.write().unwrap();
    // Its page holds no other consumer's count (it is the only one).
    let page = index / powerplug::pages::PAGE;
    assert!(
        tx.delete("consumer_energy_pages", &key::of(&[&page]))
            .unwrap()
    );
    assert!(
        tx.delete("meta", &key::of(&[&"grid/energy-counted"]))
            .unwrap()
    );
    tx.commit().unwrap();
    drop(db);

    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let read = grid.role.db().read().unwrap();
    assert_eq!(invariants::energy(&*read, index).unwrap(), (1_500, 0));
    drop(read);
    // Basic bills the 500 Wh it carried with the next 500: not refused.
    meter.read_wh(500);
    eventually("billed", || total(&client, "requested") == 10);
    assert_eq!(total(&client, "ticks-failed"), 0);
    rt.block_on(grid.stop()).unwrap();
}
