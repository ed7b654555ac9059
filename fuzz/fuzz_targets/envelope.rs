//! The channel envelope: whatever bytes anyone stores at a channel address are
//! opened by a reader. `open` must never panic, and bytes that are not exactly
//! what the author sealed must never open to another message.

#![no_main]

use arbitrary::Arbitrary;
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use powerplug::channel::envelope::open;
use powerplug::channel::{Address, ChannelWriter, Message};

const ROOT: [u8; 32] = [7; 32];
const SIDE_KEY: [u8; 32] = [9; 32];

#[derive(Arbitrary, Debug)]
enum Input {
    /// Outside bytes at an address of the channel.
    Raw {
        restricted: bool,
        index: u8,
        bytes: Vec<u8>,
    },
    /// A message the author sealed, then changed on the way.
    Changed {
        restricted: bool,
        message: Msg,
        edits: Vec<Edit>,
    },
}

#[derive(Arbitrary, Debug, Clone)]
enum Msg {
    Hello,
    Goodbye,
    Data(Vec<u8>),
}

impl From<Msg> for Message {
    fn from(m: Msg) -> Self {
        match m {
            Msg::Hello => Message::Hello,
            Msg::Goodbye => Message::Goodbye,
            Msg::Data(d) => Message::Data(d),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Flip { at: u16, bits: u8 },
    Truncate(u16),
    Insert { at: u16, byte: u8 },
    Remove(u16),
    Append(Vec<u8>),
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let at = |i: u16, len: usize| if len == 0 { 0 } else { usize::from(i) % len };
    match *edit {
        Edit::Flip { at: i, bits } if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes[i] ^= bits;
        }
        Edit::Truncate(n) => bytes.truncate(usize::from(n)),
        Edit::Insert { at: i, byte } => {
            let i = at(i, bytes.len() + 1);
            bytes.insert(i, byte);
        }
        Edit::Remove(i) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes.remove(i);
        }
        Edit::Append(ref more) => bytes.extend_from_slice(more),
        _ => {}
    }
}

fn author() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fuzz_target!(|input: Input| {
    let key = author();
    let verifying = key.verifying_key();
    match input {
        Input::Raw {
            restricted,
            index,
            bytes,
        } => {
            let index = u64::from(index);
            let side = restricted.then_some(&SIDE_KEY);
            let address = Address::of(&ROOT, index);
            let next = Address::of(&ROOT, index + 1);
            let _ = open(&verifying, side, &address, &next, &bytes);
        }
        Input::Changed {
            restricted,
            message,
            edits,
        } => {
            // Hello opens a channel; anything else comes later.
            let index = if matches!(message, Msg::Hello) { 0 } else { 1 };
            let side = restricted.then_some(SIDE_KEY);
            let mut writer = ChannelWriter::resume(key, ROOT, side, index);
            let expected: Message = message.into();
            let Ok(powerplug::channel::Sealed { address, bytes: sealed, .. }) = writer.prepare(expected.clone()) else {
                return;
            };
            let next = Address::of(&ROOT, index + 1);
            let mut bytes = sealed.clone();
            for edit in &edits {
                apply(&mut bytes, edit);
            }
            let opened = open(&verifying, side.as_ref(), &address, &next, &bytes);
            if bytes == sealed {
                assert_eq!(opened.as_ref(), Some(&expected), "the author's own message");
            } else if let Some(got) = &opened {
                assert_eq!(got, &expected, "changed bytes opened to another message");
            }
            // The wrong reader: plaintext is refused by a restricted reader,
            // ciphertext unreadable by a public one; another author never.
            if restricted {
                let other = [1u8; 32];
                assert!(open(&verifying, Some(&other), &address, &next, &sealed).is_none());
            }
            let flipped = (!restricted).then_some(&SIDE_KEY);
            assert!(open(&verifying, flipped, &address, &next, &sealed).is_none());
            let stranger = SigningKey::from_bytes(&[4; 32]).verifying_key();
            assert!(open(&stranger, side.as_ref(), &address, &next, &sealed).is_none());
            // Another address or link: refused.
            let elsewhere = Address::of(&ROOT, index + 2);
            assert!(open(&verifying, side.as_ref(), &elsewhere, &next, &sealed).is_none());
            assert!(open(&verifying, side.as_ref(), &address, &elsewhere, &sealed).is_none());
        }
    }
});
