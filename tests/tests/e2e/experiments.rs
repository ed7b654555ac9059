//! A/B experiments on a running grid: sticky cohorts by weight, each cohort
//! billed by its own variant, counterfactual bills that equal replays,
//! money exact across variants, promote and stop from the next tick, a
//! failing variant ending the experiment while billing goes on, shadow mode,
//! and replay reproducing a recorded run.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use powerplug::channel::HttpTransport;
use powerplug::demo::{self, Options};
use powerplug::experiment::{self, Status, Variant, report, results, shadow};
use powerplug::http::run;
use powerplug::replay::{recording, replay};
use powerplug::storage::{RedbStore, Store, counters};
use powerplug::strategy::{Limits, Loaded, Runtime};
use powerplug_tests::{
    Client, Meter, OPERATOR, component, eventually, grid_config, hostile, strategy_files,
};
use serde_json::json;

fn variants(weights: &[u32]) -> Vec<Variant> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| Variant {
            name: format!("v{i}"),
            version: String::new(),
            weight,
        })
        .collect()
}

#[test]
fn cohorts_follow_the_weights_for_ten_thousand_consumers() {
    for weights in [vec![1, 1], vec![1, 3], vec![2, 1, 1], vec![1, 1, 1, 1]] {
        let vs = variants(&weights);
        let mut counts = vec![0f64; vs.len()];
        for c in 0..10_000 {
            counts[experiment::cohort("price-test", &vs, &format!("consumer-{c}"))] += 1.0;
        }
        // Pearson's chi-square against the weights; 20.5 is p = 0.0001 at
        // three degrees of freedom (less at fewer): a fair split fails once
        // in 10,000 runs, a split off by 2% of 10,000 fails every time.
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let chi2: f64 = counts
            .iter()
            .zip(&weights)
            .map(|(&n, &w)| {
                let expected = 10_000.0 * f64::from(w) / total;
                (n - expected).powi(2) / expected
            })
            .sum();
        assert!(
            chi2 < 20.5,
            "weights {weights:?}: counts {counts:?}, chi² {chi2:.1}"
        );
    }
}

fn load(bytes: &[u8]) -> powerplug::strategy::GridStrategy {
    match Runtime::new(Limits::DEFAULT, None)
        .unwrap()
        .load(bytes)
        .unwrap()
    {
        Loaded::Grid(g) => g,
        Loaded::Producer(_) => panic!("a grid strategy"),
    }
}

