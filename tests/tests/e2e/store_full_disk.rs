//! A store on a file system that fills up: a real tmpfs, no mocks. The
//! commit that meets the full disk leaves nothing behind, what was committed
//! before stays readable while the disk is full, and once there is room again
//! the same store writes again (it reopens its file by itself).

use powerplug::storage::{RedbStore, Store};
use powerplug_tests::Tmpfs;

const TABLE: &str = "t";
const PER_BATCH: u32 = 16;

fn key(batch: u32, i: u32) -> Vec<u8> {
    format!("{batch:06}/{i:02}").into_bytes()
}

fn value(batch: u32, i: u32) -> Vec<u8> {
    // 4 KiB a value, different for each key.
    let seed = format!("{batch}/{i}/");
    seed.bytes().cycle().take(4096).collect()
}

/// Writes batch `b` in one transaction; an error says which step failed.
fn write_batch(store: &RedbStore, b: u32) -> anyhow::Result<()> {
    let tx = store.write().map_err(|e| e.context("begin"))?;
    for i in 0..PER_BATCH {
        tx.put(TABLE, &key(b, i), &value(b, i))
            .map_err(|e| e.context("put"))?;
    }
    tx.commit().map_err(|e| e.context("commit"))
}

/// Whether every key of batch `b` reads back as written (`true`) or none is
/// there (`false`); half a batch fails the test.
fn batch_present(store: &RedbStore, b: u32) -> bool {
    let tx = store.read().unwrap();
    let found: Vec<bool> = (0..PER_BATCH)
        .map(|i| match tx.get(TABLE, &key(b, i)).unwrap() {
            Some(v) => {
                assert_eq!(v, value(b, i), "batch {b} key {i} changed");
                true
            }
            None => false,
        })
        .collect();
    assert!(
        found.iter().all(|f| *f) || found.iter().all(|f| !*f),
        "batch {b} is half there: {found:?}"
    );
    found[0]
}

#[test]
fn a_full_disk_fails_one_commit_whole_and_the_store_recovers_on_its_own() {
    let fs = Tmpfs::mount("4m");
    // Room to give back later: a file of ours in the same file system.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 1 << 20]).unwrap();
    let store = RedbStore::open(&fs.path().join("powerplug.redb")).unwrap();
    // A reader left open across the failure: until it ends, the store cannot
    // close its broken file to open it again.
    let straggler = store.read().unwrap();

    let mut committed = 0;
    let error = loop {
        match write_batch(&store, committed) {
            Ok(()) => committed += 1,
            Err(e) => break format!("{e:#}"),
        }
        assert!(committed < 1_000, "4 MiB never filled up");
    };
    let failed = committed;
    assert!(committed > 0, "not one batch fitted: {error}");
    // redb writes a transaction's pages at commit: the commit fails.
    assert!(
        error.starts_with("commit: ") && error.contains("No space left on device"),
        "the commit fails and the error names the full disk: {error}"
    );
    let refused = store.read().err().map(|e| format!("{e:#}"));
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("1 open transaction(s)")),
        "a reader of the broken file still open: {refused:?}"
    );
    drop(straggler);

    // Reads work while the disk is still full: every batch committed before
    // is there, whole, and nothing of the failed one.
    for b in 0..committed {
        assert!(batch_present(&store, b), "committed batch {b} lost");
    }
    assert!(
        !batch_present(&store, failed),
        "the failed commit left keys"
    );

    // Room again: the same store object writes and reads back.
    std::fs::remove_file(&filler).unwrap();
    write_batch(&store, failed).unwrap();
    write_batch(&store, failed + 1).unwrap();
    for b in 0..=failed + 1 {
        assert!(batch_present(&store, b), "batch {b} after recovery");
    }
    let stats = store.stats().unwrap();
    assert!(stats.stored_bytes >= u64::from((failed + 2) * PER_BATCH) * 4096);
    drop(store);

    // And the file opens again as it is.
    let again = RedbStore::open(&fs.path().join("powerplug.redb")).unwrap();
    assert!(batch_present(&again, failed + 1));
}
