//! Every JSON body the HTTP API takes, read as the API reads it
//! (`powerplug::http::parse_json`): no panic, whatever the bytes; a body that
//! is accepted is valid JSON (nothing after it) and survives a round trip; the
//! checks that follow parsing (hex channel keys) never panic either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use powerplug::api::{Channel, Issue, Register};
use powerplug::channel::{Batch, ReadMany};
use powerplug::http::parse_json;
use powerplug::role::grid::NewExperiment;
use powerplug::wallet;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses `bytes` as `T`; if accepted, checks it is strict JSON and that
/// writing and reading it again gives the same JSON.
fn round_trip<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Option<T> {
    let value: T = parse_json(bytes).ok()?;
    assert!(
        serde_json::from_slice::<serde_json::Value>(bytes).is_ok(),
        "accepted a body that is not one JSON value: {:?}",
        String::from_utf8_lossy(bytes)
    );
    let written = serde_json::to_vec(&value).expect("a parsed body serialises");
    let again: T = parse_json(&written).expect("what was written reads back");
    assert_eq!(
        serde_json::to_value(&again).expect("serialises"),
        serde_json::to_value(&value).expect("serialises")
    );
    Some(value)
}

fn channel(c: &Channel) {
    let _ = c.info();
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Some(r) = round_trip::<Register>(body) {
                channel(&r.channel);
                if let Some(h) = &r.hello {
                    let _ = hex::decode(h);
                }
            }
        }
        1 => {
            if let Some(b) = round_trip::<Batch>(body) {
                for m in &b.messages {
                    let _ = hex::decode(&m.author);
                    let _ = hex::decode(&m.message);
                }
            }
        }
        2 => {
            if let Some(r) = round_trip::<ReadMany>(body) {
                for a in &r.addresses {
                    let _ = hex::decode(a);
                }
            }
        }
        3 => drop(round_trip::<wallet::PayRequest>(body)),
        4 => drop(round_trip::<wallet::Batch>(body)),
        5 => drop(round_trip::<Issue>(body)),
        6 => {
            // Deserialize only: the route reads it, nothing writes it.
            if parse_json::<NewExperiment>(body).is_ok() {
                assert!(serde_json::from_slice::<serde_json::Value>(body).is_ok());
            }
        }
        _ => {
            // A `/storage` document: any JSON value.
            drop(round_trip::<serde_json::Value>(body));
        }
    }
});