/// The demo with an experiment started as soon as the grid answers: basic
/// (5 a kWh, the control) against premium (7 a kWh) on 40 consumers.
#[test]
fn each_cohort_is_billed_by_its_variant_and_counterfactual_bills_equal_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (grid, producer) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let basic = powerplug_tests::basic_grid();
    let options = Options {
        producers: 2,
        sources_per_producer: 2,
        consumers: 40,
        time_scale: 120,
        ticks: Some(70),
        duration: None,
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        grid_component: grid,
        producer_component: producer,
        consumer_funds: 100_000,
        seed: 5,
        operator_token: Some(OPERATOR.into()),
        viewer_token: None,
        retention: Default::default(),
        storage: Default::default(),
    };
    let started: Arc<Mutex<Option<std::thread::JoinHandle<()>>>> = Arc::default();
    let rt = powerplug_tests::runtime();
    let summary = rt
        .block_on(demo::run(&options, |p| {
            let mut started = started.lock().unwrap();
            if started.is_none() && !p.grid_url.is_empty() {
                let (url, premium) = (p.grid_url.clone(), premium.clone());
                *started = Some(std::thread::spawn(move || {
                    let client = Client::new(&url);
                    let kept = client.call(
                        "PUT",
                        "/strategies/grid?activate=false&name=premium",
                        Some(OPERATOR),
                        Some(&premium),
                    );
                    assert_eq!(kept.0, 201, "{}", kept.1);
                    assert_eq!(kept.1["activated"], false);
                    let versions = client.get("/strategies", Some(OPERATOR)).1;
                    let active = versions["active"]["grid"].as_str().unwrap().to_owned();
                    let body = json!({ "id": "price", "variants": [
                        { "name": "basic", "version": active, "weight": 1 },
                        { "name": "premium", "version": kept.1["version"]["sha256"], "weight": 1 },
                    ]});
                    let created = client.post("/experiments", Some(OPERATOR), &body);
                    assert_eq!(created.0, 201, "{}", created.1);
                }));
            }
        }))
        .unwrap();
    if let Some(h) = started.lock().unwrap().take() {
        h.join().unwrap();
    }
    println!("{summary}");
    // Every reading, request and payment arrived once and money adds up to
    // the token, with two policies billing at once.
    assert!(summary.ok(), "{summary}");

    let db = RedbStore::open(&dir.path().join("data/grid/powerplug.redb")).unwrap();
    let e = experiment::get(&db, "price").unwrap().unwrap();
    let Status::Running { since_ms } = e.status else {
        panic!("still running at the end: {:?}", e.status)
    };
    let rows = results::consumers(&db, "price").unwrap();
    assert_eq!(rows.len(), 40, "every consumer was billed");
    let price = [5, 7];
    let mut cohort_sizes = [0; 2];
    for r in &rows {
        let id = powerplug::registry::id_of(&db, r.consumer)
            .unwrap()
            .unwrap();
        assert_eq!(
            r.variant as usize,
            e.cohort(&id),
            "{id} is in its hashed cohort"
        );
        cohort_sizes[r.variant as usize] += 1;
        // Billed by its own variant's rule…
        assert!(r.billed_wh > 0 && r.billed_wh % 1000 == 0, "{r:?}");
        assert_eq!(
            r.requested,
            r.billed_wh / 1000 * price[r.variant as usize],
            "{id}"
        );
        // …and under every variant, the same energy at that variant's price.
        for (v, bill) in r.bills.iter().enumerate() {
            assert_eq!(bill.wh, r.billed_wh, "{id} under variant {v}");
            assert_eq!(
                bill.owed,
                bill.wh / 1000 * price[v],
                "{id} under variant {v}"
            );
        }
    }
    assert!(cohort_sizes.iter().all(|&n| n >= 5), "{cohort_sizes:?}");

    // The counterfactual bill of a consumer equals replaying its recorded
    // inputs, from the experiment's start, through the other variant.
    let records: Vec<_> = recording::all_ticks(&db, "grid")
        .unwrap()
        .into_iter()
        .filter(|r| r.input.now_ms >= since_ms)
        .collect();
    let strategies = [load(&basic), load(&premium)];
    for r in rows.iter().take(12) {
        let other = 1 - r.variant as usize;
        let only = BTreeSet::from([r.consumer]);
        let replayed = replay(&strategies[other], &records, Some(&only), &mut |_| {}).unwrap();
        let bill = replayed.consumers[&r.consumer];
        assert_eq!(
            (bill.billed_wh, bill.owed),
            (r.bills[other].wh, r.bills[other].owed),
            "consumer {} under variant {other}",
            r.consumer
        );
    }

    // Replaying the whole recorded run through the version that was active
    // reproduces every decision it made, exactly.
    let all = recording::all_ticks(&db, "grid").unwrap();
    let again = replay(&strategies[0], &all, None, &mut |_| {}).unwrap();
    assert!(again.comparable >= 60, "{} ticks", again.comparable);
    assert_eq!(
        again.reproduced, again.comparable,
        "first mismatch: {:?}",
        again.first_mismatch
    );

    // Producers are paid once, by the control: every payout carried out is
    // one the grid's own books decided.
    let decided: u64 = recording::all_ticks(&db, "grid")
        .unwrap()
        .iter()
        .filter_map(|r| match &r.outcome {
            powerplug::tick_log::Outcome::Decided(d) => {
                Some(d.payouts.iter().map(|p| p.amount).sum::<u64>())
            }
            _ => None,
        })
        .sum();
    assert_eq!(counters(&db).unwrap()["paid-out"], decided);

    // The report: premium bills the same consumers more, and says so with
    // an interval that excludes zero; the prices are the rules' exactly.
    let ticks = results::ticks(&db, "price").unwrap();
    let id_of = |index| powerplug::registry::id_of(&db, index).unwrap();
    let report = report::build(&e, &rows, &ticks, &id_of);
    let prices: Vec<_> = report.variants.iter().map(|v| v.price_per_kwh).collect();
    assert_eq!(prices, [Some(5.0), Some(7.0)]);
    let same = report
        .differences
        .iter()
        .find(|d| d.metric == "bill per consumer, same consumers")
        .unwrap();
    assert!(same.paired && same.low.unwrap() > 0.0, "{same:?}");
    let page = powerplug::experiment::page::render(&report, 1);
    assert_eq!(page.matches("<svg").count(), 3);

    // Issue 19, 3: counterfactual income follows counterfactual bills (the
    // payment model), so each variant's rule pays out no more than it took
    // in (plus what its books started with undistributed), tick by tick;
    // and never takes in more than it billed.
    for (v, variant) in report.variants.iter().enumerate() {
        let everyone = &variant.everyone;
        println!(
            "{}: everyone requested {}, income {}, payouts decided {}; cohort billed {} Wh of {} + {} opening unbilled, collection rate {:?}, outstanding {}",
            variant.name,
            everyone.requested,
            everyone.income,
            everyone.payouts_decided,
            variant.billed_wh,
            variant.usage_wh,
            variant.opening_unbilled_wh,
            variant.collection_rate,
            variant.outstanding
        );
        assert!(
            everyone.income <= opening_requested(&rows) + everyone.requested,
            "{variant:?}"
        );
        // Its two books start as copies of the grid's, with whatever
        // producers' share the grid held undistributed at the start.
        let opening: u64 = [e.live_slot(v), e.counterfactual_slot(v)]
            .iter()
            .map(|slot| {
                let first = recording::all_ticks(&db, slot).unwrap();
                let state: basic_grid_strategy::GridState =
                    powerplug_sdk::state::decode(&first[0].input.state).unwrap();
                state.available
            })
            .sum();
        let (mut income, mut paid_out) = (opening, 0);
        for t in &ticks {
            income += t.variants[v].all_income;
            paid_out += t.variants[v].payouts_decided;
            assert!(
                paid_out <= income,
                "{}: {paid_out} paid out of {income} at {}",
                variant.name,
                t.at_ms
            );
        }
        assert_eq!(income, opening + everyone.income);
    }
    // 4: every cohort's figures count usage and bills over the same span,
    // opening balances carried, and reconcile with the ledger per consumer.
    for r in &rows {
        let b = powerplug::experiment::billing::get(&*db.read().unwrap(), r.consumer).unwrap();
        assert_eq!(
            (b.used_wh, b.billed_wh, b.requested, b.paid),
            (
                r.opening.used_wh + r.usage_wh,
                r.opening.billed_wh + r.billed_wh,
                r.opening.requested + r.requested,
                r.opening.paid + r.collected
            ),
            "consumer {}",
            r.consumer
        );
    }
    for v in &report.variants {
        assert!(
            v.billed_wh as i64 <= v.opening_unbilled_wh + v.usage_wh as i64,
            "{v:?}"
        );
        assert!(
            v.outstanding >= 0 && v.collection_rate.is_some_and(|c| c <= 1.0),
            "{v:?}"
        );
    }
    assert_eq!(report.consumers.len(), 40);
    assert!(
        report
            .consumers
            .iter()
            .all(|c| c.id.starts_with("consumer-")),
        "ids"
    );

    // A whole-run replay: each policy's producers are paid from what it
    // took in, tick by tick. Premium (never live here) takes in, by the
    // payment model, no more than it billed; basic, live, took in what the
    // grid's books really saw (both cohorts' payments).
    for (s, live) in strategies.iter().zip([true, false]) {
        let r = replay(s, &all, None, &mut |_| {}).unwrap();
        println!(
            "replay {}: requested {}, income {}, paid out {}",
            if live { "basic" } else { "premium" },
            r.requested(),
            r.income(),
            r.paid_out()
        );
        let (mut income, mut paid_out, mut requested) = (0, 0, 0);
        for &(_, req, out, inc) in &r.series {
            requested += req;
            income += inc;
            paid_out += out;
            assert!(paid_out <= income, "{paid_out} paid out of {income}");
            assert!(live || income <= requested, "{income} of {requested}");
        }
        assert!(income > 0);
    }
}

