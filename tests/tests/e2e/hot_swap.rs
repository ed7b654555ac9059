//! Replacing the payment policy of a running grid over HTTP: an upload is
//! checked, dry-run and activated between ticks; every tick runs on one
//! version and bills by that version's rules; hostile components are refused
//! with their reason while the live version keeps billing; versions roll back,
//! survive a restart without recompiling, and only the operator may change them.

use ed25519_dalek::SigningKey;
use powerplug::http::run;
use powerplug::tick_log::{self, Outcome};
use powerplug_tests::{
    Client, Meter, OPERATOR, component, eventually, grid_config, hostile, strategy_files,
};

/// A component exporting `name` with a `tick` of the wrong type.
fn exporting(name: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $api (export "tick" (func $f)))
            (export "{name}" (instance $api)))"#
    ))
    .unwrap()
}

#[test]
fn a_running_grid_swaps_versions_between_ticks_and_refuses_hostile_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let rt = powerplug_tests::runtime();
    let config = grid_config(dir.path(), grid_wasm, 20);
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);

    let mut meter = Meter::register(&grid.url, "c", 3);
    let requested = || {
        client.get("/status", None).1["totals"]["requested"]
            .as_u64()
            .unwrap_or(0)
    };
    let billed_at = |meter: &mut Meter| {
        let before = requested();
        meter.read();
        eventually("the reading is billed", || requested() > before);
        requested() - before
    };
    assert_eq!(billed_at(&mut meter), 5, "the basic price");

    let (_, list) = client.get("/strategies", Some(OPERATOR));
    let basic = list["active"]["grid"].as_str().unwrap().to_owned();
    assert_eq!(list["versions"].as_array().unwrap().len(), 1);

    // Only the operator changes versions.
    assert_eq!(
        client
            .call("PUT", "/strategies/grid", None, Some(&premium))
            .0,
        401
    );
    assert_eq!(
        client
            .call("PUT", "/strategies/grid", Some("guess"), Some(&premium))
            .0,
        401
    );
    assert_eq!(client.get("/strategies", None).0, 401);

    let (status, swapped) = client.call(
        "PUT",
        "/strategies/grid?name=premium&notes=7%20a%20kWh",
        Some(OPERATOR),
        Some(&premium),
    );
    assert_eq!(status, 201, "{swapped}");
    let premium_sha = swapped["version"]["sha256"].as_str().unwrap().to_owned();
    assert_ne!(premium_sha, basic);
    assert_eq!(swapped["version"]["name"], "premium");
    assert!(
        swapped["dry_run"]["tick"].as_u64() > Some(0),
        "dry run on the last tick: {swapped}"
    );
    assert_eq!(
        billed_at(&mut meter),
        7,
        "the new version bills from the next tick"
    );

    // Hostile or wrong components are refused with their reason; premium keeps billing.
    let producer = component("plugins/basic-producer-strategy", &[]);
    let refusals: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not wasm", b"hello".to_vec(), "component"),
        ("a producer", producer.to_vec(), "kind"),
        ("panic", hostile("panic").to_vec(), "component"),
        (
            "infinite loop",
            hostile("infinite-loop").to_vec(),
            "component",
        ),
        ("memory bomb", hostile("memory-bomb").to_vec(), "component"),
        (
            "huge decision",
            hostile("huge-decision").to_vec(),
            "component",
        ),
        (
            "ragged batch",
            hostile("ragged-batch").to_vec(),
            "component",
        ),
        (
            "stack overflow",
            hostile("stack-overflow").to_vec(),
            "component",
        ),
        (
            "a core module",
            wat::parse_str("(module (func (export \"tick\")))").unwrap(),
            "component",
        ),
        (
            "a WASI import",
            wat::parse_str(r#"(component (import "wasi:cli/environment@0.2.0" (instance)))"#)
                .unwrap(),
            "component",
        ),
        (
            "an unknown world",
            exporting("acme:billing/policy@1.0.0"),
            "component",
        ),
        (
            "the right name, the wrong shape",
            exporting("powerplug:strategy/grid@0.1.0"),
            "component",
        ),
    ];
    for (what, bytes, field) in &refusals {
        let (status, answer) = client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(bytes));
        assert_eq!(
            (status, answer["field"].as_str()),
            (422, Some(*field)),
            "{what}: {answer}"
        );
        assert!(
            answer["error"].as_str().unwrap().len() > 10,
            "{what} says why: {answer}"
        );
    }
    // A component of the other world is named for what it is.
    let (_, answer) = client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&producer));
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("the component is a producer strategy; this host runs grid strategies"),
        "{answer}"
    );
    let (_, list) = client.get("/strategies", Some(OPERATOR));
    assert_eq!(list["active"]["grid"], premium_sha.as_str());
    assert_eq!(
        list["versions"].as_array().unwrap().len(),
        2,
        "refused uploads are not kept"
    );
    assert_eq!(billed_at(&mut meter), 7, "the live version kept billing");

    // Roll back; the active version cannot be deleted, an inactive one can.
    let (status, back) = client.call(
        "POST",
        &format!("/strategies/grid/activate/{basic}"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(status, 200, "{back}");
    assert_eq!(billed_at(&mut meter), 5);

    // A version is found by the name it was uploaded with too, and by its
    // SHA-256 in either case; an unknown one is 404 `version`.
    let activate = |version: &str| {
        client.call(
            "POST",
            &format!("/strategies/grid/activate/{version}"),
            Some(OPERATOR),
            None,
        )
    };
    let (status, by_name) = activate("premium");
    assert_eq!(status, 200, "{by_name}");
    assert_eq!(by_name["version"]["sha256"], premium_sha.as_str());
    assert_eq!(billed_at(&mut meter), 7);
    let (status, unknown) = activate("deluxe");
    assert_eq!(
        (status, unknown["field"].as_str()),
        (404, Some("version")),
        "{unknown}"
    );
    let (status, back) = activate(&basic.to_uppercase());
    assert_eq!(status, 200, "{back}");
    assert_eq!(billed_at(&mut meter), 5);
    assert_eq!(
        client
            .delete(&format!("/strategies/grid/{basic}"), Some(OPERATOR))
            .0,
        409
    );
    assert_eq!(
        client
            .delete(&format!("/strategies/grid/{premium_sha}"), Some(OPERATOR))
            .0,
        200
    );
    assert_eq!(
        client
            .delete(&format!("/strategies/grid/{premium_sha}"), Some(OPERATOR))
            .0,
        404
    );
    assert_eq!(
        client
            .call(
                "POST",
                &format!("/strategies/grid/activate/{premium_sha}"),
                Some(OPERATOR),
                None
            )
            .0,
        404
    );

    // Every tick ran on one version and billed by its rules.
    let db = grid.role.db();
    let ticks = tick_log::grid_ticks(db, "grid", 0, usize::MAX).unwrap();
    let mut by_version = std::collections::BTreeMap::new();
    for record in &ticks {
        let Outcome::Decided(decision) = &record.outcome else {
            continue;
        };
        let price = if record.strategy.hex() == premium_sha {
            7
        } else {
            5
        };
        for r in decision.payment_requests.iter() {
            assert_eq!(
                r.owed,
                r.wh / 1000 * price,
                "tick {} on {}",
                record.tick,
                record.strategy
            );
            *by_version.entry(price).or_insert(0) += 1;
        }
    }
    // 5, then 7 from the upload on, 7 again after the refusals, 5 after the
    // rollback, 7 by name, 5 by the upper-case hash.
    assert_eq!(by_version.get(&5), Some(&3));
    assert_eq!(by_version.get(&7), Some(&3));
    let (_, list) = client.get("/strategies", Some(OPERATOR));
    let reasons: Vec<&str> = list["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "configured",
            "uploaded",
            "activated",
            "activated",
            "activated"
        ]
    );

    // A restart keeps the active version and compiles nothing.
    let cache = config.strategy.cache_dir.clone().unwrap();
    let compiles = powerplug::role::runtime(&cache, powerplug::strategy::Limits::DEFAULT)
        .unwrap()
        .cache_stats()
        .compiles;
    rt.block_on(grid.stop()).unwrap();
    let grid = rt.block_on(run::grid(&config)).unwrap();
    assert_eq!(grid.role.strategy().info().sha256.hex(), basic);
    assert_eq!(
        powerplug::role::runtime(&cache, powerplug::strategy::Limits::DEFAULT)
            .unwrap()
            .cache_stats()
            .compiles,
        compiles
    );
    rt.block_on(grid.stop()).unwrap();
}

