//! `/storage` documents: an entity without a disk of its own (a meter, a small
//! producer) keeps its state in the host it registered with, as in the
//! original, under (its id, a context, a key). Only the owner reaches its
//! documents (the HTTP layer checks the credential); names are checked here so
//! no caller-chosen string becomes a path or escapes its owner's range.
//!
//! The store keeps the index, (owner, context, key) → the body, and the
//! quotas. A body up to [`INLINE_MAX`] is kept in the index itself: a
//! meter's state, rewritten at every reading, costs no object and leaves no
//! garbage. A larger one is an object (see [`Objects`]) under a fresh name:
//! a put writes the object, then commits the index; the object it replaces,
//! like a deleted one, is noted as [`garbage`] in the same transaction. A put
//! that crashes between object and index leaves an object already noted as
//! garbage. An owner with [`garbage::MAX_WAITING`] bodies waiting to go puts
//! no large body until they went: rewriting a body cannot fill the disk.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::garbage;
use crate::limits::{MAX_DOCUMENT_BYTES, MAX_DOCUMENTS, MAX_PAGE};
use powerplug_storage::{Objects, Order, ReadTx, Store, WriteTx, key, prefixed, valid_name};

/// (owner, context, key) → [`Entry`].
const INDEX: &str = "document_index";
/// (owner, context, key) → the body: where documents were kept before
/// objects; [`migrate`] moves them.
const LEGACY: &str = "documents";
/// owner → how many documents it keeps, so that a put checks the quota in
/// one read instead of reading every document of the owner.
const COUNTS: &str = "document_counts";

/// The largest body kept in the index rather than as an object.
pub const INLINE_MAX: usize = 4 * 1024;

/// A document's body, or where it is and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Entry {
    Inline(Vec<u8>),
    Object { object: String, sha256: [u8; 32] },
}

impl Entry {
    fn read(bytes: &[u8]) -> anyhow::Result<Self> {
        Ok(postcard::from_bytes(bytes)?)
    }

    fn object(&self) -> Option<&str> {
        match self {
            Self::Inline(_) => None,
            Self::Object { object, .. } => Some(object),
        }
    }

    /// The body, checked against the index: storage that hands back other
    /// bytes (a shared bucket someone wrote to) is an error, not a document.
    /// `fetched`: the object's bytes, if it is one.
    fn body(self, fetched: Option<Vec<u8>>) -> Result<Vec<u8>, DocumentError> {
        let (object, sha256) = match self {
            Self::Inline(body) => return Ok(body),
            Self::Object { object, sha256 } => (object, sha256),
        };
        let body = fetched.ok_or_else(|| {
            anyhow::anyhow!("object storage: document object `{object}` is missing")
        })?;
        if <[u8; 32]>::from(Sha256::digest(&body)) != sha256 {
            return Err(anyhow::anyhow!(
                "object storage: document object `{object}` is not what was stored"
            )
            .into());
        }
        Ok(body)
    }
}

/// A fresh object name, `documents/ab/ab…` (a directory of files stays small).
fn fresh_object() -> anyhow::Result<String> {
    let name = hex::encode(&powerplug_storage::private::random32()?[..16]);
    Ok(format!("documents/{}/{name}", &name[..2]))
}

/// How many documents `owner` keeps. A database from before the counts has
/// none: counted once (a scan of at most the quota), then kept.
fn held(tx: &dyn ReadTx, owner: &str) -> Result<u64, DocumentError> {
    if let Some(bytes) = tx.get(COUNTS, &key::of(&[&owner]))? {
        return Ok(key::u64_value(&bytes)?);
    }
    let entries = prefixed(
        tx,
        INDEX,
        &key::of(&[&owner]),
        Order::Ascending,
        MAX_DOCUMENTS as usize,
    )?;
    Ok(entries.len() as u64)
}

fn set_held(tx: &dyn WriteTx, owner: &str, n: u64) -> Result<(), DocumentError> {
    tx.put(COUNTS, &key::of(&[&owner]), &n.to_be_bytes())?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{0}: 1 to 64 of A-Z a-z 0-9 _ - . , not starting with a dot")]
    BadName(&'static str),
    #[error("body: {0} bytes, at most {MAX_DOCUMENT_BYTES}")]
    TooLarge(usize),
    #[error("key: the owner already keeps {MAX_DOCUMENTS} documents")]
    Full,
    #[error(
        "body: the owner replaced or deleted {} large documents in the last day, which are kept until then; bodies up to {INLINE_MAX} bytes are still taken",
        garbage::MAX_WAITING
    )]
    Waiting,
    #[error("storage: {0:#}")]
    Storage(#[from] anyhow::Error),
}