/// Stores a grid version without activating it: its SHA-256.
fn keep(client: &Client, wasm: &[u8]) -> String {
    let kept = client.call(
        "PUT",
        "/strategies/grid?activate=false",
        Some(OPERATOR),
        Some(wasm),
    );
    assert_eq!(kept.0, 201, "{}", kept.1);
    kept.1["version"]["sha256"].as_str().unwrap().to_owned()
}

/// What the consumers had been billed before the experiment.
fn opening_requested(rows: &[results::ConsumerRow]) -> u64 {
    rows.iter().map(|r| r.opening.requested).sum()
}

fn requested(client: &Client) -> u64 {
    client.get("/status", None).1["totals"]["requested"]
        .as_u64()
        .unwrap_or(0)
}

/// Every meter reads 1 kWh; returns the tokens requested for it, once all
/// of it is billed.
fn round(client: &Client, meters: &mut [Meter], expected: u64) {
    let before = requested(client);
    for m in meters.iter_mut() {
        m.read();
    }
    eventually(&format!("{expected} tokens are requested"), || {
        requested(client) - before >= expected
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(requested(client) - before, expected);
}

fn status(client: &Client, id: &str) -> serde_json::Value {
    client.get(&format!("/experiments/{id}"), Some(OPERATOR)).1["status"].clone()
}

#[test]
fn promote_and_stop_take_effect_at_the_next_tick_and_cohorts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let rt = powerplug_tests::runtime();
    let config = grid_config(dir.path(), grid_wasm, 20);
    let mut grid = rt.block_on(run::grid(&config)).unwrap();
    let mut client = Client::new(&grid.url);
    let mut meters: Vec<Meter> = (0..20u8)
        .map(|i| Meter::register(&grid.url, &format!("c{i}"), i + 1))
        .collect();
    round(&client, &mut meters, 20 * 5);

    let basic = client.get("/strategies", Some(OPERATOR)).1["active"]["grid"]
        .as_str()
        .unwrap()
        .to_owned();
    let premium_sha = keep(&client, &premium);
    let ab = |id: &str, control: &str, other: &str, names: [&str; 2]| {
        json!({ "id": id, "variants": [
            { "name": names[0], "version": control, "weight": 1 },
            { "name": names[1], "version": other, "weight": 1 },
        ]})
    };

    // Refusals name the field and change nothing.
    let body = ab("ab", &basic, &premium_sha, ["basic", "premium"]);
    assert_eq!(client.post("/experiments", None, &body).0, 401);
    let one = json!({ "variants": [{ "name": "a", "version": basic, "weight": 1 }] });
    let refused = client.post("/experiments", Some(OPERATOR), &one);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("variants"))
    );
    let unknown = ab("ab", &basic, &"0".repeat(64), ["basic", "premium"]);
    let refused = client.post("/experiments", Some(OPERATOR), &unknown);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("variants[1].version"))
    );
    let no_control = ab("ab", &premium_sha, &premium_sha, ["a", "b"]);
    let refused = client.post("/experiments", Some(OPERATOR), &no_control);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("variants"))
    );
    let bad_weight = json!({ "variants": [
        { "name": "a", "version": basic, "weight": 0 },
        { "name": "b", "version": premium_sha, "weight": 1 },
    ]});
    let refused = client.post("/experiments", Some(OPERATOR), &bad_weight);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("variants[0].weight"))
    );
    let unknown_field = json!({ "variants": [], "colour": "red" });
    let refused = client.post("/experiments", Some(OPERATOR), &unknown_field);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("colour"))
    );
    let by_name = ab("ab", "active", "no-such-name", ["basic", "premium"]);
    let refused = client.post("/experiments", Some(OPERATOR), &by_name);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("variants[1].version"))
    );
    for path in ["/experiments/nope", "/experiments/nope/report"] {
        let (code, answer) = client.get(path, Some(OPERATOR));
        assert_eq!(
            (code, answer["field"].as_str()),
            (404, Some("id")),
            "{path}"
        );
    }
    let refused = client.post("/experiments/nope/promote/x", Some(OPERATOR), &json!({}));
    assert_eq!(refused.0, 404);
    let refused = client.post(
        "/strategies/grid/shadow",
        Some(OPERATOR),
        &json!({ "version": "nope" }),
    );
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("version"))
    );
    assert_eq!(
        client.get("/experiments/nope/report.html", Some("guess")).0,
        401
    );
    assert_eq!(client.get("/experiments", Some(OPERATOR)).1, json!([]));

    let created = client.post("/experiments", Some(OPERATOR), &body);
    assert_eq!(created.0, 201, "{}", created.1);
    let again = client.post(
        "/experiments",
        Some(OPERATOR),
        &ab("other", &basic, &premium_sha, ["a", "b"]),
    );
    assert_eq!(again.0, 409);
    // The control is the active version: no swaps while it runs.
    let swap = client.post(
        &format!("/strategies/grid/activate/{premium_sha}"),
        Some(OPERATOR),
        &json!({}),
    );
    assert_eq!(swap.0, 409, "{}", swap.1);
    eventually("the experiment runs", || {
        status(&client, "ab").get("running").is_some()
    });

    let e = experiment::Experiment {
        id: "ab".into(),
        kind: "grid".into(),
        variants: vec![
            Variant {
                name: "basic".into(),
                version: basic.clone(),
                weight: 1,
            },
            Variant {
                name: "premium".into(),
                version: premium_sha.clone(),
                weight: 1,
            },
        ],
        control: 0,
        start_ms: 0,
        created_ms: 0,
        status: Status::Scheduled,
        notes: None,
    };
    let in_premium = meters.iter().filter(|m| e.cohort(&m.id) == 1).count() as u64;
    assert!((3..=17).contains(&in_premium), "{in_premium} of 20");
    let split = (20 - in_premium) * 5 + in_premium * 7;
    round(&client, &mut meters, split);

    // A restart: the experiment goes on with the same cohorts.
    rt.block_on(grid.stop()).unwrap();
    grid = rt.block_on(run::grid(&config)).unwrap();
    for m in &mut meters {
        m.store = HttpTransport::new(&grid.url);
    }
    client = Client::new(&grid.url);
    round(&client, &mut meters, split);
    let report = client.get("/experiments/ab/report", Some(OPERATOR)).1;
    assert_eq!(report["variants"][1]["consumers"], in_premium);
    assert_eq!(report["variants"][1]["requested"], in_premium * 7 * 2);
    assert_eq!(
        report["variants"][0]["requested"],
        (20 - in_premium) * 5 * 2
    );
    let (code, html) = client.get("/experiments/ab/report.html", Some(OPERATOR));
    let html = html.as_str().unwrap_or_default().to_owned();
    assert_eq!(code, 200);
    assert!(html.contains("<svg") && html.contains("premium"), "{html}");

    // Promote: everyone on premium from the next tick.
    let promoted = client.post(
        "/experiments/ab/promote/premium",
        Some(OPERATOR),
        &json!({}),
    );
    assert_eq!(promoted.0, 200, "{}", promoted.1);
    assert_eq!(
        client.get("/strategies", Some(OPERATOR)).1["active"]["grid"],
        premium_sha
    );
    round(&client, &mut meters, 20 * 7);
    assert_eq!(
        client
            .post("/experiments/ab/stop", Some(OPERATOR), &json!({}))
            .0,
        409
    );

    // A second experiment, then stop: everyone back on the active version.
    let back = ab("back", &premium_sha, &basic, ["premium", "basic"]);
    assert_eq!(client.post("/experiments", Some(OPERATOR), &back).0, 201);
    eventually("it runs", || {
        status(&client, "back").get("running").is_some()
    });
    let e2 = experiment::Experiment {
        id: "back".into(),
        ..e.clone()
    };
    let in_basic = meters.iter().filter(|m| e2.cohort(&m.id) == 1).count() as u64;
    round(&client, &mut meters, (20 - in_basic) * 7 + in_basic * 5);
    assert_eq!(
        client
            .post("/experiments/back/stop", Some(OPERATOR), &json!({}))
            .0,
        200
    );
    round(&client, &mut meters, 20 * 7);

    // A variant that fails ends its experiment; the tick bills everyone anyway.
    let failing = keep(&client, &hostile("fail-on-usage"));
    let broken = ab("broken", &premium_sha, &failing, ["premium", "failing"]);
    assert_eq!(client.post("/experiments", Some(OPERATOR), &broken).0, 201);
    eventually("it runs", || {
        status(&client, "broken").get("running").is_some()
    });
    round(&client, &mut meters, 20 * 7);
    let stopped = status(&client, "broken");
    assert!(
        stopped["stopped"]["reason"]
            .as_str()
            .unwrap()
            .contains("variant `failing`"),
        "{stopped}"
    );

    // Shadow mode: basic beside premium, no effects, divergence reported.
    let shadow = client.post(
        "/strategies/grid/shadow",
        Some(OPERATOR),
        &json!({ "version": basic }),
    );
    assert_eq!(shadow.0, 201, "{}", shadow.1);
    round(&client, &mut meters, 20 * 7);
    let s = client.get("/strategies/grid/shadow", Some(OPERATOR)).1;
    assert_eq!(s["stats"]["active"]["requested"], 20 * 7, "{s}");
    assert_eq!(s["stats"]["candidate"]["requested"], 20 * 5, "{s}");
    assert_eq!(s["stats"]["consumer_ticks_diverged"], 20, "{s}");
    assert_eq!(
        client.delete("/strategies/grid/shadow", Some(OPERATOR)).0,
        200
    );

    // The tick log exported over HTTP is what a replay reads.
    assert_eq!(client.get("/ticks/export", None).0, 401);
    let bytes = ureq::get(format!("{}/ticks/export?slot=grid", grid.url))
        .header("authorization", format!("Bearer {OPERATOR}"))
        .call()
        .unwrap()
        .into_body()
        .read_to_vec()
        .unwrap();
    let file = dir.path().join("grid.ppticks");
    std::fs::write(&file, bytes).unwrap();
    let exported = recording::read(&file, "grid").unwrap();
    // The export carries the consumers' ids: a replay names them.
    let (_, names) = recording::read_named(&file, "grid").unwrap();
    assert!(
        meters.iter().all(|m| names.values().any(|id| *id == m.id)),
        "{names:?}"
    );
    let recorded = recording::all_ticks(grid.role.db(), "grid").unwrap();
    assert!(exported.len() > 10, "{}", exported.len());
    assert_eq!(exported[..], recorded[..exported.len()]);
    rt.block_on(grid.stop()).unwrap();
}

