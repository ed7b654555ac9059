//! Retention on a running network: a demo whose grid and producers keep
//! what they finished with for 30 simulated seconds only (a tenth of a
//! second of real time). The demo's money
//! checks are the proof that retention took nothing a reader still needed:
//! an unread reading deleted would be usage never billed, an unread payment
//! request deleted would be a request no consumer saw.

use powerplug::demo::{self, Options};
use powerplug::storage::{Order, RedbStore, Store};
use powerplug_tests::strategy_files;

#[test]
fn a_grid_keeps_only_what_its_readers_may_still_need_and_the_money_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let (grid, producer) = strategy_files(dir.path());
    let mut retention = powerplug::retention::Retention {
        messages_ms: 30_000,
        tick_log_ms: 10 * 60_000,
        ledger_ms: 30_000,
        ledger_archive: true,
        every_ms: 50,
        ..Default::default()
    };
    retention.compact_free_percent = 0;
    let options = Options {
        producers: 1,
        sources_per_producer: 2,
        consumers: 4,
        time_scale: 300,
        ticks: Some(240),
        duration: None,
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        grid_component: grid,
        producer_component: producer,
        consumer_funds: 1_000_000,
        seed: 11,
        operator_token: None,
        viewer_token: None,
        retention,
        storage: Default::default(),
    };
    let rt = powerplug_tests::runtime();
    let summary = rt.block_on(demo::run(&options, |_| {})).unwrap();
    println!("{summary}");
    for check in &summary.checks {
        assert!(check.holds, "{}: {}", check.name, check.detail);
    }
    assert!(summary.payment_requests > 100, "{summary:?}");

    let db = RedbStore::open(&options.data_dir.join("grid/powerplug.redb")).unwrap();
    let rows = |table: &str| {
        db.read()
            .unwrap()
            .range(table, &[], None, Order::Ascending, usize::MAX)
            .unwrap()
            .len() as u64
    };
    // Every message ever stored: each channel's read position, and each
    // return channel's length.
    let mut registrations = powerplug::registry::all(&db).unwrap();
    powerplug::returns::current_all(&*db.read().unwrap(), &mut registrations).unwrap();
    let written: u64 = registrations
        .iter()
        .map(|r| r.read_index + r.return_channel.as_ref().map_or(0, |w| w.next_index))
        .sum();
    let held = rows("channel_messages");
    // 240 ticks of 15 s is an hour; 30 s kept (at most about twice that,
    // and a pass every 50 ms real) is a small part of it.
    assert!(
        held * 3 < written,
        "{held} of {written} channel messages still held"
    );
    let ticks = powerplug::tick_log::held(&db, "grid").unwrap();
    assert!(
        ticks.ticks < 240 && ticks.ticks >= 20,
        "the tick log holds {ticks:?}: 10 minutes' worth, at least a dry run's 20"
    );
    // The ledger's history goes too (balances stay: the checks above
    // read them), but each payer's latest payment.
    let transfers = powerplug::wallet::last_seq(&db).unwrap();
    let transfers_held = rows("wallet_transfers");
    assert!(
        transfers_held * 3 < transfers && transfers_held >= 5,
        "{transfers_held} of {transfers} transfers held (at least the 4 consumers' latest and the grid's)"
    );
    // What went is in the archive: with what is held, every transfer
    // once (a line archived twice, after a crash, would be the same seq).
    let archive =
        std::fs::read_to_string(options.data_dir.join("grid/ledger-archive.jsonl")).unwrap();
    let mut seqs: Vec<u64> = archive
        .lines()
        .map(|l| {
            serde_json::from_str::<powerplug::wallet::Transfer>(l)
                .unwrap()
                .seq
        })
        .collect();
    for (k, _) in db
        .read()
        .unwrap()
        .range("wallet_transfers", &[], None, Order::Ascending, usize::MAX)
        .unwrap()
    {
        seqs.push(powerplug::storage::key::Reader::new(&k).u64().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=transfers).collect::<Vec<_>>(),
        "archived and held"
    );
    let addresses = powerplug::wallet::addresses_issued(&db).unwrap();
    let addresses_held = rows("wallet_addresses");
    assert!(
        addresses_held * 3 < addresses,
        "{addresses_held} of {addresses} receive addresses held"
    );
    let received = rows("inbox_received");
    let readings: u64 = registrations.iter().map(|r| r.read_index).sum();
    assert!(
        received * 3 < readings,
        "{received} received records held of {readings} messages read"
    );
}

