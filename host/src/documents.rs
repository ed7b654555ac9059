//! `/storage` documents: an entity without a disk of its own (a meter, a small
//! producer) keeps its state in the host it registered with, as in the
//! original, under (its id, a context, a key). Only the owner reaches its
//! documents (the HTTP layer checks the credential); names are checked here so
//! no caller-chosen string becomes a path or escapes its owner's range.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::storage::{existing, valid_name};

const DOCUMENTS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("documents");

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

impl From<redb::Error> for DocumentError {
    fn from(e: redb::Error) -> Self {
        DocumentError::Storage(e.into())
    }
}

macro_rules! storage_errors {
    ($($e:ty),*) => {$(
        impl From<$e> for DocumentError {
            fn from(e: $e) -> Self {
                DocumentError::Storage(e.into())
            }
        }
    )*};
}
storage_errors!(redb::TableError, redb::StorageError, redb::TransactionError, redb::CommitError);

fn check(context: &str, key: Option<&str>) -> Result<(), DocumentError> {
    if !valid_name(context) {
        return Err(DocumentError::BadName("context"));
    }
    match key {
        Some(key) if !valid_name(key) => Err(DocumentError::BadName("key")),
        _ => Ok(()),
    }
}

pub fn get(db: &Database, owner: &str, context: &str, key: &str) -> Result<Option<Vec<u8>>, DocumentError> {
    check(context, Some(key))?;
    let tx = db.begin_read()?;
    let Some(table) = existing(&tx, DOCUMENTS)? else {
        return Ok(None);
    };
    Ok(table.get((owner, context, key))?.map(|v| v.value().to_vec()))
}

/// Stores a document; true if it is new.
pub fn put(db: &Database, owner: &str, context: &str, key: &str, body: &[u8]) -> Result<bool, DocumentError> {
    check(context, Some(key))?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge(body.len()));
    }
    let tx = db.begin_write()?;
    let new = {
        let mut table = tx.open_table(DOCUMENTS)?;
        let new = table.get((owner, context, key))?.is_none();
        if new {
            let held = table.range((owner, "", "")..(owner, "\u{7f}", ""))?.count() as u64;
            if held >= MAX_DOCUMENTS {
                return Err(DocumentError::Full);
            }
        }
        table.insert((owner, context, key), body)?;
        new
    };
    tx.commit()?;
    Ok(new)
}

/// Deletes one document (`Some(key)`) or a whole context; how many went.
pub fn delete(db: &Database, owner: &str, context: &str, key: Option<&str>) -> Result<u64, DocumentError> {
    check(context, key)?;
    let tx = db.begin_write()?;
    let removed = {
        let mut table = tx.open_table(DOCUMENTS)?;
        match key {
            Some(key) => u64::from(table.remove((owner, context, key))?.is_some()),
            None => {
                let keys: Vec<String> = table
                    .range((owner, context, "")..=(owner, context, "\u{7f}"))?
                    .map(|e| e.map(|(k, _)| k.value().2.to_owned()))
                    .collect::<Result<_, _>>()?;
                for key in &keys {
                    table.remove((owner, context, key.as_str()))?;
                }
                keys.len() as u64
            }
        }
    };
    tx.commit()?;
    Ok(removed)
}

/// A page of a context: up to `limit` (key, document) after key `after`, and
/// the key to continue after if there may be more.
pub type Page = (Vec<(String, Vec<u8>)>, Option<String>);

pub fn list(
    db: &Database,
    owner: &str,
    context: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page, DocumentError> {
    check(context, after)?;
    let limit = limit.clamp(1, MAX_PAGE);
    let tx = db.begin_read()?;
    let Some(table) = existing(&tx, DOCUMENTS)? else {
        return Ok((Vec::new(), None));
    };
    let mut items = Vec::new();
    let range = table.range((owner, context, after.unwrap_or(""))..=(owner, context, "\u{7f}"))?;
    for entry in range {
        let (k, v) = entry?;
        let key = k.value().2.to_owned();
        if Some(key.as_str()) == after {
            continue;
        }
        if items.len() == limit {
            let next = items.last().map(|(k, _): &(String, Vec<u8>)| k.clone());
            return Ok((items, next));
        }
        items.push((key, v.value().to_vec()));
    }
    Ok((items, None))
}