/// An operator's stop that lands while a tick is in flight stays: that
/// tick's commit writes back the shadow run it read at its start (its
/// divergence counted), which once undid the stop (the console's browser
/// test then found "a shadow run is on" when it started an experiment).
#[test]
fn a_shadow_run_stopped_during_a_tick_stays_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let rt = powerplug_tests::runtime();
    let config = grid_config(dir.path(), grid_wasm, 20);
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let premium_sha = keep(&client, &premium);
    let started = client.post(
        "/strategies/grid/shadow",
        Some(OPERATOR),
        &json!({ "version": premium_sha }),
    );
    assert_eq!(started.0, 201, "{}", started.1);

    // A tick in flight holds the turn from its start to its commit, and
    // has read the running shadow.
    let role = grid.role.clone();
    let turn = role.slot.turn();
    let read = shadow::running(role.db()).unwrap().expect("running");
    let stopping = std::thread::spawn({
        let role = role.clone();
        move || role.stop_shadow("stopped by the operator").unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The tick commits what it read.
    let tx = role.db().write().unwrap();
    shadow::put(&*tx, &read).unwrap();
    tx.commit().unwrap();
    drop(turn);
    assert!(stopping.join().unwrap().is_some(), "the stop found the run");
    let after = client.get("/strategies/grid/shadow", Some(OPERATOR)).1;
    assert_eq!(after["stopped"], "stopped by the operator", "{after}");
}

/// Each consumer's lifetime billing as the grid carried it out, by id.
fn ledger(client: &Client) -> std::collections::BTreeMap<String, [u64; 4]> {
    let (code, page) = client.get("/billing/consumers?limit=1000", Some(OPERATOR));
    assert_eq!(code, 200, "{page}");
    page["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap();
            (
                c["id"].as_str().unwrap().to_owned(),
                [n("used_wh"), n("billed_wh"), n("requested"), n("paid")],
            )
        })
        .collect()
}

