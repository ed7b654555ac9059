use ed25519_dalek::SigningKey;

use super::*;

fn author(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn data(poll: &Poll) -> Vec<&[u8]> {
    poll.data.iter().map(Vec::as_slice).collect()
}

#[test]
fn a_reader_follows_the_chain_and_remembers_where_it_stopped() {
    let store = MemoryTransport::default();
    let mut writer = ChannelWriter::new(author(1), true).unwrap();
    writer.hello(&store).unwrap();
    writer.publish(&store, b"one".to_vec()).unwrap();
    writer.publish(&store, b"two".to_vec()).unwrap();

    let mut reader = ChannelReader::new(&writer.info()).unwrap();
    let poll = reader.poll(&store).unwrap();
    assert_eq!(data(&poll), [b"one", b"two"]);
    assert_eq!(reader.poll(&store).unwrap(), Poll::default(), "nothing new");

    writer.publish(&store, b"three".to_vec()).unwrap();
    assert_eq!(data(&reader.poll(&store).unwrap()), [b"three"]);

    // A restarted reader resumes from its saved position.
    let mut resumed = ChannelReader::resume(&writer.info(), reader.next_index()).unwrap();
    writer.publish(&store, b"four".to_vec()).unwrap();
    assert_eq!(data(&resumed.poll(&store).unwrap()), [b"four"]);
}

#[test]
fn goodbye_closes_the_channel() {
    let store = MemoryTransport::default();
    let mut writer = ChannelWriter::new(author(1), false).unwrap();
    writer.hello(&store).unwrap();
    writer.publish(&store, b"last".to_vec()).unwrap();
    writer.goodbye(&store).unwrap();
    // Whatever comes after a goodbye is not read.
    writer.publish(&store, b"after".to_vec()).unwrap();
    let mut reader = ChannelReader::new(&writer.info()).unwrap();
    let poll = reader.poll(&store).unwrap();
    assert_eq!(data(&poll), [b"last"]);
    assert!(poll.closed && reader.is_closed());
}

#[test]
fn a_channel_that_does_not_open_with_hello_is_refused() {
    let store = MemoryTransport::default();
    let mut writer = ChannelWriter::new(author(1), true).unwrap();
    assert!(
        writer.publish(&store, b"x".to_vec()).is_err(),
        "the writer will not skip hello"
    );
    writer.goodbye(&store).unwrap();
    let mut reader = ChannelReader::new(&writer.info()).unwrap();
    assert!(matches!(reader.poll(&store), Err(ReadError::NotOpened)));
}

#[test]
fn junk_at_an_address_is_ignored_and_the_first_valid_message_kept() {
    let store = MemoryTransport::default();
    let mut writer = ChannelWriter::new(author(1), true).unwrap();
    let info = writer.info();
    writer.hello(&store).unwrap();
    let at = Address::of(&info.root, 1);
    // Before the real message: random bytes, and a message signed by someone else.
    store.put_raw(at, vec![0xde, 0xad, 0xbe, 0xef]).unwrap();
    let mut forger = ChannelWriter::resume(author(2), info.root, info.side_key, 1);
    forger.publish(&store, b"forged".to_vec()).unwrap();
    writer.publish(&store, b"real".to_vec()).unwrap();
    // After it: a second valid message at the same address is not read.
    let mut twin = ChannelWriter::resume(author(1), info.root, info.side_key, 1);
    twin.publish(&store, b"second".to_vec()).unwrap();

    let mut reader = ChannelReader::new(&info).unwrap();
    let poll = reader.poll(&store).unwrap();
    assert_eq!(data(&poll), [b"real"]);
    assert_eq!(poll.dropped, 2);
}

#[test]
fn restricted_channels_need_the_side_key_and_reject_tampering() {
    let store = MemoryTransport::default();
    let mut writer = ChannelWriter::new(author(1), true).unwrap();
    writer.hello(&store).unwrap();
    writer.publish(&store, b"secret usage".to_vec()).unwrap();
    let info = writer.info();

    // The stored bytes do not contain the plaintext.
    let stored = store.get(&Address::of(&info.root, 1)).unwrap();
    assert!(!stored[0].windows(12).any(|w| w == b"secret usage"));

    let wrong_key = ChannelInfo {
        side_key: Some([9; 32]),
        ..info.clone()
    };
    let poll = ChannelReader::new(&wrong_key)
        .unwrap()
        .poll(&store)
        .unwrap();
    assert!(
        poll.data.is_empty() && poll.dropped == 1,
        "not even hello opens: {poll:?}"
    );

    let no_key = ChannelInfo {
        side_key: None,
        ..info.clone()
    };
    assert!(
        ChannelReader::new(&no_key)
            .unwrap()
            .poll(&store)
            .unwrap()
            .data
            .is_empty()
    );

    // Flip one bit of the ciphertext: the signature no longer holds.
    let tampered = MemoryTransport::default();
    for i in 0..2 {
        let at = Address::of(&info.root, i);
        let mut bytes = store.get(&at).unwrap().remove(0);
        if i == 1 {
            let n = bytes.len();
            bytes[n - 70] ^= 1;
        }
        tampered.put_raw(at, bytes).unwrap();
    }
    let poll = ChannelReader::new(&info).unwrap().poll(&tampered).unwrap();
    assert!(poll.data.is_empty() && poll.dropped == 1, "{poll:?}");
}

#[test]
fn a_message_moved_to_another_address_is_not_accepted() {
    let store = MemoryTransport::default();
    let mut writer = ChannelWriter::new(author(1), false).unwrap();
    let info = writer.info();
    writer.hello(&store).unwrap();
    writer.publish(&store, b"one".to_vec()).unwrap();
    writer.publish(&store, b"two".to_vec()).unwrap();
    // Replay message 1 at index 2's address in another store.
    let replayed = MemoryTransport::default();
    replayed
        .put_raw(
            Address::of(&info.root, 0),
            store.get(&Address::of(&info.root, 0)).unwrap().remove(0),
        )
        .unwrap();
    replayed
        .put_raw(
            Address::of(&info.root, 1),
            store.get(&Address::of(&info.root, 1)).unwrap().remove(0),
        )
        .unwrap();
    replayed
        .put_raw(
            Address::of(&info.root, 2),
            store.get(&Address::of(&info.root, 1)).unwrap().remove(0),
        )
        .unwrap();
    let poll = ChannelReader::new(&info).unwrap().poll(&replayed).unwrap();
    assert_eq!(data(&poll), [b"one"]);
    assert_eq!(poll.dropped, 1);
}

#[test]
fn addresses_are_unlinkable_to_the_root() {
    let root = [7; 32];
    let a0 = Address::of(&root, 0);
    assert_ne!(a0.0, root);
    assert_ne!(a0, Address::of(&root, 1));
    assert_ne!(a0, Address::of(&[8; 32], 0));
    assert_eq!(a0, Address::of(&root, 0));
}

#[test]
fn the_embedded_store_keeps_arrival_order_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.redb");
    let mut writer = ChannelWriter::new(author(1), true).unwrap();
    let info = writer.info();
    let reader_at;
    {
        let store = EmbeddedTransport::open(&path).unwrap();
        writer.hello(&store).unwrap();
        // Junk first, then the real message, at the same address.
        store
            .put_raw(Address::of(&info.root, 1), b"junk".to_vec())
            .unwrap();
        writer.publish(&store, b"kept".to_vec()).unwrap();
        let mut reader = ChannelReader::new(&info).unwrap();
        let poll = reader.poll(&store).unwrap();
        assert_eq!((data(&poll), poll.dropped), (vec![&b"kept"[..]], 1));
        reader_at = reader.next_index();
        writer.publish(&store, b"after restart".to_vec()).unwrap();
    }
    // The process is gone; the file is all that is left.
    let store = EmbeddedTransport::open(&path).unwrap();
    let mut reader = ChannelReader::resume(&info, reader_at).unwrap();
    assert_eq!(data(&reader.poll(&store).unwrap()), [b"after restart"]);
    assert_eq!(store.get(&Address::of(&info.root, 1)).unwrap()[0], b"junk");
}

