//! Registration, credentials, `/storage` and channel integrity on a running
//! grid, over HTTP: re-registering is idempotent, a reset needs the current
//! credential, an entity reaches only its own data, an id that left cannot be
//! taken over, and the channel store takes only a registered author's own
//! signed messages: forged, replayed, tampered or conflicting ones are refused
//! at the door and change nothing, while the genuine ones are taken once.

use ed25519_dalek::SigningKey;
use powerplug::api;
use powerplug::channel::{ChannelReader, ChannelWriter, HttpTransport, Message, Transport};
use powerplug::domain::EntityKind;
use powerplug::http::run;
use powerplug::inbox::Command;
use powerplug_tests::{Client, OPERATOR, admit, eventually, grid_config, runtime, strategy_files};
use serde_json::{Value, json};

/// The registration of the channel `writer` opens (with its hello).
fn register_body(writer: &mut ChannelWriter, kind: EntityKind) -> Value {
    serde_json::to_value(api::Register::open(kind, writer, None).unwrap()).unwrap()
}

fn usage(start_ms: u64, wh: u64) -> Vec<u8> {
    Command::Usage {
        start_ms: powerplug::domain::UnixMs(start_ms),
        end_ms: powerplug::domain::UnixMs(start_ms + 30_000),
        wh: powerplug::domain::Wh(wh),
        read: None,
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

    // A new channel without its hello, or with a hello another key sealed, is refused.
    let mut a = ChannelWriter::new(SigningKey::from_bytes(&[1; 32]), true).unwrap();
    let alice = register_body(&mut a, EntityKind::Consumer);
    let mut without = alice.clone();
    without.as_object_mut().unwrap().remove("hello");
    let (status, body) = client.put("/registrations/alice", None, &without);
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("hello")),
        "{body}"
    );
    let mut other = ChannelWriter::new(SigningKey::from_bytes(&[5; 32]), true).unwrap();
    let mut forged = alice.clone();
    forged["hello"] = register_body(&mut other, EntityKind::Consumer)["hello"].clone();
    let (status, body) = client.put("/registrations/alice", None, &forged);
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("hello")),
        "{body}"
    );
    let (_, status) = client.get("/status", Some(OPERATOR));
    assert_eq!(status["registrations"]["by_kind"], json!({}), "{status}");

    let (status, first) = client.put("/registrations/alice", None, &alice);
    assert_eq!(status, 201, "{first}");
    let credential = first["credential"].as_str().unwrap().to_owned();
    assert!(
        first["return_channel"].is_object(),
        "a consumer gets a return channel"
    );

    // The same channel again: the same answer, nothing new.
    let (status, again) = client.put("/registrations/alice", None, &alice);
    assert_eq!(status, 200);
    assert_eq!(again["credential"], first["credential"]);
    assert_eq!(again["index"], first["index"]);
    assert_eq!(again["return_channel"], first["return_channel"]);

    // A reset (a fresh channel for the same id) needs the current credential.
    let mut fresh = ChannelWriter::new(SigningKey::from_bytes(&[1; 32]), true).unwrap();
    let fresh = register_body(&mut fresh, EntityKind::Consumer);
    let (status, body) = client.put("/registrations/alice", None, &fresh);
    assert_eq!(
        (status, body["field"].as_str()),
        (401, Some("authorization")),
        "{body}"
    );
    let (status, body) = client.put("/registrations/alice", Some("alice.00"), &fresh);
    assert_eq!(status, 401, "{body}");
    let (status, reset) = client.put("/registrations/alice", Some(&credential), &fresh);
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
    // Bob is a producer: the grid admits him only with the operator's token.
    let mut b = ChannelWriter::new(SigningKey::from_bytes(&[2; 32]), false).unwrap();
    let mut bob = register_body(&mut b, EntityKind::Producer);
    let (status, body) = client.put("/registrations/bob", None, &bob);
    assert_eq!(
        (status, body["field"].as_str()),
        (403, Some("admission")),
        "{body}"
    );
    bob["admission"] = json!(admit(&grid.url, "producer", Some("bob"), 1));
    let (status, bob) = client.put("/registrations/bob", None, &bob);
    assert_eq!(status, 201, "{bob}");
    assert!(
        bob["return_channel"].is_null(),
        "producers get no return channel"
    );
    let bob = bob["credential"].as_str().unwrap().to_owned();
    assert_eq!(client.get("/registrations/alice", Some(&bob)).0, 403);
    assert_eq!(client.delete("/registrations/alice", Some(&bob)).0, 403);
    let mut b2 = ChannelWriter::new(SigningKey::from_bytes(&[2; 32]), false).unwrap();
    let (status, body) = client.put(
        "/registrations/alice",
        Some(&bob),
        &register_body(&mut b2, EntityKind::Producer),
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
fn the_store_takes_only_the_authors_own_messages_and_refused_ones_change_nothing() {
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
    // Before its registration the store takes nothing of a channel.
    let mut early = ChannelWriter::resume(key.clone(), info.root, info.side_key, 1);
    let err = early.publish(&store, usage(0, 5)).unwrap_err();
    assert!(err.to_string().contains("author"), "{err}");
    let body = register_body(&mut writer, EntityKind::Consumer);
    let (status, body) = client.put("/registrations/carol", None, &body);
    assert_eq!(status, 201, "{body}");
    let credential = body["credential"].as_str().unwrap().to_owned();

    // Message 1 is genuine.
    writer.publish(&store, usage(0, 1_500)).unwrap();
    // At message 2: a forgery by another key, a tampered copy of the genuine
    // message, and message 1 replayed are each refused.
    let forger = SigningKey::from_bytes(&[8; 32]);
    let mut forged = ChannelWriter::resume(forger, info.root, info.side_key, 2)
        .prepare(Message::Data(usage(30_000, 900_000)))
        .unwrap();
    forged.author = key.verifying_key().to_bytes();
    let mut copy = ChannelWriter::resume(key.clone(), info.root, info.side_key, 2);
    let genuine = copy.prepare(Message::Data(usage(30_000, 700))).unwrap();
    let mut tampered = genuine.clone();
    let last = tampered.bytes.len() - 1;
    tampered.bytes[last] ^= 1;
    let mut replayed = ChannelWriter::resume(key.clone(), info.root, info.side_key, 1)
        .prepare(Message::Data(usage(0, 1_500)))
        .unwrap();
    replayed.index = 2;
    let refused = store
        .put_many(&[forged, tampered, replayed, genuine.clone(), genuine.clone()])
        .unwrap();
    let positions: Vec<usize> = refused.iter().map(|r| r.position).collect();
    assert_eq!(positions, [0, 1, 2], "{refused:?}");
    assert!(refused.iter().all(|r| !r.retry), "{refused:?}");
    // A second, different message the author signed for index 2 is refused too.
    let mut again = ChannelWriter::resume(key.clone(), info.root, info.side_key, 2);
    let conflict = again.prepare(Message::Data(usage(30_000, 9))).unwrap();
    let err = store.put(&conflict).unwrap_err();
    assert!(err.to_string().contains("index"), "{err}");
    // And once the grid has read index 2 (the poll may have already): the
    // same again is a harmless resend, another message still a conflict.
    eventually("the grid read message 2", || {
        let tx = grid.role.hub.db.read().unwrap();
        powerplug::registry::read(&*tx, "carol")
            .unwrap()
            .is_some_and(|r| r.read_index > 2)
    });
    store.put(&genuine).unwrap();
    let err = store.put(&conflict).unwrap_err();
    assert!(err.to_string().contains("index"), "{err}");
    // Far ahead of where the grid has read: come back later.
    let mut ahead = ChannelWriter::resume(key.clone(), info.root, info.side_key, 1_000);
    let refused = store
        .put_many(&[ahead.prepare(Message::Data(usage(90_000, 1))).unwrap()])
        .unwrap();
    assert!(refused[0].retry, "{refused:?}");
    // Message 3: valid, but a consumer has no output to report.
    let wrong = Command::Output {
        start_ms: powerplug::domain::UnixMs(60_000),
        end_ms: powerplug::domain::UnixMs(90_000),
        wh: powerplug::domain::Wh(5),
        price: Some(powerplug::domain::Tokens(1)),
    }
    .encode();
    ChannelWriter::resume(key, info.root, info.side_key, 3)
        .publish(&store, wrong)
        .unwrap();

    // Read to the end (hello, 2 usages and the rejected command) and ticked:
    // a poll may read the usages before the last command is sent, and a tick
    // follow it, so wait for both.
    eventually("the grid read the channel and ticked", || {
        let (_, status) = client.get("/status", None);
        let (_, registration) = client.get("/registrations/carol", Some(&credential));
        status["totals"]["usage-wh"].as_u64() == Some(2_200) && registration["read_index"] == 4
    });
    let (_, registration) = client.get("/registrations/carol", Some(&credential));
    assert_eq!(registration["dropped"], 0, "nothing invalid was stored");
    assert_eq!(registration["rejected"], 1, "an output from a consumer");
    let (_, status) = client.get("/status", Some(OPERATOR));
    assert_eq!(status["totals"]["records-received"], 2);
    // 2.2 kWh used: 2 whole kWh billed (10 tokens), 200 Wh carried.
    assert_eq!(status["totals"]["billed-wh"], 2_000);
    assert_eq!(status["totals"]["requested"], 10);

    rt.block_on(grid.stop()).unwrap();
}

/// Finding 4 of the hostile review: after a deregistration anyone could
/// register the same id with another key and inherit its balance and
/// documents. Now only its last key, or a token the operator issued for that
/// very id, brings it back.
#[test]
fn an_id_that_left_comes_back_only_with_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 86_400_000)))
        .unwrap();
    let client = Client::new(&grid.url);
    let own = SigningKey::from_bytes(&[11; 32]);
    let mut first = ChannelWriter::new(own.clone(), true).unwrap();
    let (status, body) = client.put(
        "/registrations/erin",
        None,
        &register_body(&mut first, EntityKind::Consumer),
    );
    assert_eq!(status, 201, "{body}");
    let (index, credential) = (body["index"].clone(), body["credential"].clone());
    let credential = credential.as_str().unwrap();
    let (status, _) = client.put(
        "/storage/erin/notes/secret",
        Some(credential),
        &json!("erin's"),
    );
    assert_eq!(status, 201);
    assert_eq!(
        client.delete("/registrations/erin", Some(credential)).0,
        200
    );

    // A stranger's key: refused, however often, even as another kind.
    let mut stranger = ChannelWriter::new(SigningKey::from_bytes(&[12; 32]), true).unwrap();
    let body = register_body(&mut stranger, EntityKind::Consumer);
    let (status, answer) = client.put("/registrations/erin", None, &body);
    assert_eq!(
        (status, answer["field"].as_str()),
        (409, Some("id")),
        "{answer}"
    );
    // A token for any id does not do either; one issued for `erin` does.
    let mut with_token = body.clone();
    with_token["admission"] = json!(admit(&grid.url, "consumer", None, 1));
    assert_eq!(client.put("/registrations/erin", None, &with_token).0, 403);

    // Its own key comes back under the same index, and finds its documents.
    let mut back = ChannelWriter::new(own, true).unwrap();
    let (status, answer) = client.put(
        "/registrations/erin",
        None,
        &register_body(&mut back, EntityKind::Consumer),
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["index"], index);
    let credential = answer["credential"].as_str().unwrap();
    assert_eq!(
        client.get("/storage/erin/notes/secret", Some(credential)),
        (200, json!("erin's"))
    );
    // Then leaves again, and the operator lets a new key take the id over.
    assert_eq!(
        client.delete("/registrations/erin", Some(credential)).0,
        200
    );
    let mut bound = body;
    bound["admission"] = json!(admit(&grid.url, "consumer", Some("erin"), 1));
    let (status, answer) = client.put("/registrations/erin", None, &bound);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["index"], index);
    rt.block_on(grid.stop()).unwrap();
}

