//! Which channel addresses were written, kept in the store itself: every
//! transaction that stores messages adds one numbered entry with their
//! addresses, and a poller reads the entries past the last one it saw. So a
//! host's poll sees the writes made through any host that shares the store
//! (a standby grid taking registrations and channel writes on one
//! PostgreSQL namespace), not only its own.
//!
//! Writers are serialized, so entries commit in the order of their numbers
//! and a reader never sees a later entry without the earlier ones.

use std::collections::HashSet;

use powerplug_storage::{Order, ReadTx, WriteTx, key, last};

use super::Address;

const FEED: &str = "channel_feed";
/// Entries kept: a poller further behind than this reads every channel.
/// Pollers come every few milliseconds; what bounds this is disk, since an
/// entry can hold a whole drained outbox (100,000 addresses, 3.2 MB).
const KEEP: u64 = 2_048;
/// Old entries a write takes out: more than the one it adds, so the feed
/// shrinks back to [`KEEP`].
const TRIM: usize = 8;

/// Notes, inside the transaction that stores them, that messages were put
/// at `addresses`.
pub fn note_written(tx: &dyn WriteTx, addresses: &[Address]) -> anyhow::Result<()> {
    if addresses.is_empty() {
        return Ok(());
    }
    let next = newest(tx)?.map_or(1, |n| n + 1);
    let bytes: Vec<u8> = addresses.iter().flat_map(|a| a.0).collect();
    tx.put(FEED, &next.to_be_bytes(), &bytes)?;
    if next > KEEP {
        let end = (next - KEEP + 1).to_be_bytes();
        for (k, _) in tx.range(FEED, &[], Some(&end), Order::Ascending, TRIM)? {
            tx.remove(FEED, &k)?;
        }
    }
    Ok(())
}

fn newest(tx: &dyn ReadTx) -> anyhow::Result<Option<u64>> {
    last(tx, FEED, &[])?
        .map(|(k, _)| key::u64_value(&k))
        .transpose()
}

/// A poller's place in the feed.
#[derive(Default)]
pub struct Cursor {
    /// The last entry taken; `None` before the first poll.
    seen: Option<u64>,
}

impl Cursor {
    /// The addresses written since the last call; `None` when the poller
    /// must read every channel: on its first call (anything may have come
    /// while it was away), when the entries it missed were trimmed, or when
    /// the store went back in time (restored from a backup).
    pub fn take(&mut self, tx: &dyn ReadTx) -> anyhow::Result<Option<HashSet<Address>>> {
        let newest = newest(tx)?.unwrap_or(0);
        let seen = self.seen.replace(newest);
        let Some(seen) = seen.filter(|&seen| seen <= newest) else {
            return Ok(None);
        };
        if seen == newest {
            // Nothing new: no second read (a round trip on a networked store).
            return Ok(Some(HashSet::new()));
        }
        let entries = tx.range(
            FEED,
            &(seen + 1).to_be_bytes(),
            Some(&newest.saturating_add(1).to_be_bytes()),
            Order::Ascending,
            usize::MAX,
        )?;
        // Trimmed past this poller's place (or gone: a restored store).
        let missed = match entries.first() {
            Some((k, _)) => key::u64_value(k)? != seen + 1,
            None => true,
        };
        if missed {
            return Ok(None);
        }
        let mut written = HashSet::new();
        for (_, v) in entries {
            written.extend(v.chunks_exact(32).map(|a| {
                let mut address = [0; 32];
                address.copy_from_slice(a);
                Address(address)
            }));
        }
        Ok(Some(written))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use powerplug_storage::{Db, RedbStore};

    use super::*;

    fn note(db: &Db, addresses: &[u8]) {
        let tx = db.write().unwrap();
        let addresses: Vec<Address> = addresses.iter().map(|&n| Address([n; 32])).collect();
        note_written(&*tx, &addresses).unwrap();
        tx.commit().unwrap();
    }

    fn take(db: &Db, cursor: &mut Cursor) -> Option<Vec<u8>> {
        let taken = cursor.take(&*db.read().unwrap()).unwrap()?;
        let mut ids: Vec<u8> = taken.iter().map(|a| a.0[0]).collect();
        ids.sort_unstable();
        Some(ids)
    }

    #[test]
    fn pollers_see_every_writer_once_and_read_all_when_they_cannot_know() {
        let dir = tempfile::tempdir().unwrap();
        let db: Db = Arc::new(RedbStore::open(&dir.path().join("s.redb")).unwrap());
        note(&db, &[9]);
        let (mut a, mut b) = (Cursor::default(), Cursor::default());
        assert_eq!(take(&db, &mut a), None, "first call: read everything");
        note(&db, &[1, 2]);
        note(&db, &[2, 3]);
        assert_eq!(take(&db, &mut a), Some(vec![1, 2, 3]));
        assert_eq!(take(&db, &mut a), Some(vec![]), "taken once");
        assert_eq!(take(&db, &mut b), None);
        note(&db, &[4]);
        assert_eq!(
            take(&db, &mut b),
            Some(vec![4]),
            "each poller its own place"
        );
        assert_eq!(take(&db, &mut a), Some(vec![4]));

        // Trimmed past a poller's place: it cannot know what it missed.
        let tx = db.write().unwrap();
        tx.put(FEED, &6u64.to_be_bytes(), &[6; 32]).unwrap();
        tx.commit().unwrap();
        assert_eq!(take(&db, &mut a), None);
        assert_eq!(take(&db, &mut a), Some(vec![]));
        // The store went back in time (a restored copy): read everything.
        let tx = db.write().unwrap();
        tx.delete(FEED, &6u64.to_be_bytes()).unwrap();
        tx.commit().unwrap();
        assert_eq!(take(&db, &mut a), None);
    }

    #[test]
    fn the_feed_keeps_a_bounded_number_of_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db: Db = Arc::new(RedbStore::open(&dir.path().join("s.redb")).unwrap());
        // Start just below the bound rather than writing it all.
        let tx = db.write().unwrap();
        for n in 1..=KEEP {
            tx.put(FEED, &n.to_be_bytes(), &[1; 32]).unwrap();
        }
        tx.commit().unwrap();
        for _ in 0..3 {
            note(&db, &[2]);
        }
        let tx = db.read().unwrap();
        let left = tx
            .range(FEED, &[], None, Order::Ascending, usize::MAX)
            .unwrap();
        assert_eq!(left.len() as u64, KEEP, "{TRIM} trimmed per write");
        assert_eq!(newest(&*tx).unwrap(), Some(KEEP + 3));
    }
}
