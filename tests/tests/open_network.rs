//! What a stranger or a hostile registered entity did to a grid in the hostile
//! review (issue 11), done again over HTTP against a running grid: each attack
//! is refused, and billing, payouts and the victim's money go on untouched.

use ed25519_dalek::SigningKey;
use powerplug::api;
use powerplug::channel::{
    Address, ChannelReader, ChannelWriter, HttpTransport, Message, READ_BATCH, Sealed, Transport,
};
use powerplug::domain::EntityKind;
use powerplug::http::run;
use powerplug::inbox::Command;
use powerplug_tests::{Client, Meter, OPERATOR, eventually, grid_config, runtime, strategy_files};
use serde_json::json;

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields 14 and 15 (utime, stime) in clock ticks, after the command name.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Finding 1: a consumer knows its return channel's root, so it could fill
/// the addresses of the grid's next payment request with junk; the grid's
/// outbox then stopped at that address and every consumer's bills queued
/// behind it, for good. Now the store takes nothing at the host's own
/// channels from outside, and one destination cannot hold up another.
#[test]
fn a_consumer_cannot_block_the_grids_payment_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 50)))
        .unwrap();
    let client = Client::new(&grid.url);
    let store = HttpTransport::new(&grid.url);

    let mut victim = Meter::register(&grid.url, "victim", 1);
    let key = SigningKey::from_bytes(&[66; 32]);
    let mut writer = ChannelWriter::new(key.clone(), true).unwrap();
    let body = api::Register::open(EntityKind::Consumer, &mut writer, None).unwrap();
    let (status, answer) = client.put(
        "/registrations/mallory",
        None,
        &serde_json::to_value(body).unwrap(),
    );
    assert_eq!(status, 201, "{answer}");
    let back: api::Channel = serde_json::from_value(answer["return_channel"].clone()).unwrap();
    let back = back.info().unwrap();

    // Junk at the next 16 addresses of its return channel, every way there is.
    for index in 1..=16u64 {
        let address = Address::of(&back.root, index);
        let junk = vec![0xAA; 100];
        // The old anonymous route is gone.
        let (status, _) = client.call("PUT", &format!("/channels/{address}"), None, Some(&junk));
        assert_eq!(status, 405, "PUT /channels/{{address}}");
        // As the grid's own key (the return channel's author): not registered here.
        let sealed = Sealed {
            author: back.author,
            index,
            address,
            bytes: junk.clone(),
        };
        assert!(store.put(&sealed).is_err());
        // As itself: its own key only reaches its own channel's addresses.
        let sealed = Sealed {
            author: key.verifying_key().to_bytes(),
            ..sealed
        };
        assert!(store.put(&sealed).is_err());
    }
    assert!(store.get(&Address::of(&back.root, 1)).unwrap().is_empty());

    // Both report 1 kWh; both are billed, and the outbox empties.
    victim.read();
    let usage = Command::Usage {
        start_ms: powerplug::domain::UnixMs(0),
        end_ms: powerplug::domain::UnixMs(30_000),
        wh: powerplug::domain::Wh(1_000),
        read: None,
    };
    writer.publish(&store, usage.encode()).unwrap();
    eventually("both are billed", || {
        let (_, status) = client.get("/status", Some(OPERATOR));
        status["totals"]["requested"] == 10 && status["outbox_pending"] == 0
    });
    let mut reader = ChannelReader::new(&back).unwrap();
    let poll = reader.poll(&store).unwrap();
    assert_eq!(poll.data.len(), 1, "mallory's own bill arrived: {poll:?}");
    assert_eq!(poll.dropped, 0);
    rt.block_on(grid.stop()).unwrap();
}

