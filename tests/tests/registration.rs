//! Registration, credentials, `/storage` and channel integrity on a running
//! grid, over HTTP: re-registering is idempotent, a reset needs the current
//! credential, an entity reaches only its own data, and forged, replayed or
//! tampered channel messages are dropped and counted while the genuine ones
//! are taken once.

use ed25519_dalek::SigningKey;
use powerplug::api;
use powerplug::channel::{
    Address, ChannelReader, ChannelWriter, HttpTransport, Message, Transport,
};
use powerplug::inbox::Command;
use powerplug::role::run;
use powerplug_tests::{Client, OPERATOR, eventually, grid_config, runtime, strategy_files};
use serde_json::{Value, json};

fn register_body(writer: &ChannelWriter, kind: &str) -> Value {
    json!({ "kind": kind, "channel": api::Channel::from(&writer.info()) })
}

fn usage(start_ms: u64, wh: u64) -> Vec<u8> {
    Command::Usage {
        start_ms,
        end_ms: start_ms + 30_000,
        wh,
    }
    .encode()
}

#[test]
fn registration_is_idempotent_a_reset_needs_the_credential_and_storage_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 1_000)))
        .unwrap();
    let client = Client::new(&grid.url);
    let store = HttpTransport::new(&grid.url);

    // A channel that has not said hello in the grid's store is refused.
    let mut a = ChannelWriter::new(SigningKey::from_bytes(&[1; 32]), true).unwrap();
    let (status, body) = client.put("/registrations/alice", None, &register_body(&a, "consumer"));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "channel");

    a.hello(&store).unwrap();
    let (status, first) = client.put("/registrations/alice", None, &register_body(&a, "consumer"));
    assert_eq!(status, 201, "{first}");
    let credential = first["credential"].as_str().unwrap().to_owned();
    assert!(
        first["return_channel"].is_object(),
        "a consumer gets a return channel"
    );

    // The same channel again: the same answer, nothing new.
    let (status, again) = client.put("/registrations/alice", None, &register_body(&a, "consumer"));
    assert_eq!(status, 200);
    assert_eq!(again["credential"], first["credential"]);
    assert_eq!(again["index"], first["index"]);
    assert_eq!(again["return_channel"], first["return_channel"]);

    // A reset (a fresh channel for the same id) needs the current credential.
    let mut fresh = ChannelWriter::new(SigningKey::from_bytes(&[1; 32]), true).unwrap();
    fresh.hello(&store).unwrap();
    let (status, body) = client.put(
        "/registrations/alice",
        None,
        &register_body(&fresh, "consumer"),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (401, Some("authorization")),
        "{body}"
    );
    let (status, body) = client.put(
        "/registrations/alice",
        Some("alice.00"),
        &register_body(&fresh, "consumer"),
    );
    assert_eq!(status, 401, "{body}");
    let (status, reset) = client.put(
        "/registrations/alice",
        Some(&credential),
        &register_body(&fresh, "consumer"),
    );
    assert_eq!(status, 201, "{reset}");
    assert_eq!(
        reset["index"], first["index"],
        "a reset keeps the entity's index"
    );
    assert_ne!(
        reset["return_channel"], first["return_channel"],
        "and opens a new return channel"
    );
    let old = credential;
    let credential = reset["credential"].as_str().unwrap().to_owned();
    assert_ne!(credential, old);
    assert_eq!(
        client.get("/registrations/alice", Some(&old)).0,
        401,
        "the old credential is void"
    );
    assert_eq!(client.get("/registrations/alice", Some(&credential)).0, 200);

    // The old return channel said goodbye.
    let old_back: api::Channel = serde_json::from_value(first["return_channel"].clone()).unwrap();
    let mut reader = ChannelReader::new(&old_back.info().unwrap()).unwrap();
    eventually("the old return channel closes", || {
        reader.poll(&store).unwrap();
        reader.is_closed()
    });

    // Another entity cannot read or change Alice's registration or storage.
    let mut b = ChannelWriter::new(SigningKey::from_bytes(&[2; 32]), false).unwrap();
    b.hello(&store).unwrap();
    let (status, bob) = client.put("/registrations/bob", None, &register_body(&b, "producer"));
    assert_eq!(status, 201, "{bob}");
    assert!(
        bob["return_channel"].is_null(),
        "producers get no return channel"
    );
    let bob = bob["credential"].as_str().unwrap().to_owned();
    assert_eq!(client.get("/registrations/alice", Some(&bob)).0, 403);
    assert_eq!(client.delete("/registrations/alice", Some(&bob)).0, 403);
    let (status, body) = client.put(
        "/registrations/alice",
        Some(&bob),
        &register_body(&b, "producer"),
    );
    assert!(status == 401 || status == 409, "{status} {body}");

    // /storage: the owner's, paged, and nobody else's.
    for i in 0..5 {
        let (status, body) = client.put(
            &format!("/storage/alice/state/k{i}"),
            Some(&credential),
            &json!({ "n": i }),
        );
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = client.put(
        "/storage/alice/state/k0",
        Some(&credential),
        &json!({ "n": 10 }),
    );
    assert_eq!(status, 200, "replacing a document");
    assert_eq!(
        client.get("/storage/alice/state/k0", Some(&credential)),
        (200, json!({ "n": 10 }))
    );
    assert_eq!(client.get("/storage/alice/state/k0", Some(&bob)).0, 403);
    assert_eq!(client.get("/storage/alice/state/k0", None).0, 401);
    assert_eq!(
        client
            .put("/storage/alice/state/k9", Some(&bob), &json!(1))
            .0,
        403
    );
    assert_eq!(
        client.get("/storage/bob/state/k0", Some(&bob)).0,
        404,
        "bob has none"
    );
    let mut keys = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = client.get(
            &format!("/storage/alice/state?limit=2{after}"),
            Some(&credential),
        );
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        keys.extend(items.iter().map(|i| i["key"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
    assert_eq!(
        client
            .delete("/storage/alice/state/k1", Some(&credential))
            .0,
        204
    );
    assert_eq!(
        client.get("/storage/alice/state/k1", Some(&credential)).0,
        404
    );
    assert_eq!(client.delete("/storage/alice/state", Some(&bob)).0, 403);
    let (status, body) = client.delete("/storage/alice/state", Some(&credential));
    assert_eq!((status, body["removed"].as_u64()), (200, Some(4)));

    // Removing a registration: the credential stops working and the return channel closes.
    let back: api::Channel = serde_json::from_value(reset["return_channel"].clone()).unwrap();
    assert_eq!(
        client.delete("/registrations/alice", Some(&credential)).0,
        200
    );
    assert_eq!(client.get("/registrations/alice", Some(&credential)).0, 401);
    let mut reader = ChannelReader::new(&back.info().unwrap()).unwrap();
    eventually("the return channel closes", || {
        reader.poll(&store).unwrap();
        reader.is_closed()
    });

    rt.block_on(grid.stop()).unwrap();
}

#[test]
fn forged_replayed_and_tampered_messages_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 50)))
        .unwrap();
    let client = Client::new(&grid.url);
    let store = HttpTransport::new(&grid.url);

    let key = SigningKey::from_bytes(&[7; 32]);
    let mut writer = ChannelWriter::new(key.clone(), true).unwrap();
    let info = writer.info();
    writer.hello(&store).unwrap();
    let (status, body) = client.put(
        "/registrations/carol",
        None,
        &register_body(&writer, "consumer"),
    );
    assert_eq!(status, 201, "{body}");
    let credential = body["credential"].as_str().unwrap().to_owned();

    // Message 1 is genuine.
    writer.publish(&store, usage(0, 1_500)).unwrap();
    // At message 2's address, before the genuine one: a forgery by another key,
    // a tampered copy of the genuine message, and message 1 replayed.
    let at2 = Address::of(&info.root, 2);
    let forger = SigningKey::from_bytes(&[8; 32]);
    let (_, forged) = ChannelWriter::resume(forger, info.root, info.side_key, 2)
        .prepare(Message::Data(usage(30_000, 900_000)))
        .unwrap();
    store.put(&at2, forged).unwrap();
    let mut copy = ChannelWriter::resume(key.clone(), info.root, info.side_key, 2);
    let (address, genuine) = copy.prepare(Message::Data(usage(30_000, 700))).unwrap();
    assert_eq!(address, at2);
    let mut tampered = genuine.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    store.put(&at2, tampered).unwrap();
    let replayed = store.get(&Address::of(&info.root, 1)).unwrap().remove(0);
    store.put(&at2, replayed).unwrap();
    store.put(&at2, genuine.clone()).unwrap();
    // The genuine message sent twice (a resend after a crash) counts once.
    store.put(&at2, genuine).unwrap();
    // Message 3: valid, but a consumer has no output to report.
    let wrong = Command::Output {
        start_ms: 60_000,
        end_ms: 90_000,
        wh: 5,
        price: Some(1),
    }
    .encode();
    ChannelWriter::resume(key, info.root, info.side_key, 3)
        .publish(&store, wrong)
        .unwrap();

    eventually("the grid read the channel and ticked", || {
        let (_, status) = client.get("/status", None);
        status["totals"]["usage-wh"].as_u64() == Some(2_200)
    });
    let (_, registration) = client.get("/registrations/carol", Some(&credential));
    assert_eq!(
        registration["read_index"], 4,
        "hello, 2 usages and the rejected command"
    );
    assert_eq!(registration["dropped"], 3, "forgery, tampered copy, replay");
    assert_eq!(registration["rejected"], 1, "an output from a consumer");
    let (_, status) = client.get("/status", Some(OPERATOR));
    assert_eq!(status["registrations"]["messages_dropped"], 3);
    assert_eq!(status["totals"]["records-received"], 2);
    // 2.2 kWh used: 2 whole kWh billed (10 tokens), 200 Wh carried.
    assert_eq!(status["totals"]["billed-wh"], 2_000);
    assert_eq!(status["totals"]["requested"], 10);

    rt.block_on(grid.stop()).unwrap();
}

