//! The durable outbox: what a tick decided to send is written in the same redb
//! transaction as the tick's state change, and sent afterwards.
//!
//! Each item is a sealed channel message with its address (see
//! [`ChannelWriter::prepare`](powerplug_channel::ChannelWriter::prepare)). Sending
//! is `put` then acknowledge; a crash in between sends the same bytes to the same
//! address again, and readers keep only the first valid message at an address, so
//! a command is neither lost nor repeated.

use serde::{Deserialize, Serialize};

use crate::counter::Counter;
use powerplug_channel::{Sealed, Transport};
use powerplug_storage::{Order, Store, WriteTx, key};

const OUTBOX: &str = "outbox";
/// Items sent and acknowledged together, at most.
const SEND_PART: usize = 4_096;
/// The destination of everything an entity publishes to the host above it.
pub const UPSTREAM: &str = "upstream";
/// What went upstream, kept after it was taken: (author, index) → item. A
/// host above that is restored from a backup lost what came after the
/// backup; these go again ([`resend_from`]).
const SENT: &str = "outbox_sent";
/// Items a destination refused for good (not the sender's channel any more,
/// a conflicting message): kept for the operator to see, never sent again, so
/// that they hold nothing up.
const REFUSED: &str = "outbox_refused";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub seq: u64,
    /// Which transport the item goes through (a peer, a channel store).
    pub destination: String,
    pub message: Sealed,
}

/// Adds an item inside the caller's transaction; it is sent only once that commits.
pub fn enqueue(tx: &dyn WriteTx, destination: &str, message: Sealed) -> anyhow::Result<u64> {
    enqueue_many(tx, destination, vec![message])
}

/// Adds items in order inside the caller's transaction; answers the last
/// one's number.
pub fn enqueue_many(
    tx: &dyn WriteTx,
    destination: &str,
    messages: Vec<Sealed>,
) -> anyhow::Result<u64> {
    let first = number(tx, messages.len() as u64)?;
    for (seq, message) in (first..).zip(&messages) {
        put(tx, seq, &encode(seq, destination, message)?)?;
    }
    Ok(first + messages.len() as u64 - 1)
}

/// Numbers `count` items to come, inside the caller's transaction: the
/// first one's. Each is then [`encode`]d (on any thread) and [`put`] in
/// that transaction, so that a tick's quarter of a million requests are
/// encoded while they are sealed.
pub fn number(tx: &dyn WriteTx, count: u64) -> anyhow::Result<u64> {
    // Numbers are never reused, even after the queue ran empty: the last one
    // is kept under its own key.
    let last = powerplug_storage::meta_in::<u64>(tx, "outbox/last")?.unwrap_or(0);
    powerplug_storage::set_meta(tx, "outbox/last", &(last + count))?;
    Ok(last + 1)
}

/// The stored form of item `seq` (an [`Item`]'s), numbered by [`number`].
pub fn encode(seq: u64, destination: &str, message: &Sealed) -> anyhow::Result<Vec<u8>> {
    // An `Item`'s fields, borrowed: the same bytes, without a copy of the message.
    #[derive(Serialize)]
    struct Borrowed<'a> {
        seq: u64,
        destination: &'a str,
        message: &'a Sealed,
    }
    let item = Borrowed {
        seq,
        destination,
        message,
    };
    Ok(postcard::to_allocvec(&item)?)
}

/// Writes an [`encode`]d item inside the caller's transaction.
pub fn put(tx: &dyn WriteTx, seq: u64, item: &[u8]) -> anyhow::Result<()> {
    tx.put(OUTBOX, &key::of(&[&seq]), item)
}

/// Items not yet acknowledged, oldest first.
pub fn pending(db: &dyn Store, limit: usize) -> anyhow::Result<Vec<Item>> {
    let entries = db
        .read()?
        .range(OUTBOX, &[], None, Order::Ascending, limit)?;
    entries
        .iter()
        .map(|(_, v)| postcard::from_bytes(v).map_err(Into::into))
        .collect()
}