/// An insider who learned another channel's root registered a channel of
/// its own key on it: its messages then took the other's addresses at the
/// door (one message per address, first come), and the owner's own were
/// refused there for good. A root is now one channel's, also after it left
/// (until retention has forgotten its messages: `retention.rs`).
#[test]
fn nobody_registers_a_channel_on_a_root_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 50)))
        .unwrap();
    let client = Client::new(&grid.url);
    let register = |id: &str, writer: &mut ChannelWriter| {
        let body = api::Register::open(EntityKind::Consumer, writer, None).unwrap();
        client.put(
            &format!("/registrations/{id}"),
            None,
            &serde_json::to_value(body).unwrap(),
        )
    };
    let victim_key = SigningKey::from_bytes(&[21; 32]);
    let mut victim = ChannelWriter::new(victim_key.clone(), true).unwrap();
    let (status, answer) = register("victim", &mut victim);
    assert_eq!(status, 201, "{answer}");
    let credential = answer["credential"].as_str().unwrap().to_owned();
    let back: api::Channel = serde_json::from_value(answer["return_channel"].clone()).unwrap();
    let taken = [victim.info().root, back.info().unwrap().root];

    let mallory = SigningKey::from_bytes(&[22; 32]);
    let on = |root| ChannelWriter::resume(mallory.clone(), root, Some([9; 32]), 0);
    for root in taken {
        let (status, answer) = register("mallory", &mut on(root));
        assert_eq!(
            (status, &answer["field"]),
            (409, &json!("channel.root")),
            "{answer}"
        );
    }
    // Nothing of the refusals was kept: on a root of her own she gets in.
    let mut own = ChannelWriter::new(mallory.clone(), true).unwrap();
    assert_eq!(register("mallory", &mut own).0, 201);

    // The victim leaves: its root stays its own, and takes it back.
    let path = "/registrations/victim";
    assert_eq!(client.delete(path, Some(&credential)).0, 200);
    let other = SigningKey::from_bytes(&[23; 32]);
    let mut on_victims = ChannelWriter::resume(other, taken[0], Some([9; 32]), 0);
    let (status, answer) = register("other", &mut on_victims);
    assert_eq!(
        (status, &answer["field"]),
        (409, &json!("channel.root")),
        "{answer}"
    );
    let info = victim.info();
    let mut again = ChannelWriter::resume(victim_key, info.root, info.side_key, 0);
    let (status, answer) = register("victim", &mut again);
    assert_eq!(status, 201, "{answer}");
    rt.block_on(grid.stop()).unwrap();
}

/// Findings 5, 7 and 8: a small request must not make the host spend much.
#[test]
fn reads_registrations_and_writes_cost_the_host_little() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 50)))
        .unwrap();
    let client = Client::new(&grid.url);
    let store = HttpTransport::new(&grid.url);

    // A channel with a few hundred messages.
    let key = SigningKey::from_bytes(&[3; 32]);
    let mut writer = ChannelWriter::new(key.clone(), true).unwrap();
    let body =
        serde_json::to_value(api::Register::open(EntityKind::Consumer, &mut writer, None).unwrap())
            .unwrap();
    assert_eq!(client.put("/registrations/big", None, &body).0, 201);
    for slice in 0..200u64 {
        let usage = Command::Usage {
            start_ms: powerplug::domain::UnixMs(slice * 30_000),
            end_ms: powerplug::domain::UnixMs((slice + 1) * 30_000),
            wh: powerplug::domain::Wh(10),
            read: None,
        };
        writer.publish(&store, usage.encode()).unwrap();
    }
    eventually("the grid read them", || {
        client.get("/status", None).1["totals"]["usage-wh"] == 2_000
    });

    // Finding 7: registering the same channel again reads nothing (it cost
    // ~6 CPU-seconds each): 200 repeats stay well under a CPU-second each.
    let before = cpu_seconds();
    for _ in 0..200 {
        assert_eq!(client.put("/registrations/big", None, &body).0, 200);
    }
    let spent = cpu_seconds() - before;
    assert!(
        spent < 20.0,
        "200 repeated registrations took {spent} CPU-s"
    );

    // Finding 5: one address listed as often as a request may is answered
    // once; the answer stays small.
    let first = Address::of(&writer.info().root, 1).to_string();
    let request = json!({ "addresses": vec![first; READ_BATCH] });
    let (status, answer) = client.post("/channels/read", None, &request);
    assert_eq!(status, 200);
    let lists = answer["messages"].as_array().unwrap();
    assert_eq!(lists[0].as_array().unwrap().len(), 1);
    assert!(lists[1..].iter().all(|l| l.as_array().unwrap().is_empty()));
    assert!(answer.to_string().len() < 16 * 1024);

    // Finding 8: a stranger cannot write anywhere, however much it sends.
    let stranger = SigningKey::from_bytes(&[4; 32]);
    let mut junk = ChannelWriter::new(stranger, false).unwrap();
    junk.prepare(Message::Hello).unwrap();
    let messages: Vec<Sealed> = (0..256)
        .map(|i| junk.prepare(Message::Data(vec![i as u8; 4000])).unwrap())
        .collect();
    let refused = store.put_many(&messages).unwrap();
    let positions: Vec<usize> = refused.iter().map(|r| r.position).collect();
    assert_eq!(
        positions,
        (0..256).collect::<Vec<_>>(),
        "each refused, by position"
    );
    assert!(refused.iter().all(|r| !r.retry));
    // And the registered entity cannot write past its window.
    let mut ahead = ChannelWriter::resume(key, writer.info().root, writer.info().side_key, 10_000);
    let refused = store
        .put_many(&[ahead.prepare(Message::Data(vec![1])).unwrap()])
        .unwrap();
    assert!(
        refused[0].retry && refused[0].reason.contains("ahead"),
        "{refused:?}"
    );
    rt.block_on(grid.stop()).unwrap();
}