#[test]
fn a_channel_registered_after_its_messages_arrived_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 20)))
        .unwrap();
    let client = Client::new(&grid.url);
    let store = HttpTransport::new(&grid.url);
    // The grid has been polling for a while before anything arrives.
    eventually("a few rounds", || {
        client.get("/status", None).1["totals"]["ticks"].as_u64() >= Some(3)
    });

    let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[4; 32]), true).unwrap();
    writer.hello(&store).unwrap();
    writer.publish(&store, usage(0, 1_200)).unwrap();
    writer.publish(&store, usage(30_000, 800)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (status, body) = client.put(
        "/registrations/dora",
        None,
        &register_body(&writer, "consumer"),
    );
    assert_eq!(status, 201, "{body}");
    eventually(
        "the grid read what was there before the registration",
        || client.get("/status", None).1["totals"]["usage-wh"] == 2_000,
    );
    rt.block_on(grid.stop()).unwrap();
}

/// A consumer that deregisters after its readings arrived, before the tick
/// that bills them: the tick still decides and commits (the bill has no
/// channel left and is counted undeliverable) instead of failing every tick.
#[test]
fn a_consumer_that_leaves_before_its_usage_is_billed_does_not_stall_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    // Ticks once at the start, then only when the test says.
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 86_400_000)))
        .unwrap();
    let client = Client::new(&grid.url);
    let store = HttpTransport::new(&grid.url);
    let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[9; 32]), true).unwrap();
    writer.hello(&store).unwrap();
    let (code, answer) = client.put(
        "/registrations/leaver",
        None,
        &register_body(&writer, "consumer"),
    );
    assert_eq!(code, 201, "{answer}");
    let credential = answer["credential"].as_str().unwrap().to_owned();
    writer.publish(&store, usage(0, 2_000)).unwrap();
    eventually("the reading is in the inbox", || {
        !powerplug::inbox::pending(grid.role.db(), 10)
            .unwrap()
            .is_empty()
    });
    assert_eq!(
        client.delete("/registrations/leaver", Some(&credential)).0,
        200
    );

    let summary = grid.role.tick().unwrap();
    assert_eq!(summary.failed, None);
    assert_eq!(
        (summary.usage_wh, summary.requests, summary.requested),
        (2_000, 1, 10)
    );
    let totals = client.get("/status", None).1["totals"].clone();
    assert_eq!(totals["requests-undeliverable"], 1, "{totals}");
    assert_eq!(grid.role.tick().unwrap().failed, None);
    rt.block_on(grid.stop()).unwrap();
}