fn check(context: &str, key: Option<&str>) -> Result<(), DocumentError> {
    if !valid_name(context) {
        return Err(DocumentError::BadName("context"));
    }
    match key {
        Some(key) if !valid_name(key) => Err(DocumentError::BadName("key")),
        _ => Ok(()),
    }
}

pub fn get(
    db: &dyn Store,
    objects: &Objects,
    owner: &str,
    context: &str,
    name: &str,
) -> Result<Option<Vec<u8>>, DocumentError> {
    check(context, Some(name))?;
    let Some(entry) = db
        .read()?
        .get(INDEX, &key::of(&[&owner, &context, &name]))?
    else {
        return Ok(None);
    };
    let entry = Entry::read(&entry)?;
    let fetched = match entry.object() {
        Some(object) => objects.get(object)?,
        None => None,
    };
    Ok(Some(entry.body(fetched)?))
}

/// Stores a document; true if it is new.
pub fn put(
    db: &dyn Store,
    objects: &Objects,
    owner: &str,
    context: &str,
    name: &str,
    body: &[u8],
) -> Result<bool, DocumentError> {
    check(context, Some(name))?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge(body.len()));
    }
    let k = key::of(&[&owner, &context, &name]);
    let now = crate::role::unix_ms();
    if body.len() <= INLINE_MAX {
        return index(db, owner, &k, Entry::Inline(body.to_vec()), now);
    }
    // A full owner is refused before it costs an object.
    let tx = db.read()?;
    if tx.get(INDEX, &k)?.is_none() && held(&*tx, owner)? >= MAX_DOCUMENTS {
        return Err(DocumentError::Full);
    }
    if garbage::waiting(&*tx, owner)? >= garbage::MAX_WAITING {
        return Err(DocumentError::Waiting);
    }
    drop(tx);
    let object = fresh_object()?;
    let tx = db.write()?;
    garbage::note_owned(&*tx, now, &object, owner)?;
    tx.commit()?;
    objects.put(&object, body)?;
    let sha256 = Sha256::digest(body).into();
    index(db, owner, &k, Entry::Object { object, sha256 }, now)
}

/// Commits `entry` under `k`, with the quota; the object it replaces is
/// noted as garbage, its own (written first) is not any more. True if new.
fn index(
    db: &dyn Store,
    owner: &str,
    k: &[u8],
    entry: Entry,
    now: u64,
) -> Result<bool, DocumentError> {
    let tx = db.write()?;
    let old = tx.get(INDEX, k)?.map(|b| Entry::read(&b)).transpose()?;
    if old.is_none() {
        let n = held(&*tx, owner)?;
        if n >= MAX_DOCUMENTS {
            // Filled meanwhile: an object stays noted as garbage.
            return Err(DocumentError::Full);
        }
        set_held(&*tx, owner, n + 1)?;
    }
    if let Some(object) = entry.object() {
        garbage::unnote(&*tx, now, object)?;
    }
    if let Some(object) = old.as_ref().and_then(Entry::object) {
        garbage::note_owned(&*tx, now, object, owner)?;
    }
    let bytes = postcard::to_allocvec(&entry).map_err(anyhow::Error::from)?;
    tx.put(INDEX, k, &bytes)?;
    tx.commit()?;
    Ok(old.is_none())
}