/// What each meter used and was billed, as the rules say: the policy that
/// bills a consumer bills whole units of what it used and has not been
/// billed, at 5 tokens a kWh.
struct Expected {
    used: Vec<u64>,
    billed: Vec<u64>,
}

impl Expected {
    fn bill(&mut self, i: usize, wh: u64, unit: u64) {
        self.used[i] += wh;
        self.billed[i] += (self.used[i] - self.billed[i]) / unit * unit;
    }
}

/// One reading per meter (different amounts each round), billed by the
/// unit `unit_of(meter)`; then, per consumer, the ledger over HTTP equals
/// the rules: billed ≤ used, and what is unbilled is less than the unit of
/// the policy that billed it (its carry). Each consumer's billing changes
/// in one tick a round (its reading's): this sees every tick's.
fn billed_round(
    client: &Client,
    meters: &mut [Meter],
    expected: &mut Expected,
    round: u64,
    unit_of: &dyn Fn(&str) -> u64,
) {
    for (i, m) in meters.iter_mut().enumerate() {
        let wh = 300 + ((i as u64 * 7 + round * 13) % 10) * 130;
        m.read_wh(wh);
        expected.bill(i, wh, unit_of(&m.id));
    }
    eventually(&format!("round {round} is billed"), || {
        let l = ledger(client);
        meters
            .iter()
            .enumerate()
            .all(|(i, m)| l.get(&m.id).is_some_and(|b| b[0] == expected.used[i]))
    });
    let l = ledger(client);
    for (i, m) in meters.iter().enumerate() {
        let [used, billed, requested, _] = l[&m.id];
        let unit = unit_of(&m.id);
        assert!(
            billed <= used,
            "round {round}: {} billed {billed} of {used} Wh",
            m.id
        );
        assert!(
            used - billed < unit,
            "round {round}: {} left {} Wh unbilled (carry < {unit})",
            m.id,
            used - billed
        );
        assert_eq!(
            (billed, requested),
            (expected.billed[i], expected.billed[i] * 5 / 1000),
            "round {round}: {}",
            m.id
        );
    }
}

