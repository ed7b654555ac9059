//! One grid tick as the grid role will run it: the strategy decides on input
//! read from the store; the new state, the payouts (wallet) and the payment
//! requests (sealed on the consumer's return channel, into the outbox) commit in
//! one transaction or not at all. A crash before the commit loses nothing — the
//! retried tick makes the same decision — and one after it repeats nothing.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use powerplug::books::{GridNews, StoredBooks, grid_input, store_decision};
use powerplug::channel::{ChannelReader, ChannelWriter, EmbeddedTransport, Message, Transport};
use powerplug::storage::{RedbStore, Store};
use powerplug::strategy::{GridDecision, GridStrategy, Limits, Output, Runtime, Transfer, Usage};
use powerplug::tick_log::{self, Outcome};
use powerplug::{outbox, wallet};
use powerplug_tests::basic_grid;

const NOW: u64 = 10_000;

fn news() -> GridNews {
    GridNews {
        usage: vec![Usage {
            consumer: 0,
            start_ms: 0,
            end_ms: 30_000,
            wh: 2_500,
        }],
        output: vec![Output {
            producer: 1,
            start_ms: 0,
            end_ms: 30_000,
            wh: 1_000,
            price: 4,
        }],
        transfers: vec![Transfer {
            entity: Some(0),
            amount: 100,
            at_ms: 5_000,
            incoming: true,
        }],
        ..GridNews::default()
    }
}

/// Decides and writes the tick; commits only if `commit`.
fn tick(
    db: &dyn Store,
    grid: &GridStrategy,
    writer: &mut ChannelWriter,
    commit: bool,
) -> GridDecision {
    let read = db.read().unwrap();
    let input = grid_input(&StoredBooks::new(&*read, "grid"), NOW, &[], news()).unwrap();
    drop(read);
    let decision = grid.tick(&input).unwrap().decision;

    let tx = db.write().unwrap();
    let outcome = Outcome::Decided(decision.clone());
    tick_log::record_grid(&*tx, "grid", &grid.info().sha256, input, outcome).unwrap();
    store_decision(&*tx, "grid", &decision.state, &decision.cells).unwrap();
    for p in &decision.payouts {
        let key = format!("payout/{NOW}/{}", p.producer);
        wallet::transfer(
            &*tx,
            "grid",
            &format!("producer-{}", p.producer),
            wallet::Tokens(p.amount),
            "grid",
            &key,
            wallet::UnixMs(NOW),
        )
        .unwrap();
    }
    for r in decision.payment_requests.iter() {
        let command = format!("payment-request owed={} wh={}", r.owed, r.wh).into_bytes();
        let sealed = writer.prepare(Message::Data(command)).unwrap();
        outbox::enqueue(&*tx, "consumer-0", sealed).unwrap();
    }
    if commit {
        tx.commit().unwrap();
    }
    decision
}

#[test]
fn a_tick_and_all_its_effects_commit_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(RedbStore::open(&dir.path().join("grid.redb")).unwrap());
    let consumer_store = EmbeddedTransport::open(&dir.path().join("consumer.redb")).unwrap();
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let grid = runtime.load_grid(&basic_grid()).unwrap();

    // Money in the system: the consumer paid 100 into the grid's account.
    let tx = db.write().unwrap();
    wallet::issue(
        &*tx,
        "consumer-0",
        wallet::Tokens(1_000),
        "fund",
        wallet::UnixMs(0),
    )
    .unwrap();
    wallet::transfer(
        &*tx,
        "consumer-0",
        "grid",
        wallet::Tokens(100),
        "consumer-0",
        "pay-1",
        wallet::UnixMs(5_000),
    )
    .unwrap();
    tx.commit().unwrap();

    // The consumer's return channel, opened with hello.
    let key = SigningKey::from_bytes(&[5; 32]);
    let mut writer = ChannelWriter::new(key.clone(), true).unwrap();
    let info = writer.info();
    writer.hello(&consumer_store).unwrap();
    let saved_position = writer.next_index();

    // The process dies before the commit: nothing happened.
    let lost = tick(&db, &grid, &mut writer, false);
    assert_eq!(lost.payment_requests.len(), 1);
    assert_eq!(lost.payouts.len(), 1);
    assert!(outbox::pending(&db, 10).unwrap().is_empty());
    assert!(tick_log::grid_ticks(&db, "grid", 0, 10).unwrap().is_empty());
    assert_eq!(wallet::balance(&db, "grid").unwrap().get(), 100);
    assert_eq!(wallet::balance(&db, "producer-1").unwrap().get(), 0);

    // Restart: the writer resumes from its saved position and the tick runs again
    // on the same books, so it decides the same.
    let mut writer = ChannelWriter::resume(key, info.root, info.side_key, saved_position);
    let decision = tick(&db, &grid, &mut writer, true);
    assert_eq!(decision, lost);
    // 100 in → 80 for producers → one payout round of 80 to the only producer.
    assert_eq!(wallet::balance(&db, "producer-1").unwrap().get(), 80);
    assert_eq!(wallet::balance(&db, "grid").unwrap().get(), 20);
    assert_eq!(
        wallet::total_balances(&db).unwrap().get(),
        wallet::issued(&db).unwrap().get()
    );

    // The outbox delivers once, even when drained twice.
    let route = |d: &str| (d == "consumer-0").then_some(&consumer_store as &dyn Transport);
    assert_eq!(outbox::drain(&db, 10, 0, route).unwrap().sent, 1);
    assert_eq!(outbox::drain(&db, 10, 0, route).unwrap().sent, 0);
    let poll = ChannelReader::new(&info)
        .unwrap()
        .poll(&consumer_store)
        .unwrap();
    assert_eq!(poll.data, [b"payment-request owed=10 wh=2000".to_vec()]);

    // The next tick reads the committed books: the carried 500 Wh plus 500 more is one kWh.
    let read = db.read().unwrap();
    let books = StoredBooks::new(&*read, "grid");
    let more = GridNews {
        usage: vec![Usage {
            consumer: 0,
            start_ms: 30_000,
            end_ms: 60_000,
            wh: 500,
        }],
        ..GridNews::default()
    };
    let input = grid_input(&books, 40_000, &[], more).unwrap();
    let next = grid.tick(&input).unwrap().decision;
    let requests: Vec<_> = next
        .payment_requests
        .iter()
        .map(|r| (r.consumer, r.wh, r.owed))
        .collect();
    assert_eq!(requests, [(0, 1_000, 5)]);
}

