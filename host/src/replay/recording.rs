//! Where recorded ticks come from: a role's data directory (its tick log), or
//! a file exported from one (`GET /ticks/export`, `powerplug replay --export`).
//! The file is `PPTICKS1\n`, then each record as a little-endian u32 length and
//! the record in postcard.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;

use crate::storage::{RedbStore, Store};
use crate::tick_log::{self, GridTickRecord};

const MAGIC: &[u8] = b"PPTICKS1\n";
/// Records read from the log per batch.
const BATCH: usize = 256;

/// Every recorded tick of `slot`, oldest first, from a data directory, a
/// `.redb` database or an exported file.
pub fn read(path: &Path, slot: &str) -> anyhow::Result<Vec<GridTickRecord>> {
    let db_file = if path.is_dir() {
        path.join("powerplug.redb")
    } else {
        path.to_owned()
    };
    let mut head = [0u8; 9];
    let is_export = std::fs::File::open(&db_file)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == MAGIC;
    if is_export {
        return read_export(&db_file);
    }
    let store = RedbStore::open(&db_file).with_context(|| {
        format!(
            "--input: {} is no data directory, database or export (a running role locks its database: export over HTTP instead)",
            path.display()
        )
    })?;
    all_ticks(&store, slot)
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

fn read_export(path: &Path) -> anyhow::Result<Vec<GridTickRecord>> {
    let bytes = std::fs::read(path).with_context(|| format!("--input: {}", path.display()))?;
    let mut rest = bytes.get(MAGIC.len()..).unwrap_or_default();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .context("--input: the export ends inside a length")?;
        let len = u32::from_le_bytes(*len) as usize;
        anyhow::ensure!(
            tail.len() >= len,
            "--input: the export ends inside a record"
        );
        let record = postcard::from_bytes(&tail[..len])
            .with_context(|| format!("--input: record {} is damaged", out.len() + 1))?;
        out.push(record);
        rest = &tail[len..];
    }
    Ok(out)
}
