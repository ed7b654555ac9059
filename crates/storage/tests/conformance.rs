//! What every [`Store`] backend guarantees, tested the same way on each:
//! redb (a file of its own per test) and PostgreSQL (a namespace of its own
//! per test, on the server `POWERPLUG_TEST_POSTGRES` names; by default the
//! local one, `host=127.0.0.1 user=postgres dbname=test`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use powerplug_storage::{
    Db, Fenced, Lease, Order, PgStore, RedbStore, Store, check_store_file, prefixed,
};

fn postgres_url() -> String {
    std::env::var("POWERPLUG_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".into())
}

/// Where a test's store lives, so that another process can open it.
#[derive(Clone)]
enum Location {
    Redb(PathBuf),
    Postgres(String),
}

impl Location {
    fn open(&self) -> Db {
        match self {
            Location::Redb(path) => Arc::new(RedbStore::open(path).unwrap()),
            Location::Postgres(ns) => Arc::new(PgStore::connect(&postgres_url(), ns).unwrap()),
        }
    }

    /// As the crash test's child reads it from its environment.
    fn to_env(&self) -> String {
        match self {
            Location::Redb(path) => format!("redb:{}", path.display()),
            Location::Postgres(ns) => format!("postgres:{ns}"),
        }
    }

    fn from_env(s: &str) -> Self {
        match s.split_once(':') {
            Some(("redb", path)) => Location::Redb(path.into()),
            Some(("postgres", ns)) => Location::Postgres(ns.into()),
            _ => panic!("not a location: {s}"),
        }
    }
}

/// A test's store, removed when the test ends.
struct Fixture {
    db: Db,
    at: Location,
    _dir: Option<tempfile::TempDir>,
}

/// A namespace no other test (or earlier run) uses.
fn fresh_namespace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Fixture {
    fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let at = Location::Redb(dir.path().join("store.redb"));
        Self {
            db: at.open(),
            at,
            _dir: Some(dir),
        }
    }

    fn postgres() -> Self {
        let at = Location::Postgres(fresh_namespace());
        Self {
            db: at.open(),
            at,
            _dir: None,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Location::Postgres(ns) = &self.at
            && let Ok(store) = PgStore::connect(&postgres_url(), ns)
        {
            let _ = store.drop_namespace();
        }
    }
}

fn put(db: &dyn Store, table: &str, entries: &[(&[u8], &[u8])]) {
    let tx = db.write().unwrap();
    for (k, v) in entries {
        tx.put(table, k, v).unwrap();
    }
    tx.commit().unwrap();
}

fn keys(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<Vec<u8>> {
    entries.into_iter().map(|(k, _)| k).collect()
}

fn all(db: &dyn Store, table: &str, order: Order) -> Vec<Vec<u8>> {
    keys(
        db.read()
            .unwrap()
            .range(table, &[], None, order, usize::MAX)
            .unwrap(),
    )
}

fn be(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

// ---- the suite ----

fn keys_sort_as_bytes(f: &Fixture) {
    let mut expected: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0, 0],
        vec![0, 1],
        vec![1],
        vec![0x7f],
        vec![0x80],
        vec![0xfe, 0xff],
        vec![0xff],
        vec![0xff, 0],
        vec![0xff, 0xff, 0xff],
        b"a".to_vec(),
        b"a\0b".to_vec(),
        b"ab".to_vec(),
        b"B".to_vec(),
    ];
    // Written in an order of their own, not sorted.
    let tx = f.db.write().unwrap();
    for (i, k) in expected.iter().enumerate().rev() {
        tx.put("sorted", k, &be(i as u64)).unwrap();
    }
    tx.commit().unwrap();
    expected.sort();
    assert_eq!(all(&*f.db, "sorted", Order::Ascending), expected);
    expected.reverse();
    assert_eq!(all(&*f.db, "sorted", Order::Descending), expected);
}