/// How many items wait, at most: from the oldest pending to the newest
/// (items set aside leave gaps, so it may count a few too many), found
/// without a scan, so that a host can ask it every round.
pub fn backlog(db: &dyn Store) -> anyhow::Result<u64> {
    let tx = db.read()?;
    let Some((_, oldest)) = tx.range(OUTBOX, &[], None, Order::Ascending, 1)?.pop() else {
        return Ok(0);
    };
    let oldest: Item = postcard::from_bytes(&oldest)?;
    let newest = powerplug_storage::meta_in::<u64>(&*tx, "outbox/last")?.unwrap_or(oldest.seq);
    Ok(newest.saturating_sub(oldest.seq) + 1)
}

/// Acknowledges `items`, keeping the last `keep` of each channel that went
/// upstream for a resend.
pub fn acknowledge(db: &dyn Store, items: &[&Item], keep: u64) -> anyhow::Result<()> {
    let tx = db.write()?;
    for item in items {
        tx.remove(OUTBOX, &key::of(&[&item.seq]))?;
        if keep == 0 || item.destination != UPSTREAM {
            continue;
        }
        let m = &item.message;
        tx.put(
            SENT,
            &key::of(&[&m.author, &m.index]),
            &postcard::to_allocvec(item)?,
        )?;
        if let Some(gone) = m.index.checked_sub(keep) {
            tx.remove(SENT, &key::of(&[&m.author, &gone]))?;
        }
    }
    tx.commit()
}

/// Per channel author, the first message still waiting to go upstream.
pub fn unsent(db: &dyn Store) -> anyhow::Result<std::collections::HashMap<[u8; 32], u64>> {
    let mut first = std::collections::HashMap::new();
    for item in pending(db, usize::MAX)? {
        if item.destination == UPSTREAM {
            let m = item.message;
            first
                .entry(m.author)
                .and_modify(|i: &mut u64| *i = (*i).min(m.index))
                .or_insert(m.index);
        }
    }
    Ok(first)
}

/// Puts back into the outbox, in the caller's transaction, what channel
/// `author` sent upstream from message `from` on, as far as it was kept.
/// Returns the first index that was kept (`None`: nothing from `from` on).
pub fn resend_from(tx: &dyn WriteTx, author: &[u8; 32], from: u64) -> anyhow::Result<Option<u64>> {
    let end = key::after_prefix(&key::of(&[author]));
    let start = key::of(&[author, &from]);
    let kept = tx.range(SENT, &start, end.as_deref(), Order::Ascending, usize::MAX)?;
    let mut first = None;
    for (_, bytes) in kept {
        let item: Item = postcard::from_bytes(&bytes)?;
        first.get_or_insert(item.message.index);
        enqueue(tx, &item.destination, item.message)?;
    }
    Ok(first)
}

/// Moves items a destination will never take out of the queue, with why.
fn set_aside(db: &dyn Store, refused: &[(&Item, &str)]) -> anyhow::Result<()> {
    let tx = db.write()?;
    for (item, reason) in refused {
        tx.remove(OUTBOX, &key::of(&[&item.seq]))?;
        let kept = (item, *reason);
        tx.put(
            REFUSED,
            &key::of(&[&item.seq]),
            &postcard::to_allocvec(&kept)?,
        )?;
    }
    Counter::OutboxRefused.add(&*tx, refused.len() as u64)?;
    tx.commit()
}

/// What one drain did.
#[derive(Debug, Default)]
pub struct Drained {
    pub sent: usize,
    /// Refused for good and set aside.
    pub refused: usize,
    /// Destinations that failed this time, with why (their items wait for
    /// the next drain).
    pub failed: Vec<(String, String)>,
}

impl Drained {
    /// How many were sent, or why a destination failed (after every other
    /// destination had its turn).
    pub fn sent(self) -> anyhow::Result<usize> {
        match self.failed.first() {
            None => Ok(self.sent),
            Some((destination, why)) => anyhow::bail!("sending to `{destination}`: {why}"),
        }
    }
}

