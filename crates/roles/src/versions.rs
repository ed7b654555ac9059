//! Strategy versions: every component a host was given, content-addressed by
//! SHA-256 with its metadata, which one is active per kind, and the history of
//! activations. The active version survives a restart; its compiled form comes
//! from the runtime's cache, so nothing is recompiled.

use serde::{Deserialize, Serialize};

use powerplug_storage::{
    self as storage, Objects, Order, ReadTx, Store, WriteTx, key, last, prefixed,
};
use powerplug_strategy::{ComponentInfo, Sha256, StrategyKind};

/// (sha256) → the component: where components were kept before objects;
/// still read, never written.
const COMPONENTS: &str = "strategy_components";
/// (kind, sha256) → [`Version`].
const VERSIONS: &str = "strategy_versions";
/// (kind, number) → [`Activation`].
const ACTIVATIONS: &str = "strategy_activations";
/// (sha256) → [`Provenance`]: kept apart from [`Version`] so that versions
/// stored before it read as they were (of unknown provenance).
const PROVENANCE: &str = "strategy_provenance";

/// How a component came to the host, so that a host with `trusted_keys`
/// checks every stored version it is asked to run, not only uploads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Provenance {
    /// The operator's own file, from the role's configuration.
    Configured,
    /// Uploaded with this signature (hex) over its hash.
    Signed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub sha256: Sha256,
    pub kind: StrategyKind,
    pub world: String,
    pub size: u64,
    pub added_ms: u64,
    pub name: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub number: u64,
    pub sha256: Sha256,
    pub at_ms: u64,
    /// Why: `configured`, `uploaded`, `activated`, a rollback's cause.
    pub reason: String,
}

fn active_name(kind: StrategyKind) -> String {
    format!("strategy/active/{kind}")
}

fn object_name(sha256: &Sha256) -> String {
    format!("components/{sha256}")
}

/// Stores a component's bytes, before [`add`] commits its metadata: named
/// by their hash, so a second store of them changes nothing.
pub fn put_component(objects: &Objects, info: &ComponentInfo, bytes: &[u8]) -> anyhow::Result<()> {
    objects.put(&object_name(&info.sha256), bytes)
}

/// Stores a component's metadata (again: keeps the first metadata); its
/// bytes went to [`put_component`] first.
pub fn add(
    tx: &dyn WriteTx,
    info: &ComponentInfo,
    name: Option<String>,
    notes: Option<String>,
    now_ms: u64,
) -> anyhow::Result<Version> {
    let kind = info.kind;
    let k = key::of(&[&kind, &info.sha256]);
    if let Some(existing) = tx.get(VERSIONS, &k)? {
        return Ok(postcard::from_bytes(&existing)?);
    }
    let version = Version {
        sha256: info.sha256,
        kind,
        world: info.world.clone(),
        size: info.size as u64,
        added_ms: now_ms,
        name,
        notes,
    };
    tx.put(VERSIONS, &k, &postcard::to_allocvec(&version)?)?;
    Ok(version)
}

/// Makes `sha256` the active version of `kind`, and records why.
pub fn activate(
    tx: &dyn WriteTx,
    kind: StrategyKind,
    sha256: &Sha256,
    reason: &str,
    now_ms: u64,
) -> anyhow::Result<Activation> {
    anyhow::ensure!(
        tx.get(VERSIONS, &key::of(&[&kind, &sha256]))?.is_some(),
        "version: no {kind} version {sha256}"
    );
    let number = match last(tx, ACTIVATIONS, &key::of(&[&kind]))? {
        Some((k, _)) => {
            let mut r = key::Reader::new(&k);
            r.str()?;
            r.u64()? + 1
        }
        None => 1,
    };
    let activation = Activation {
        number,
        sha256: *sha256,
        at_ms: now_ms,
        reason: reason.to_owned(),
    };
    tx.put(
        ACTIVATIONS,
        &key::of(&[&kind, &number]),
        &postcard::to_allocvec(&activation)?,
    )?;
    storage::set_meta(tx, &active_name(kind), sha256)?;
    Ok(activation)
}