fn experiment_of(id: &str, names: [&str; 2]) -> experiment::Experiment {
    experiment::Experiment {
        id: id.into(),
        kind: "grid".into(),
        variants: names
            .iter()
            .map(|n| Variant {
                name: (*n).into(),
                version: String::new(),
                weight: 1,
            })
            .collect(),
        control: 0,
        start_ms: 0,
        created_ms: 0,
        status: Status::Scheduled,
        notes: None,
    }
}

/// The report's consumer table reconciles with the ledger over the same
/// span: opening balances plus the experiment's figures are the ledger's.
fn reconciles(client: &Client, id: &str, meters: &[Meter]) -> serde_json::Value {
    let report = client
        .get(&format!("/experiments/{id}/report"), Some(OPERATOR))
        .1;
    let l = ledger(client);
    let lines = report["consumers"].as_array().unwrap();
    assert_eq!(lines.len(), meters.len(), "every consumer, with its id");
    for c in lines {
        let id = c["id"].as_str().unwrap();
        let n = |k: &str| c[k].as_i64().unwrap();
        let [used, billed, requested, paid] = l[id].map(|x| x as i64);
        // Billed never above used-and-unbilled over the span, and what is
        // left unbilled is the ledger's.
        assert!(
            n("billed_wh") <= n("opening_unbilled_wh") + n("usage_wh"),
            "{c}"
        );
        assert_eq!(
            n("opening_unbilled_wh") + n("usage_wh") - n("billed_wh"),
            used - billed,
            "{c}"
        );
        assert_eq!(
            n("opening_outstanding") + n("requested") - n("collected"),
            requested - paid,
            "{c}"
        );
        assert_eq!(n("outstanding"), requested - paid, "{c}");
    }
    for v in report["variants"].as_array().unwrap() {
        let n = |k: &str| v[k].as_i64().unwrap();
        assert!(
            n("billed_wh") <= n("opening_unbilled_wh") + n("usage_wh"),
            "{v}"
        );
        assert!(n("outstanding") >= 0, "{v}");
        assert!(
            v["collection_rate"].as_f64().is_none_or(|r| r <= 1.0),
            "{v}"
        );
    }
    report
}