#[test]
fn the_embedded_store_keeps_a_resend_once_and_unknown_addresses_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedTransport::open(&dir.path().join("host.redb")).unwrap();
    assert!(
        store.get(&Address([1; 32])).unwrap().is_empty(),
        "before any table exists"
    );
    let mut writer = ChannelWriter::new(author(1), true).unwrap();
    let hello = writer.prepare(Message::Hello).unwrap();
    store.put(&hello).unwrap();
    store.put(&hello).unwrap();
    assert_eq!(store.get(&hello.address).unwrap(), [hello.bytes]);
}

/// A transport that is down.
struct Down;

impl Transport for Down {
    fn put_many(&self, _: &[super::Sealed]) -> anyhow::Result<Vec<super::Refused>> {
        anyhow::bail!("unreachable store")
    }
    fn get(&self, _: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        anyhow::bail!("unreachable store")
    }
}

#[test]
fn a_failed_send_leaves_no_gap_in_the_chain() {
    let store = MemoryTransport::default();
    let mut writer = ChannelWriter::new(author(1), true).unwrap();
    writer.hello(&store).unwrap();
    assert!(writer.publish(&Down, b"lost".to_vec()).is_err());
    writer.publish(&store, b"next".to_vec()).unwrap();
    let poll = ChannelReader::new(&writer.info())
        .unwrap()
        .poll(&store)
        .unwrap();
    assert_eq!(data(&poll), [b"next"]);
    assert!(matches!(
        ChannelReader::new(&writer.info()).unwrap().poll(&Down),
        Err(ReadError::Transport(_))
    ));
}

