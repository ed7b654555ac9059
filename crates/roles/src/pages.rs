//! Per-entity rows kept in pages of [`PAGE`] entities: a store row per page,
//! not per entity. A tick reads and writes the rows of every entity it
//! mentions — a strategy's cells once per run, each consumer's billing and
//! energy, an experiment's results — and one by one that was a B-tree lookup
//! and an insert each, most of a tick's store work after sealing. A page is
//! read, changed and written whole (64 small rows: a few KiB at most).
//!
//! Key: the owner's key parts (a slot, an experiment; none for the grid's
//! own tables), then the page number. Value: postcard of the page's
//! (entity, value) pairs, by entity.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use powerplug_storage::{Order, ReadTx, Store, WriteTx, key};

pub const PAGE: u32 = 64;

/// Pages a bulk update holds decoded at once (~5 MiB of return channels).
const SPAN: usize = 1_024;

type Page<V> = BTreeMap<u32, V>;

/// The pages of one owner in one table.
#[derive(Debug, Clone)]
pub struct Pages<'a> {
    table: &'a str,
    /// The owner's key parts, encoded (empty: the table is one owner's).
    prefix: Vec<u8>,
    /// Whether bulk updates decode and encode pages on every core.
    every_core: bool,
}

impl<'a> Pages<'a> {
    pub fn new(table: &'a str, owner: &[&dyn key::Part]) -> Self {
        Self {
            table,
            prefix: key::of(owner),
            every_core: false,
        }
    }

    /// Bulk updates decode and encode pages on every core: for pages a
    /// tick updates before it seals (the return channels; a quarter of a
    /// million billed of a million touches every page). Not for those it
    /// writes while sealing, when the cores are taken.
    pub fn on_every_core(self) -> Self {
        Self {
            every_core: true,
            ..self
        }
    }