/// Issue 19, 1: a variant billing in 200 Wh units (1 token each) and one
/// billing in 2000 Wh units against whole kWh; at `stop` and at `promote`
/// the grid's books take over what each consumer was actually billed.
#[test]
fn stop_and_promote_hand_back_what_each_consumer_was_billed() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let u200 = component("plugins/basic-grid-strategy", &["unit-200"]);
    let u2000 = component("plugins/basic-grid-strategy", &["unit-2000"]);
    let rt = powerplug_tests::runtime();
    let config = grid_config(dir.path(), grid_wasm, 20);
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let mut meters: Vec<Meter> = (0..20u8)
        .map(|i| Meter::register(&grid.url, &format!("m{i}"), i + 1))
        .collect();
    let mut expected = Expected {
        used: vec![0; 20],
        billed: vec![0; 20],
    };
    let mut round = 0;
    let mut rounds = |n: u64,
                      unit_of: &dyn Fn(&str) -> u64,
                      expected: &mut Expected,
                      meters: &mut Vec<Meter>| {
        for _ in 0..n {
            round += 1;
            billed_round(&client, meters, expected, round, unit_of);
        }
    };
    rounds(2, &|_| 1000, &mut expected, &mut meters);

    let keep = |bytes: &[u8], name: &str| {
        let kept = client.call(
            "PUT",
            &format!("/strategies/grid?activate=false&name={name}"),
            Some(OPERATOR),
            Some(bytes),
        );
        assert_eq!(kept.0, 201, "{}", kept.1);
    };
    keep(&u200, "u200");
    keep(&u2000, "u2000");
    let start = |id: &str, names: [&str; 2]| {
        let body = json!({ "id": id, "variants": [
            { "name": names[0], "version": "active", "weight": 1 },
            { "name": names[1], "version": names[1], "weight": 1 },
        ]});
        let created = client.post("/experiments", Some(OPERATOR), &body);
        assert_eq!(created.0, 201, "{}", created.1);
        eventually("it runs", || status(&client, id).get("running").is_some());
        experiment_of(id, names)
    };

    // Stop: the 200 Wh variant's cohort goes back to whole kWh on what the
    // variant billed it, not on what whole kWh would have.
    let e = start("stop200", ["basic", "u200"]);
    let unit = |e: &experiment::Experiment, units: [u64; 2]| {
        let e = e.clone();
        move |id: &str| units[e.cohort(id)]
    };
    let in_cohort = meters.iter().filter(|m| e.cohort(&m.id) == 1).count();
    assert!((3..=17).contains(&in_cohort), "{in_cohort} of 20");
    rounds(4, &unit(&e, [1000, 200]), &mut expected, &mut meters);
    reconciles(&client, "stop200", &meters);
    assert_eq!(
        client
            .post("/experiments/stop200/stop", Some(OPERATOR), &json!({}))
            .0,
        200
    );
    rounds(3, &|_| 1000, &mut expected, &mut meters);

    // Promote: the 200 Wh variant takes over everyone.
    let e = start("promote200", ["basic", "u200"]);
    rounds(3, &unit(&e, [1000, 200]), &mut expected, &mut meters);
    let report = reconciles(&client, "promote200", &meters);
    // Its cohort was billed in 200 Wh units, exactly as the rules say.
    assert_eq!(report["variants"][1]["price_per_kwh"], 5.0);
    let promoted = client.post(
        "/experiments/promote200/promote/u200",
        Some(OPERATOR),
        &json!({}),
    );
    assert_eq!(promoted.0, 200, "{}", promoted.1);
    rounds(3, &|_| 200, &mut expected, &mut meters);

    // A 2000 Wh variant, stopped: nothing stays unbilled beyond 200 Wh
    // after it (the control's carry).
    let e = start("stop2000", ["u200", "u2000"]);
    rounds(4, &unit(&e, [200, 2000]), &mut expected, &mut meters);
    reconciles(&client, "stop2000", &meters);
    assert_eq!(
        client
            .post("/experiments/stop2000/stop", Some(OPERATOR), &json!({}))
            .0,
        200
    );
    rounds(3, &|_| 200, &mut expected, &mut meters);

    // The consumer table: complete in the JSON (checked above), as CSV,
    // and paged on the page, by id.
    let csv = ureq::get(format!("{}/experiments/stop2000/report.csv", grid.url))
        .header("authorization", format!("Bearer {OPERATOR}"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .ends_with("u2000_wh,u2000_owed,u2000_paid"),
        "{csv}"
    );
    assert_eq!(lines.count(), 20, "{csv}");
    assert!(csv.contains("\nm7,") || csv.contains(",m7,"), "{csv}");
    let (code, html) = client.get("/experiments/stop2000/report.html?page=1", Some(OPERATOR));
    assert_eq!(code, 200);
    assert!(html.as_str().unwrap().contains("<td>m13</td>"), "{html}");
    let (code, refused) = client.get("/experiments/stop2000/report.html?page=9", Some(OPERATOR));
    assert_eq!((code, refused["field"].as_str()), (422, Some("page")));
    let (code, refused) = client.get("/billing/consumers?limit=0", Some(OPERATOR));
    assert_eq!((code, refused["field"].as_str()), (422, Some("limit")));
    assert_eq!(client.get("/billing/consumers", None).0, 401);
    rt.block_on(grid.stop()).unwrap();
}