/// Sends up to `limit` pending items through the transport `route` names for
/// their destination, a run of items for the same destination at a time, and
/// acknowledges each run after it is sent. A destination that fails, or
/// refuses an item, holds up only its own items: the others go on.
/// Of what went [`UPSTREAM`], the last `keep_sent` messages of each channel
/// are kept for a resend.
pub fn drain<'t>(
    db: &dyn Store,
    limit: usize,
    keep_sent: u64,
    route: impl Fn(&str) -> Option<&'t dyn Transport>,
) -> anyhow::Result<Drained> {
    let items = pending(db, limit)?;
    let mut drained = Drained::default();
    // A run goes in parts, each acknowledged once sent: a part that fails
    // (a timeout) leaves what went before it acknowledged, so the next drain
    // does not send a whole run again.
    let parts = items
        .chunk_by(|a, b| a.destination == b.destination)
        .flat_map(|run| run.chunks(SEND_PART));
    for run in parts {
        let destination = &run[0].destination;
        if drained.failed.iter().any(|(d, _)| d == destination) {
            continue;
        }
        let Some(transport) = route(destination) else {
            drained
                .failed
                .push((destination.clone(), "no route".into()));
            continue;
        };
        let messages: Vec<_> = run.iter().map(|i| i.message.clone()).collect();
        let refused = match transport.put_many(&messages) {
            Ok(refused) => refused,
            Err(e) => {
                drained.failed.push((destination.clone(), format!("{e:#}")));
                continue;
            }
        };
        let never: Vec<(&Item, &str)> = refused
            .iter()
            .filter(|r| !r.retry)
            .filter_map(|r| run.get(r.position).map(|i| (i, r.reason.as_str())))
            .collect();
        set_aside(db, &never)?;
        let done: Vec<&Item> = run
            .iter()
            .enumerate()
            .filter(|(p, _)| !refused.iter().any(|r| r.position == *p))
            .map(|(_, i)| i)
            .collect();
        acknowledge(db, &done, keep_sent)?;
        drained.sent += done.len();
        drained.refused += never.len();
    }
    Ok(drained)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use powerplug_channel::{
        Address, ChannelReader, ChannelWriter, EmbeddedTransport, MemoryTransport, Message, Refused,
    };
    use powerplug_storage::RedbStore;

    #[test]
    fn items_numbered_and_encoded_apart_read_back_as_enqueued() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("host.redb")).unwrap();
        let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[4; 32]), true).unwrap();
        let hello = writer.prepare(Message::Hello).unwrap();
        let data = writer.prepare(Message::Data(b"owed 7".to_vec())).unwrap();
        let tx = db.write().unwrap();
        assert_eq!(enqueue(&*tx, "peer", hello.clone()).unwrap(), 1);
        // Two numbered at once, written in the other order: numbers, not
        // the order of writing, order the queue.
        let first = number(&*tx, 2).unwrap();
        assert_eq!(first, 2);
        put(&*tx, 3, &encode(3, "peer", &hello).unwrap()).unwrap();
        put(&*tx, 2, &encode(2, "peer", &data).unwrap()).unwrap();
        assert_eq!(enqueue_many(&*tx, "peer", vec![data.clone()]).unwrap(), 4);
        tx.commit().unwrap();
        let items = pending(&db, 10).unwrap();
        let got: Vec<(u64, &Sealed)> = items.iter().map(|i| (i.seq, &i.message)).collect();
        assert_eq!(got, [(1, &hello), (2, &data), (3, &hello), (4, &data)]);
        assert!(items.iter().all(|i| i.destination == "peer"));
    }

    #[test]
    fn a_crash_between_send_and_acknowledge_repeats_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("host.redb")).unwrap();
        let peer = EmbeddedTransport::open(&dir.path().join("peer.redb")).unwrap();
        let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[3; 32]), true).unwrap();
        let info = writer.info();

        // One tick: the commands go into the outbox in the tick's transaction.
        let tx = db.write().unwrap();
        for message in [
            Message::Hello,
            Message::Data(b"owed 5".to_vec()),
            Message::Data(b"owed 10".to_vec()),
        ] {
            enqueue(&*tx, "peer", writer.prepare(message).unwrap()).unwrap();
        }
        tx.commit().unwrap();

        // Sending starts, and the process dies after the second put, before its acknowledgement.
        let items = pending(&db, 10).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(backlog(&db).unwrap(), 3);
        peer.put(&items[0].message).unwrap();
        acknowledge(&db, &[&items[0]], 0).unwrap();
        assert_eq!(backlog(&db).unwrap(), 2);
        peer.put(&items[1].message).unwrap();

        // After the restart the drain sends items 2 and 3; item 2 for the second time.
        assert_eq!(
            drain(&db, 10, 0, |d| (d == "peer")
                .then_some(&peer as &dyn Transport))
            .unwrap()
            .sent,
            2
        );
        assert!(pending(&db, 10).unwrap().is_empty());
        assert_eq!(backlog(&db).unwrap(), 0);
        assert_eq!(
            peer.get(&items[1].message.address).unwrap().len(),
            1,
            "the resend of the same bytes is kept once"
        );

        let poll = ChannelReader::new(&info).unwrap().poll(&peer).unwrap();
        assert_eq!(
            poll.data,
            [b"owed 5".to_vec(), b"owed 10".to_vec()],
            "each command once, in order"
        );
    }

    #[test]
    fn an_uncommitted_tick_sends_nothing_and_a_missing_route_keeps_the_item() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("host.redb")).unwrap();
        {
            let tx = db.write().unwrap();
            enqueue(&*tx, "peer", sealed(1)).unwrap();
            // Dropped: the tick never committed.
        }
        assert!(pending(&db, 10).unwrap().is_empty());

        let tx = db.write().unwrap();
        enqueue(&*tx, "elsewhere", sealed(1)).unwrap();
        tx.commit().unwrap();
        let memory = MemoryTransport::default();
        let drained = drain(&db, 10, 0, |d| {
            (d == "peer").then_some(&memory as &dyn Transport)
        })
        .unwrap();
        assert_eq!(drained.failed, [("elsewhere".into(), "no route".into())]);
        assert_eq!(pending(&db, 10).unwrap().len(), 1);
    }

    #[test]
    fn what_went_upstream_is_kept_for_a_resend_the_last_few_per_channel() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("host.redb")).unwrap();
        let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[5; 32]), true).unwrap();
        let author = writer.info().author;
        let tx = db.write().unwrap();
        enqueue(&*tx, UPSTREAM, writer.prepare(Message::Hello).unwrap()).unwrap();
        for n in 1..=5u8 {
            let m = writer.prepare(Message::Data(vec![n])).unwrap();
            enqueue(&*tx, UPSTREAM, m).unwrap();
        }
        enqueue(&*tx, "elsewhere", sealed(9)).unwrap();
        tx.commit().unwrap();
        let upstream = MemoryTransport::default();
        let route = |d: &str| (d != "nowhere").then_some(&upstream as &dyn Transport);
        assert_eq!(drain(&db, 100, 3, route).unwrap().sent, 7);
        assert!(unsent(&db).unwrap().is_empty());

        // The host above lost everything from message 2 on: 3 to 5 are kept.
        let tx = db.write().unwrap();
        assert_eq!(resend_from(&*tx, &author, 2).unwrap(), Some(3));
        tx.commit().unwrap();
        let again: Vec<u64> = pending(&db, 10)
            .unwrap()
            .iter()
            .map(|i| i.message.index)
            .collect();
        assert_eq!(again, [3, 4, 5], "only what went upstream, in order");
        assert_eq!(unsent(&db).unwrap().get(&author), Some(&3));
        // The same bytes again: the host above keeps one of each.
        drain(&db, 100, 3, route).unwrap();
        assert_eq!(
            upstream
                .get(&Address::of(&writer.info().root, 4))
                .unwrap()
                .len(),
            1
        );
        let tx = db.write().unwrap();
        assert_eq!(
            resend_from(&*tx, &author, 6).unwrap(),
            None,
            "nothing from 6 on"
        );
    }

    fn sealed(n: u8) -> Sealed {
        Sealed {
            author: [n; 32],
            index: n.into(),
            address: Address([n; 32]),
            bytes: vec![n],
        }
    }

    /// Refuses message 2 for good, asks for message 3 again later.
    struct Picky(MemoryTransport);

    impl Transport for Picky {
        fn put_many(&self, messages: &[Sealed]) -> anyhow::Result<Vec<Refused>> {
            let mut refused = Vec::new();
            for (position, m) in messages.iter().enumerate() {
                match m.index {
                    2 | 3 => refused.push(Refused {
                        position,
                        reason: format!("not {}", m.index),
                        retry: m.index == 3,
                    }),
                    _ => self.0.put(m)?,
                }
            }
            Ok(refused)
        }
        fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
            self.0.get(address)
        }
    }

    #[test]
    fn a_failing_destination_or_a_refused_item_holds_up_nobody_else() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("host.redb")).unwrap();
        let tx = db.write().unwrap();
        // The down destination's items come first and between the others'.
        enqueue(&*tx, "down", sealed(9)).unwrap();
        for n in 1..=4 {
            enqueue(&*tx, "picky", sealed(n)).unwrap();
        }
        enqueue(&*tx, "down", sealed(8)).unwrap();
        enqueue(&*tx, "picky", sealed(5)).unwrap();
        tx.commit().unwrap();

        let picky = Picky(MemoryTransport::default());
        let down = powerplug_channel::HttpTransport::new("http://127.0.0.1:1");
        let route = |d: &str| match d {
            "picky" => Some(&picky as &dyn Transport),
            "down" => Some(&down as &dyn Transport),
            _ => None,
        };
        let drained = drain(&db, 100, 0, route).unwrap();
        assert_eq!((drained.sent, drained.refused), (3, 1), "{drained:?}");
        assert_eq!(drained.failed.len(), 1);
        for n in [1, 4, 5] {
            assert_eq!(picky.0.get(&Address([n; 32])).unwrap(), [vec![n]]);
        }
        // Left: the down destination's two and the one to retry; 2 is set aside.
        let left: Vec<u64> = pending(&db, 10)
            .unwrap()
            .iter()
            .map(|i| i.message.index)
            .collect();
        assert_eq!(left, [9, 3, 8]);
        assert_eq!(Counter::OutboxRefused.read(&db).unwrap(), 1);
    }

    /// Takes one request, then times out.
    #[derive(Default)]
    struct Tired(MemoryTransport, std::sync::atomic::AtomicBool);

    impl Transport for Tired {
        fn put_many(&self, messages: &[Sealed]) -> anyhow::Result<Vec<Refused>> {
            anyhow::ensure!(
                !self.1.swap(true, std::sync::atomic::Ordering::Relaxed),
                "timeout: global"
            );
            messages.iter().try_for_each(|m| self.0.put(m))?;
            Ok(Vec::new())
        }
        fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
            self.0.get(address)
        }
    }

    #[test]
    fn what_went_before_a_timeout_is_not_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("host.redb")).unwrap();
        let tx = db.write().unwrap();
        for n in 0..SEND_PART + 5 {
            enqueue(&*tx, "tired", sealed(n as u8)).unwrap();
        }
        tx.commit().unwrap();
        let tired = Tired::default();
        let drained = drain(&db, usize::MAX, 0, |_| Some(&tired as &dyn Transport)).unwrap();
        assert_eq!((drained.sent, drained.failed.len()), (SEND_PART, 1));
        assert_eq!(backlog(&db).unwrap(), 5);
    }
}
