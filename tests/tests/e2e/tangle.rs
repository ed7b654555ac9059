//! A grid on the IOTA Tangle (Stardust), against the loopback node emulator:
//! every tick's settlement anchored and verified from the store, receive
//! addresses in Bech32 that the wallet seed derives, and a rewritten record
//! or a swapped anchor found by `verify`.

use ed25519_dalek::SigningKey;
use powerplug::channel::{ChannelWriter, Message, Sealed};
use powerplug::domain::EntityKind;
use powerplug::http::run;
use powerplug::inbox::Command;
use powerplug::registry::Application;
use powerplug::role::config::IotaConfig;
use powerplug::settlement;
use powerplug::storage::{RedbStore, Store};
use powerplug_iota::emulator::{Emulator, HRP};
use powerplug_iota::{Bech32Wallet, Node, NodeConfig};
use powerplug_tests::{
    Client, OPERATOR, eventually, grid_config, return_channel, runtime, strategy_files,
};

const METERS: u16 = 12;

fn meter(n: u16) -> ChannelWriter {
    let mut seed = [5; 32];
    seed[..2].copy_from_slice(&n.to_le_bytes());
    ChannelWriter::new(SigningKey::from_bytes(&seed), true).unwrap()
}

fn reading(w: &mut ChannelWriter, slice: u64, wh: u64) -> Sealed {
    let usage = Command::Usage {
        start_ms: powerplug::domain::UnixMs(slice * 30_000),
        end_ms: powerplug::domain::UnixMs((slice + 1) * 30_000),
        wh: powerplug::domain::Wh(wh),
        read: None,
    };
    w.prepare(Message::Data(usage.encode())).unwrap()
}

