//! Admission: who may register with a host. Producers and sources are paid
//! for what they report, so by default only the operator lets them in, with a
//! registration token it issues; consumers may register freely or need a token
//! too (`admission.consumer = "token"`).
//!
//! A token is 32 random bytes shown once; the host keeps only its SHA-256, the
//! kind it admits, the id it is bound to (if any) and how many registrations
//! it has left. Registering again with the same channel, or a reset with the
//! entity's credential, needs no token: only a new entity does.
//!
//! Under the rule `approve`, a new entity without a token waits instead: its
//! request (id, kind, channel author) is kept, the operator approves or
//! refuses it (`/admissions/pending`, the console), and once approved the
//! same author's next registration of that id is admitted. The waiting list
//! is bounded and its requests expire; the first author to ask for an id
//! keeps the request (a later one cannot swap its key in).

use powerplug_domain::EntityKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use powerplug_storage::{Order, Store, WriteTx, key};

const TOKENS: &str = "admission_tokens";
/// id → [`Asked`]: new entities waiting for the operator.
const PENDING: &str = "admission_pending";
/// id → [`Asked`]: approved, until that author registers.
const APPROVED: &str = "admission_approved";

/// Requests that wait at once, at most: anyone can ask, so the list is
/// bounded; beyond it a new entity needs a token (`QueueFull`).
pub const MAX_PENDING: usize = 1_000;
/// How long a request waits before it is dropped.
pub const PENDING_MS: u64 = 24 * 3600 * 1000;

/// How a kind of entity is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Anyone may register.
    Open,
    /// A registration must carry a token the operator issued.
    Token,
    /// A new entity without a token waits for the operator's approval.
    Approve,
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
    #[error("admission: `{0}` waits for the operator's approval; register again once approved")]
    Waiting(String),
    #[error("admission: too many registrations wait for approval; ask the operator for a token")]
    QueueFull,
}

/// A new entity's request to be let in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    pub kind: EntityKind,
    /// The key of the channel it registers: approval is for this key only.
    pub author: [u8; 32],
    pub asked_ms: u64,
}

/// Keeps `id`'s request to be let in (after its registration was refused
/// as [`AdmissionError::Waiting`]); refuses when the list is full.
pub fn ask(db: &dyn Store, id: &str, asked: &Asked) -> anyhow::Result<Result<(), AdmissionError>> {
    let tx = db.write()?;
    let k = key::of(&[&id]);
    if tx.get(PENDING, &k)?.is_some() {
        // The first asker keeps it; asking again changes nothing.
        return Ok(Ok(()));
    }
    let waiting = tx.range(PENDING, &[], None, Order::Ascending, usize::MAX)?;
    let mut live = 0;
    for (key, bytes) in waiting {
        let old: Asked = postcard::from_bytes(&bytes)?;
        if old.asked_ms.saturating_add(PENDING_MS) < asked.asked_ms {
            tx.delete(PENDING, &key)?;
        } else {
            live += 1;
        }
    }
    if live >= MAX_PENDING {
        tx.commit()?;
        return Ok(Err(AdmissionError::QueueFull));
    }
    tx.put(PENDING, &k, &postcard::to_allocvec(asked)?)?;
    tx.commit()?;
    Ok(Ok(()))
}

/// The requests waiting, by id.
pub fn pending(db: &dyn Store) -> anyhow::Result<Vec<(String, Asked)>> {
    let entries = db
        .read()?
        .range(PENDING, &[], None, Order::Ascending, MAX_PENDING * 2)?;
    entries
        .into_iter()
        .map(|(k, v)| {
            Ok((
                key::Reader::new(&k).str()?.to_owned(),
                postcard::from_bytes(&v)?,
            ))
        })
        .collect()
}

/// The operator's answer to `id`'s request: approved (its author's next
/// registration is admitted) or refused (dropped). `None`: no such request.
pub fn decide(db: &dyn Store, id: &str, approve: bool) -> anyhow::Result<Option<Asked>> {
    let tx = db.write()?;
    let k = key::of(&[&id]);
    let Some(bytes) = tx.get(PENDING, &k)? else {
        return Ok(None);
    };
    tx.delete(PENDING, &k)?;
    if approve {
        tx.put(APPROVED, &k, &bytes)?;
    }
    tx.commit()?;
    Ok(Some(postcard::from_bytes(&bytes)?))
}

/// Admits `id` of `kind` written by `author` if the operator approved it,
/// inside the registration's transaction (the approval is used up with it).
pub fn take_approval(
    tx: &dyn WriteTx,
    id: &str,
    kind: EntityKind,
    author: &[u8; 32],
) -> anyhow::Result<bool> {
    let k = key::of(&[&id]);
    let Some(bytes) = tx.get(APPROVED, &k)? else {
        return Ok(false);
    };
    let approved: Asked = postcard::from_bytes(&bytes)?;
    if approved.kind != kind || &approved.author != author {
        return Ok(false);
    }
    tx.delete(APPROVED, &k)?;
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_storage::RedbStore;

    fn asked(author: u8, asked_ms: u64) -> Asked {
        Asked {
            kind: EntityKind::Producer,
            author: [author; 32],
            asked_ms,
        }
    }

    /// Anyone can ask, so the list is bounded; old requests make room.
    #[test]
    fn the_waiting_list_is_bounded_and_old_requests_expire() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("host.redb")).unwrap();
        for i in 0..MAX_PENDING {
            assert_eq!(
                ask(&db, &format!("p{i}"), &asked(1, 1_000)).unwrap(),
                Ok(())
            );
        }
        assert_eq!(
            ask(&db, "late", &asked(1, 2_000)).unwrap(),
            Err(AdmissionError::QueueFull)
        );
        // Asking again for a waiting id is no new request.
        assert_eq!(ask(&db, "p0", &asked(7, 2_000)).unwrap(), Ok(()));
        assert_eq!(pending(&db).unwrap()[0].1.author, [1; 32]);
        // A day later the old ones are gone and the newcomer waits.
        let later = 1_000 + PENDING_MS + 1;
        assert_eq!(ask(&db, "late", &asked(1, later)).unwrap(), Ok(()));
        assert_eq!(pending(&db).unwrap().len(), 1);
        // Approval is for that kind and key, once.
        assert!(decide(&db, "late", true).unwrap().is_some());
        let tx = db.write().unwrap();
        assert!(!take_approval(&*tx, "late", EntityKind::Producer, &[2; 32]).unwrap());
        assert!(!take_approval(&*tx, "late", EntityKind::Source, &[1; 32]).unwrap());
        assert!(take_approval(&*tx, "late", EntityKind::Producer, &[1; 32]).unwrap());
        assert!(!take_approval(&*tx, "late", EntityKind::Producer, &[1; 32]).unwrap());
    }
}
