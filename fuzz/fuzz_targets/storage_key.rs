//! Storage keys: parts written with `key::of` read back by `key::Reader`, and
//! whatever bytes a key holds (a damaged or foreign database) read without a
//! panic. Keys sort as their parts; `after_prefix` bounds a prefix.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use powerplug::storage::key::{self, Part, Reader};

#[derive(Arbitrary, Debug, Clone, PartialEq)]
enum P {
    U64(u64),
    U32(u32),
    Bool(bool),
    Str(String),
    Bytes32([u8; 32]),
}

#[derive(Arbitrary, Debug)]
enum Read {
    U64,
    U32,
    Bool,
    Str,
    Bytes32,
}

#[derive(Arbitrary, Debug)]
struct Input {
    raw: Vec<u8>,
    reads: Vec<Read>,
    parts: Vec<P>,
    other: Vec<P>,
}

fn encode(parts: &[P]) -> Vec<u8> {
    let dyns: Vec<&dyn Part> = parts
        .iter()
        .map(|p| -> &dyn Part {
            match p {
                P::U64(v) => v,
                P::U32(v) => v,
                P::Bool(v) => v,
                P::Str(v) => v,
                P::Bytes32(v) => v,
            }
        })
        .collect();
    key::of(&dyns)
}

/// What reading `parts` back gives: strings lose their zero bytes, bools
/// read as written.
fn read_back(bytes: &[u8], parts: &[P]) -> Vec<P> {
    let mut r = Reader::new(bytes);
    parts
        .iter()
        .map(|p| match p {
            P::U64(_) => P::U64(r.u64().expect("u64 back")),
            P::U32(_) => P::U32(r.u32().expect("u32 back")),
            P::Bool(_) => P::Bool(r.bool().expect("bool back")),
            P::Str(_) => P::Str(r.str().expect("text back").to_owned()),
            P::Bytes32(_) => P::Bytes32(r.bytes32().expect("bytes back")),
        })
        .collect()
}

fn stored(parts: &[P]) -> Vec<P> {
    parts
        .iter()
        .map(|p| match p {
            P::Str(s) => P::Str(s.replace('\0', "")),
            p => p.clone(),
        })
        .collect()
}

fuzz_target!(|input: Input| {
    // Any bytes, any reads: errors, never a panic.
    let mut r = Reader::new(&input.raw);
    for read in &input.reads {
        let _ = match read {
            Read::U64 => r.u64().map(drop),
            Read::U32 => r.u32().map(drop),
            Read::Bool => r.bool().map(drop),
            Read::Str => r.str().map(drop),
            Read::Bytes32 => r.bytes32().map(drop),
        };
    }
    let _ = key::u64_value(&input.raw);

    // What is written reads back.
    let a = encode(&input.parts);
    assert_eq!(read_back(&a, &input.parts), stored(&input.parts));

    // A prefix's range holds every key that starts with it, and no other.
    let b = encode(&input.other);
    match key::after_prefix(&a) {
        Some(end) => {
            assert!(end > a);
            assert_eq!(b.starts_with(&a), b >= a && b < end, "{a:?} {b:?} {end:?}");
        }
        None => assert!(a.iter().all(|&x| x == u8::MAX)),
    }
});
