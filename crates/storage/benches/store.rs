//! What a tick costs the store, PostgreSQL against redb in the same run:
//! `tick/{redb,postgres}/N` is one write transaction that reads and writes
//! the cells of N consumers (named ahead with `prefetch`, then a get and a
//! put each, as a tick's books do), appends N outbox items, and commits, then
//! drains the outbox in a second; `read/{…}/N` reads N keys (prefetched) in
//! one read transaction. PostgreSQL is the local server (`POWERPLUG_TEST_POSTGRES`).
//!
//! `cargo bench -p powerplug-storage --bench store`

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use powerplug_storage::{Db, Order, PgStore, RedbStore, Store};

fn postgres() -> PgStore {
    let url = std::env::var("POWERPLUG_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".into());
    PgStore::connect(&url, &format!("bench_{}", std::process::id())).unwrap()
}

fn stores() -> (tempfile::TempDir, Vec<(&'static str, Db)>) {
    let dir = tempfile::tempdir().unwrap();
    let redb: Db = Arc::new(RedbStore::open(&dir.path().join("bench.redb")).unwrap());
    (
        dir,
        vec![("redb", redb), ("postgres", Arc::new(postgres()))],
    )
}

fn key(c: u64) -> [u8; 8] {
    c.to_be_bytes()
}

/// One tick's store work for `n` consumers; `round` makes each tick's values new.
fn tick(db: &dyn Store, n: u64, round: u64) {
    let tx = db.write().unwrap();
    // As a tick does: the cells it is about to read, named at once.
    let cells: Vec<Vec<u8>> = (0..n).map(|c| key(c).to_vec()).collect();
    tx.prefetch("cells", &cells).unwrap();
    for c in 0..n {
        let cell = tx.get("cells", &key(c)).unwrap().unwrap_or_default();
        let mut next = cell;
        next.truncate(24);
        next.extend_from_slice(&round.to_be_bytes());
        tx.put("cells", &key(c), &next).unwrap();
        tx.put("outbox", &key(round * n + c), &[7u8; 200]).unwrap();
    }
    tx.commit().unwrap();
    // The outbox is drained after the tick (listed, then taken out): keep
    // the table from growing.
    let tx = db.write().unwrap();
    let sent = tx
        .range("outbox", &[], None, Order::Ascending, usize::MAX)
        .unwrap();
    assert_eq!(sent.len() as u64, n);
    for (k, _) in sent {
        tx.delete("outbox", &k).unwrap();
    }
    tx.commit().unwrap();
}

fn bench(c: &mut Criterion) {
    let (_dir, stores) = stores();
    let mut group = c.benchmark_group("tick");
    group.sample_size(10);
    for n in [1_000u64, 10_000] {
        group.throughput(Throughput::Elements(n));
        for (name, db) in &stores {
            let mut round = 0;
            group.bench_with_input(BenchmarkId::new(*name, n), &n, |b, &n| {
                b.iter(|| {
                    round += 1;
                    tick(&**db, n, round);
                })
            });
        }
    }
    group.finish();
    let mut group = c.benchmark_group("read");
    group.sample_size(10);
    for n in [1_000u64, 10_000] {
        group.throughput(Throughput::Elements(n));
        for (name, db) in &stores {
            group.bench_with_input(BenchmarkId::new(*name, n), &n, |b, &n| {
                b.iter(|| {
                    let tx = db.read().unwrap();
                    let keys: Vec<Vec<u8>> = (0..n).map(|c| key(c).to_vec()).collect();
                    tx.prefetch("cells", &keys).unwrap();
                    for c in 0..n {
                        tx.get("cells", &key(c)).unwrap();
                    }
                })
            });
        }
    }
    group.finish();
    drop(stores);
    postgres().drop_namespace().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
