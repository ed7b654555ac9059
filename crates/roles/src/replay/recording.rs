//! Where recorded ticks come from: a role's data directory (its tick log), or
//! a file exported from one (`GET /ticks/export`, `powerplug replay --export`).
//! The file is `PPTICKS2\n`, the consumers' ids (index → id, so a replay names
//! consumers that registered before the first recorded tick), then each
//! record; each part as a little-endian u32 length and the part in postcard.
//! `PPTICKS1\n` files (no ids) still read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;

use crate::tick_log::{self, GridTickRecord};
use powerplug_storage::{RedbStore, Store};

const MAGIC_V1: &[u8] = b"PPTICKS1\n";
const MAGIC: &[u8] = b"PPTICKS2\n";
/// Records read from the log per batch.
const BATCH: usize = 256;

/// Every recorded tick of `slot`, oldest first, from a data directory, a
/// `.redb` database or an exported file.
pub fn read(path: &Path, slot: &str) -> anyhow::Result<Vec<GridTickRecord>> {
    Ok(read_named(path, slot)?.0)
}

/// The recorded ticks and the id of every entity they mention (as far as
/// the source knows it).
pub fn read_named(path: &Path, slot: &str) -> anyhow::Result<(Vec<GridTickRecord>, Names)> {
    let db_file = if path.is_dir() {
        path.join("powerplug.redb")
    } else {
        path.to_owned()
    };
    let mut head = [0u8; 9];
    let magic = std::fs::File::open(&db_file)
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()
        .map(|()| head);
    if magic.is_some_and(|m| m == MAGIC || m == MAGIC_V1) {
        return read_export(&db_file);
    }
    let store = RedbStore::open(&db_file).with_context(|| {
        format!(
            "--input: {} is no data directory, database or export (a running role locks its database: export over HTTP instead)",
            path.display()
        )
    })?;
    let records = all_ticks(&store, slot)?;
    let names = names(&store, &records)?;
    Ok((records, names))
}

/// Entity index → id.
pub type Names = BTreeMap<u32, String>;

/// The ids of the entities `records` mention, from the registry of `db`
/// (it keeps an index's id after the entity left).
pub fn names(db: &dyn Store, records: &[GridTickRecord]) -> anyhow::Result<Names> {
    let mut indexes = BTreeSet::new();
    for r in records {
        indexes.extend(r.input.usage.consumer.iter().copied());
        indexes.extend(r.input.transfers.iter().filter_map(|t| t.entity));
        indexes.extend(r.input.joined.iter().map(|e| e.index));
    }
    let mut out = Names::new();
    for index in indexes {
        if let Some(id) = crate::registry::id_of(db, index)? {
            out.insert(index, id);
        }
    }
    Ok(out)
}

/// Every tick of `slot` in `db`.
pub fn all_ticks(db: &dyn Store, slot: &str) -> anyhow::Result<Vec<GridTickRecord>> {
    let mut out: Vec<GridTickRecord> = Vec::new();
    loop {
        let since = out.last().map_or(0, |r| r.tick);
        let batch = tick_log::grid_ticks(db, slot, since, BATCH)?;
        if batch.is_empty() {
            return Ok(out);
        }
        out.extend(batch);
    }
}

/// Writes `slot`'s ticks after `since` to `out` as an export; returns how many.
pub fn export(db: &dyn Store, slot: &str, out: &mut dyn Write) -> anyhow::Result<u64> {
    out.write_all(MAGIC)?;
    let records = all_ticks(db, slot)?;
    let names: Vec<(u32, String)> = names(db, &records)?.into_iter().collect();
    drop(records);
    let bytes = postcard::to_allocvec(&names)?;
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(&bytes)?;
    let mut since = 0;
    let mut count = 0;
    loop {
        let batch = tick_log::grid_ticks(db, slot, since, BATCH)?;
        let Some(last) = batch.last() else {
            return Ok(count);
        };
        since = last.tick;
        for record in &batch {
            let bytes = postcard::to_allocvec(record)?;
            out.write_all(&(bytes.len() as u32).to_le_bytes())?;
            out.write_all(&bytes)?;
            count += 1;
        }
    }
}

fn read_export(path: &Path) -> anyhow::Result<(Vec<GridTickRecord>, Names)> {
    let bytes = std::fs::read(path).with_context(|| format!("--input: {}", path.display()))?;
    let mut rest = bytes.get(MAGIC.len()..).unwrap_or_default();
    let mut names = Names::new();
    if bytes.starts_with(MAGIC) {
        let list: Vec<(u32, String)> = postcard::from_bytes(part(&mut rest)?)
            .context("--input: the consumers' ids are damaged")?;
        names.extend(list);
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let record = postcard::from_bytes(part(&mut rest)?)
            .with_context(|| format!("--input: record {} is damaged", out.len() + 1))?;
        out.push(record);
    }
    Ok((out, names))
}

/// The next length-prefixed part of an export.
fn part<'a>(rest: &mut &'a [u8]) -> anyhow::Result<&'a [u8]> {
    let (len, tail) = rest
        .split_first_chunk::<4>()
        .context("--input: the export ends inside a length")?;
    let len = u32::from_le_bytes(*len) as usize;
    anyhow::ensure!(
        tail.len() >= len,
        "--input: the export ends inside a record"
    );
    let (this, next) = tail.split_at(len);
    *rest = next;
    Ok(this)
}
