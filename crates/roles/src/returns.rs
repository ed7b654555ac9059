//! Where the host's return channels go on. A tick moves the return channel
//! of every consumer it bills; kept in each registration, that was a
//! registration (~0.5 KiB) read and written again per payment request, a
//! sixth of a 100,000-request tick. Here a channel's position is kept 64
//! consumers to a row ([`pages`]), by the consumer's index.
//!
//! An entry names its channel's root and holds that channel's position only.
//! Opening a return channel (a registration, a reset) writes its entry; a
//! removal takes it away. A tick that read a registration before either
//! finds another root or none, and reads the registration again. Where there
//! is no entry (a channel opened before these entries), the registration's
//! own `next_index` is the position until a tick moves it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::pages::{self, Pages};
use crate::registry::{self, Registration, WriterState};
use powerplug_storage::{ReadTx, WriteTx};

const TABLE: &str = "return_positions";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    root: [u8; 32],
    next: u64,
}

fn pages() -> Pages<'static> {
    Pages::new(TABLE, &[])
}

/// Puts `r`'s return channel where it stands in `tx`.
pub fn current(tx: &dyn ReadTx, r: &mut Registration) -> anyhow::Result<()> {
    if let Some(w) = r.return_channel.as_mut() {
        overlay(w, pages().get::<Position>(tx, r.index)?.as_ref());
    }
    Ok(())
}

/// [`current`] for many (in any order), each page read once.
pub fn current_all(tx: &dyn ReadTx, rs: &mut [Registration]) -> anyhow::Result<()> {
    let reader = pages::Reader::<Position>::new(tx, pages());
    let mut by_index: Vec<&mut Registration> = rs.iter_mut().collect();
    by_index.sort_unstable_by_key(|r| r.index);
    for r in by_index {
        if let Some(w) = r.return_channel.as_mut() {
            overlay(w, reader.get(r.index)?.as_ref());
        }
    }
    Ok(())
}

fn overlay(w: &mut WriterState, p: Option<&Position>) {
    if let Some(p) = p.filter(|p| p.root == w.root) {
        w.next_index = p.next;
    }
}

/// In the transaction that opens a return channel for the entity at `index`.
pub fn open(tx: &dyn WriteTx, index: u32, w: &WriterState) -> anyhow::Result<()> {
    let p = Position {
        root: w.root,
        next: w.next_index,
    };
    pages().update_some(tx, [index], |_, entry: &mut Option<Position>| {
        *entry = Some(p);
        Ok(())
    })
}

/// In the transaction that removes the registration at `index`.
pub fn forget(tx: &dyn WriteTx, index: u32) -> anyhow::Result<()> {
    pages().remove::<Position>(tx, index)
}

/// Takes `count` places on each consumer's return channel (by index), moving
/// the channels past them: the channels, each at the first place taken.
/// `seen`: the consumers' registrations as read before `tx` began. A consumer
/// whose return channel is gone is left out.
pub fn take(
    tx: &dyn WriteTx,
    seen: &HashMap<u32, Registration>,
    count: &BTreeMap<u32, u64>,
) -> anyhow::Result<HashMap<u32, WriterState>> {
    let mut taken = HashMap::with_capacity(count.len());
    pages().update_some(
        tx,
        count.keys().copied(),
        |index, entry: &mut Option<Position>| {
            let Some(seen) = seen.get(&index) else {
                return Ok(());
            };
            let channel = match (&seen.return_channel, entry.as_ref()) {
                (Some(w), Some(p)) if p.root == w.root => WriterState {
                    next_index: p.next,
                    ..w.clone()
                },
                // Reset or removed since `seen` was read, or opened before
                // these entries: as it stands now.
                _ => {
                    let now = registry::read(tx, &seen.id)?;
                    let Some(mut w) = now.and_then(|r| r.return_channel) else {
                        return Ok(());
                    };
                    overlay(&mut w, entry.as_ref());
                    w
                }
            };
            *entry = Some(Position {
                root: channel.root,
                next: channel.next_index + count.get(&index).copied().unwrap_or(0),
            });
            taken.insert(index, channel);
            Ok(())
        },
    )?;
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
    fn take_n(db: &dyn Store, seen: &Registration, n: u64) -> Option<(u64, [u8; 32])> {
        let tx = db.write().unwrap();
        let seen = HashMap::from([(seen.index, seen.clone())]);
        let taken = take(&*tx, &seen, &BTreeMap::from([(0, n)])).unwrap();
        tx.commit().unwrap();
        taken.get(&0).map(|w| (w.next_index, w.root))
    }

    /// A tick holds registrations read before its transaction: its places
    /// follow the channel through a reset and stop at a removal.
    #[test]
    fn places_follow_the_return_channel_through_a_reset_and_stop_at_a_removal() {
        let (db, registry) = grid();
        let (seen, credential) = register(&registry, &db, 10, None);
        let first = seen.return_channel.clone().unwrap();
        // After the hello.
        assert_eq!(take_n(&db, &seen, 3), Some((1, first.root)));
        assert_eq!(take_n(&db, &seen, 2), Some((4, first.root)));
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
        assert_eq!(
            take_n(&db, &seen, 1),
            Some((1, second.root)),
            "the stale one is read again"
        );
        assert_eq!(take_n(&db, &seen, 1), Some((2, second.root)));

        registry.remove(&db, &credential).unwrap();
        assert_eq!(take_n(&db, &seen, 1), None);

        // Each goodbye went after the places taken on its channel.
        let said: Vec<Address> = (crate::outbox::pending(&db, 9).unwrap().iter())
            .map(|item| item.message.address)
            .collect();
        assert!(said.contains(&Address::of(&first.root, 6)), "{said:?}");
        assert!(said.contains(&Address::of(&second.root, 3)), "{said:?}");
    }

    /// A channel opened before the entries goes on from its registration.
    #[test]
    fn a_channel_without_an_entry_goes_on_from_its_registration() {
        let (db, registry) = grid();
        let (mut seen, credential) = register(&registry, &db, 10, None);
        let tx = db.write().unwrap();
        forget(&*tx, seen.index).unwrap();
        if let Some(w) = seen.return_channel.as_mut() {
            w.next_index = 7;
        }
        registry::put(&*tx, &seen).unwrap();
        tx.commit().unwrap();
        let root = seen.return_channel.as_ref().unwrap().root;
        assert_eq!(take_n(&db, &seen, 2), Some((7, root)));
        assert_eq!(take_n(&db, &seen, 1), Some((9, root)));
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