/// A consumer of a variant's cohort that leaves after its last reading
/// arrived, before the tick that bills it: that tick bills it by its own
/// variant, whose books billed the rest (and which the hand-back takes),
/// not by the control's, which never saw what the variant billed. Billed
/// by the control, 1,400 Wh used came to 1,600 billed: the invariant
/// refused that tick, and every tick after it while the reading stayed
/// pending, so that nobody was billed any more.
#[test]
fn a_consumer_that_leaves_is_billed_for_its_last_reading_by_its_own_variant() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let u200 = component("plugins/basic-grid-strategy", &["unit-200"]);
    let rt = powerplug_tests::runtime();
    // Ticks once at the start, then only when the test says.
    let config = grid_config(dir.path(), grid_wasm, 86_400_000);
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let body = json!({ "id": "leave", "variants": [
        { "name": "basic", "version": "active", "weight": 1 },
        { "name": "u200", "version": keep(&client, &u200), "weight": 1 },
    ]});
    let created = client.post("/experiments", Some(OPERATOR), &body);
    assert_eq!(created.0, 201, "{}", created.1);
    let e = experiment_of("leave", ["basic", "u200"]);
    let mut meters: Vec<Meter> = (0..8u8)
        .map(|i| Meter::register(&grid.url, &format!("m{i}"), 40 + i))
        .collect();
    let leaver = meters
        .iter()
        .position(|m| e.cohort(&m.id) == 1)
        .expect("a meter in u200's cohort");
    let pending = || {
        powerplug::inbox::pending(grid.role.db(), 100)
            .unwrap()
            .len()
    };
    let tick = |readings: usize| {
        eventually("the readings are pending", || pending() == readings);
        let summary = grid.role.tick().unwrap();
        assert_eq!(summary.failed, None);
        summary
    };
    // 700 Wh each: u200 bills its cohort 600 and carries 100.
    for m in &mut meters {
        m.read_wh(700);
    }
    tick(meters.len());
    assert!(status(&client, "leave").get("running").is_some());
    meters[leaver].read_wh(700);
    eventually("the last reading is pending", || pending() == 1);
    let path = format!("/registrations/{}", meters[leaver].id);
    let left = client.delete(&path, Some(&meters[leaver].credential));
    assert_eq!(left.0, 200, "{}", left.1);
    let summary = tick(1);
    // u200: 100 carried + 700 = 800 Wh, 4 tokens; its channel is gone.
    assert_eq!((summary.requests, summary.requested), (1, 4));
    let rows = results::consumers(grid.role.db(), "leave").unwrap();
    let row = rows
        .iter()
        .find(|r| r.usage_wh == 1_400)
        .expect("the leaver's row");
    assert_eq!(
        (row.variant, row.billed_wh, row.requested),
        (1, 1_400, 7),
        "{row:?}"
    );
    rt.block_on(grid.stop()).unwrap();
}
