//! A strategy's cells in the store, in pages of [`PAGE`] entities: a row per
//! page, not per entity. A tick reads and writes the cells of every entity
//! it mentions, once per run; row by row that was one B-tree lookup and one
//! insert per consumer and run — most of what an experiment's extra runs
//! cost. A page is read and written whole (≤ 2.3 KiB, inside one redb page).

use std::cell::RefCell;
use std::collections::BTreeMap;

use powerplug_storage::{Order, ReadTx, Store, WriteTx, key};

/// (slot, entity / PAGE) → the page's cells, by entity: (u32, 4 × u64), big-endian.
const TABLE: &str = "strategy_cell_pages";
/// (slot, entity) → one cell: the layout before pages, moved by [`migrate`].
const ROWS: &str = "strategy_cells";
const PAGE: u32 = 64;
const ENTRY: usize = 4 + 32;

pub type Cell = [u64; 4];
type Page = Vec<(u32, Cell)>;

fn page_key(slot: &str, page: u32) -> Vec<u8> {
    key::of(&[&slot, &page])
}

fn decode(bytes: &[u8]) -> anyhow::Result<Page> {
    anyhow::ensure!(
        bytes.len().is_multiple_of(ENTRY),
        "cell page: {} bytes, not a multiple of {ENTRY}",
        bytes.len()
    );
    bytes
        .chunks_exact(ENTRY)
        .map(|e| {
            let entity = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let mut cell = [0; 4];
            for (word, chunk) in cell.iter_mut().zip(e[4..].chunks_exact(8)) {
                *word = key::u64_value(chunk)?;
            }
            Ok((entity, cell))
        })
        .collect()
}

fn encode(page: &Page) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.len() * ENTRY);
    for (entity, cell) in page {
        out.extend_from_slice(&entity.to_be_bytes());
        for word in cell {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }
    out
}

fn read_page(tx: &dyn ReadTx, slot: &str, page: u32) -> anyhow::Result<Page> {
    match tx.get(TABLE, &page_key(slot, page))? {
        Some(bytes) => decode(&bytes),
        None => Ok(Vec::new()),
    }
}

fn write_page(tx: &dyn WriteTx, slot: &str, page: u32, cells: &Page) -> anyhow::Result<()> {
    if cells.is_empty() {
        tx.remove(TABLE, &page_key(slot, page))
    } else {
        tx.put(TABLE, &page_key(slot, page), &encode(cells))
    }
}

/// Reads cells of one slot, keeping the last page read: a tick asks for its
/// entities in order, so each page is read once.
pub struct Reader<'a> {
    tx: &'a dyn ReadTx,
    slot: &'a str,
    last: RefCell<Option<(u32, Page)>>,
}

impl<'a> Reader<'a> {
    pub fn new(tx: &'a dyn ReadTx, slot: &'a str) -> Self {
        Self {
            tx,
            slot,
            last: RefCell::new(None),
        }
    }

    pub fn get(&self, entity: u32) -> anyhow::Result<Option<Cell>> {
        let page = entity / PAGE;
        let mut last = self.last.borrow_mut();
        if last.as_ref().is_none_or(|(p, _)| *p != page) {
            *last = Some((page, read_page(self.tx, self.slot, page)?));
        }
        let cells = last.as_ref().map_or(&[][..], |(_, c)| c.as_slice());
        Ok(cells
            .binary_search_by_key(&entity, |(e, _)| *e)
            .ok()
            .map(|i| cells[i].1))
    }

    /// Says which pages `entities` are on (for a store whose reads are round trips).
    pub fn prefetch(&self, entities: &[u32]) -> anyhow::Result<()> {
        let mut pages: Vec<u32> = entities.iter().map(|e| e / PAGE).collect();
        pages.dedup();
        let keys: Vec<Vec<u8>> = pages.iter().map(|&p| page_key(self.slot, p)).collect();
        self.tx.prefetch(TABLE, &keys)
    }
}

/// Sets the cells of `slot` in `cells` (others unchanged): each page they
/// fall on read, changed and written once.
pub fn put(
    tx: &dyn WriteTx,
    slot: &str,
    cells: impl IntoIterator<Item = (u32, Cell)>,
) -> anyhow::Result<()> {
    let mut by_page: BTreeMap<u32, BTreeMap<u32, Cell>> = BTreeMap::new();
    for (entity, cell) in cells {
        by_page
            .entry(entity / PAGE)
            .or_default()
            .insert(entity, cell);
    }
    let keys: Vec<Vec<u8>> = by_page.keys().map(|&p| page_key(slot, p)).collect();
    tx.prefetch(TABLE, &keys)?;
    for (page, changes) in by_page {
        let mut merged: BTreeMap<u32, Cell> = read_page(tx, slot, page)?.into_iter().collect();
        merged.extend(changes);
        write_page(tx, slot, page, &merged.into_iter().collect())?;
    }
    Ok(())
}

/// Removes `entity`'s cell from `slot`.
pub fn remove(tx: &dyn WriteTx, slot: &str, entity: u32) -> anyhow::Result<()> {
    let page = entity / PAGE;
    let mut cells = read_page(tx, slot, page)?;
    if let Ok(i) = cells.binary_search_by_key(&entity, |(e, _)| *e) {
        cells.remove(i);
        write_page(tx, slot, page, &cells)?;
    }
    Ok(())
}

/// Every cell of `slot`, by entity.
pub fn all(tx: &dyn ReadTx, slot: &str) -> anyhow::Result<Vec<(u32, Cell)>> {
    let mut out = Vec::new();
    for (_, bytes) in rows(tx, slot)? {
        out.extend(decode(&bytes)?);
    }
    Ok(out)
}

