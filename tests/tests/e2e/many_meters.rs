//! What lets one grid serve many meters, checked for what it does rather
//! than how fast (the speed is `host/benches/million.rs`): registrations
//! imported in one transaction, all or none; the poll finding the channels
//! that moved through the index of next addresses; `/status` from the
//! per-kind summary; a tick sealing many payment requests at once, each
//! exactly once, on its own consumer's channel.

use ed25519_dalek::SigningKey;
use powerplug::channel::{ChannelWriter, Message, Sealed};
use powerplug::domain::EntityKind;
use powerplug::http::run;
use powerplug::inbox::Command;
use powerplug::registry::Application;
use powerplug_tests::{
    Client, OPERATOR, eventually, grid_config, return_channel, runtime, strategy_files,
};

fn meter(n: u16) -> ChannelWriter {
    let mut seed = [3; 32];
    seed[..2].copy_from_slice(&n.to_le_bytes());
    ChannelWriter::new(SigningKey::from_bytes(&seed), true).unwrap()
}

fn kwh(n: usize) -> u64 {
    1 + n as u64 % 7
}

#[test]
fn an_import_is_all_or_none_and_every_imported_meter_is_read_and_billed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 86_400_000)))
        .unwrap();
    let client = Client::new(&grid.url);
    let role = grid.role.clone();
    let db = &*role.hub.db;

    let mut writers: Vec<ChannelWriter> = (0..300).map(meter).collect();
    let hellos: Vec<Sealed> = writers
        .iter_mut()
        .map(|w| w.prepare(Message::Hello).unwrap())
        .collect();
    let ids: Vec<String> = (0..300).map(|n| format!("meter-{n:03}")).collect();
    let applications = |bad: Option<usize>| -> Vec<(&str, Application)> {
        (0..300)
            .map(|n| {
                // A hello sealed for another channel spoils the whole import.
                let hello = match bad {
                    Some(b) if b == n => &hellos[(n + 1) % 300].bytes,
                    _ => &hellos[n].bytes,
                };
                let application = Application {
                    kind: EntityKind::Consumer,
                    channel: writers[n].info(),
                    hello: Some(hello),
                    credential: None,
                    admission: None,
                };
                (ids[n].as_str(), application)
            })
            .collect()
    };
    let refused = role
        .hub
        .registry
        .register_batch(db, applications(Some(123)));
    assert!(refused.is_err(), "one bad hello refuses the import");
    let status = |client: &Client| client.get("/status", Some(OPERATOR)).1["registrations"].clone();
    assert_eq!(
        status(&client)["by_kind"],
        serde_json::json!({}),
        "nothing of it stayed"
    );

    let registered = role
        .hub
        .registry
        .register_batch(db, applications(None))
        .unwrap();
    assert_eq!(registered.len(), 300);
    // Every hello read (through the index of next addresses or the sweep).
    eventually("the grid reads every hello", || {
        status(&client)["messages_read"] == 300
    });
    assert_eq!(status(&client)["by_kind"]["consumers"]["open"], 300);

    // One reading each, of whole kWh (what the basic strategy bills at
    // once) of seven sizes, through the store's door.
    let readings: Vec<Sealed> = writers
        .iter_mut()
        .enumerate()
        .map(|(n, w)| {
            let usage = Command::Usage {
                start_ms: powerplug::domain::UnixMs(0),
                end_ms: powerplug::domain::UnixMs(30_000),
                wh: powerplug::domain::Wh(kwh(n) * 1_000),
                read: None,
            };
            w.prepare(Message::Data(usage.encode())).unwrap()
        })
        .collect();
    for batch in readings.chunks(powerplug::channel::BATCH) {
        let verdicts = role.hub.accept(batch).unwrap();
        assert!(verdicts.iter().all(Option::is_none), "{verdicts:?}");
    }
    eventually("every reading is in the inbox", || {
        status(&client)["messages_read"] == 600
    });
    // Joinings come in ticks of at most 10,000: one tick takes them all.
    let summary = role.tick().unwrap();
    assert_eq!((summary.failed, summary.requests), (None, 300));
    assert_eq!(
        summary.usage_wh,
        (0..300).map(|n| kwh(n) * 1_000).sum::<u64>()
    );
    eventually("the outbox is sent", || {
        powerplug::outbox::backlog(db).unwrap() == 0
    });

    // Each consumer finds exactly one request on its own return channel,
    // for exactly its own energy.
    for (n, r) in registered.iter().enumerate() {
        match &return_channel(&role, &r.registration)[..] {
            [Command::PaymentRequest { wh, .. }] => assert_eq!(wh.get(), kwh(n) * 1_000),
            other => panic!("consumer {n}: one request, not {other:?}"),
        }
    }
    rt.block_on(grid.stop()).unwrap();
}