fn ranges_are_half_open_and_limited(f: &Fixture) {
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..20).map(|n| (be(n), be(n * 10))).collect();
    let refs: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    put(&*f.db, "r", &refs);
    let r = f.db.read().unwrap();
    let range = |start: u64, end: Option<u64>, order, limit| {
        let end = end.map(be);
        keys(
            r.range("r", &be(start), end.as_deref(), order, limit)
                .unwrap(),
        )
    };
    let ks = |ns: &[u64]| ns.iter().map(|&n| be(n)).collect::<Vec<_>>();
    assert_eq!(
        range(5, Some(10), Order::Ascending, 100),
        ks(&[5, 6, 7, 8, 9])
    );
    assert_eq!(
        range(5, Some(10), Order::Descending, 100),
        ks(&[9, 8, 7, 6, 5])
    );
    assert_eq!(range(5, Some(10), Order::Ascending, 3), ks(&[5, 6, 7]));
    assert_eq!(range(5, Some(10), Order::Descending, 3), ks(&[9, 8, 7]));
    assert_eq!(
        range(15, None, Order::Ascending, usize::MAX),
        ks(&[15, 16, 17, 18, 19])
    );
    assert_eq!(range(15, None, Order::Descending, 2), ks(&[19, 18]));
    assert_eq!(range(5, Some(10), Order::Ascending, 0), ks(&[]));
    assert_eq!(range(7, Some(7), Order::Ascending, 10), ks(&[]));
    assert_eq!(range(20, None, Order::Ascending, 10), ks(&[]));
    // Values come with their keys.
    let got = r
        .range("r", &be(3), Some(&be(4)), Order::Ascending, 10)
        .unwrap();
    assert_eq!(got, vec![(be(3), be(30))]);
    // A prefix: keys of one byte more than `[0; 7]` … all of them here.
    assert_eq!(
        prefixed(&*r, "r", &[0; 7], Order::Ascending, 100)
            .unwrap()
            .len(),
        20
    );
}

fn tables_are_apart_and_absent_ones_empty(f: &Fixture) {
    put(&*f.db, "a", &[(b"k", b"in a")]);
    put(&*f.db, "b", &[(b"k", b"in b")]);
    let r = f.db.read().unwrap();
    assert_eq!(r.get("a", b"k").unwrap().as_deref(), Some(&b"in a"[..]));
    assert_eq!(r.get("b", b"k").unwrap().as_deref(), Some(&b"in b"[..]));
    assert_eq!(r.get("never", b"k").unwrap(), None);
    assert!(
        r.range("never", &[], None, Order::Ascending, 10)
            .unwrap()
            .is_empty()
    );
    drop(r);
    let w = f.db.write().unwrap();
    assert_eq!(w.get("never", b"k").unwrap(), None);
    assert!(!w.delete("never", b"k").unwrap());
    w.commit().unwrap();
}

fn put_overwrites_and_delete_says_whether(f: &Fixture) {
    put(&*f.db, "t", &[(b"k", b"one")]);
    put(&*f.db, "t", &[(b"k", b"two")]);
    assert_eq!(
        f.db.read().unwrap().get("t", b"k").unwrap().as_deref(),
        Some(&b"two"[..])
    );
    let w = f.db.write().unwrap();
    assert!(w.delete("t", b"k").unwrap());
    assert!(!w.delete("t", b"k").unwrap());
    w.commit().unwrap();
    assert_eq!(f.db.read().unwrap().get("t", b"k").unwrap(), None);
    // Empty values are values.
    put(&*f.db, "t", &[(b"empty", b"")]);
    assert_eq!(
        f.db.read().unwrap().get("t", b"empty").unwrap(),
        Some(Vec::new())
    );
}

