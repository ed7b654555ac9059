//! `/storage` documents: an entity without a disk of its own (a meter, a small
//! producer) keeps its state in the host it registered with, as in the
//! original, under (its id, a context, a key). Only the owner reaches its
//! documents (the HTTP layer checks the credential); names are checked here so
//! no caller-chosen string becomes a path or escapes its owner's range.

use crate::storage::{Order, Store, key, prefixed, valid_name};

/// (owner, context, key) → the document.
const DOCUMENTS: &str = "documents";

/// Largest document, and most documents per owner.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
pub const MAX_DOCUMENTS: u64 = 10_000;
pub const MAX_PAGE: usize = 1_000;

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
        let held = prefixed(
            &*tx,
            DOCUMENTS,
            &key::of(&[&owner]),
            Order::Ascending,
            MAX_DOCUMENTS as usize,
        )?;
        if held.len() as u64 >= MAX_DOCUMENTS {
            return Err(DocumentError::Full);
        }
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
