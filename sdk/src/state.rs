//! A strategy's own state travels as bytes; Rust strategies keep it as a serde type
//! encoded with postcard (compact, no_std, stable for a given type).

use serde::{Serialize, de::DeserializeOwned};

pub fn decode<S: DeserializeOwned + Default>(bytes: &[u8]) -> Result<S, crate::Error> {
    if bytes.is_empty() {
        return Ok(S::default());
    }
    postcard::from_bytes(bytes).map_err(|e| format!("state: cannot read the saved state: {e}"))
}

pub fn encode<S: Serialize>(state: &S) -> Result<Vec<u8>, crate::Error> {
    postcard::to_allocvec(state).map_err(|e| format!("state: cannot encode: {e}"))
}