/// Finding 2: anyone could register as a producer and report 10⁹ Wh to take
/// the payouts. Producers now need the operator's token, and a reading beyond
/// what the grid's config finds plausible is refused.
#[test]
fn producers_need_admission_and_implausible_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let mut config = grid_config(dir.path(), grid_wasm, 50);
    config.plausible.max_wh = 50_000;
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let store = HttpTransport::new(&grid.url);

    let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[9; 32]), false).unwrap();
    let mut body =
        serde_json::to_value(api::Register::open(EntityKind::Producer, &mut writer, None).unwrap())
            .unwrap();
    let (status, answer) = client.put("/registrations/rogue", None, &body);
    assert_eq!((status, answer["field"].as_str()), (403, Some("admission")));
    body["admission"] = json!("not-a-token");
    assert_eq!(client.put("/registrations/rogue", None, &body).0, 403);
    // A token for a consumer does not admit a producer; a used-up one nothing.
    body["admission"] = json!(powerplug_tests::admit(&grid.url, "consumer", None, 1));
    assert_eq!(client.put("/registrations/rogue", None, &body).0, 403);
    let token = powerplug_tests::admit(&grid.url, "producer", Some("solar"), 1);
    body["admission"] = json!(token);
    let (status, answer) = client.put("/registrations/rogue", None, &body);
    assert_eq!(
        (status, answer["field"].as_str()),
        (403, Some("admission")),
        "bound to solar"
    );
    let (status, answer) = client.put("/registrations/solar", None, &body);
    assert_eq!(status, 201, "{answer}");
    let mut other = ChannelWriter::new(SigningKey::from_bytes(&[10; 32]), false).unwrap();
    let mut again =
        serde_json::to_value(api::Register::open(EntityKind::Producer, &mut other, None).unwrap())
            .unwrap();
    again["admission"] = json!(token);
    assert_eq!(
        client.put("/registrations/solar2", None, &again).0,
        403,
        "used up"
    );

    for (slice, wh) in [(0, 1_000_000_000), (1, 40_000)] {
        let output = Command::Output {
            start_ms: powerplug::domain::UnixMs(slice * 30_000),
            end_ms: powerplug::domain::UnixMs((slice + 1) * 30_000),
            wh: powerplug::domain::Wh(wh),
            price: Some(powerplug::domain::Tokens(wh / 1000 * 4)),
        };
        writer.publish(&store, output.encode()).unwrap();
    }
    eventually("the grid read both", || {
        let totals = client.get("/status", None).1["totals"].clone();
        totals["commands-rejected"] == 1 && totals["records-received"] == 1
    });
    rt.block_on(grid.stop()).unwrap();
}
