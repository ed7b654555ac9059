//! Admission: who may register with a host. Producers and sources are paid
//! for what they report, so by default only the operator lets them in, with a
//! registration token it issues; consumers may register freely or need a token
//! too (`admission.consumer = "token"`).
//!
//! A token is 32 random bytes shown once; the host keeps only its SHA-256, the
//! kind it admits, the id it is bound to (if any) and how many registrations
//! it has left. Registering again with the same channel, or a reset with the
//! entity's credential, needs no token: only a new entity does.

use powerplug_domain::EntityKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use powerplug_storage::{Order, Store, WriteTx, key};

const TOKENS: &str = "admission_tokens";

/// How a kind of entity is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Anyone may register.
    Open,
    /// A registration must carry a token the operator issued.
    Token,
}

/// A host's admission rules, by kind (a grid: consumers and producers; a
/// producer: sources).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "open")]
    pub consumer: Rule,
    #[serde(default = "token")]
    pub producer: Rule,
    #[serde(default = "token")]
    pub source: Rule,
}

fn open() -> Rule {
    Rule::Open
}

fn token() -> Rule {
    Rule::Token
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            consumer: Rule::Open,
            producer: Rule::Token,
            source: Rule::Token,
        }
    }
}

impl Policy {
    pub fn rule(&self, kind: EntityKind) -> Rule {
        match kind {
            EntityKind::Consumer => self.consumer,
            EntityKind::Producer => self.producer,
            EntityKind::Source => self.source,
        }
    }
}

/// What a token admits, as stored (under the token's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub kind: EntityKind,
    /// Only this id may use it; any id when `None`.
    pub id: Option<String>,
    /// Registrations left.
    pub uses: u32,
    pub issued_ms: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    #[error("admission: a {0:?} needs a registration token from the operator")]
    Missing(EntityKind),
    #[error("admission: the token is unknown or used up")]
    Unknown,
    #[error("admission: the token admits a {0:?}, not a {1:?}")]
    WrongKind(EntityKind, EntityKind),
    #[error("admission: the token is for `{0}`")]
    WrongId(String),
    #[error("admission: `{0}` left; only a token issued for it brings it back under a new key")]
    NotBound(String),
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"powerplug/admission/v1")
        .chain_update(token.as_bytes())
        .finalize()
        .into()
}

/// Issues a token admitting `uses` registrations of `kind` (bound to `id` if
/// given); answers the token, which is not kept.
pub fn issue(db: &dyn Store, grant: &Grant) -> anyhow::Result<String> {
    anyhow::ensure!(grant.uses >= 1, "uses: at least 1");
    let token = hex::encode(powerplug_channel::random32()?);
    let tx = db.write()?;
    tx.put(
        TOKENS,
        &key::of(&[&hash(&token)]),
        &postcard::to_allocvec(grant)?,
    )?;
    tx.commit()?;
    Ok(token)
}

/// The grants not used up, by the first 8 hex digits of their hash.
pub fn list(db: &dyn Store) -> anyhow::Result<Vec<(String, Grant)>> {
    let entries = db
        .read()?
        .range(TOKENS, &[], None, Order::Ascending, 10_000)?;
    entries
        .into_iter()
        .map(|(k, v)| {
            let hash = key::Reader::new(&k).bytes32()?;
            Ok((hex::encode(&hash[..4]), postcard::from_bytes(&v)?))
        })
        .collect()
}

/// Spends one use of `token` for `id` of `kind`, inside the registration's
/// transaction (a registration that fails spends nothing). `bound`: only a
/// token issued for this very id will do (an id that left, taken by a new key).
pub fn spend(
    tx: &dyn WriteTx,
    token: Option<&str>,
    kind: EntityKind,
    id: &str,
    bound: bool,
) -> anyhow::Result<Result<(), AdmissionError>> {
    let Some(token) = token else {
        return Ok(Err(AdmissionError::Missing(kind)));
    };
    let k = key::of(&[&hash(token)]);
    let Some(bytes) = tx.get(TOKENS, &k)? else {
        return Ok(Err(AdmissionError::Unknown));
    };
    let mut grant: Grant = postcard::from_bytes(&bytes)?;
    if grant.kind != kind {
        return Ok(Err(AdmissionError::WrongKind(grant.kind, kind)));
    }
    match &grant.id {
        Some(only) if only != id => return Ok(Err(AdmissionError::WrongId(only.clone()))),
        None if bound => return Ok(Err(AdmissionError::NotBound(id.to_owned()))),
        _ => {}
    }
    grant.uses -= 1;
    if grant.uses == 0 {
        tx.delete(TOKENS, &k)?;
    } else {
        tx.put(TOKENS, &k, &postcard::to_allocvec(&grant)?)?;
    }
    Ok(Ok(()))
}