#[test]
fn a_version_that_starts_failing_after_it_went_live_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let mut config = grid_config(dir.path(), grid_wasm, 20);
    // A dry run of the last tick only, which was idle: it passes.
    config.strategy.dry_run_ticks = 1;
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let mut meter = Meter::register(&grid.url, "c", 6);
    let status = || client.get("/status", None).1;
    let requested = || status()["totals"]["requested"].as_u64().unwrap_or(0);
    meter.read();
    eventually("billed", || requested() == 5);
    let ticks = status()["totals"]["ticks"].as_u64().unwrap();
    eventually("idle ticks", || {
        status()["totals"]["ticks"].as_u64() > Some(ticks + 2)
    });
    let basic = status()["strategy"]["sha256"].as_str().unwrap().to_owned();

    // It passes the dry run (the last tick was idle); it declares no books
    // format, so it starts on empty books.
    let flaky = hostile("fail-on-usage");
    let (status_code, swapped) =
        client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&flaky));
    assert_eq!(status_code, 201, "{swapped}");
    assert_eq!(swapped["books"]["books"], "empty", "{swapped}");
    let flaky_sha = swapped["version"]["sha256"].as_str().unwrap().to_owned();

    // Then it refuses the first tick with usage, three times, and is replaced.
    meter.read();
    eventually("the earlier version is back and bills", || {
        requested() == 10
    });
    let now = status();
    assert_eq!(now["strategy"]["sha256"], basic.as_str());
    let rollback = &now["strategy"]["last_rollback"];
    assert_eq!(
        (rollback["from"].as_str(), rollback["to"].as_str()),
        (Some(flaky_sha.as_str()), Some(basic.as_str()))
    );
    assert!(
        rollback["why"]
            .as_str()
            .unwrap()
            .contains("cannot bill 1 usage entries"),
        "{rollback}"
    );
    let (_, list) = client.get("/strategies", Some(OPERATOR));
    let last = list["history"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .starts_with("automatic rollback after 3 failed ticks"),
        "{last}"
    );
    let failed = tick_log::grid_ticks(grid.role.db(), "grid", 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|r| r.strategy.hex() == flaky_sha && matches!(r.outcome, Outcome::Failed(_)))
        .count();
    assert_eq!(
        failed, 3,
        "each failed tick is in the tick log, and nothing of it applied"
    );
    rt.block_on(grid.stop()).unwrap();
}