#[test]
fn every_tick_is_anchored_verified_and_paid_to_bech32_addresses() {
    let emulator = Emulator::start(1, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let mut config = grid_config(dir.path(), grid_wasm, 86_400_000);
    // Payouts at every tick, to a producer that registers freely.
    config
        .strategy
        .settings
        .insert("payout-interval-ms".into(), "0".into());
    config.admission.producer = powerplug::admission::Rule::Open;
    config.iota = Some(IotaConfig {
        node: emulator.url().to_owned(),
        anchor: true,
        bech32_addresses: true,
        coin_type: 4219,
        confirm_every_secs: 0,
        confirm_attempts: 40,
    });
    let rt = runtime();
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let role = grid.role.clone();
    let db = &*role.hub.db;

    let mut writers: Vec<ChannelWriter> = (0..METERS).map(meter).collect();
    let hellos: Vec<Sealed> = writers
        .iter_mut()
        .map(|w| w.prepare(Message::Hello).unwrap())
        .collect();
    let ids: Vec<String> = (0..METERS).map(|n| format!("home-{n}")).collect();
    let applications = (0..METERS as usize)
        .map(|n| {
            let application = Application {
                kind: EntityKind::Consumer,
                channel: writers[n].info(),
                hello: Some(&hellos[n].bytes),
                credential: None,
                admission: None,
            };
            (ids[n].as_str(), application)
        })
        .collect();
    let registered = role.hub.registry.register_batch(db, applications).unwrap();
    let mut producer = meter(1_000);
    let producer_hello = producer.prepare(Message::Hello).unwrap();
    let application = Application {
        kind: EntityKind::Producer,
        channel: producer.info(),
        hello: Some(&producer_hello.bytes),
        credential: None,
        admission: None,
    };
    role.hub
        .registry
        .register_batch(db, vec![("solar", application)])
        .unwrap();
    let client = Client::new(&grid.url);
    let read = || client.get("/status", Some(OPERATOR)).1["registrations"]["messages_read"].clone();
    let mut sent = METERS as u64 + 1;
    eventually("the grid reads every hello", || read() == sent);

    // Three ticks: two with whole kWh from every home, one quiet.
    for (round, kwh) in [(1, 2u64), (2, 3), (3, 0)] {
        if kwh > 0 {
            let readings: Vec<Sealed> = writers
                .iter_mut()
                .map(|w| reading(w, round, kwh * 1_000))
                .collect();
            let verdicts = role.hub.accept(&readings).unwrap();
            assert!(verdicts.iter().all(Option::is_none), "{verdicts:?}");
            sent += METERS as u64;
            eventually("the grid reads every reading", || read() == sent);
        }
        let summary = role.tick().unwrap();
        assert_eq!(summary.failed, None, "tick {round}");
    }
    eventually("every settlement is anchored", || {
        settlement::pending(db, 10).unwrap().is_empty()
    });
    // One a tick: the grid's own first tick at its start, then ours.
    let kept = settlement::list(db, 1, 10).unwrap();
    let ticks = powerplug::counter::Counter::Ticks.read(db).unwrap();
    assert_eq!(
        kept.iter().map(|s| s.tick).collect::<Vec<_>>(),
        (1..=ticks).collect::<Vec<_>>()
    );
    assert!(ticks >= 4);
    assert!(kept.iter().all(|s| s.block.is_some()));
    let anchors = client.get("/status", Some(OPERATOR)).1["anchors"].clone();
    assert_eq!(
        anchors,
        serde_json::json!({"pending": 0, "last_anchored_tick": ticks})
    );

    eventually("the outbox is sent", || {
        powerplug::outbox::backlog(db).unwrap() == 0
    });
    // Each home's requests name Bech32 addresses of the grid's wallet seed,
    // each a new index, each paying into the grid's account.
    let seed: [u8; 32] = powerplug::storage::meta(db, "wallet-seed")
        .unwrap()
        .unwrap();
    let wallet = Bech32Wallet::new(&seed, HRP, 4219).unwrap();
    let mut pay_to = Vec::new();
    for r in &registered {
        for command in return_channel(&role, &r.registration) {
            match command {
                Command::PaymentRequest { pay_to: to, .. } => pay_to.push(to),
                other => panic!("{other:?}"),
            }
        }
    }
    let mut expected: Vec<String> = (0..pay_to.len() as u64)
        .map(|n| wallet.address(n).unwrap())
        .collect();
    assert_eq!(pay_to.len(), 2 * METERS as usize, "two bills a home");
    pay_to.sort();
    expected.sort();
    assert_eq!(pay_to, expected);
    for to in &pay_to {
        assert_eq!(role.resolve(to).unwrap().as_deref(), Some("grid"));
    }
    drop(role);
    rt.block_on(grid.stop()).unwrap();

    // The stopped grid's store verifies against the Tangle.
    let store = RedbStore::open_existing(&dir.path().join("grid/powerplug.redb")).unwrap();
    let node = Node::connect(NodeConfig::new(emulator.url())).unwrap();
    let report = powerplug::verify::verify(&store, &node, 1, 100).unwrap();
    assert_eq!(
        (report.checked, report.verified),
        (ticks, ticks),
        "{report:?}"
    );
    assert!(report.failed.is_empty());

    // A tick pointed at the next one's anchor: the block anchors another tick.
    let mut swapped = kept[1].clone();
    swapped.block = kept[2].block.clone();
    rewrite(&store, &swapped);
    // Tick 1's kept settlement rewritten: the records no longer give it.
    let mut rewritten = kept[0].clone();
    rewritten.hash[0] ^= 1;
    rewrite(&store, &rewritten);
    // A tick whose log record retention let go: nothing left to check.
    let mut gone = kept[3].clone();
    gone.log_tick = 1_000;
    rewrite(&store, &gone);
    let report = powerplug::verify::verify(&store, &node, 1, 100).unwrap();
    assert_eq!(report.not_checkable.len(), 1);
    assert_eq!(report.not_checkable[0].tick, kept[3].tick);
    let failed: Vec<(u64, &str)> = report
        .failed
        .iter()
        .map(|f| (f.tick, f.why.as_str()))
        .collect();
    assert_eq!(report.verified, ticks - 3, "{failed:?}");
    assert_eq!(failed[0].0, kept[0].tick);
    assert!(
        failed[0].1.contains("changed since the tick"),
        "{}",
        failed[0].1
    );
    assert_eq!(failed[1].0, kept[1].tick);
    let other = format!("anchors grid `grid` tick {}", kept[2].tick);
    assert!(failed[1].1.contains(&other), "{}", failed[1].1);
}

fn rewrite(store: &RedbStore, s: &settlement::Settlement) {
    let tx = store.write().unwrap();
    settlement::record(&*tx, s).unwrap();
    tx.commit().unwrap();
}