pub fn active(db: &dyn Store, kind: StrategyKind) -> anyhow::Result<Option<Sha256>> {
    storage::meta(db, &active_name(kind))
}

/// Whether a stored version (of any kind) is the object `name`.
pub fn names(tx: &dyn ReadTx, name: &str) -> anyhow::Result<bool> {
    let Some(sha) = name.strip_prefix("components/") else {
        return Ok(false);
    };
    let Ok(sha) = sha.parse::<Sha256>() else {
        return Ok(false);
    };
    for kind in [StrategyKind::Grid, StrategyKind::Producer] {
        if tx.get(VERSIONS, &key::of(&[&kind, &sha]))?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The objects of every stored version (what a backup must hold).
pub fn object_names(tx: &dyn ReadTx) -> anyhow::Result<Vec<String>> {
    tx.range(VERSIONS, &[], None, Order::Ascending, usize::MAX)?
        .iter()
        .map(|(_, v)| Ok(object_name(&postcard::from_bytes::<Version>(v)?.sha256)))
        .collect()
}

/// A stored component's bytes, checked against its hash.
pub fn component(
    db: &dyn Store,
    objects: &Objects,
    sha256: &Sha256,
) -> anyhow::Result<Option<Vec<u8>>> {
    let bytes = match objects.get(&object_name(sha256))? {
        Some(bytes) => bytes,
        None => match db.read()?.get(COMPONENTS, &key::of(&[&sha256]))? {
            Some(bytes) => bytes,
            None => return Ok(None),
        },
    };
    anyhow::ensure!(
        Sha256::of(&bytes) == *sha256,
        "object storage: component {sha256} is not what was stored"
    );
    Ok(Some(bytes))
}

/// Every version of `kind`, by hash.
pub fn list(db: &dyn Store, kind: StrategyKind) -> anyhow::Result<Vec<Version>> {
    storage::values(prefixed(
        &*db.read()?,
        VERSIONS,
        &key::of(&[&kind]),
        Order::Ascending,
        usize::MAX,
    )?)
}

/// The activations of `kind`, oldest first.
pub fn history(db: &dyn Store, kind: StrategyKind) -> anyhow::Result<Vec<Activation>> {
    storage::values(prefixed(
        &*db.read()?,
        ACTIVATIONS,
        &key::of(&[&kind]),
        Order::Ascending,
        usize::MAX,
    )?)
}

/// A version asked for by SHA-256 or by the name it was uploaded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found(Sha256),
    Unknown,
    /// The name was given to more than one upload.
    Ambiguous,
}

/// Finds `wanted` among `known`: a SHA-256 (any case) or an upload's name.
pub fn lookup(known: &[Version], wanted: &str) -> Lookup {
    if let Ok(sha) = wanted.parse::<Sha256>()
        && known.iter().any(|k| k.sha256 == sha)
    {
        return Lookup::Found(sha);
    }
    let mut named = known.iter().filter(|k| k.name.as_deref() == Some(wanted));
    match (named.next(), named.next()) {
        (Some(one), None) => Lookup::Found(one.sha256),
        (None, _) => Lookup::Unknown,
        (Some(_), Some(_)) => Lookup::Ambiguous,
    }
}

/// Why a version cannot be deleted.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("version: {0} is active; activate another first")]
    Active(Sha256),
    #[error("version: no such version")]
    Unknown,
    #[error("storage: {0:#}")]
    Storage(#[from] anyhow::Error),
}

/// Deletes an inactive version and its component.
pub fn remove(db: &dyn Store, kind: StrategyKind, sha256: &Sha256) -> Result<Version, RemoveError> {
    let tx = db.write()?;
    if storage::meta_in::<Sha256>(&*tx, &active_name(kind))?.as_ref() == Some(sha256) {
        return Err(RemoveError::Active(*sha256));
    }
    let k = key::of(&[&kind, &sha256]);
    let Some(bytes) = tx.get(VERSIONS, &k)? else {
        return Err(RemoveError::Unknown);
    };
    let version: Version = postcard::from_bytes(&bytes).map_err(anyhow::Error::from)?;
    tx.delete(VERSIONS, &k)?;
    tx.delete(COMPONENTS, &key::of(&[&sha256]))?;
    tx.delete(PROVENANCE, &key::of(&[&sha256]))?;
    crate::garbage::note(&*tx, crate::role::unix_ms(), &object_name(sha256))?;
    tx.commit()?;
    Ok(version)
}

/// Whether `tx` knows the version.
pub fn exists(tx: &dyn ReadTx, kind: StrategyKind, sha256: &Sha256) -> anyhow::Result<bool> {
    Ok(tx.get(VERSIONS, &key::of(&[&kind, &sha256]))?.is_some())
}

/// Records how a component came; a signature replaces what was known before
/// (an unsigned upload signed later becomes runnable where keys are trusted).
pub fn set_provenance(
    tx: &dyn WriteTx,
    sha256: &Sha256,
    provenance: &Provenance,
) -> anyhow::Result<()> {
    tx.put(
        PROVENANCE,
        &key::of(&[&sha256]),
        &postcard::to_allocvec(provenance)?,
    )
}

/// Whether a host that trusts `trusted` may run the stored version: any
/// version when it trusts no key, else the configured one or one signed by a
/// key it trusts now.
pub fn may_run(
    tx: &dyn ReadTx,
    trusted: &[ed25519_dalek::VerifyingKey],
    sha256: &Sha256,
) -> anyhow::Result<bool> {
    if trusted.is_empty() {
        return Ok(true);
    }
    let provenance = match tx.get(PROVENANCE, &key::of(&[&sha256]))? {
        Some(bytes) => postcard::from_bytes(&bytes)?,
        None => return Ok(false),
    };
    Ok(match provenance {
        Provenance::Configured => true,
        Provenance::Signed(signature) => verify(trusted, sha256, &signature),
    })
}

/// What a strategy signature signs: the component's SHA-256, in a domain of
/// its own so that no other Ed25519 signature of the key can pass for one.
fn signed_message(sha256: &Sha256) -> Vec<u8> {
    let mut message = b"powerplug/strategy-signature/v1".to_vec();
    message.extend_from_slice(sha256.hex().as_bytes());
    message
}

/// A detached signature (hex) over a component's hash.
pub fn sign(key: &ed25519_dalek::SigningKey, bytes: &[u8]) -> String {
    use ed25519_dalek::Signer;
    hex::encode(key.sign(&signed_message(&Sha256::of(bytes))).to_bytes())
}

/// Whether `signature` (hex) is one of `trusted`'s over the component's hash.
pub fn verify(trusted: &[ed25519_dalek::VerifyingKey], sha256: &Sha256, signature: &str) -> bool {
    let Some(bytes) = hex::decode(signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(&bytes);
    let message = signed_message(sha256);
    trusted
        .iter()
        .any(|key| key.verify_strict(&message, &signature).is_ok())
}

/// Public keys from their hex form, naming the entry that is not one.
pub fn trusted_keys(hex_keys: &[String]) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
    hex_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            hex::decode(k)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("trusted_keys[{i}]: not an Ed25519 public key in hex")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(bytes: &[u8], name: Option<&str>) -> Version {
        Version {
            sha256: Sha256::of(bytes),
            kind: StrategyKind::Grid,
            world: "grid-strategy".into(),
            size: bytes.len() as u64,
            added_ms: 0,
            name: name.map(str::to_owned),
            notes: None,
        }
    }

    #[test]
    fn a_version_is_found_by_its_sha256_or_by_a_name_only_one_upload_has() {
        let known = [
            version(b"a", Some("tariff")),
            version(b"b", Some("peak")),
            version(b"c", Some("peak")),
        ];
        let a = Sha256::of(b"a");
        assert_eq!(lookup(&known, &a.hex()), Lookup::Found(a));
        assert_eq!(lookup(&known, &a.hex().to_uppercase()), Lookup::Found(a));
        assert_eq!(lookup(&known, "tariff"), Lookup::Found(a));
        assert_eq!(lookup(&known, "peak"), Lookup::Ambiguous);
        assert_eq!(lookup(&known, "flat"), Lookup::Unknown);
        assert_eq!(lookup(&known, &Sha256::of(b"d").hex()), Lookup::Unknown);
    }
}