#[test]
fn a_host_with_trusted_keys_takes_only_signed_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let trusted = SigningKey::from_bytes(&[21; 32]);
    let stranger = SigningKey::from_bytes(&[22; 32]);
    let mut config = grid_config(dir.path(), grid_wasm, 1_000);
    config.trusted_keys = vec![hex::encode(trusted.verifying_key().to_bytes())];
    let rt = powerplug_tests::runtime();
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let basic = grid.role.strategy().info().sha256.hex();

    let upload = |signature: Option<String>| {
        let mut request = ureq::http::Request::builder()
            .method("PUT")
            .uri(format!("{}/strategies/grid", grid.url))
            .header("authorization", format!("Bearer {OPERATOR}"));
        if let Some(signature) = signature {
            request = request.header("x-powerplug-signature", signature);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent.run(request.body(premium.to_vec()).unwrap()).unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.body_mut().read_json().unwrap();
        (status, body)
    };
    let other_bytes = component("plugins/basic-grid-strategy", &[]);
    for (what, signature) in [
        ("unsigned", None),
        (
            "signed by a stranger",
            Some(powerplug::versions::sign(&stranger, &premium)),
        ),
        (
            "a signature of other bytes",
            Some(powerplug::versions::sign(&trusted, &other_bytes)),
        ),
        ("not a signature", Some("zz".into())),
    ] {
        let (status, body) = upload(signature);
        assert_eq!(
            (status, body["field"].as_str()),
            (403, Some("x-powerplug-signature")),
            "{what}: {body}"
        );
    }
    assert_eq!(
        grid.role.strategy().info().sha256.hex(),
        basic,
        "nothing changed"
    );
    let (status, body) = upload(Some(powerplug::versions::sign(&trusted, &premium)));
    assert_eq!(status, 201, "{body}");
    assert_ne!(grid.role.strategy().info().sha256.hex(), basic);
    rt.block_on(grid.stop()).unwrap();
}

