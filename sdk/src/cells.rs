use crate::CellBatch;

/// The four words of a cell.
pub type Words = [u64; 4];

/// The per-entity cells of one tick: the ones the host sent (every entity the
/// input mentions), plus any the strategy creates. Tracks which changed so that
/// only those go back.
#[derive(Debug, Default)]
pub struct Cells {
    /// Sorted by entity index.
    entries: Vec<(u32, Words)>,
    dirty: Vec<bool>,
    /// Where the last lookup landed: inputs usually walk entities in order, so the
    /// next lookup is most often at `hint` or `hint + 1`.
    hint: usize,
}

impl Cells {
    pub fn new(batch: CellBatch) -> Result<Self, crate::Error> {
        let CellBatch { entity, words } = batch;
        if words.len() != entity.len() * 4 {
            return Err(format!(
                "cells: {} entities need {} words, got {}",
                entity.len(),
                entity.len() * 4,
                words.len()
            ));
        }
        let mut entries: Vec<(u32, Words)> = entity
            .into_iter()
            .zip(words.chunks_exact(4))
            .map(|(e, w)| (e, [w[0], w[1], w[2], w[3]]))
            .collect();
        if !entries.is_sorted_by_key(|e| e.0) {
            entries.sort_by_key(|e| e.0);
        }
        entries.dedup_by_key(|e| e.0);
        let dirty = vec![false; entries.len()];
        Ok(Self {
            entries,
            dirty,
            hint: 0,
        })
    }

    fn position(&mut self, entity: u32) -> Result<usize, usize> {
        for pos in [self.hint, self.hint + 1] {
            if self.entries.get(pos).is_some_and(|e| e.0 == entity) {
                self.hint = pos;
                return Ok(pos);
            }
        }
        let found = self.entries.binary_search_by_key(&entity, |e| e.0);
        if let Ok(pos) = found {
            self.hint = pos;
        }
        found
    }

    /// The entity's cell; all zeros if it has none yet.
    pub fn get(&mut self, entity: u32) -> Words {
        match self.position(entity) {
            Ok(pos) => self.entries[pos].1,
            Err(_) => [0; 4],
        }
    }

    pub fn set(&mut self, entity: u32, words: Words) {
        match self.position(entity) {
            Ok(pos) => {
                if self.entries[pos].1 != words {
                    self.entries[pos].1 = words;
                    self.dirty[pos] = true;
                }
            }
            Err(pos) => {
                self.entries.insert(pos, (entity, words));
                self.dirty.insert(pos, true);
            }
        }
    }

    /// Read-modify-write of one cell.
    pub fn update(&mut self, entity: u32, f: impl FnOnce(&mut Words)) {
        let mut words = self.get(entity);
        f(&mut words);
        self.set(entity, words);
    }

    /// Visits every changed cell, in entity order; `f` may change it further.
    pub fn for_each_changed(&mut self, mut f: impl FnMut(u32, &mut Words)) {
        for ((entity, words), dirty) in self.entries.iter_mut().zip(&self.dirty) {
            if *dirty {
                f(*entity, words);
            }
        }
    }

    /// The changed cells, sorted by entity.
    pub fn into_changed(self) -> CellBatch {
        let mut batch = CellBatch {
            entity: Vec::new(),
            words: Vec::new(),
        };
        for ((entity, words), dirty) in self.entries.into_iter().zip(self.dirty) {
            if dirty {
                batch.entity.push(entity);
                batch.words.extend_from_slice(&words);
            }
        }
        batch
    }
}
