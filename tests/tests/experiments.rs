//! A/B experiments on a running grid: sticky cohorts by weight, each cohort
//! billed by its own variant, counterfactual bills that equal replays,
//! money exact across variants, promote and stop from the next tick, a
//! failing variant ending the experiment while billing goes on, shadow mode,
//! and replay reproducing a recorded run.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use powerplug::channel::HttpTransport;
use powerplug::demo::{self, Options};
use powerplug::experiment::{self, Status, Variant, report, results};
use powerplug::replay::{recording, replay};
use powerplug::role::run;
use powerplug::storage::{RedbStore, counters};
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
    let report = report::build(&e, &rows, &results::ticks(&db, "price").unwrap());
    let prices: Vec<_> = report.variants.iter().map(|v| v.price_per_kwh).collect();
    assert_eq!(prices, [Some(5.0), Some(7.0)]);
    let same = report
        .differences
        .iter()
        .find(|d| d.metric == "bill per consumer, same consumers")
        .unwrap();
    assert!(same.paired && same.low.unwrap() > 0.0, "{same:?}");
    let page = powerplug::experiment::page::render(&report);
    assert_eq!(page.matches("<svg").count(), 2);
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
    let kept = client.call(
        "PUT",
        "/strategies/grid?activate=false",
        Some(OPERATOR),
        Some(&premium),
    );
    assert_eq!(kept.0, 201, "{}", kept.1);
    let premium_sha = kept.1["version"]["sha256"].as_str().unwrap().to_owned();
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
    let failing = client.call(
        "PUT",
        "/strategies/grid?activate=false",
        Some(OPERATOR),
        Some(&hostile("fail-on-usage")),
    );
    assert_eq!(failing.0, 201, "{}", failing.1);
    let broken = ab(
        "broken",
        &premium_sha,
        failing.1["version"]["sha256"].as_str().unwrap(),
        ["premium", "failing"],
    );
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
    let recorded = recording::all_ticks(grid.role.db(), "grid").unwrap();
    assert!(exported.len() > 10, "{}", exported.len());
    assert_eq!(exported[..], recorded[..exported.len()]);
    rt.block_on(grid.stop()).unwrap();
}