/// `trusted_keys` holds for every stored version the host is asked to run,
/// not only for uploads: a version kept before the keys were trusted cannot
/// be activated, tried in an experiment or run in shadow until it comes again
/// with a signature; the operator's configured version stays runnable.
#[test]
fn a_host_with_trusted_keys_runs_no_stored_version_without_a_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let trusted = SigningKey::from_bytes(&[23; 32]);
    let mut config = grid_config(dir.path(), grid_wasm, 1_000);
    let rt = powerplug_tests::runtime();

    // Kept, unsigned, while the host trusted no key.
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let kept = client.call(
        "PUT",
        "/strategies/grid?activate=false",
        Some(OPERATOR),
        Some(&premium),
    );
    assert_eq!(kept.0, 201, "{}", kept.1);
    let premium_sha = kept.1["version"]["sha256"].as_str().unwrap().to_owned();
    let basic = grid.role.strategy().info().sha256.hex();
    rt.block_on(grid.stop()).unwrap();

    config.trusted_keys = vec![hex::encode(trusted.verifying_key().to_bytes())];
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let activate = |sha: &str| {
        client.call(
            "POST",
            &format!("/strategies/grid/activate/{sha}?force=true"),
            Some(OPERATOR),
            None,
        )
    };
    let refused = activate(&premium_sha);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (403, Some("version")),
        "{}",
        refused.1
    );
    let experiment = serde_json::json!({ "id": "ab", "variants": [
        { "name": "basic", "version": basic, "weight": 1 },
        { "name": "premium", "version": premium_sha, "weight": 1 },
    ]});
    let refused = client.post("/experiments", Some(OPERATOR), &experiment);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("variants[1].version")),
        "{}",
        refused.1
    );
    assert!(
        refused.1["error"].as_str().unwrap().contains("trusts"),
        "{}",
        refused.1
    );
    let shadow = serde_json::json!({ "version": premium_sha });
    let refused = client.post("/strategies/grid/shadow", Some(OPERATOR), &shadow);
    assert_eq!(
        (refused.0, refused.1["field"].as_str()),
        (422, Some("version")),
        "{}",
        refused.1
    );
    assert_eq!(
        grid.role.strategy().info().sha256.hex(),
        basic,
        "nothing changed"
    );
    assert_eq!(
        client.get("/experiments", Some(OPERATOR)).1,
        serde_json::json!([])
    );

    // The same bytes, signed, are runnable; so is the configured version.
    let signed = ureq::http::Request::builder()
        .method("PUT")
        .uri(format!("{}/strategies/grid?activate=false", grid.url))
        .header("authorization", format!("Bearer {OPERATOR}"))
        .header(
            "x-powerplug-signature",
            powerplug::versions::sign(&trusted, &premium),
        )
        .body(premium.to_vec())
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    assert_eq!(agent.run(signed).unwrap().status(), 201);
    let activated = activate(&premium_sha);
    assert_eq!(activated.0, 200, "{}", activated.1);
    assert_eq!(grid.role.strategy().info().sha256.hex(), premium_sha);
    let back = activate(&basic);
    assert_eq!(back.0, 200, "the configured version: {}", back.1);
    assert_eq!(grid.role.strategy().info().sha256.hex(), basic);
    rt.block_on(grid.stop()).unwrap();
}

/// A version of the live books' format that refuses the live state is
/// refused, with the reason, unless the upload asks for a fresh state; then
/// its dry run and its start see empty books, and it runs.
#[test]
fn a_version_that_refuses_the_live_state_goes_live_with_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 20)))
        .unwrap();
    let client = Client::new(&grid.url);
    let status = || client.get("/status", None).1;
    eventually("a tick is recorded", || {
        status()["totals"]["ticks"].as_u64() > Some(1)
    });
    // It says it understands the basic strategy's books, and then does not.
    let own =
        powerplug::strategy::declare_books(&hostile("own-state-only"), "basic-grid@1").unwrap();
    let (code, refused) = client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&own));
    assert_eq!(code, 422, "the dry run on the live state fails: {refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("not mine"),
        "{refused}"
    );

    let (code, swapped) = client.call(
        "PUT",
        "/strategies/grid?fresh=true",
        Some(OPERATOR),
        Some(&own),
    );
    assert_eq!(code, 201, "{swapped}");
    assert_eq!(swapped["fresh_state"], true);
    assert_eq!(swapped["books"]["books"], "empty", "{swapped}");
    let sha = swapped["version"]["sha256"].as_str().unwrap().to_owned();
    let ticks = status()["totals"]["ticks"].as_u64().unwrap();
    eventually("it ticks on its own state", || {
        status()["totals"]["ticks"].as_u64() > Some(ticks + 2)
    });
    assert_eq!(status()["strategy"]["sha256"], sha);
    assert_eq!(status()["totals"].get("ticks-failed"), None, "{}", status());
    rt.block_on(grid.stop()).unwrap();
}
