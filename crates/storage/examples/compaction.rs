//! How long compaction stops writes (docs/operations.md quotes it): a store
//! of about `MB` megabytes (default 200) whose first half is deleted, so half
//! its pages are free, then compacted.
//!
//! `cargo run --release -p powerplug-storage --example compaction -- [MB] [DIR]`

use std::time::Instant;

use powerplug_storage::{RedbStore, Store};

const VALUE: usize = 1_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mb: u64 = args.next().map_or(Ok(200), |a| a.parse())?;
    let dir = match args.next() {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let store = RedbStore::open(&dir.path().join("powerplug.redb"))?;
    let count = mb * 1_000_000 / VALUE as u64;
    let started = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        let tx = store.write()?;
        for i in chunk {
            tx.put("t", &i.to_be_bytes(), &[(*i % 251) as u8; VALUE])?;
        }
        tx.commit()?;
    }
    let full = store.stats()?;
    println!(
        "filled {} entries in {:?}: {full:?}",
        count,
        started.elapsed()
    );
    for chunk in (0..count / 2).collect::<Vec<_>>().chunks(10_000) {
        let tx = store.write()?;
        for i in chunk {
            tx.delete("t", &i.to_be_bytes())?;
        }
        tx.commit()?;
    }
    // Later commits let redb free the deleted pages.
    for _ in 0..3 {
        let tx = store.write()?;
        tx.put("other", b"k", b"v")?;
        tx.commit()?;
    }
    let half = store.stats()?;
    println!("first half deleted: {half:?}");
    let compacted = store.compact()?;
    println!(
        "compacted {} MB to {} MB; writes waited {} ms",
        compacted.before_bytes / 1_000_000,
        compacted.after_bytes / 1_000_000,
        compacted.millis
    );
    Ok(())
}
