//! Issue 13: `/storage` documents and strategy components in an S3 bucket,
//! served by a real S3-protocol server (`s3s-fs`, in this process, over
//! HTTP with signed requests): put, get, page, delete, the size limit, a
//! component read back after a restart, and bad settings refused at start.

use std::path::{Path, PathBuf};

use powerplug::http::run;
use powerplug::storage::ObjectsConfig;
use powerplug_tests::{Client, OPERATOR, component, grid_config, strategy_files};
use serde_json::json;

const BUCKET: &str = "grid-bucket";
const ACCESS_KEY: &str = "powerplug-test";
const SECRET_KEY: &str = "powerplug-test-secret";

/// An `s3s-fs` server on a free loopback port, its buckets directories
/// under `root`; its URL.
fn s3_server(rt: &tokio::runtime::Runtime, root: &Path) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let mut service = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    service.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = service.build();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    url
}

fn s3(endpoint: &str, secret: &str) -> ObjectsConfig {
    ObjectsConfig::S3 {
        bucket: BUCKET.into(),
        endpoint: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        prefix: "north/".into(),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(secret.into()),
    }
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

#[test]
fn documents_and_components_live_in_an_s3_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let root = dir.path().join("s3");
    let endpoint = s3_server(&rt, &root);
    // This host's part of the bucket: the configured prefix, then its id.
    let ours = root.join(BUCKET).join("north").join("grid");
    let mut config = grid_config(dir.path(), grid_wasm, u64::MAX / 2);
    config.service.objects = Some(s3(&endpoint, SECRET_KEY));
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let status = client.get("/status", Some(OPERATOR)).1;
    assert!(
        status["store"]["objects"]
            .as_str()
            .unwrap()
            .starts_with(&format!("s3 {endpoint}/{BUCKET}/north/grid")),
        "{status}"
    );

    // The configured component is in the bucket, by its hash.
    let basic = status["strategy"]["sha256"].as_str().unwrap().to_owned();
    let component_file = ours.join("components").join(&basic);
    assert_eq!(
        powerplug::domain::Sha256::of(&std::fs::read(&component_file).unwrap()).hex(),
        basic
    );

    let mut writer = powerplug::channel::ChannelWriter::new(
        ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        true,
    )
    .unwrap();
    let register =
        powerplug::api::Register::open(powerplug::domain::EntityKind::Consumer, &mut writer, None)
            .unwrap();
    let (status, body) = client.put(
        "/registrations/alice",
        None,
        &serde_json::to_value(register).unwrap(),
    );
    assert_eq!(status, 201, "{body}");
    let credential = body["credential"].as_str().unwrap().to_owned();
    let alice = Some(credential.as_str());
    // Bodies above 4 KiB are objects; k2, a small one, stays in the index.
    let doc = |n: u64| match n {
        2 => json!({ "n": 2 }),
        n => json!({ "n": n, "pad": "x".repeat(5_000) }),
    };
    for i in 1..=5 {
        let (status, body) = client.put(&format!("/storage/alice/state/k{i}"), alice, &doc(i));
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = client.put("/storage/alice/state/k3", alice, &doc(33));
    assert_eq!(status, 200, "a replacement: {body}");
    assert_eq!(client.get("/storage/alice/state/k3", alice).1, doc(33));

    // The large bodies are objects in the bucket: five written, the
    // replaced one kept for the grace period.
    let documents = files(&ours.join("documents"));
    assert_eq!(documents.len(), 5, "{documents:?}");
    let stored = serde_json::to_vec(&doc(33)).unwrap();
    assert!(documents.iter().any(|(_, b)| *b == stored));

    // Pages, in key order.
    let (status, page) = client.get("/storage/alice/state?limit=2", alice);
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page,
        json!({ "items": [{ "key": "k1", "value": doc(1) }, { "key": "k2", "value": doc(2) }], "next": "k2" })
    );
    let page = client.get("/storage/alice/state?limit=2&after=k2", alice).1;
    assert_eq!(
        page,
        json!({ "items": [{ "key": "k3", "value": doc(33) }, { "key": "k4", "value": doc(4) }], "next": "k4" })
    );
    let page = client.get("/storage/alice/state?after=k4", alice).1;
    assert_eq!(page, json!({ "items": [{ "key": "k5", "value": doc(5) }] }));

    // The size limit: refused, naming the field, and nothing is written.
    let big = serde_json::to_vec(&json!({ "pad": "x".repeat(64 * 1024) })).unwrap();
    let (status, body) = client.call("PUT", "/storage/alice/state/big", alice, Some(&big));
    assert_eq!((status, &body["field"]), (413, &json!("body")), "{body}");
    assert_eq!(files(&ours.join("documents")).len(), 5);
    assert_eq!(client.get("/storage/alice/state/big", alice).0, 404);

    // Deletes: one, then the context.
    let (status, _) = client.call("DELETE", "/storage/alice/state/k1", alice, None);
    assert_eq!(status, 204);
    assert_eq!(client.get("/storage/alice/state/k1", alice).0, 404);
    let (status, body) = client.call("DELETE", "/storage/alice/state", alice, None);
    assert_eq!((status, &body["removed"]), (200, &json!(4)), "{body}");
    assert_eq!(
        client.get("/storage/alice/state", alice).1,
        json!({ "items": [] })
    );
    // A grace period later, the sweep takes every body no index names.
    let hub = &grid.role.hub;
    let later = powerplug::role::unix_ms() + powerplug::garbage::GRACE_MS + 1;
    assert_eq!(
        powerplug::garbage::sweep(&*hub.db, &hub.objects, later).unwrap(),
        5
    );
    assert_eq!(files(&ours.join("documents")), Vec::new());

    // An uploaded version goes to the bucket, and a restarted host runs it
    // from there.
    let premium = component("plugins/basic-grid-strategy", &["premium"]);
    let (status, body) = client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&premium));
    assert_eq!(status, 201, "{body}");
    let premium_sha = powerplug::domain::Sha256::of(&premium).hex();
    assert!(ours.join("components").join(&premium_sha).is_file());
    rt.block_on(grid.stop()).unwrap();
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let status = client.get("/status", None).1;
    assert_eq!(status["strategy"]["sha256"], json!(premium_sha));

    // A removed version's component goes a grace period later; one that
    // was uploaded again meanwhile stays.
    let basic_path = format!("/strategies/grid/activate/{basic}");
    assert_eq!(
        client.call("POST", &basic_path, Some(OPERATOR), None).0,
        200
    );
    let removed = format!("/strategies/grid/{premium_sha}");
    assert_eq!(client.call("DELETE", &removed, Some(OPERATOR), None).0, 200);
    let sweep = || {
        let later = powerplug::role::unix_ms() + powerplug::garbage::GRACE_MS + 1;
        let hub = &grid.role.hub;
        powerplug::garbage::sweep(&*hub.db, &hub.objects, later).unwrap()
    };
    let (status, body) = client.call(
        "PUT",
        "/strategies/grid?activate=false",
        Some(OPERATOR),
        Some(&premium),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(sweep(), 0, "stored again: still named");
    assert!(ours.join("components").join(&premium_sha).is_file());
    assert_eq!(client.call("DELETE", &removed, Some(OPERATOR), None).0, 200);
    assert_eq!(sweep(), 1);
    assert!(!ours.join("components").join(&premium_sha).exists());
    assert!(ours.join("components").join(&basic).is_file());

    // Uploaded again and activated, for the check below.
    let (status, body) = client.call("PUT", "/strategies/grid", Some(OPERATOR), Some(&premium));
    assert_eq!(status, 201, "{body}");
    rt.block_on(grid.stop()).unwrap();

    // Objects that are not what was stored are not run.
    std::fs::write(ours.join("components").join(&premium_sha), b"\0asm").unwrap();
    let err = rt.block_on(run::grid(&config)).err().expect("refused");
    assert!(
        format!("{err:#}").contains("not what was stored"),
        "{err:#}"
    );
}

#[test]
fn a_bucket_that_cannot_be_reached_or_read_stops_the_host_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = powerplug_tests::runtime();
    let endpoint = s3_server(&rt, &dir.path().join("s3"));
    let nobody = {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", port.local_addr().unwrap())
    };
    let mut missing_bucket = s3(&endpoint, SECRET_KEY);
    if let ObjectsConfig::S3 { bucket, .. } = &mut missing_bucket {
        *bucket = "no-such-bucket".into();
    }
    for (objects, named) in [
        (s3(&endpoint, "a wrong secret"), "objects.bucket"),
        (missing_bucket, "objects.bucket"),
        (s3(&nobody, SECRET_KEY), "objects.bucket"),
        (s3("ftp://127.0.0.1:1", SECRET_KEY), "objects.endpoint"),
    ] {
        let mut config = grid_config(dir.path(), grid_wasm.clone(), u64::MAX / 2);
        config.service.objects = Some(objects.clone());
        let Err(err) = rt.block_on(run::grid(&config)) else {
            panic!("{objects:?}: the grid started");
        };
        let err = format!("{err:#}");
        assert!(err.starts_with(named), "{objects:?}: {err}");
    }
}