/// Deletes one document (`Some(name)`) or a whole context; how many went.
pub fn delete(
    db: &dyn Store,
    owner: &str,
    context: &str,
    name: Option<&str>,
) -> Result<u64, DocumentError> {
    check(context, name)?;
    let tx = db.write()?;
    let before = held(&*tx, owner)?;
    let doomed = match name {
        Some(name) => {
            let k = key::of(&[&owner, &context, &name]);
            tx.get(INDEX, &k)?.map(|v| (k, v)).into_iter().collect()
        }
        None => prefixed(
            &*tx,
            INDEX,
            &key::of(&[&owner, &context]),
            Order::Ascending,
            usize::MAX,
        )?,
    };
    let now = crate::role::unix_ms();
    for (k, v) in &doomed {
        tx.delete(INDEX, k)?;
        if let Some(object) = Entry::read(v)?.object() {
            garbage::note_owned(&*tx, now, object, owner)?;
        }
    }
    let removed = doomed.len() as u64;
    if removed > 0 {
        set_held(&*tx, owner, before.saturating_sub(removed))?;
    }
    tx.commit()?;
    Ok(removed)
}

/// A page of a context: up to `limit` (key, document) after key `after`, and
/// the key to continue after if there may be more.
pub type Page = (Vec<(String, Vec<u8>)>, Option<String>);

