//! The kinds of things: one enum each, used by registrations, the HTTP API
//! and the strategy runtime alike (the WIT's `entity-kind` converts to and
//! from [`EntityKind`] where a tick crosses into the sandbox).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An entity that publishes to a host: consumers and producers at a grid,
/// sources at a producer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    Consumer,
    Producer,
    Source,
}

/// A kind of strategy, named for the role that runs it. Stored records
/// (versions) keep it as its name, as they did before this type existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StrategyKind {
    Grid,
    Producer,
}

impl EntityKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Producer => "producer",
            Self::Source => "source",
        }
    }
}

impl StrategyKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Producer => "producer",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a kind: what was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown kind `{}`", self.0)
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for EntityKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        [Self::Consumer, Self::Producer, Self::Source]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

impl FromStr for StrategyKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        [Self::Grid, Self::Producer]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

impl Serialize for StrategyKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StrategyKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_they_are_written() {
        for k in [
            EntityKind::Consumer,
            EntityKind::Producer,
            EntityKind::Source,
        ] {
            assert_eq!(k.to_string().parse::<EntityKind>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        for k in [StrategyKind::Grid, StrategyKind::Producer] {
            assert_eq!(k.to_string().parse::<StrategyKind>(), Ok(k));
        }
        assert!("Grid".parse::<StrategyKind>().is_err());
        assert!("grid".parse::<EntityKind>().is_err());
    }
}