#[test]
fn junk_waiting_at_the_next_address_is_counted_once_however_often_a_reader_looks() {
    let store = MemoryTransport::default();
    let mut writer = ChannelWriter::new(author(1), true).unwrap();
    writer.hello(&store).unwrap();
    let next = Address::of(&writer.info().root, 1);
    store.put_raw(next, b"junk".to_vec()).unwrap();

    let mut reader = ChannelReader::new(&writer.info()).unwrap();
    assert_eq!(reader.poll(&store).unwrap().dropped, 1);
    assert_eq!(
        reader.poll(&store).unwrap().dropped,
        0,
        "the same junk again"
    );
    // A reader resumed from the saved position and count does not count it either.
    let mut resumed =
        ChannelReader::resume_at(&writer.info(), reader.next_index(), reader.examined()).unwrap();
    assert_eq!(resumed.poll(&store).unwrap().dropped, 0);

    store.put_raw(next, b"more junk".to_vec()).unwrap();
    writer.publish(&store, b"real".to_vec()).unwrap();
    let poll = resumed.poll(&store).unwrap();
    assert_eq!((data(&poll), poll.dropped), (vec![&b"real"[..]], 1));
    assert_eq!(resumed.examined(), 0, "a new address starts a new count");
}

#[test]
fn a_batch_check_finds_exactly_the_messages_that_are_not_signed() {
    let writers: Vec<ChannelWriter> = (1..=70)
        .map(|i| ChannelWriter::new(author(i), i % 2 == 0).unwrap())
        .collect();
    // Each message 1 with the address after it, as a store derives it.
    let sealed: Vec<(Sealed, Address)> = writers
        .into_iter()
        .map(|mut w| {
            let root = w.info().root;
            w.prepare(Message::Hello).unwrap();
            let s = w.prepare(Message::Data(b"reading".to_vec())).unwrap();
            (s, Address::of(&root, 2))
        })
        .collect();
    let all: Vec<envelope::Claim> = sealed
        .iter()
        .map(|(s, next)| envelope::Claim {
            author: &s.author,
            address: s.address,
            next: *next,
            bytes: &s.bytes,
        })
        .collect();
    assert!(envelope::are_signed(&all).iter().all(|&ok| ok), "all good");

    // A forgery (another author's key claimed), a message claimed for
    // another address, and junk, among good ones: exactly those refused.
    let forged_author = sealed[5].0.author;
    let mut claims = all;
    claims[3].author = &forged_author;
    claims[40].address = Address([9; 32]);
    let junk = [1u8, 2, 3];
    claims[66].bytes = &junk;
    let answers = envelope::are_signed(&claims);
    let refused: Vec<usize> = (0..answers.len()).filter(|&i| !answers[i]).collect();
    assert_eq!(refused, [3, 40, 66]);
    for (i, ok) in answers.iter().enumerate() {
        let one = envelope::are_signed(std::slice::from_ref(&claims[i]))[0];
        assert_eq!(*ok, one, "claim {i}: the same alone as in the batch");
    }
}