/// On a grid that ticks only when told: registers an entity of `kind` as
/// `id` (with the admission token `admit` gets at the grid's URL), sends `reading` on its channel, waits
/// until it is pending and deregisters it; then `after` (the grid, a client).
fn leave_before_the_tick(
    kind: EntityKind,
    id: &str,
    admit: impl FnOnce(&str) -> Option<String>,
    reading: Vec<u8>,
    after: impl FnOnce(&powerplug::role::grid::Grid, &Client),
) {
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
    let token = admit(&grid.url);
    let body = api::Register::open(kind, &mut writer, token.as_deref()).unwrap();
    let path = format!("/registrations/{id}");
    let (code, answer) = client.put(&path, None, &serde_json::to_value(body).unwrap());
    assert_eq!(code, 201, "{answer}");
    let credential = answer["credential"].as_str().unwrap().to_owned();
    writer.publish(&store, reading).unwrap();
    eventually("the reading is in the inbox", || {
        !powerplug::inbox::pending(grid.role.db(), 10)
            .unwrap()
            .is_empty()
    });
    assert_eq!(client.delete(&path, Some(&credential)).0, 200);
    after(&grid.role, &client);
    rt.block_on(grid.stop()).unwrap();
}

/// A consumer that deregisters after its readings arrived, before the tick
/// that bills them: the tick still decides and commits (the bill has no
/// channel left and is counted undeliverable) instead of failing every tick.
#[test]
fn a_consumer_that_leaves_before_its_usage_is_billed_does_not_stall_the_grid() {
    let reading = usage(0, 2_000);
    leave_before_the_tick(
        EntityKind::Consumer,
        "leaver",
        |_| None,
        reading,
        |grid, client| {
            let summary = grid.tick().unwrap();
            assert_eq!(summary.failed, None);
            assert_eq!(
                (summary.usage_wh, summary.requests, summary.requested),
                (2_000, 1, 10)
            );
            let totals = client.get("/status", None).1["totals"].clone();
            assert_eq!(totals["requests-undeliverable"], 1, "{totals}");
            assert_eq!(grid.tick().unwrap().failed, None);
        },
    );
}

/// A producer that deregisters after its output arrived, before the tick:
/// the record stays output (it came on a producer's channel), never usage
/// billed to the index it left behind.
#[test]
fn a_producer_that_leaves_before_the_tick_leaves_output_not_a_bill() {
    let output = Command::Output {
        start_ms: powerplug::domain::UnixMs(0),
        end_ms: powerplug::domain::UnixMs(30_000),
        wh: powerplug::domain::Wh(3_000),
        price: Some(powerplug::domain::Tokens(12)),
    };
    let token = |url: &str| Some(admit(url, "producer", None, 1));
    leave_before_the_tick(
        EntityKind::Producer,
        "solar",
        token,
        output.encode(),
        |grid, _| {
            let summary = grid.tick().unwrap();
            assert_eq!(summary.failed, None);
            assert_eq!(
                (summary.output_wh, summary.usage_wh, summary.requests),
                (3_000, 0, 0)
            );
        },
    );
}
