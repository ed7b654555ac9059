//! The durable outbox: what a tick decided to send is written in the same redb
//! transaction as the tick's state change, and sent afterwards.
//!
//! Each item is a sealed channel message with its address (see
//! [`ChannelWriter::prepare`](crate::channel::ChannelWriter::prepare)). Sending
//! is `put` then acknowledge; a crash in between sends the same bytes to the same
//! address again, and readers keep only the first valid message at an address, so
//! a command is neither lost nor repeated.

use serde::{Deserialize, Serialize};

use crate::channel::{Address, Transport};
use crate::storage::{Order, Store, WriteTx, key};

const OUTBOX: &str = "outbox";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub seq: u64,
    /// Which transport the item goes through (a peer, a channel store).
    pub destination: String,
    pub address: Address,
    pub bytes: Vec<u8>,
}

/// Adds an item inside the caller's transaction; it is sent only once that commits.
pub fn enqueue(
    tx: &dyn WriteTx,
    destination: &str,
    address: Address,
    bytes: Vec<u8>,
) -> anyhow::Result<u64> {
    // Numbers are never reused, even after the queue ran empty: the last one
    // is kept under its own key.
    let seq = crate::storage::meta_in::<u64>(tx, "outbox/last")?.unwrap_or(0) + 1;
    crate::storage::set_meta(tx, "outbox/last", &seq)?;
    let item = Item {
        seq,
        destination: destination.to_owned(),
        address,
        bytes,
    };
    tx.put(OUTBOX, &key::of(&[&seq]), &postcard::to_allocvec(&item)?)
        .map(|()| seq)
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

pub fn acknowledge(db: &dyn Store, seqs: &[u64]) -> anyhow::Result<()> {
    let tx = db.write()?;
    for seq in seqs {
        tx.delete(OUTBOX, &key::of(&[seq]))?;
    }
    tx.commit()
}

/// Sends up to `limit` pending items through the transport `route` names for
/// their destination, a run of items for the same destination at a time, and
/// acknowledges each run after it is sent. Stops at the first failure (the run
/// stays for the next drain); returns how many were sent.
pub fn drain<'t>(
    db: &dyn Store,
    limit: usize,
    route: impl Fn(&str) -> Option<&'t dyn Transport>,
) -> anyhow::Result<usize> {
    let items = pending(db, limit)?;
    let mut sent = 0;
    for run in items.chunk_by(|a, b| a.destination == b.destination) {
        let destination = &run[0].destination;
        let transport =
            route(destination).ok_or_else(|| anyhow::anyhow!("no route to `{destination}`"))?;
        let messages: Vec<_> = run.iter().map(|i| (i.address, i.bytes.clone())).collect();
        transport.put_many(&messages)?;
        acknowledge(db, &run.iter().map(|i| i.seq).collect::<Vec<_>>())?;
        sent += run.len();
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::channel::{
        ChannelReader, ChannelWriter, EmbeddedTransport, MemoryTransport, Message,
    };
    use crate::storage::RedbStore;

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
            let (address, bytes) = writer.prepare(message).unwrap();
            enqueue(&*tx, "peer", address, bytes).unwrap();
        }
        tx.commit().unwrap();

        // Sending starts, and the process dies after the second put, before its acknowledgement.
        let items = pending(&db, 10).unwrap();
        assert_eq!(items.len(), 3);
        peer.put(&items[0].address, items[0].bytes.clone()).unwrap();
        acknowledge(&db, &[items[0].seq]).unwrap();
        peer.put(&items[1].address, items[1].bytes.clone()).unwrap();

        // After the restart the drain sends items 2 and 3; item 2 for the second time.
        assert_eq!(
            drain(&db, 10, |d| (d == "peer")
                .then_some(&peer as &dyn Transport))
            .unwrap(),
            2
        );
        assert!(pending(&db, 10).unwrap().is_empty());
        assert_eq!(
            peer.get(&items[1].address).unwrap().len(),
            2,
            "the resend landed at the same address"
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
            enqueue(&*tx, "peer", Address([1; 32]), b"x".to_vec()).unwrap();
            // Dropped: the tick never committed.
        }
        assert!(pending(&db, 10).unwrap().is_empty());

        let tx = db.write().unwrap();
        enqueue(&*tx, "elsewhere", Address([1; 32]), b"x".to_vec()).unwrap();
        tx.commit().unwrap();
        let memory = MemoryTransport::default();
        let err = drain(&db, 10, |d| {
            (d == "peer").then_some(&memory as &dyn Transport)
        })
        .unwrap_err();
        assert!(err.to_string().contains("no route to `elsewhere`"), "{err}");
        assert_eq!(pending(&db, 10).unwrap().len(), 1);
    }
}
