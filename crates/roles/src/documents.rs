//! `/storage` documents: an entity without a disk of its own (a meter, a small
//! producer) keeps its state in the host it registered with, as in the
//! original, under (its id, a context, a key). Only the owner reaches its
//! documents (the HTTP layer checks the credential); names are checked here so
//! no caller-chosen string becomes a path or escapes its owner's range.

use crate::limits::{MAX_DOCUMENT_BYTES, MAX_DOCUMENTS, MAX_PAGE};
use powerplug_storage::{Order, Store, key, prefixed, valid_name};

/// (owner, context, key) → the document.
const DOCUMENTS: &str = "documents";
/// owner → how many documents it keeps, so that a put checks the quota in
/// one read instead of reading every document of the owner.
const COUNTS: &str = "document_counts";

/// How many documents `owner` keeps. A database from before the counts has
/// none: counted once (a scan of at most the quota), then kept.
fn held(tx: &dyn powerplug_storage::ReadTx, owner: &str) -> Result<u64, DocumentError> {
    if let Some(bytes) = tx.get(COUNTS, &key::of(&[&owner]))? {
        return Ok(key::u64_value(&bytes)?);
    }
    let entries = prefixed(
        tx,
        DOCUMENTS,
        &key::of(&[&owner]),
        Order::Ascending,
        MAX_DOCUMENTS as usize,
    )?;
    Ok(entries.len() as u64)
}

fn set_held(tx: &dyn powerplug_storage::WriteTx, owner: &str, n: u64) -> Result<(), DocumentError> {
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
    owner: &str,
    context: &str,
    name: &str,
) -> Result<Option<Vec<u8>>, DocumentError> {
    check(context, Some(name))?;
    Ok(db
        .read()?
        .get(DOCUMENTS, &key::of(&[&owner, &context, &name]))?)
}

/// Stores a document; true if it is new.
pub fn put(
    db: &dyn Store,
    owner: &str,
    context: &str,
    name: &str,
    body: &[u8],
) -> Result<bool, DocumentError> {
    check(context, Some(name))?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge(body.len()));
    }
    let tx = db.write()?;
    let k = key::of(&[&owner, &context, &name]);
    let new = tx.get(DOCUMENTS, &k)?.is_none();
    if new {
        let n = held(&*tx, owner)?;
        if n >= MAX_DOCUMENTS {
            return Err(DocumentError::Full);
        }
        set_held(&*tx, owner, n + 1)?;
    }
    tx.put(DOCUMENTS, &k, body)?;
    tx.commit()?;
    Ok(new)
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
    let removed = match name {
        Some(name) => u64::from(tx.delete(DOCUMENTS, &key::of(&[&owner, &context, &name]))?),
        None => {
            let doomed = prefixed(
                &*tx,
                DOCUMENTS,
                &key::of(&[&owner, &context]),
                Order::Ascending,
                usize::MAX,
            )?;
            for (k, _) in &doomed {
                tx.delete(DOCUMENTS, k)?;
            }
            doomed.len() as u64
        }
    };
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
    let entries = db.read()?.range(
        DOCUMENTS,
        &start,
        end.as_deref(),
        Order::Ascending,
        limit + 1,
    )?;
    let more = entries.len() > limit;
    let mut items = Vec::with_capacity(limit);
    for (k, v) in entries.into_iter().take(limit) {
        let mut r = key::Reader::new(&k);
        r.str()?;
        r.str()?;
        items.push((r.str()?.to_owned(), v));
    }
    let next = if more {
        items.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_is_counted_across_puts_replacements_and_deletes() {
        let db = powerplug_storage::RedbStore::in_memory().unwrap();
        let count = |owner: &str| held(&*db.read().unwrap(), owner).unwrap();
        assert!(put(&db, "a", "c", "k1", b"1").unwrap());
        assert!(!put(&db, "a", "c", "k1", b"2").unwrap(), "a replacement");
        assert!(put(&db, "a", "c", "k2", b"1").unwrap());
        assert!(put(&db, "a", "d", "k1", b"1").unwrap());
        assert!(put(&db, "b", "c", "k1", b"1").unwrap());
        assert_eq!((count("a"), count("b")), (3, 1));
        assert_eq!(delete(&db, "a", "c", Some("k1")).unwrap(), 1);
        assert_eq!(delete(&db, "a", "c", Some("k1")).unwrap(), 0);
        assert_eq!(count("a"), 2);
        assert_eq!(delete(&db, "a", "d", None).unwrap(), 1);
        assert_eq!(count("a"), 1);

        // At the quota a new key is refused, a replacement is not.
        let tx = db.write().unwrap();
        set_held(&*tx, "b", MAX_DOCUMENTS).unwrap();
        tx.commit().unwrap();
        assert!(matches!(
            put(&db, "b", "c", "k2", b"1"),
            Err(DocumentError::Full)
        ));
        assert!(!put(&db, "b", "c", "k1", b"2").unwrap());
    }
}