pub fn list(
    db: &dyn Store,
    objects: &Objects,
    owner: &str,
    context: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page, DocumentError> {
    check(context, after)?;
    let limit = limit.clamp(1, MAX_PAGE);
    let prefix = key::of(&[&owner, &context]);
    // Keys sort after their prefix; `after` itself is skipped by starting past it.
    let start = match after {
        Some(after) => {
            let mut k = key::of(&[&owner, &context, &after]);
            k.push(0);
            k
        }
        None => prefix.clone(),
    };
    let end = key::after_prefix(&prefix);
    let entries = db
        .read()?
        .range(INDEX, &start, end.as_deref(), Order::Ascending, limit + 1)?;
    let more = entries.len() > limit;
    let mut keys = Vec::with_capacity(limit);
    let mut index = Vec::with_capacity(limit);
    for (k, v) in entries.into_iter().take(limit) {
        let mut r = key::Reader::new(&k);
        r.str()?;
        r.str()?;
        keys.push(r.str()?.to_owned());
        index.push(Entry::read(&v)?);
    }
    let names: Vec<&str> = index.iter().filter_map(Entry::object).collect();
    let mut fetched = objects.get_many(&names)?.into_iter();
    let mut items = Vec::with_capacity(keys.len());
    for (k, entry) in keys.into_iter().zip(index) {
        let body = match entry.object() {
            Some(_) => fetched.next().flatten(),
            None => None,
        };
        items.push((k, entry.body(body)?));
    }
    let next = if more {
        items.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Ok((items, next))
}

/// The objects the index names (what a backup must hold).
pub fn object_names(tx: &dyn ReadTx) -> anyhow::Result<Vec<String>> {
    tx.range(INDEX, &[], None, Order::Ascending, usize::MAX)?
        .iter()
        .filter_map(|(_, v)| match Entry::read(v) {
            Ok(entry) => entry.object().map(|o| Ok(o.to_owned())),
            Err(e) => Some(Err(e)),
        })
        .collect()
}

const MIGRATE_BATCH: usize = 1_000;

/// Moves documents kept in the store before objects into objects, a batch
/// at a time (a host opening an older database calls it once).
pub fn migrate(db: &dyn Store, objects: &Objects) -> anyhow::Result<u64> {
    let mut moved = 0;
    loop {
        let batch = db
            .read()?
            .range(LEGACY, &[], None, Order::Ascending, MIGRATE_BATCH)?;
        if batch.is_empty() {
            return Ok(moved);
        }
        let now = crate::role::unix_ms();
        let mut entries = Vec::with_capacity(batch.len());
        for (_, body) in &batch {
            entries.push(if body.len() <= INLINE_MAX {
                Entry::Inline(body.clone())
            } else {
                let object = fresh_object()?;
                let sha256 = Sha256::digest(body).into();
                Entry::Object { object, sha256 }
            });
        }
        let tx = db.write()?;
        for object in entries.iter().filter_map(Entry::object) {
            garbage::note(&*tx, now, object)?;
        }
        tx.commit()?;
        for ((_, body), entry) in batch.iter().zip(&entries) {
            if let Some(object) = entry.object() {
                objects.put(object, body)?;
            }
        }
        let tx = db.write()?;
        for ((k, _), entry) in batch.iter().zip(&entries) {
            // Another host that shares the store may have moved it first.
            if tx.get(INDEX, k)?.is_none() {
                tx.put(INDEX, k, &postcard::to_allocvec(entry)?)?;
                if let Some(object) = entry.object() {
                    garbage::unnote(&*tx, now, object)?;
                }
            }
            tx.delete(LEGACY, k)?;
        }
        tx.commit()?;
        moved += batch.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_storage::{Db, RedbStore};
    use std::sync::Arc;

    fn store() -> (Db, Objects) {
        let db: Db = Arc::new(RedbStore::in_memory().unwrap());
        let objects = Objects::in_store(&db);
        (db, objects)
    }

    /// The index entry of ("a", "c", "k").
    fn indexed(db: &Db) -> Entry {
        let tx = db.read().unwrap();
        let bytes = tx.get(INDEX, &key::of(&[&"a", &"c", &"k"])).unwrap();
        Entry::read(&bytes.unwrap()).unwrap()
    }

    /// The object of ("a", "c", "k").
    fn object(db: &Db) -> String {
        indexed(db).object().expect("an object").to_owned()
    }

    /// A body too large to keep inline.
    fn big(fill: u8) -> Vec<u8> {
        vec![fill; INLINE_MAX + 1]
    }

    fn noted(db: &Db) -> usize {
        garbage::noted(&*db.read().unwrap()).unwrap()
    }

    #[test]
    fn the_quota_is_counted_across_puts_replacements_and_deletes() {
        let (db, o) = store();
        let count = |owner: &str| held(&*db.read().unwrap(), owner).unwrap();
        assert!(put(&*db, &o, "a", "c", "k1", b"1").unwrap());
        assert!(
            !put(&*db, &o, "a", "c", "k1", b"2").unwrap(),
            "a replacement"
        );
        assert!(put(&*db, &o, "a", "c", "k2", b"1").unwrap());
        assert!(put(&*db, &o, "a", "d", "k1", b"1").unwrap());
        assert!(put(&*db, &o, "b", "c", "k1", b"1").unwrap());
        assert_eq!((count("a"), count("b")), (3, 1));
        assert_eq!(delete(&*db, "a", "c", Some("k1")).unwrap(), 1);
        assert_eq!(delete(&*db, "a", "c", Some("k1")).unwrap(), 0);
        assert_eq!(count("a"), 2);
        assert_eq!(delete(&*db, "a", "d", None).unwrap(), 1);
        assert_eq!(count("a"), 1);

        // At the quota a new key is refused, a replacement is not.
        let tx = db.write().unwrap();
        set_held(&*tx, "b", MAX_DOCUMENTS).unwrap();
        tx.commit().unwrap();
        assert!(matches!(
            put(&*db, &o, "b", "c", "k2", b"1"),
            Err(DocumentError::Full)
        ));
        assert!(!put(&*db, &o, "b", "c", "k1", b"2").unwrap());
    }

    #[test]
    fn small_bodies_stay_in_the_index_and_leave_no_garbage() {
        let (db, o) = store();
        for i in 0..10u8 {
            put(&*db, &o, "a", "c", "k", &vec![i; INLINE_MAX]).unwrap();
        }
        assert_eq!(indexed(&db), Entry::Inline(vec![9; INLINE_MAX]));
        assert_eq!(noted(&db), 0);
        // Growing into an object and shrinking back: the object is garbage.
        put(&*db, &o, "a", "c", "k", &big(1)).unwrap();
        let grown = object(&db);
        put(&*db, &o, "a", "c", "k", b"small").unwrap();
        assert_eq!(get(&*db, &o, "a", "c", "k").unwrap().unwrap(), b"small");
        assert_eq!(noted(&db), 1);
        let later = crate::role::unix_ms() + garbage::GRACE_MS + 1;
        assert_eq!(garbage::sweep(&*db, &o, later).unwrap(), 1);
        assert!(o.get(&grown).unwrap().is_none());
    }

    #[test]
    fn replaced_and_deleted_bodies_go_a_grace_period_later() {
        let (db, o) = store();
        put(&*db, &o, "a", "c", "k", &big(1)).unwrap();
        let first = object(&db);
        put(&*db, &o, "a", "c", "k", &big(2)).unwrap();
        assert_eq!(
            noted(&db),
            1,
            "the replaced body is noted, the new one is not"
        );
        let now = crate::role::unix_ms();
        assert_eq!(
            garbage::sweep(&*db, &o, now).unwrap(),
            0,
            "within the grace period"
        );
        assert!(
            o.get(&first).unwrap().is_some(),
            "a backup may still name it"
        );
        assert_eq!(
            garbage::sweep(&*db, &o, now + garbage::GRACE_MS + 1).unwrap(),
            1
        );
        assert!(o.get(&first).unwrap().is_none());
        assert_eq!(get(&*db, &o, "a", "c", "k").unwrap().unwrap(), big(2));

        delete(&*db, "a", "c", None).unwrap();
        assert_eq!(get(&*db, &o, "a", "c", "k").unwrap(), None);
        let later = crate::role::unix_ms() + garbage::GRACE_MS + 1;
        assert_eq!(garbage::sweep(&*db, &o, later).unwrap(), 1);
        assert_eq!(noted(&db), 0);
    }

    #[test]
    fn an_owner_with_too_many_bodies_waiting_puts_no_large_one() {
        let (db, o) = store();
        let waiting = |owner: &str| garbage::waiting(&*db.read().unwrap(), owner).unwrap();
        let now = crate::role::unix_ms();
        // All but one of the owner's allowance already waits.
        let tx = db.write().unwrap();
        for n in 1..garbage::MAX_WAITING {
            garbage::note_owned(&*tx, now, &format!("documents/00/{n}"), "a").unwrap();
        }
        tx.commit().unwrap();
        put(&*db, &o, "a", "c", "k", &big(1)).unwrap();
        assert_eq!(
            waiting("a"),
            garbage::MAX_WAITING - 1,
            "a new body waits for nothing"
        );
        put(&*db, &o, "a", "c", "k", &big(2)).unwrap();
        assert_eq!(waiting("a"), garbage::MAX_WAITING);
        assert!(matches!(
            put(&*db, &o, "a", "c", "k", &big(3)),
            Err(DocumentError::Waiting)
        ));
        assert_eq!(get(&*db, &o, "a", "c", "k").unwrap().unwrap(), big(2));
        // Small bodies, and other owners, are not held up.
        put(&*db, &o, "a", "c", "small", b"1").unwrap();
        put(&*db, &o, "b", "c", "k", &big(1)).unwrap();
        // Once they went, the owner puts large bodies again.
        let later = crate::role::unix_ms() + garbage::GRACE_MS + 1;
        garbage::sweep(&*db, &o, later).unwrap();
        assert_eq!(waiting("a"), 0);
        put(&*db, &o, "a", "c", "k", &big(3)).unwrap();
        assert_eq!(waiting("a"), 1);
    }

    #[test]
    fn a_body_that_is_not_what_was_stored_is_an_error() {
        let (db, o) = store();
        put(&*db, &o, "a", "c", "k", &big(1)).unwrap();
        o.put(&object(&db), &big(2)).unwrap();
        assert!(matches!(
            get(&*db, &o, "a", "c", "k"),
            Err(DocumentError::Storage(_))
        ));
        assert!(matches!(
            list(&*db, &o, "a", "c", None, 10),
            Err(DocumentError::Storage(_))
        ));
    }

    #[test]
    fn documents_kept_in_the_store_before_objects_are_moved_once() {
        let (db, o) = store();
        let tx = db.write().unwrap();
        for i in 0..2_500u32 {
            let k = key::of(&[&"a", &"c", &format!("k{i:05}")]);
            tx.put(LEGACY, &k, &i.to_be_bytes()).unwrap();
        }
        tx.put(LEGACY, &key::of(&[&"a", &"c", &"k"]), &big(7))
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(migrate(&*db, &o).unwrap(), 2_501);
        assert_eq!(migrate(&*db, &o).unwrap(), 0);
        assert_eq!(noted(&db), 0);
        assert_eq!(held(&*db.read().unwrap(), "a").unwrap(), 2_501);
        assert_eq!(o.get(&object(&db)).unwrap(), Some(big(7)));
        let (page, next) = list(&*db, &o, "a", "c", Some("k01998"), 2).unwrap();
        assert_eq!(
            page,
            vec![
                ("k01999".into(), 1_999u32.to_be_bytes().to_vec()),
                ("k02000".into(), 2_000u32.to_be_bytes().to_vec())
            ]
        );
        assert_eq!(next.as_deref(), Some("k02000"));
    }
}
