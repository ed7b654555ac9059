//! Identities: a component's SHA-256, a wallet account.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;

/// A SHA-256 digest: a component's identity everywhere. Written as 64
/// lowercase hex digits (in JSON, paths and logs).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits: enough to tell versions apart in a line.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.hex())
    }
}

/// Not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSha256;

impl fmt::Display for NotSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a SHA-256 (64 hex digits)")
    }
}

impl std::error::Error for NotSha256 {}

impl FromStr for Sha256 {
    type Err = NotSha256;
    fn from_str(s: &str) -> Result<Self, NotSha256> {
        if s.len() != 64 {
            return Err(NotSha256);
        }
        let bytes = hex::decode(s.to_ascii_lowercase()).map_err(|_| NotSha256)?;
        Ok(Self(bytes.try_into().map_err(|_| NotSha256)?))
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A wallet account: an entity's id, or a host's own account. Names that
/// begin with `$` are the ledger's (the issuer); nobody outside may hold one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub String);

impl AccountId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// One of the ledger's own accounts (`$…`), which no request may name.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with('$')
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AccountId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl AsRef<str> for AccountId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha256_is_64_hex_digits_both_ways() {
        let h = Sha256::of(b"powerplug");
        let text = h.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Sha256>(), Ok(h));
        assert_eq!(text.to_uppercase().parse::<Sha256>(), Ok(h));
        assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{text}\""));
        assert!("abc".parse::<Sha256>().is_err());
        assert!(serde_json::from_str::<Sha256>(&format!("\"{}\"", "g".repeat(64))).is_err());
    }

    #[test]
    fn accounts_starting_with_a_dollar_are_the_ledgers() {
        assert!(AccountId::from("$issuer").is_reserved());
        assert!(!AccountId::from("consumer-1").is_reserved());
        assert_eq!(
            serde_json::to_string(&AccountId::from("g")).unwrap(),
            "\"g\""
        );
    }
}
