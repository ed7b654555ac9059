//! A store's upkeep: its figures, compaction, backups and the check a restore
//! makes, on real files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use powerplug_storage::{InUse, Order, RedbStore, Store, check_store_file};

fn fill(store: &dyn Store, table: &str, count: u32, size: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let tx = store.write().unwrap();
        for i in chunk {
            tx.put(table, &i.to_be_bytes(), &vec![*i as u8; size])
                .unwrap();
        }
        tx.commit().unwrap();
    }
}

fn all(store: &dyn Store, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .read()
        .unwrap()
        .range(table, &[], None, Order::Ascending, usize::MAX)
        .unwrap()
}

#[test]
fn deletes_free_room_and_compaction_gives_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("s.redb")).unwrap();
    fill(&store, "t", 4_000, 1_000);
    let full = store.stats().unwrap();
    assert!(full.stored_bytes >= 4_000 * 1_000, "{full:?}");
    assert!(full.allocated_bytes <= full.file_bytes, "{full:?}");

    let tx = store.write().unwrap();
    for i in 0..3_500u32 {
        assert!(tx.delete("t", &i.to_be_bytes()).unwrap());
    }
    tx.commit().unwrap();
    // redb frees a transaction's old pages once later commits no longer need them.
    for _ in 0..3 {
        let tx = store.write().unwrap();
        tx.put("other", b"k", b"v").unwrap();
        tx.commit().unwrap();
    }
    let emptied = store.stats().unwrap();
    assert!(emptied.free_bytes > full.free_bytes, "{full:?} {emptied:?}");
    assert!(emptied.allocated_bytes < full.allocated_bytes);
    assert_eq!(
        emptied.file_bytes, full.file_bytes,
        "the file keeps its size"
    );

    // Refused while a transaction stays open past the wait…
    let reader = store.read().unwrap();
    let refused = store.compact().unwrap_err().to_string();
    assert!(refused.contains("transaction is open"), "{refused}");
    // …and done once one that was open when it started ends soon after
    // (a busy host always has a few short reads open).
    drop(reader);
    let compacted = std::thread::scope(|s| {
        let (opened, open) = std::sync::mpsc::channel();
        let store = &store;
        s.spawn(move || {
            let reader = store.read().unwrap();
            opened.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(reader);
        });
        open.recv().unwrap();
        store.compact().unwrap()
    });
    assert_eq!(compacted.before_bytes, emptied.file_bytes);
    assert!(
        compacted.after_bytes < compacted.before_bytes / 2,
        "{compacted:?}"
    );
    let after = store.stats().unwrap();
    assert_eq!(after.file_bytes, compacted.after_bytes);
    assert_eq!(
        after.file_bytes,
        std::fs::metadata(dir.path().join("s.redb")).unwrap().len()
    );
    let left = all(&store, "t");
    assert_eq!(left.len(), 500);
    assert_eq!(left[0].0, 3_500u32.to_be_bytes());
    // And it still writes.
    fill(&store, "t", 10, 10);
}

/// A tick or a reading holds the one writer: the figures must not wait for
/// it, nor make it wait while they walk every page.
#[test]
fn figures_are_taken_while_a_write_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("s.redb")).unwrap();
    fill(&store, "t", 2_000, 100);
    let writing = store.write().unwrap();
    writing.put("t", b"open", b"uncommitted").unwrap();
    let (taken, took) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let store = &store;
        s.spawn(move || taken.send(store.stats().unwrap()).unwrap());
        let stats = took.recv_timeout(std::time::Duration::from_secs(30));
        // Ended either way, so that a figures thread stuck behind it ends too.
        writing.commit().unwrap();
        let stats = stats.expect("the figures waited for the open write");
        assert!(stats.stored_bytes >= 2_000 * 100, "{stats:?}");
        assert!(stats.allocated_bytes <= stats.file_bytes, "{stats:?}");
        assert_eq!(
            stats.allocated_bytes,
            stats.stored_bytes + stats.metadata_bytes + stats.fragmented_bytes
        );
    });
}

#[test]
fn a_store_in_memory_counts_what_it_allocates() {
    let store = RedbStore::in_memory().unwrap();
    fill(&store, "t", 100, 100);
    let stats = store.stats().unwrap();
    assert_eq!(stats.file_bytes, stats.allocated_bytes);
    assert_eq!(stats.free_bytes, 0);
    assert!(stats.stored_bytes >= 100 * 100);
}

/// A writer commits key `i` and `counter = i + 1` together, without pause,
/// while the backup is taken: the copy holds exactly `counter` keys.
#[test]
fn a_backup_taken_while_writing_is_one_consistent_moment() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("s.redb")).unwrap();
    // Enough to copy that the writer commits during the copy.
    fill(&store, "bulk", 20_000, 1_000);
    let stop = AtomicBool::new(false);
    let count = |s: &dyn Store| -> u64 {
        s.read()
            .unwrap()
            .get("meta", b"counter")
            .unwrap()
            .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()))
    };
    let backup = dir.path().join("backup.redb");
    let (before, size, after) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tx = store.write().unwrap();
                tx.put("keys", &i.to_be_bytes(), b"x").unwrap();
                tx.put("meta", b"counter", &(i + 1).to_be_bytes()).unwrap();
                tx.commit().unwrap();
                i += 1;
            }
        });
        while count(&store) < 10 {
            std::thread::yield_now();
        }
        let before = count(&store);
        let size = store.backup_to(&backup).unwrap();
        let after = count(&store);
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        (before, size, after)
    });
    assert!(after > before, "the store took writes during the backup");
    assert_eq!(size, std::fs::metadata(&backup).unwrap().len());
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "a backup holds the secret");

    check_store_file(&backup).unwrap();
    let copy = RedbStore::open_existing(&backup).unwrap();
    let counter = count(&copy);
    assert!(
        (before..=after).contains(&counter),
        "{before} {counter} {after}"
    );
    let keys = all(&copy, "keys");
    assert_eq!(
        keys.len() as u64,
        counter,
        "keys and counter from one moment"
    );
    assert!(keys.last().unwrap().0 == (counter - 1).to_be_bytes());
    assert_eq!(all(&copy, "bulk"), all(&store, "bulk"));
}

#[test]
fn a_backup_at_rest_equals_its_store_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("s.redb")).unwrap();
    fill(&store, "a", 25_000, 10);
    fill(&store, "b", 3, 100_000);
    let backup = dir.path().join("backup.redb");
    store.backup_to(&backup).unwrap();
    let copy = RedbStore::open_existing(&backup).unwrap();
    for table in ["a", "b", "never-written"] {
        assert_eq!(all(&copy, table), all(&store, table), "{table}");
    }
    drop(copy);

    let again = store.backup_to(&backup).unwrap_err().to_string();
    assert!(again.contains("cannot create"), "{again}");
    check_store_file(&backup).unwrap();
}

#[test]
fn a_file_that_is_no_store_is_refused_and_a_held_one_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
    let err = check_store_file(&junk).unwrap_err().to_string();
    assert!(err.contains("is not a store"), "{err}");
    let missing = RedbStore::open_existing(&dir.path().join("none")).err();
    assert!(missing.is_some_and(|e| e.to_string().contains("no such file")));

    let path = dir.path().join("s.redb");
    let held = RedbStore::open(&path).unwrap();
    let err = RedbStore::open_existing(&path).err().unwrap();
    assert!(err.downcast_ref::<InUse>().is_some(), "{err:#}");
    drop(held);
    assert_opens(&path);
}

fn assert_opens(path: &Path) {
    RedbStore::open_existing(path).unwrap();
}