fn a_transaction_commits_all_or_nothing(f: &Fixture) {
    put(&*f.db, "t", &[(b"gone", b"x")]);
    {
        let w = f.db.write().unwrap();
        for n in 0..100 {
            w.put("t", &be(n), b"v").unwrap();
        }
        w.delete("t", b"gone").unwrap();
        // It reads its own writes.
        assert_eq!(w.get("t", &be(42)).unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(w.get("t", b"gone").unwrap(), None);
        assert_eq!(
            w.range("t", &be(0), Some(&be(100)), Order::Ascending, 1000)
                .unwrap()
                .len(),
            100
        );
        // Dropped: not committed.
    }
    assert_eq!(all(&*f.db, "t", Order::Ascending), vec![b"gone".to_vec()]);
    let w = f.db.write().unwrap();
    for n in 0..100 {
        w.put("t", &be(n), b"v").unwrap();
    }
    w.delete("t", b"gone").unwrap();
    w.commit().unwrap();
    assert_eq!(all(&*f.db, "t", Order::Ascending).len(), 100);
}

/// A writer's reads see the store as its writes left it, before commit:
/// overwritten, deleted and new keys, ranges in both orders and under a
/// limit, keys asked for ahead with `prefetch`.
fn a_writer_sees_its_writes_over_the_stored_rows(f: &Fixture) {
    let stored: Vec<(Vec<u8>, Vec<u8>)> = (0..10).map(|n| (be(n * 10), b"old".to_vec())).collect();
    let refs: Vec<(&[u8], &[u8])> = stored.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    put(&*f.db, "t", &refs);
    put(&*f.db, "log", &[(&be(1), b""), (&be(2), b"")]);
    let w = f.db.write().unwrap();
    w.prefetch("t", &[be(0), be(5), be(10), be(10)]).unwrap();
    assert_eq!(w.get("t", &be(5)).unwrap(), None, "prefetched: absent");
    assert!(w.delete("t", &be(0)).unwrap());
    assert!(w.delete("t", &be(10)).unwrap());
    assert!(
        !w.delete("t", &be(10)).unwrap(),
        "deleted in this transaction"
    );
    w.put("t", &be(20), b"new").unwrap();
    w.put("t", &be(25), b"new").unwrap();
    w.put("t", &be(95), b"new").unwrap();
    assert!(
        w.delete("t", &be(95)).unwrap(),
        "written in this transaction"
    );
    let expected = [20, 25, 30, 40, 50, 60, 70, 80, 90].map(be).to_vec();
    for limit in [1, 2, 3, 5, 9, 100] {
        let up = w.range("t", &[], None, Order::Ascending, limit).unwrap();
        assert_eq!(
            keys(up),
            expected[..limit.min(9)],
            "ascending, limit {limit}"
        );
        let down = w.range("t", &[], None, Order::Descending, limit).unwrap();
        let mut want = expected.clone();
        want.reverse();
        assert_eq!(
            keys(down),
            want[..limit.min(9)],
            "descending, limit {limit}"
        );
    }
    let some = w
        .range("t", &be(10), Some(&be(30)), Order::Ascending, 10)
        .unwrap();
    assert_eq!(
        some,
        vec![(be(20), b"new".to_vec()), (be(25), b"new".to_vec())],
        "bounded, the end excluded, new values"
    );
    // A log appended to after its last key, over and over, its newest
    // entry taken back now and then.
    let newest = |w: &dyn powerplug_storage::WriteTx| {
        let last = w.range("log", &[], None, Order::Descending, 1).unwrap();
        u64::from_be_bytes(last[0].0[..8].try_into().unwrap())
    };
    for n in 3..40u64 {
        assert_eq!(newest(&*w), n - 1);
        w.put("log", &be(n), b"").unwrap();
        if n % 7 == 0 {
            w.remove("log", &be(n)).unwrap();
            assert_eq!(newest(&*w), n - 1, "the newest taken back");
            w.put("log", &be(n), b"").unwrap();
        }
    }
    let two = w.range("log", &[], None, Order::Descending, 2).unwrap();
    assert_eq!(keys(two), [be(39), be(38)]);
    w.commit().unwrap();
    assert_eq!(all(&*f.db, "t", Order::Ascending), expected, "as committed");
    assert_eq!(all(&*f.db, "log", Order::Ascending).len(), 39);
}

/// Ranges named ahead read as they would have without: in a reader, and in
/// a writer whose own writes fall in them; a range too big to be fetched
/// ahead whole still reads whole.
fn prefetched_ranges_read_as_asked(f: &Fixture) {
    let mut stored: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for prefix in 0..4u8 {
        let count = [0, 1, 3, 40][usize::from(prefix)];
        for n in 0..count {
            stored.push((vec![prefix, n], vec![n]));
        }
    }
    let refs: Vec<(&[u8], &[u8])> = stored.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    put(&*f.db, "m", &refs);
    let ranges: Vec<(Vec<u8>, Vec<u8>)> = (0..5u8).map(|p| (vec![p], vec![p + 1])).collect();
    let expect = |prefix: u8| -> Vec<Vec<u8>> {
        stored
            .iter()
            .filter(|(k, _)| k[0] == prefix)
            .map(|(k, _)| k.clone())
            .collect()
    };
    let r = f.db.read().unwrap();
    r.prefetch_ranges("m", &ranges).unwrap();
    for (p, (start, end)) in ranges.iter().enumerate() {
        let read = r
            .range("m", start, Some(end), Order::Ascending, usize::MAX)
            .unwrap();
        assert_eq!(keys(read), expect(p as u8), "prefix {p} in a reader");
    }
    drop(r);
    let w = f.db.write().unwrap();
    w.put("m", &[1, 9], b"new").unwrap();
    w.remove("m", &[2, 0]).unwrap();
    w.prefetch_ranges("m", &ranges).unwrap();
    w.put("m", &[4, 0], b"new").unwrap();
    let read = |p: u8| {
        keys(
            w.range("m", &[p], Some(&[p + 1]), Order::Ascending, usize::MAX)
                .unwrap(),
        )
    };
    assert_eq!(read(1), [vec![1, 0], vec![1, 9]]);
    assert_eq!(read(2), [vec![2, 1], vec![2, 2]]);
    assert_eq!(read(3).len(), 40, "too big to be fetched ahead");
    assert_eq!(read(4), [vec![4, 0]]);
}

/// A transaction of many megabytes commits whole.
fn a_large_transaction_commits_whole(f: &Fixture) {
    let value = vec![7u8; 512 << 10];
    let w = f.db.write().unwrap();
    for n in 0..40 {
        w.put("big", &be(n), &value).unwrap();
    }
    for n in 0..5_000 {
        w.put("small", &be(n), b"v").unwrap();
    }
    w.commit().unwrap();
    let r = f.db.read().unwrap();
    let big = r
        .range("big", &[], None, Order::Ascending, usize::MAX)
        .unwrap();
    assert_eq!(big.len(), 40);
    assert!(big.iter().all(|(_, v)| *v == value));
    assert_eq!(all(&*f.db, "small", Order::Ascending).len(), 5_000);
    drop(r);
    let w = f.db.write().unwrap();
    for n in 0..5_000 {
        assert!(w.delete("small", &be(n)).unwrap());
    }
    w.commit().unwrap();
    assert!(all(&*f.db, "small", Order::Ascending).is_empty());
}

fn readers_keep_their_snapshot(f: &Fixture) {
    put(&*f.db, "t", &[(b"k", b"old")]);
    let r = f.db.read().unwrap();
    assert_eq!(r.get("t", b"k").unwrap().as_deref(), Some(&b"old"[..]));
    put(&*f.db, "t", &[(b"k", b"new"), (b"more", b"new")]);
    assert_eq!(r.get("t", b"k").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(
        r.range("t", &[], None, Order::Ascending, 10).unwrap().len(),
        1
    );
    drop(r);
    assert_eq!(
        f.db.read().unwrap().get("t", b"k").unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

/// Read-modify-write of one counter from `threads` threads: writers that
/// did not take turns would lose increments.
fn increment_from_threads(stores: &[Db], per_thread: u64) -> u64 {
    std::thread::scope(|s| {
        for db in stores {
            s.spawn(move || {
                for _ in 0..per_thread {
                    let w = db.write().unwrap();
                    let now = w
                        .get("c", b"n")
                        .unwrap()
                        .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                    w.put("c", b"n", &be(now + 1)).unwrap();
                    w.commit().unwrap();
                }
            });
        }
    });
    let v = stores[0].read().unwrap().get("c", b"n").unwrap().unwrap();
    u64::from_be_bytes(v.try_into().unwrap())
}

fn writers_take_turns(f: &Fixture) {
    let stores = vec![f.db.clone(), f.db.clone(), f.db.clone()];
    assert_eq!(increment_from_threads(&stores, 40), 120);
}

/// Set in the environment of the crash test's child: the store to write to
/// before it aborts.
const CRASH_INTO: &str = "POWERPLUG_CONFORMANCE_CRASH_INTO";

/// The crash test's child (run as its own process by
/// [`a_crash_before_commit_keeps_only_what_committed`]): commits one entry,
/// writes another and dies before committing it. Does nothing when run
/// with the other tests.
#[test]
fn crash_child() {
    let Ok(at) = std::env::var(CRASH_INTO) else {
        return;
    };
    let db = Location::from_env(&at).open();
    put(&*db, "t", &[(b"committed", b"yes")]);
    let w = db.write().unwrap();
    for n in 0..1000 {
        w.put("t", &be(n), b"never committed").unwrap();
    }
    std::process::abort();
}

fn a_crash_before_commit_keeps_only_what_committed(mut f: Fixture) {
    // The child opens the store itself, and redb lets one process at a time
    // hold a file: close ours (the fixture stays, to clean up).
    f.db = Arc::new(RedbStore::in_memory().unwrap());
    let at = f.at.clone();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--test-threads=1", "--nocapture"])
        .env(CRASH_INTO, at.to_env())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was to abort");
    let db = at.open();
    assert_eq!(
        db.read()
            .unwrap()
            .get("t", b"committed")
            .unwrap()
            .as_deref(),
        Some(&b"yes"[..])
    );
    assert_eq!(
        all(&*db, "t", Order::Ascending),
        vec![b"committed".to_vec()]
    );
    // And it takes writes again.
    put(&*db, "t", &[(b"after", b"yes")]);
}

fn stats_count_what_is_stored(f: &Fixture) {
    let before = f.db.stats().unwrap();
    // Bytes no compression shrinks (PostgreSQL compresses large values).
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let value: Vec<u8> = (0..1 << 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let entries: Vec<(Vec<u8>, &[u8])> = (0..32).map(|n| (be(n), &value[..])).collect();
    let refs: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (&k[..], *v)).collect();
    put(&*f.db, "big", &refs);
    let after = f.db.stats().unwrap();
    assert!(
        after.stored_bytes >= before.stored_bytes + (2 << 20),
        "{before:?} → {after:?}"
    );
    assert!(after.file_bytes >= after.stored_bytes / 2, "{after:?}");
    let w = f.db.write().unwrap();
    for (k, _) in &entries {
        w.delete("big", k).unwrap();
    }
    w.commit().unwrap();
    // What compaction gives back is the backend's (redb: the file's free
    // pages; PostgreSQL: room for reuse); that it runs, every one does.
    f.db.compact().unwrap();
    f.db.stats().unwrap();
}

fn a_backup_is_a_store_file_with_every_table(f: &Fixture) {
    // More entries than the copy takes at a time.
    let w = f.db.write().unwrap();
    for n in 0..25_000u64 {
        w.put("many", &be(n), &be(n)).unwrap();
    }
    w.put("one", b"k", b"v").unwrap();
    w.commit().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backup.redb");
    let size = f.db.backup_to(&path).unwrap();
    assert!(size > 0);
    // Never over a file that is there.
    assert!(f.db.backup_to(&path).is_err());
    check_store_file(&path).unwrap();
    let copy = RedbStore::open_existing(&path).unwrap();
    let many = all(&copy, "many", Order::Ascending);
    assert_eq!(many.len(), 25_000);
    assert_eq!(many[24_999], be(24_999));
    assert_eq!(
        copy.read().unwrap().get("one", b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

macro_rules! suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::Fixture;

            #[test]
            fn keys_sort_as_bytes() {
                super::keys_sort_as_bytes(&$fixture)
            }
            #[test]
            fn ranges_are_half_open_and_limited() {
                super::ranges_are_half_open_and_limited(&$fixture)
            }
            #[test]
            fn tables_are_apart_and_absent_ones_empty() {
                super::tables_are_apart_and_absent_ones_empty(&$fixture)
            }
            #[test]
            fn put_overwrites_and_delete_says_whether() {
                super::put_overwrites_and_delete_says_whether(&$fixture)
            }
            #[test]
            fn a_transaction_commits_all_or_nothing() {
                super::a_transaction_commits_all_or_nothing(&$fixture)
            }
            #[test]
            fn a_writer_sees_its_writes_over_the_stored_rows() {
                super::a_writer_sees_its_writes_over_the_stored_rows(&$fixture)
            }
            #[test]
            fn prefetched_ranges_read_as_asked() {
                super::prefetched_ranges_read_as_asked(&$fixture)
            }
            #[test]
            fn a_large_transaction_commits_whole() {
                super::a_large_transaction_commits_whole(&$fixture)
            }
            #[test]
            fn readers_keep_their_snapshot() {
                super::readers_keep_their_snapshot(&$fixture)
            }
            #[test]
            fn writers_take_turns() {
                super::writers_take_turns(&$fixture)
            }
            #[test]
            fn a_crash_before_commit_keeps_only_what_committed() {
                super::a_crash_before_commit_keeps_only_what_committed($fixture)
            }
            #[test]
            fn stats_count_what_is_stored() {
                super::stats_count_what_is_stored(&$fixture)
            }
            #[test]
            fn a_backup_is_a_store_file_with_every_table() {
                super::a_backup_is_a_store_file_with_every_table(&$fixture)
            }
        }
    };
}

suite!(redb_file, Fixture::redb());
suite!(pg, Fixture::postgres());

// ---- PostgreSQL's own: several hosts, threads of a runtime, configuration, a lost connection ----

/// Two stores on one namespace are two hosts sharing it: their writers
/// take turns too (the advisory lock, not this process's queue).
#[test]
fn postgres_hosts_on_one_namespace_take_turns() {
    let f = Fixture::postgres();
    let other = f.at.open();
    let stores = vec![f.db.clone(), other.clone(), f.db.clone(), other];
    assert_eq!(increment_from_threads(&stores, 25), 100);
}

/// A host calls the store from its runtime's blocking threads and from
/// async code too (a quick read in a handler), and may drop its last handle
/// anywhere: none of it may panic (the sync client runs a runtime of its
/// own, which tokio refuses to start on a thread that drives tasks).
#[test]
fn postgres_works_from_any_thread_of_a_runtime() {
    let f = Fixture::postgres();
    let at = f.at.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let got = runtime.block_on(async move {
        let db = tokio::spawn(async move { at.open() }).await.unwrap();
        let writer = db.clone();
        tokio::task::spawn_blocking(move || put(&*writer, "t", &[(b"k", b"v")]))
            .await
            .unwrap();
        let reader = db.clone();
        let got = tokio::spawn(async move { reader.read().unwrap().get("t", b"k").unwrap() })
            .await
            .unwrap();
        // The last handle, on a worker thread.
        tokio::spawn(async move { drop(db) }).await.unwrap();
        got
    });
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
}

#[test]
fn postgres_bad_configuration_names_the_key() {
    let err = |url: &str, ns: &str| match PgStore::connect(url, ns) {
        Ok(_) => panic!("{url} {ns}: connected"),
        Err(e) => format!("{e:#}"),
    };
    let url = postgres_url();
    assert!(err(&url, "a b").contains("storage.namespace"));
    assert!(err(&url, &"n".repeat(61)).contains("storage.namespace"));
    assert!(err(&url, "").contains("storage.namespace"));
    assert!(err("postgres://no such url", "n").contains("storage.url"));
    // Nothing listens on port 1.
    assert!(err("host=127.0.0.1 port=1 user=postgres dbname=test", "n").contains("storage.url"));
}

/// Ends the server sessions of a namespace's store, as a restarted server
/// or a cut network would.
fn terminate_sessions(ns: &str) -> u64 {
    let mut admin = postgres::Client::connect(&postgres_url(), postgres::NoTls).unwrap();
    let rows = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name LIKE 'powerplug % ' || $1",
            &[&ns],
        )
        .unwrap();
    rows.len() as u64
}

#[test]
fn postgres_a_lost_connection_fails_the_transaction_and_the_store_reconnects() {
    let f = Fixture::postgres();
    let Location::Postgres(ns) = &f.at else {
        unreachable!()
    };
    put(&*f.db, "t", &[(b"before", b"yes")]);
    let w = f.db.write().unwrap();
    w.put("t", b"lost", b"yes").unwrap();
    assert!(terminate_sessions(ns) >= 1);
    // The session is gone: the transaction fails, and so does its commit.
    let committed = match w.put("t", b"lost too", b"yes") {
        Ok(()) => w.commit().is_ok(),
        Err(_) => {
            drop(w); // this process's next writer waits for it
            false
        }
    };
    assert!(!committed, "a transaction whose session ended committed");
    // The next transactions get new connections.
    put(&*f.db, "t", &[(b"after", b"yes")]);
    let keys = all(&*f.db, "t", Order::Ascending);
    assert_eq!(keys, vec![b"after".to_vec(), b"before".to_vec()]);
}

// ---- Leases: one holder at a time, and the one before cannot commit ----

fn epoch_of(lease: Lease) -> Option<u64> {
    match lease {
        Lease::Me { epoch } => Some(epoch),
        Lease::Other { .. } => None,
    }
}

/// A store one process opens holds every lease; fencing changes nothing.
#[test]
fn redb_holds_every_lease() {
    let f = Fixture::redb();
    assert_eq!(
        f.db.lease("grid", Duration::from_secs(1)).unwrap(),
        Lease::Me { epoch: 1 }
    );
    let tx = f.db.write().unwrap();
    tx.put("t", b"k", b"v").unwrap();
    tx.fence("grid", 7).unwrap();
    tx.commit().unwrap();
    assert!(f.db.read().unwrap().get("t", b"k").unwrap().is_some());
}

/// Two hosts on one namespace: the first takes the lease and renews it,
/// the second waits; once the first lets it run out, the second takes it
/// in the next epoch, and a transaction the first began before (paused,
/// say) cannot commit, nor can a new one fenced by the old epoch. The
/// first host's store reconnects and writes unfenced as before.
#[test]
fn postgres_a_lease_has_one_holder_and_fences_the_one_before() {
    let f = Fixture::postgres();
    let (a, b) = (f.db.clone(), f.at.open());
    let long = Duration::from_secs(30);
    assert_eq!(a.lease("grid", long).unwrap(), Lease::Me { epoch: 1 });
    match b.lease("grid", long).unwrap() {
        Lease::Other { epoch, left_ms, .. } => {
            assert_eq!(epoch, 1);
            assert!(left_ms > 0 && left_ms <= 30_000, "{left_ms}");
        }
        held => panic!("two holders: {held:?}"),
    }
    assert_eq!(
        a.lease("grid", long).unwrap(),
        Lease::Me { epoch: 1 },
        "renewed"
    );
    let tx = a.write().unwrap();
    tx.put("t", b"while-held", b"1").unwrap();
    tx.fence("grid", 1).unwrap();
    tx.commit().unwrap();

    // A short lease, held by `a` with a transaction open when it runs out.
    let short = Duration::from_millis(300);
    assert_eq!(epoch_of(a.lease("tick", short).unwrap()), Some(1));
    let paused = a.write().unwrap();
    paused.put("t", b"paused", b"1").unwrap();
    paused.fence("tick", 1).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        epoch_of(b.lease("tick", long).unwrap()),
        Some(2),
        "taken over"
    );
    assert!(
        paused.commit().is_err(),
        "the paused holder's commit is refused"
    );
    match a.lease("tick", short).unwrap() {
        Lease::Other { epoch: 2, .. } => {}
        seen => panic!("{seen:?}"),
    }
    let late = a.write().unwrap();
    late.put("t", b"late", b"1").unwrap();
    late.fence("tick", 1).unwrap();
    let refused = late.commit().unwrap_err();
    assert!(Fenced::is(&refused), "{refused:#}");
    let read = a.read().unwrap();
    assert!(read.get("t", b"paused").unwrap().is_none());
    assert!(read.get("t", b"late").unwrap().is_none());
    assert!(read.get("t", b"while-held").unwrap().is_some());
    drop(read);
    put(&*a, "t", &[(b"unfenced", b"1")]);

    // A graceful stop hands the lease on at once.
    a.release("grid").unwrap();
    assert_eq!(epoch_of(b.lease("grid", long).unwrap()), Some(2));
    assert_eq!(epoch_of(a.lease("grid", long).unwrap()), None);
}
