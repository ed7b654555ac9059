//! Where the host's return channels go on. A tick moves the return channel
//! of every consumer it bills; kept in each registration, that was a
//! registration (~0.5 KiB) read before the tick and read and written again
//! in it, per payment request. Here a return channel (root, side key,
//! position) is kept 64 consumers to a row ([`pages`]), by the consumer's
//! index, and a tick reads nothing else to seal its requests.
//!
//! Opening a return channel (a registration, a reset) writes its entry; a
//! removal takes it away: an entry is a registered consumer's channel as it
//! stands. Where there is none (a channel opened before these entries), the
//! registration's own `next_index` is the position, or that of an entry of
//! the first layout (root and position only), until a tick writes an entry.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::pages::{self, Pages};
use crate::registry::{self, Registration, WriterState};
use powerplug_domain::EntityKind;
use powerplug_storage::{ReadTx, WriteTx};

/// The first layout, root and position only: read where there is no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    root: [u8; 32],
    next: u64,
}

fn pages() -> Pages<'static> {
    Pages::new("return_channels", &[]).on_every_core()
}

fn positions() -> Pages<'static> {
    Pages::new("return_positions", &[])
}

/// Puts `r`'s return channel where it stands in `tx`.
pub fn current(tx: &dyn ReadTx, r: &mut Registration) -> anyhow::Result<()> {
    if let Some(w) = r.return_channel.as_mut()
        && !overlay(w, pages().get(tx, r.index)?.as_ref())
    {
        overlay_first(w, positions().get(tx, r.index)?.as_ref());
    }
    Ok(())
}

/// [`current`] for many (in any order), each page read once.
pub fn current_all(tx: &dyn ReadTx, rs: &mut [Registration]) -> anyhow::Result<()> {
    let entries = pages::Reader::<WriterState>::new(tx, pages());
    let first = pages::Reader::<Position>::new(tx, positions());
    let mut by_index: Vec<&mut Registration> = rs.iter_mut().collect();
    by_index.sort_unstable_by_key(|r| r.index);
    for r in by_index {
        if let Some(w) = r.return_channel.as_mut()
            && !overlay(w, entries.get(r.index)?.as_ref())
        {
            overlay_first(w, first.get(r.index)?.as_ref());
        }
    }
    Ok(())
}

/// Moves `w` to the entry's position if the entry is `w`'s channel.
fn overlay(w: &mut WriterState, entry: Option<&WriterState>) -> bool {
    let same = entry.filter(|e| e.root == w.root);
    if let Some(e) = same {
        w.next_index = e.next_index;
    }
    same.is_some()
}

fn overlay_first(w: &mut WriterState, p: Option<&Position>) {
    if let Some(p) = p.filter(|p| p.root == w.root) {
        w.next_index = p.next;
    }
}

/// In the transaction that opens a return channel for the entity at `index`.
pub fn open(tx: &dyn WriteTx, index: u32, w: &WriterState) -> anyhow::Result<()> {
    pages().set(tx, [(index, w.clone())])
}

/// In the transaction that removes the registration at `index`.
pub fn forget(tx: &dyn WriteTx, index: u32) -> anyhow::Result<()> {
    pages().remove::<WriterState>(tx, index)?;
    positions().remove::<Position>(tx, index)
}