#[test]
fn the_tick_log_replays_to_the_same_decisions_and_prunes_old_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let db = RedbStore::open(&dir.path().join("grid.redb")).unwrap();
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let grid = runtime.load_grid(&basic_grid()).unwrap();

    for i in 0..6u64 {
        let read = db.read().unwrap();
        let usage = Usage {
            consumer: (i % 3) as u32,
            start_ms: i * 30_000,
            end_ms: (i + 1) * 30_000,
            wh: 700 * i,
        };
        let news = GridNews {
            usage: vec![usage],
            ..GridNews::default()
        };
        let input = grid_input(&StoredBooks::new(&*read, "grid"), i * 15_000, &[], news).unwrap();
        drop(read);
        let decision = grid.tick(&input).unwrap().decision;
        let tx = db.write().unwrap();
        store_decision(&*tx, "grid", &decision.state, &decision.cells).unwrap();
        let tick = tick_log::record_grid(
            &*tx,
            "grid",
            &grid.info().sha256,
            input,
            Outcome::Decided(decision),
        )
        .unwrap();
        assert_eq!(tick, i + 1);
        tx.commit().unwrap();
    }

    let log = tick_log::grid_ticks(&db, "grid", 0, 100).unwrap();
    assert_eq!(log.len(), 6);
    for record in &log {
        assert_eq!(record.strategy, grid.info().sha256);
        let Outcome::Decided(recorded) = &record.outcome else {
            panic!("tick {} failed", record.tick)
        };
        assert_eq!(
            &grid.tick(&record.input).unwrap().decision,
            recorded,
            "tick {} replays",
            record.tick
        );
    }
    assert_eq!(tick_log::grid_ticks(&db, "grid", 4, 100).unwrap().len(), 2);

    // Retention: ticks at 0, 15, …, 75 s. Each bound cuts the oldest
    // first; the newest `at_least` stay whatever the bounds say.
    let kept = || -> Vec<u64> {
        tick_log::grid_ticks(&db, "grid", 0, 100)
            .unwrap()
            .iter()
            .map(|r| r.tick)
            .collect()
    };
    let loose = tick_log::Bounds {
        ticks: 100,
        age_ms: u64::MAX,
        bytes: u64::MAX,
        at_least: 1,
    };
    let held = tick_log::held(&db, "grid").unwrap();
    assert_eq!((held.ticks, held.oldest_ms), (6, Some(0)));
    assert_eq!(tick_log::prune(&db, "grid", loose, 75_000).unwrap(), (0, 0));
    // By age: older than 40 s at 75 s goes (ticks at 0, 15, 30 s).
    let by_age = tick_log::Bounds {
        age_ms: 40_000,
        ..loose
    };
    assert_eq!(tick_log::prune(&db, "grid", by_age, 75_000).unwrap().0, 3);
    assert_eq!(kept(), [4, 5, 6]);
    // By bytes: room for all but one byte of what is left, so the oldest
    // goes and no more (records are compressed: their sizes differ).
    let held = tick_log::held(&db, "grid").unwrap();
    assert_eq!((held.ticks, held.oldest_ms), (3, Some(45_000)));
    let by_bytes = tick_log::Bounds {
        bytes: held.bytes - 1,
        ..loose
    };
    let (gone, freed) = tick_log::prune(&db, "grid", by_bytes, 75_000).unwrap();
    assert_eq!(gone, 1);
    assert_eq!(
        tick_log::held(&db, "grid").unwrap().bytes,
        held.bytes - freed
    );
    // By count, but never below `at_least`; the next tick numbers on.
    let all_gone = tick_log::Bounds {
        ticks: 0,
        at_least: 1,
        ..loose
    };
    assert_eq!(tick_log::prune(&db, "grid", all_gone, 75_000).unwrap().0, 1);
    assert_eq!(kept(), [6]);
    assert_eq!(tick_log::slots(&db).unwrap(), ["grid"]);
}