fn rows(tx: &dyn ReadTx, slot: &str) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    powerplug_storage::prefixed(tx, TABLE, &key::of(&[&slot]), Order::Ascending, usize::MAX)
}

/// Removes every cell of `slot`.
pub fn clear(tx: &dyn WriteTx, slot: &str) -> anyhow::Result<()> {
    for (k, _) in rows(tx, slot)? {
        tx.remove(TABLE, &k)?;
    }
    Ok(())
}

/// Makes `to`'s cells a copy of `from`'s; how many.
pub fn copy(tx: &dyn WriteTx, from: &str, to: &str) -> anyhow::Result<u64> {
    clear(tx, to)?;
    let mut copied = 0;
    for (k, bytes) in rows(tx, from)? {
        let mut r = key::Reader::new(&k);
        r.str()?;
        let page = r.u32()?;
        copied += (bytes.len() / ENTRY) as u64;
        tx.put(TABLE, &page_key(to, page), &bytes)?;
    }
    Ok(copied)
}

/// Moves the cells of a store written before pages into pages, once, in
/// batches of a transaction each (a crash between two leaves each cell in
/// exactly one of the layouts, and the next start goes on).
pub fn migrate(db: &dyn Store) -> anyhow::Result<u64> {
    const BATCH: usize = 50_000;
    let mut moved = 0;
    loop {
        let tx = db.write()?;
        let rows = tx.range(ROWS, &[], None, Order::Ascending, BATCH)?;
        if rows.is_empty() {
            return Ok(moved);
        }
        let mut by_slot: BTreeMap<String, Vec<(u32, Cell)>> = BTreeMap::new();
        for (k, v) in &rows {
            let mut r = key::Reader::new(k);
            let (slot, entity) = (r.str()?.to_owned(), r.u32()?);
            let old = decode_row(entity, v)?;
            by_slot.entry(slot).or_default().push((entity, old));
        }
        for (slot, cells) in by_slot {
            put(&*tx, &slot, cells)?;
        }
        for (k, _) in &rows {
            tx.remove(ROWS, k)?;
        }
        moved += rows.len() as u64;
        tx.commit()?;
    }
}

fn decode_row(entity: u32, bytes: &[u8]) -> anyhow::Result<Cell> {
    anyhow::ensure!(bytes.len() == 32, "cell {entity}: {} bytes", bytes.len());
    let mut words = [0; 4];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = key::u64_value(chunk)?;
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_storage::RedbStore;

    fn cell(n: u64) -> Cell {
        [n, n + 1, u64::MAX - n, 0]
    }

    #[test]
    fn cells_on_pages_read_back_as_written_and_slots_stay_apart() {
        let db = RedbStore::in_memory().unwrap();
        let tx = db.write().unwrap();
        // Across page edges, out of order, and one entity written twice.
        put(&*tx, "grid", [(130, cell(1)), (63, cell(2)), (64, cell(3))]).unwrap();
        put(&*tx, "grid", [(63, cell(9)), (u32::MAX, cell(4))]).unwrap();
        put(&*tx, "grid-v1", [(64, cell(5))]).unwrap();
        let reader = Reader::new(&*tx, "grid");
        assert_eq!(reader.get(63).unwrap(), Some(cell(9)));
        assert_eq!(reader.get(64).unwrap(), Some(cell(3)));
        assert_eq!(reader.get(65).unwrap(), None);
        assert_eq!(reader.get(130).unwrap(), Some(cell(1)));
        assert_eq!(reader.get(u32::MAX).unwrap(), Some(cell(4)));
        let grid: Vec<u32> = all(&*tx, "grid").unwrap().iter().map(|c| c.0).collect();
        assert_eq!(grid, [63, 64, 130, u32::MAX]);
        assert_eq!(all(&*tx, "grid-v1").unwrap(), [(64, cell(5))]);

        remove(&*tx, "grid", 64).unwrap();
        remove(&*tx, "grid", 66).unwrap();
        assert_eq!(Reader::new(&*tx, "grid").get(64).unwrap(), None);
        assert_eq!(copy(&*tx, "grid", "archive").unwrap(), 3);
        assert_eq!(all(&*tx, "archive").unwrap(), all(&*tx, "grid").unwrap());
        clear(&*tx, "grid").unwrap();
        assert!(all(&*tx, "grid").unwrap().is_empty());
        assert_eq!(all(&*tx, "archive").unwrap().len(), 3);
        assert_eq!(all(&*tx, "grid-v1").unwrap(), [(64, cell(5))]);
    }

    #[test]
    fn cells_kept_a_row_each_move_onto_pages_once() {
        let db = RedbStore::in_memory().unwrap();
        let tx = db.write().unwrap();
        for (slot, entity) in [("grid", 1u32), ("grid", 70), ("producer", 1)] {
            let mut bytes = Vec::new();
            for w in cell(u64::from(entity)) {
                bytes.extend_from_slice(&w.to_be_bytes());
            }
            tx.put(ROWS, &key::of(&[&slot, &entity]), &bytes).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(migrate(&db).unwrap(), 3);
        assert_eq!(migrate(&db).unwrap(), 0);
        let tx = db.read().unwrap();
        assert_eq!(all(&*tx, "grid").unwrap(), [(1, cell(1)), (70, cell(70))]);
        assert_eq!(all(&*tx, "producer").unwrap(), [(1, cell(1))]);
        assert!(
            tx.range(ROWS, &[], None, Order::Ascending, 1)
                .unwrap()
                .is_empty()
        );
    }
}