/// Takes `count` places on each consumer's return channel (by index), moving
/// the channels past them. For each that is still a registered consumer:
/// its channel at the first place taken (`None`: it has none). An entity
/// registered as anything else is an error: only consumers are billed.
pub fn take(
    tx: &dyn WriteTx,
    count: &BTreeMap<u32, u64>,
) -> anyhow::Result<HashMap<u32, Option<WriterState>>> {
    let places = |index: u32| count.get(&index).copied().unwrap_or(0);
    let mut taken = HashMap::with_capacity(count.len());
    let mut without = Vec::new();
    pages().update_some(
        tx,
        count.keys().copied(),
        |index, entry: &mut Option<WriterState>| {
            match entry {
                Some(w) => {
                    taken.insert(index, Some(w.clone()));
                    w.next_index += places(index);
                }
                None => without.push(index),
            }
            Ok(())
        },
    )?;
    if without.is_empty() {
        return Ok(taken);
    }
    // No entry: left, not a consumer, or a channel opened before entries.
    let mut registered = HashMap::new();
    registry::add_by_index(tx, &mut registered, without.iter().copied())?;
    let first = pages::Reader::<Position>::new(tx, positions());
    let mut moved = Vec::new();
    for index in without {
        let Some(r) = registered.remove(&index) else {
            continue;
        };
        anyhow::ensure!(
            r.kind == EntityKind::Consumer,
            "payment request to {index}, not a consumer"
        );
        let mut channel = r.return_channel;
        if let Some(w) = channel.as_mut() {
            overlay_first(w, first.get(index)?.as_ref());
            let next_index = w.next_index + places(index);
            moved.push((
                index,
                WriterState {
                    next_index,
                    ..w.clone()
                },
            ));
        }
        taken.insert(index, channel);
    }
    pages().set(tx, moved)?;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Application, Registry};
    use powerplug_channel::{Address, ChannelWriter, Message};
    use powerplug_domain::EntityKind;
    use powerplug_storage::{RedbStore, Store};

    fn grid() -> (RedbStore, Registry) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let accepts = [EntityKind::Consumer];
        let registry = Registry::new([2; 32], key, "grid", &accepts, Default::default());
        (RedbStore::in_memory().unwrap(), registry)
    }

    fn register(
        registry: &Registry,
        db: &dyn Store,
        seed: u8,
        credential: Option<&str>,
    ) -> (Registration, String) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let mut writer = ChannelWriter::new(key, true).unwrap();
        let hello = writer.prepare(Message::Hello).unwrap().bytes;
        let application = Application {
            kind: EntityKind::Consumer,
            channel: writer.info(),
            hello: Some(&hello),
            credential,
            admission: None,
        };
        let r = registry.register(db, "alice", application).unwrap();
        (r.registration, r.credential)
    }

    /// Takes `n` places for the consumer at index 0, in a transaction of
    /// its own: where they start, on which channel.
    fn take_n(db: &dyn Store, n: u64) -> Option<(u64, [u8; 32])> {
        let tx = db.write().unwrap();
        let taken = take(&*tx, &BTreeMap::from([(0, n)])).unwrap();
        tx.commit().unwrap();
        let w = taken.get(&0)?.as_ref()?;
        Some((w.next_index, w.root))
    }

    /// Places follow the channel through a reset and stop at a removal.
    #[test]
    fn places_follow_the_return_channel_through_a_reset_and_stop_at_a_removal() {
        let (db, registry) = grid();
        let (seen, credential) = register(&registry, &db, 10, None);
        let first = seen.return_channel.clone().unwrap();
        // After the hello.
        assert_eq!(take_n(&db, 3), Some((1, first.root)));
        assert_eq!(take_n(&db, 2), Some((4, first.root)));
        let now = registry.authenticate(&db, &credential).unwrap();
        assert_eq!(now.return_channel.unwrap().next_index, 6);
        // Its registration itself was not written again.
        let stored = registry::read(&*db.read().unwrap(), "alice")
            .unwrap()
            .unwrap();
        assert_eq!(stored.return_channel.unwrap().next_index, 1);

        let (reset, credential) = register(&registry, &db, 11, Some(&credential));
        let second = reset.return_channel.unwrap();
        assert_ne!(second.root, first.root);
        assert_eq!(take_n(&db, 1), Some((1, second.root)));
        assert_eq!(take_n(&db, 1), Some((2, second.root)));

        registry.remove(&db, &credential).unwrap();
        assert_eq!(take_n(&db, 1), None);

        // Each goodbye went after the places taken on its channel.
        let said: Vec<Address> = (crate::outbox::pending(&db, 9).unwrap().iter())
            .map(|item| item.message.address)
            .collect();
        assert!(said.contains(&Address::of(&first.root, 6)), "{said:?}");
        assert!(said.contains(&Address::of(&second.root, 3)), "{said:?}");
    }

    /// A channel opened before the entries goes on from its registration,
    /// or from an entry of the first layout where there is one.
    #[test]
    fn a_channel_without_an_entry_goes_on_from_where_it_was_kept() {
        for first_layout in [false, true] {
            let (db, registry) = grid();
            let (mut seen, credential) = register(&registry, &db, 10, None);
            let root = seen.return_channel.as_ref().unwrap().root;
            let tx = db.write().unwrap();
            forget(&*tx, seen.index).unwrap();
            if let Some(w) = seen.return_channel.as_mut() {
                w.next_index = if first_layout { 3 } else { 7 };
            }
            registry::put(&*tx, &seen).unwrap();
            if first_layout {
                let p = Position { root, next: 7 };
                positions().set(&*tx, [(seen.index, p)]).unwrap();
            }
            tx.commit().unwrap();
            assert_eq!(take_n(&db, 2), Some((7, root)), "{first_layout}");
            assert_eq!(take_n(&db, 1), Some((9, root)));
            let now = registry.authenticate(&db, &credential).unwrap();
            assert_eq!(now.return_channel.unwrap().next_index, 10);
            let mut all = registry::all(&db).unwrap();
            current_all(&*db.read().unwrap(), &mut all).unwrap();
            let positions: Vec<u64> = all
                .iter()
                .filter_map(|r| Some(r.return_channel.as_ref()?.next_index))
                .collect();
            assert_eq!(positions, [10]);
        }
    }

    /// Only consumers are billed; one that left is left out.
    #[test]
    fn a_bill_to_a_producer_is_refused_and_one_to_nobody_left_out() {
        let (db, _) = grid();
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let accepts = [EntityKind::Producer];
        let open = crate::admission::Policy {
            producer: crate::admission::Rule::Open,
            ..Default::default()
        };
        let registry = Registry::new([2; 32], key, "grid", &accepts, open);
        let writer = ChannelWriter::new(ed25519_dalek::SigningKey::from_bytes(&[9; 32]), true);
        let mut writer = writer.unwrap();
        let hello = writer.prepare(Message::Hello).unwrap().bytes;
        let application = Application {
            kind: EntityKind::Producer,
            channel: writer.info(),
            hello: Some(&hello),
            credential: None,
            admission: None,
        };
        let producer = registry.register(&db, "solar", application).unwrap();
        let tx = db.write().unwrap();
        let index = producer.registration.index;
        let why = take(&*tx, &BTreeMap::from([(index, 1)])).unwrap_err();
        assert_eq!(
            why.to_string(),
            format!("payment request to {index}, not a consumer")
        );
        let nobody = take(&*tx, &BTreeMap::from([(index + 1, 1)])).unwrap();
        assert!(nobody.is_empty());
    }
}
