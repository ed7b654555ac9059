//! Every route answers bad input — missing fields, wrong types, oversized
//! bodies, unknown ids, path tricks, wrong credentials — with a 4xx JSON error
//! naming the field, and changes nothing.

use ed25519_dalek::SigningKey;
use powerplug::api;
use powerplug::channel::ChannelWriter;
use powerplug::domain::EntityKind;
use powerplug::http::run;
use powerplug_tests::{Client, OPERATOR, grid_config, strategy_files};
use serde_json::{Value, json};

/// What must not change: the registrations, documents, wallet and channel.
fn snapshot(client: &Client, credential: &str, address: &str) -> Value {
    json!({
        "registration": client.get("/registrations/alice", Some(credential)),
        "documents": client.get("/storage/alice/state", Some(credential)),
        "wallet": client.get("/wallet", Some(credential)),
        "channel": client.get(&format!("/channels/{address}"), None),
        "registrations": client.get("/status", Some(OPERATOR)).1["registrations"],
        "ledger": client.get("/status", Some(OPERATOR)).1["wallet"],
    })
}

#[test]
fn every_route_refuses_bad_input_with_a_json_error_naming_the_field_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    // The grid never ticks during the test: its state is only what requests do.
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, u64::MAX / 2)))
        .unwrap();
    let client = Client::new(&grid.url);

    let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[1; 32]), true).unwrap();
    let address = powerplug::channel::Address::of(&writer.info().root, 0).to_string();
    let channel = serde_json::to_value(api::Channel::from(&writer.info())).unwrap();
    let register = api::Register::open(EntityKind::Consumer, &mut writer, None).unwrap();
    let (status, body) = client.put(
        "/registrations/alice",
        None,
        &serde_json::to_value(register).unwrap(),
    );
    assert_eq!(status, 201, "{body}");
    let alice = body["credential"].as_str().unwrap().to_owned();
    let (status, _) = client.put("/storage/alice/state/k", Some(&alice), &json!({ "n": 1 }));
    assert_eq!(status, 201);
    let (status, body) = client.post(
        "/wallet/issue",
        Some(OPERATOR),
        &json!({ "to": "alice", "amount": 100, "key": "fund" }),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = client.post(
        "/wallet/transfers",
        Some(&alice),
        &json!({ "to": "grid", "amount": 10, "key": "pay-1" }),
    );
    assert_eq!(status, 201, "{body}");

    // The poller reads the hello in the background; let it first.
    powerplug_tests::eventually("the grid read the hello", || {
        client.get("/registrations/alice", Some(&alice)).1["read_index"] == 1
    });
    let before = snapshot(&client, &alice, &address);
    let hex32 = "ab".repeat(32);
    let author = hex::encode(SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes());
    // Well formed, but it never said hello here.
    let good_channel = json!({ "root": hex32, "author": author });
    let mut dave = ChannelWriter::new(SigningKey::from_bytes(&[3; 32]), false).unwrap();
    let producer =
        serde_json::to_value(api::Register::open(EntityKind::Producer, &mut dave, None).unwrap())
            .unwrap();
    let with_token = |body: &Value, token: &str| {
        let mut body = body.clone();
        body["admission"] = json!(token);
        body
    };
    let big = vec![b'x'; 2 << 20];
    let big_doc = format!("\"{}\"", "y".repeat(70 * 1024));
    let too_many = json!({ "messages": (0..300).map(|_| json!({ "author": hex32, "index": 1, "message": "00" })).collect::<Vec<_>>() });
    let a = Some(alice.as_str());
    type Case<'a> = (
        &'a str,
        String,
        Option<&'a str>,
        Option<Vec<u8>>,
        u16,
        &'a str,
    );
    let j = |v: Value| Some(v.to_string().into_bytes());
    let cases: Vec<Case> = vec![
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({})),
            422,
            "kind",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "consumer" })),
            422,
            "channel",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "alien", "channel": good_channel })),
            422,
            "kind",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "consumer", "channel": { "root": "zz", "author": hex32 } })),
            422,
            "channel.root",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "consumer", "channel": { "root": 5, "author": hex32 } })),
            422,
            "channel.root",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "consumer", "channel": good_channel, "admin": true })),
            422,
            "admin",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            Some(b"not json".to_vec()),
            422,
            "body",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "source", "channel": good_channel })),
            422,
            "kind",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "consumer", "channel": good_channel })),
            422,
            "hello",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "consumer", "channel": good_channel, "hello": "zz" })),
            400,
            "hello",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(json!({ "kind": "consumer", "channel": good_channel, "hello": "00ff" })),
            422,
            "hello",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(producer.clone()),
            403,
            "admission",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            j(with_token(&producer, "0123")),
            403,
            "admission",
        ),
        (
            "POST",
            "/admissions".into(),
            None,
            j(json!({ "kind": "producer" })),
            401,
            "authorization",
        ),
        (
            "POST",
            "/admissions".into(),
            Some(OPERATOR),
            j(json!({ "kind": "source" })),
            422,
            "kind",
        ),
        (
            "POST",
            "/admissions".into(),
            Some(OPERATOR),
            j(json!({ "kind": "producer", "uses": 0 })),
            422,
            "uses",
        ),
        (
            "POST",
            "/admissions".into(),
            Some(OPERATOR),
            j(json!({ "kind": "producer", "id": "../x" })),
            400,
            "id",
        ),
        (
            "GET",
            "/admissions".into(),
            Some("wrong"),
            None,
            401,
            "authorization",
        ),
        (
            "PUT",
            "/registrations/dave".into(),
            None,
            Some(big.clone()),
            413,
            "body",
        ),
        (
            "PUT",
            "/registrations/..%2F..%2Fetc".into(),
            None,
            j(json!({ "kind": "consumer", "channel": good_channel })),
            400,
            "id",
        ),
        (
            "PUT",
            "/registrations/grid".into(),
            None,
            j(json!({ "kind": "consumer", "channel": channel })),
            409,
            "id",
        ),
        (
            "PUT",
            "/registrations/alice".into(),
            None,
            j(json!({ "kind": "producer", "channel": channel })),
            409,
            "kind",
        ),
        (
            "GET",
            "/registrations/nobody".into(),
            None,
            None,
            401,
            "authorization",
        ),
        ("GET", "/registrations/nobody".into(), a, None, 403, "id"),
        (
            "GET",
            "/registrations/alice".into(),
            Some("alice.abcd"),
            None,
            401,
            "authorization",
        ),
        (
            "GET",
            "/registrations/alice".into(),
            Some("nobody.abcd"),
            None,
            401,
            "authorization",
        ),
        ("DELETE", "/registrations/nobody".into(), a, None, 403, "id"),
        (
            "GET",
            "/storage/alice/..%2Fbob/k".into(),
            a,
            None,
            400,
            "context",
        ),
        ("GET", "/storage/alice/state/..".into(), a, None, 400, "key"),
        (
            "PUT",
            "/storage/alice/state/.hidden".into(),
            a,
            j(json!(1)),
            400,
            "key",
        ),
        (
            "PUT",
            "/storage/alice/state/big".into(),
            a,
            Some(big_doc.into_bytes()),
            413,
            "body",
        ),
        (
            "PUT",
            "/storage/alice/state/k".into(),
            a,
            Some(b"{".to_vec()),
            422,
            "body",
        ),
        (
            "PUT",
            "/storage/bob/state/k".into(),
            a,
            j(json!(1)),
            403,
            "id",
        ),
        (
            "GET",
            "/storage/alice/state?limit=abc".into(),
            a,
            None,
            400,
            "limit",
        ),
        (
            "GET",
            "/storage/alice/state?bogus=1".into(),
            a,
            None,
            400,
            "bogus",
        ),
        (
            "DELETE",
            "/storage/alice/state".into(),
            None,
            None,
            401,
            "authorization",
        ),
        ("GET", "/channels/zz".into(), None, None, 400, "address"),
        (
            "PUT",
            format!("/channels/{hex32}/1"),
            None,
            Some(Vec::new()),
            422,
            "body",
        ),
        (
            "PUT",
            format!("/channels/{hex32}/1"),
            None,
            Some(vec![1; 70 * 1024]),
            413,
            "body",
        ),
        (
            "PUT",
            format!("/channels/{hex32}/x"),
            None,
            Some(vec![1]),
            400,
            "index",
        ),
        (
            "PUT",
            format!("/channels/{hex32}/1"),
            None,
            Some(vec![1]),
            404,
            "author",
        ),
        (
            "POST",
            "/channels".into(),
            None,
            j(too_many),
            422,
            "messages",
        ),
        (
            "POST",
            "/channels".into(),
            None,
            j(json!({ "messages": [{ "author": hex32, "index": 1, "message": "zz" }] })),
            400,
            "messages[0].message",
        ),
        (
            "POST",
            "/channels".into(),
            None,
            j(json!({ "messages": [{ "author": "00", "index": 1, "message": "00" }] })),
            400,
            "messages[0].author",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            None,
            j(json!({ "to": "grid", "amount": 1, "key": "k" })),
            401,
            "authorization",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            j(json!({ "to": "grid", "amount": 0, "key": "k" })),
            422,
            "amount",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            j(json!({ "to": "grid", "amount": 1000, "key": "k" })),
            422,
            "amount",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            j(json!({ "to": "grid", "amount": -5, "key": "k" })),
            422,
            "amount",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            j(json!({ "to": "grid", "amount": "ten", "key": "k" })),
            422,
            "amount",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            j(json!({ "to": "pp1nowhere", "amount": 1, "key": "k" })),
            422,
            "to",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            // The shape of the grid's own addresses, enciphered by nobody.
            j(json!({ "to": format!("pp2{}", "ab".repeat(20)), "amount": 1, "key": "k" })),
            422,
            "to",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            j(json!({ "to": "grid", "amount": 1, "key": "../x" })),
            422,
            "key",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            j(json!({ "to": "grid", "amount": 1 })),
            422,
            "key",
        ),
        (
            "POST",
            "/wallet/transfers".into(),
            a,
            j(json!({ "to": "grid", "amount": 11, "key": "pay-1" })),
            409,
            "key",
        ),
        ("GET", "/wallet?since=-1".into(), a, None, 400, "since"),
        (
            "POST",
            "/wallet/issue".into(),
            None,
            j(json!({ "to": "alice", "amount": 5, "key": "k" })),
            401,
            "authorization",
        ),
        (
            "POST",
            "/wallet/issue".into(),
            Some("guess"),
            j(json!({ "to": "alice", "amount": 5, "key": "k" })),
            401,
            "authorization",
        ),
        (
            "POST",
            "/wallet/issue".into(),
            a,
            j(json!({ "to": "alice", "amount": 5, "key": "k" })),
            401,
            "authorization",
        ),
        (
            "POST",
            "/wallet/issue".into(),
            Some(OPERATOR),
            j(json!({ "to": "$issuer", "amount": 5, "key": "k" })),
            422,
            "to",
        ),
        ("GET", "/nowhere".into(), None, None, 404, "path"),
        ("DELETE", "/status".into(), None, None, 405, "method"),
    ];
    let mut failures = Vec::new();
    for (method, path, token, body, status, field) in &cases {
        let (got, answer) = client.call(method, path, *token, body.as_deref());
        let named = answer["field"].as_str();
        if got != *status || named != Some(*field) || !answer["error"].is_string() {
            failures.push(format!(
                "{method} {path}: expected {status} naming `{field}`, got {got} {answer}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        snapshot(&client, &alice, &address),
        before,
        "a refused request changed something"
    );
    rt.block_on(grid.stop()).unwrap();
}