    fn key(&self, page: u32) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(&key::of(&[&page]));
        k
    }

    /// The values on page `page` (entities `page * PAGE ..`), by entity.
    pub fn read<V: DeserializeOwned>(&self, tx: &dyn ReadTx, page: u32) -> anyhow::Result<Page<V>> {
        match tx.get(self.table, &self.key(page))? {
            Some(bytes) => decode(self.table, &bytes),
            None => Ok(Page::new()),
        }
    }

    /// Makes page `page` hold exactly `rows`.
    pub fn write<V: Serialize>(
        &self,
        tx: &dyn WriteTx,
        page: u32,
        rows: &Page<V>,
    ) -> anyhow::Result<()> {
        self.store(tx, page, encode(rows)?)
    }

    /// Puts an [`encode`]d page (`None`: no row).
    fn store(&self, tx: &dyn WriteTx, page: u32, bytes: Option<Vec<u8>>) -> anyhow::Result<()> {
        match bytes {
            Some(bytes) => tx.put(self.table, &self.key(page), &bytes),
            None => tx.remove(self.table, &self.key(page)),
        }
    }

    /// `entity`'s value, if it has one.
    pub fn get<V: DeserializeOwned>(
        &self,
        tx: &dyn ReadTx,
        entity: u32,
    ) -> anyhow::Result<Option<V>> {
        Ok(self.read(tx, entity / PAGE)?.remove(&entity))
    }

    /// Lets `change` change the value of each of `entities` (the default if
    /// it has none), reading and writing each page they fall on once. An
    /// error leaves the transaction half changed: the caller drops it.
    pub fn update<V: Serialize + DeserializeOwned + Default + Send + Sync>(
        &self,
        tx: &dyn WriteTx,
        entities: impl IntoIterator<Item = u32>,
        mut change: impl FnMut(u32, &mut V) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.update_some(tx, entities, |entity, value: &mut Option<V>| {
            change(entity, value.get_or_insert_with(V::default))
        })
    }

    /// [`Self::update`] with `None` for an entity without a value; a value
    /// left `None` is removed. `SPAN` (1,024) pages at a time: read, decoded,
    /// changed, encoded and written (on every core if
    /// [`Self::on_every_core`]).
    pub fn update_some<V: Serialize + DeserializeOwned + Send + Sync>(
        &self,
        tx: &dyn WriteTx,
        entities: impl IntoIterator<Item = u32>,
        mut change: impl FnMut(u32, &mut Option<V>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        use rayon::prelude::*;
        let mut by_page: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for entity in entities {
            by_page.entry(entity / PAGE).or_default().push(entity);
        }
        let keys: Vec<Vec<u8>> = by_page.keys().map(|&p| self.key(p)).collect();
        tx.prefetch(self.table, &keys)?;
        let mut by_page: Vec<(u32, Vec<u32>)> = by_page.into_iter().collect();
        for (_, entities) in &mut by_page {
            entities.sort_unstable();
            entities.dedup();
        }
        for span in by_page.chunks(SPAN) {
            let stored = (span.iter())
                .map(|(page, _)| tx.get(self.table, &self.key(*page)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let read = |bytes: &Option<Vec<u8>>| match bytes {
                Some(bytes) => decode(self.table, bytes),
                None => Ok(Page::new()),
            };
            let mut pages: Vec<Page<V>> = match self.every_core {
                true => stored.par_iter().map(read).collect::<anyhow::Result<_>>(),
                false => stored.iter().map(read).collect(),
            }?;
            for ((_, entities), rows) in span.iter().zip(&mut pages) {
                for &entity in entities {
                    let mut value = rows.remove(&entity);
                    change(entity, &mut value)?;
                    if let Some(value) = value {
                        rows.insert(entity, value);
                    }
                }
            }
            let encoded: Vec<Option<Vec<u8>>> = match self.every_core {
                true => pages.par_iter().map(encode).collect::<anyhow::Result<_>>(),
                false => pages.iter().map(encode).collect(),
            }?;
            for ((page, _), bytes) in span.iter().zip(encoded) {
                self.store(tx, *page, bytes)?;
            }
        }
        Ok(())
    }

    /// Sets the values of `rows` (an entity named twice: the last).
    pub fn set<V: Serialize + DeserializeOwned + Send + Sync>(
        &self,
        tx: &dyn WriteTx,
        rows: impl IntoIterator<Item = (u32, V)>,
    ) -> anyhow::Result<()> {
        let mut rows: BTreeMap<u32, V> = rows.into_iter().collect();
        let entities: Vec<u32> = rows.keys().copied().collect();
        self.update_some(tx, entities, |entity, value: &mut Option<V>| {
            if let Some(new) = rows.remove(&entity) {
                *value = Some(new);
            }
            Ok(())
        })
    }

    /// Removes `entity`'s value.
    pub fn remove<V: Serialize + DeserializeOwned>(
        &self,
        tx: &dyn WriteTx,
        entity: u32,
    ) -> anyhow::Result<()> {
        let mut rows: Page<V> = self.read(tx, entity / PAGE)?;
        if rows.remove(&entity).is_some() {
            self.write(tx, entity / PAGE, &rows)?;
        }
        Ok(())
    }

    /// Up to `limit` values from entity `from` on, by entity.
    pub fn from<V: DeserializeOwned>(
        &self,
        tx: &dyn ReadTx,
        from: u32,
        limit: usize,
    ) -> anyhow::Result<Vec<(u32, V)>> {
        let mut out = Vec::new();
        let mut start = self.key(from / PAGE);
        let end = key::after_prefix(&self.prefix);
        while out.len() < limit {
            // A page holds at most PAGE values: this many pages fill `limit`.
            let want = (limit - out.len()).div_ceil(PAGE as usize).max(1);
            let rows = tx.range(self.table, &start, end.as_deref(), Order::Ascending, want)?;
            let Some((last, _)) = rows.last() else { break };
            start = last.clone();
            start.push(0); // just after the last page read
            for (_, bytes) in &rows {
                let page: Page<V> = decode(self.table, bytes)?;
                out.extend(page.into_iter().filter(|(e, _)| *e >= from));
            }
            if rows.len() < want {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Every value, by entity.
    pub fn all<V: DeserializeOwned>(&self, tx: &dyn ReadTx) -> anyhow::Result<Vec<(u32, V)>> {
        self.from(tx, 0, usize::MAX)
    }

    fn rows(&self, tx: &dyn ReadTx) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        powerplug_storage::prefixed(tx, self.table, &self.prefix, Order::Ascending, usize::MAX)
    }

    /// Removes every value.
    pub fn clear(&self, tx: &dyn WriteTx) -> anyhow::Result<()> {
        for (k, _) in self.rows(tx)? {
            tx.remove(self.table, &k)?;
        }
        Ok(())
    }

    /// Makes `to`'s values a copy of these (the same table).
    pub fn copy_to(&self, tx: &dyn WriteTx, to: &Pages) -> anyhow::Result<()> {
        to.clear(tx)?;
        for (k, bytes) in self.rows(tx)? {
            let mut page = to.prefix.clone();
            page.extend_from_slice(&k[self.prefix.len()..]);
            tx.put(to.table, &page, &bytes)?;
        }
        Ok(())
    }
}

/// A page's row (`None`: no values left, no row).
fn encode<V: Serialize>(rows: &Page<V>) -> anyhow::Result<Option<Vec<u8>>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let rows: Vec<(&u32, &V)> = rows.iter().collect();
    Ok(Some(postcard::to_allocvec(&rows)?))
}

fn decode<V: DeserializeOwned>(table: &str, bytes: &[u8]) -> anyhow::Result<Page<V>> {
    let rows: Vec<(u32, V)> =
        postcard::from_bytes(bytes).map_err(|e| anyhow::anyhow!("a page of {table}: {e}"))?;
    Ok(rows.into_iter().collect())
}

/// Reads values of one owner, keeping the last page read: a tick asks for
/// its entities in order, so each page is read once.
pub struct Reader<'a, V> {
    pages: Pages<'a>,
    tx: &'a dyn ReadTx,
    last: RefCell<Option<(u32, Page<V>)>>,
}

impl<'a, V: DeserializeOwned + Clone> Reader<'a, V> {
    pub fn new(tx: &'a dyn ReadTx, pages: Pages<'a>) -> Self {
        Self {
            pages,
            tx,
            last: RefCell::new(None),
        }
    }

    pub fn get(&self, entity: u32) -> anyhow::Result<Option<V>> {
        let page = entity / PAGE;
        let mut last = self.last.borrow_mut();
        if last.as_ref().is_none_or(|(p, _)| *p != page) {
            *last = Some((page, self.pages.read(self.tx, page)?));
        }
        Ok(last
            .as_ref()
            .and_then(|(_, rows)| rows.get(&entity).cloned()))
    }

    /// Says which pages `entities` are on (for a store whose reads are
    /// round trips).
    pub fn prefetch(&self, entities: &[u32]) -> anyhow::Result<()> {
        let mut pages: Vec<u32> = entities.iter().map(|e| e / PAGE).collect();
        pages.sort_unstable();
        pages.dedup();
        let keys: Vec<Vec<u8>> = pages.iter().map(|&p| self.pages.key(p)).collect();
        self.tx.prefetch(self.pages.table, &keys)
    }
}

/// Moves rows kept one per entity in table `from` onto pages in `to`, once,
/// in batches of a transaction each (a crash between two leaves each row in
/// exactly one of the layouts, and the next start goes on). `row` reads a
/// row's key and value: (its owner's key parts, encoded; entity; value).
pub fn migrate<V: Serialize + DeserializeOwned + Default + Send + Sync>(
    db: &dyn Store,
    from: &str,
    to: &str,
    row: impl Fn(&[u8], &[u8]) -> anyhow::Result<(Vec<u8>, u32, V)>,
) -> anyhow::Result<u64> {
    const BATCH: usize = 50_000;
    let mut moved = 0;
    loop {
        let tx = db.write()?;
        let rows = tx.range(from, &[], None, Order::Ascending, BATCH)?;
        if rows.is_empty() {
            return Ok(moved);
        }
        let mut by_owner: BTreeMap<Vec<u8>, Vec<(u32, V)>> = BTreeMap::new();
        for (k, v) in &rows {
            let (owner, entity, value) = row(k, v)?;
            by_owner.entry(owner).or_default().push((entity, value));
        }
        for (owner, values) in by_owner {
            let pages = Pages {
                table: to,
                prefix: owner,
                every_core: false,
            };
            pages.set(&*tx, values)?;
        }
        for (k, _) in &rows {
            tx.remove(from, k)?;
        }
        moved += rows.len() as u64;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_storage::RedbStore;

    const T: &str = "t";

    #[test]
    fn values_on_pages_read_back_as_written_and_owners_stay_apart() {
        let db = RedbStore::in_memory().unwrap();
        let tx = db.write().unwrap();
        let grid = Pages::new(T, &[&"grid"]);
        let other = Pages::new(T, &[&"grid-v1"]);
        // Across page edges, out of order, and one entity set twice.
        grid.set(&*tx, [(130, 1u64), (63, 2), (64, 3)]).unwrap();
        grid.set(&*tx, [(63, 9u64), (u32::MAX, 4)]).unwrap();
        other.set(&*tx, [(64, 5u64)]).unwrap();
        grid.update(&*tx, [64, 65], |_, v: &mut u64| {
            *v += 10;
            Ok(())
        })
        .unwrap();
        let reader = Reader::<u64>::new(&*tx, grid.clone());
        let read: Vec<Option<u64>> = [63, 64, 65, 66, 130, u32::MAX]
            .iter()
            .map(|&e| reader.get(e).unwrap())
            .collect();
        assert_eq!(read, [Some(9), Some(13), Some(10), None, Some(1), Some(4)]);
        let all: Vec<(u32, u64)> = grid.all(&*tx).unwrap();
        assert_eq!(all, [(63, 9), (64, 13), (65, 10), (130, 1), (u32::MAX, 4)]);
        assert_eq!(
            grid.from::<u64>(&*tx, 64, 3).unwrap(),
            [(64, 13), (65, 10), (130, 1)]
        );
        assert_eq!(grid.from::<u64>(&*tx, 131, 9).unwrap(), [(u32::MAX, 4)]);
        assert_eq!(other.all::<u64>(&*tx).unwrap(), [(64, 5)]);

        grid.remove::<u64>(&*tx, 64).unwrap();
        assert_eq!(grid.get::<u64>(&*tx, 64).unwrap(), None);
        let archive = Pages::new(T, &[&"archive"]);
        grid.copy_to(&*tx, &archive).unwrap();
        assert_eq!(
            archive.all::<u64>(&*tx).unwrap(),
            grid.all::<u64>(&*tx).unwrap()
        );
        grid.clear(&*tx).unwrap();
        assert!(grid.all::<u64>(&*tx).unwrap().is_empty());
        assert_eq!(archive.all::<u64>(&*tx).unwrap().len(), 4);
        assert_eq!(other.all::<u64>(&*tx).unwrap(), [(64, 5)]);
    }

    #[test]
    fn many_values_page_through_in_order() {
        let db = RedbStore::in_memory().unwrap();
        let tx = db.write().unwrap();
        let pages = Pages::new(T, &[]);
        pages.set(&*tx, (0..1_000u32).map(|e| (e * 3, e))).unwrap();
        let mut seen = Vec::new();
        let mut from = 0;
        loop {
            let batch: Vec<(u32, u32)> = pages.from(&*tx, from, 100).unwrap();
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            seen.extend(batch);
            from = last + 1;
        }
        assert_eq!(seen, (0..1_000u32).map(|e| (e * 3, e)).collect::<Vec<_>>());
    }

    #[test]
    fn rows_kept_one_each_move_onto_pages_once() {
        let db = RedbStore::in_memory().unwrap();
        let tx = db.write().unwrap();
        for (owner, entity) in [("grid", 1u32), ("grid", 70), ("producer", 1)] {
            let k = key::of(&[&owner, &entity]);
            tx.put("old", &k, &u64::from(entity).to_be_bytes()).unwrap();
        }
        tx.commit().unwrap();
        let row = |k: &[u8], v: &[u8]| {
            let mut r = key::Reader::new(k);
            let owner = key::of(&[&r.str()?]);
            Ok((owner, r.u32()?, key::u64_value(v)?))
        };
        assert_eq!(migrate(&db, "old", T, row).unwrap(), 3);
        assert_eq!(migrate(&db, "old", T, row).unwrap(), 0);
        let tx = db.read().unwrap();
        let grid: Vec<(u32, u64)> = Pages::new(T, &[&"grid"]).all(&*tx).unwrap();
        assert_eq!(grid, [(1, 1), (70, 70)]);
        let producer: Vec<(u32, u64)> = Pages::new(T, &[&"producer"]).all(&*tx).unwrap();
        assert_eq!(producer, [(1, 1)]);
        assert!(
            tx.range("old", &[], None, Order::Ascending, 1)
                .unwrap()
                .is_empty()
        );
    }
}