/// What a consumer has not said it read stays: a consumer that never says
/// keeps every payment request, one that says keeps what lies past where it
/// read. A reading sent again after the grid read and let go of it is taken
/// without being stored again (a meter's resend after a crash).
#[test]
fn return_channels_are_let_go_only_as_far_as_their_consumer_says_it_read() {
    use powerplug::channel::{Address, ChannelWriter, HttpTransport, messages_in};
    use powerplug::domain::{EntityKind, UnixMs, Wh};
    use powerplug::inbox::Command;
    use powerplug_tests::{Client, eventually, grid_config, runtime};

    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let mut config = grid_config(dir.path(), grid_wasm, 50);
    config.retention.messages_ms = 1;
    config.retention.every_ms = 10;
    config.retention.compact_free_percent = 0;
    let rt = runtime();
    let grid = rt.block_on(powerplug::http::run::grid(&config)).unwrap();
    let db = grid.role.hub.db.clone();
    let store = HttpTransport::new(&grid.url);

    let mut writers = Vec::new();
    for (seed, id) in [(1u8, "silent"), (2, "saying")] {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let mut writer = ChannelWriter::new(key, true).unwrap();
        let body = powerplug::api::Register::open(EntityKind::Consumer, &mut writer, None).unwrap();
        let body = serde_json::to_value(body).unwrap();
        let (status, answer) =
            Client::new(&grid.url).put(&format!("/registrations/{id}"), None, &body);
        assert_eq!(status, 201, "{answer}");
        let credential = answer["credential"].as_str().unwrap().to_owned();
        writers.push((id, writer, credential));
    }
    let usage = |slice: u64, read: Option<u64>| {
        Command::Usage {
            start_ms: UnixMs(slice * 30_000),
            end_ms: UnixMs((slice + 1) * 30_000),
            wh: Wh(1_000),
            read,
        }
        .encode()
    };
    let registration = |id: &str| {
        let tx = db.read().unwrap();
        let mut r = powerplug::registry::read(&*tx, id).unwrap().unwrap();
        // Where its return channel stands (the tick keeps that apart).
        powerplug::returns::current(&*tx, &mut r).unwrap();
        r
    };
    let held = |root: &[u8; 32], i: u64| {
        !messages_in(&*db.read().unwrap(), &Address::of(root, i))
            .unwrap()
            .is_empty()
    };
    // A kWh each per tick: hello and a request a tick on each return channel.
    for slice in 0..4 {
        for (_, writer, _) in &mut writers {
            writer.publish(&store, usage(slice, None)).unwrap();
        }
        eventually("both return channels carry the next request", || {
            ["silent", "saying"].iter().all(|id| {
                registration(id)
                    .return_channel
                    .is_some_and(|w| w.next_index >= slice + 2)
            })
        });
    }
    // "saying" says it read hello and the first request.
    let resend = {
        let (_, writer, _) = &mut writers[1];
        writer.publish(&store, usage(4, Some(2))).unwrap();
        writer.next_index() - 1
    };
    let saying = registration("saying");
    let back = saying.return_channel.clone().unwrap();
    eventually("what `saying` read of its return channel goes", || {
        !held(&back.root, 0) && !held(&back.root, 1)
    });
    // And what it read of its own channel went too (it was read, 1 ms ago).
    eventually("the grid lets go of the readings it read", || {
        !held(&saying.channel.root, 1)
    });
    // Passes go on; what is past where it read stays, and all of `silent`'s.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let back = registration("saying").return_channel.unwrap();
    assert!((2..back.next_index).all(|i| held(&back.root, i)));
    let silent = registration("silent").return_channel.unwrap();
    assert!((0..silent.next_index).all(|i| held(&silent.root, i)));
    let report = grid.role.hub.retention.report();
    assert!(
        report.messages_deleted >= 2 && report.last_error.is_none(),
        "{report:?}"
    );
    // The same figures for a scraper, and the store's size.
    let metrics = powerplug_tests::Metrics::of(&grid.url);
    let metric = |name: &str| metrics.get(name);
    assert!(metric("powerplug_retention_messages_deleted_total") >= 2);
    assert!(metric("powerplug_store_file_bytes") > 0);
    assert!(metric("powerplug_tick_log_ticks") >= 4);
    assert_eq!(metric("powerplug_scheduler_rounds_failed_total"), 0);

    // A resend of a reading the grid read and let go of: taken, not stored.
    eventually("the grid read the reading that said so", || {
        registration("saying").read_index > resend
    });
    let (_, writer, _) = &writers[1];
    let info = writer.info();
    eventually("the first reading went", || !held(&info.root, 1));
    // The same reading sealed again for index 1: what a meter that lost its
    // position would send.
    let key = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let first = ChannelWriter::resume(key, info.root, info.side_key, 1)
        .prepare(powerplug::channel::Message::Data(usage(0, None)))
        .unwrap();
    use powerplug::channel::Transport;
    let refused = store.put_many(&[first]).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    assert!(!held(&info.root, 1), "a read message is not stored again");

    // `silent` leaves: once its channels have been retired a while, all of
    // both go, unread requests and goodbye included (nobody will read them).
    let before = registration("silent");
    let (inbound, back) = (before.channel.root, before.return_channel.unwrap());
    // Its requests were never said read: all there until it leaves.
    assert!((0..back.next_index).all(|i| held(&back.root, i)));
    let (_, _, credential) = &writers[0];
    let (status, answer) = Client::new(&grid.url).delete("/registrations/silent", Some(credential));
    assert_eq!(status, 200, "{answer}");
    eventually("a retired channel's messages go", || {
        (0..=back.next_index).all(|i| !held(&back.root, i))
            && (0..before.read_index).all(|i| !held(&inbound, i))
    });
    // With them its roots went: nothing of `silent` is left there to be
    // read as another's, and the roots table does not grow with every leave.
    for (seed, root) in [(3u8, inbound), (4, back.root)] {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let mut writer = ChannelWriter::resume(key, root, Some([seed; 32]), 0);
        let body = powerplug::api::Register::open(EntityKind::Consumer, &mut writer, None).unwrap();
        let body = serde_json::to_value(body).unwrap();
        let path = format!("/registrations/newcomer-{seed}");
        let (status, answer) = Client::new(&grid.url).put(&path, None, &body);
        assert_eq!(status, 201, "{answer}");
    }
    rt.block_on(grid.stop()).unwrap();
}
