use crate::{Cell, CellBatch};

/// The four words of a cell.
pub type Words = [u64; 4];

/// The per-entity cells of one tick: the ones the host sent (every entity the
/// input mentions), plus any the strategy creates. Kept in the batch's own
/// columns, so nothing is copied on the way in; tracks which changed so that only
/// those go back.
#[derive(Debug, Default)]
pub struct Cells {
    /// Strictly increasing.
    entity: Vec<u32>,
    /// Four per entity.
    words: Vec<u64>,
    dirty: Vec<bool>,
    /// Where the last lookup landed: inputs usually walk entities in order, so the
    /// next lookup is most often at `hint` or `hint + 1`.
    hint: usize,
}

impl Cells {
    /// Takes the host's batch; refuses one that is not rectangular or not sorted.
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
        if !entity.windows(2).all(|w| w[0] < w[1]) {
            return Err("cells: entities must be sorted and unique".into());
        }
        let dirty = vec![false; entity.len()];
        Ok(Self {
            entity,
            words,
            dirty,
            hint: 0,
        })
    }

    fn position(&mut self, entity: u32) -> Result<usize, usize> {
        for pos in [self.hint, self.hint + 1] {
            if self.entity.get(pos) == Some(&entity) {
                self.hint = pos;
                return Ok(pos);
            }
        }
        let found = self.entity.binary_search(&entity);
        if let Ok(pos) = found {
            self.hint = pos;
        }
        found
    }

    fn words_at(&self, pos: usize) -> Words {
        let w = &self.words[pos * 4..pos * 4 + 4];
        [w[0], w[1], w[2], w[3]]
    }

    /// The entity's cell; all zeros if it has none yet.
    pub fn get(&mut self, entity: u32) -> Words {
        match self.position(entity) {
            Ok(pos) => self.words_at(pos),
            Err(_) => [0; 4],
        }
    }

    pub fn set(&mut self, entity: u32, words: Words) {
        match self.position(entity) {
            Ok(pos) => {
                if self.words_at(pos) != words {
                    self.words[pos * 4..pos * 4 + 4].copy_from_slice(&words);
                    self.dirty[pos] = true;
                }
            }
            Err(pos) => {
                self.entity.insert(pos, entity);
                self.words.splice(pos * 4..pos * 4, words);
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

    /// The entity's cell as a typed [`Cell`]; all zeros if it has none yet.
    pub fn get_as<C: Cell>(&mut self, entity: u32) -> C {
        C::from_words(self.get(entity))
    }

    pub fn set_as<C: Cell>(&mut self, entity: u32, cell: &C) {
        self.set(entity, cell.to_words());
    }

    /// Read-modify-write of one typed cell.
    pub fn update_as<C: Cell>(&mut self, entity: u32, f: impl FnOnce(&mut C)) {
        let mut cell = self.get_as::<C>(entity);
        f(&mut cell);
        self.set_as(entity, &cell);
    }

    /// [`Cells::for_each_changed`], with each cell as a typed [`Cell`].
    pub fn for_each_changed_as<C: Cell>(&mut self, mut f: impl FnMut(u32, &mut C)) {
        self.for_each_changed(|entity, words| {
            let mut cell = C::from_words(*words);
            f(entity, &mut cell);
            *words = cell.to_words();
        });
    }

    /// Visits every changed cell, in entity order; `f` may change it further.
    pub fn for_each_changed(&mut self, mut f: impl FnMut(u32, &mut Words)) {
        for (pos, &entity) in self.entity.iter().enumerate() {
            if self.dirty[pos] {
                let cell: &mut [u64] = &mut self.words[pos * 4..pos * 4 + 4];
                let mut words = [cell[0], cell[1], cell[2], cell[3]];
                f(entity, &mut words);
                cell.copy_from_slice(&words);
            }
        }
    }

    /// The changed cells, sorted by entity.
    pub fn into_changed(self) -> CellBatch {
        let changed = self.dirty.iter().filter(|d| **d).count();
        let mut batch = CellBatch {
            entity: Vec::with_capacity(changed),
            words: Vec::with_capacity(changed * 4),
        };
        for (pos, &entity) in self.entity.iter().enumerate() {
            if self.dirty[pos] {
                batch.entity.push(entity);
                batch
                    .words
                    .extend_from_slice(&self.words[pos * 4..pos * 4 + 4]);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(cells: &[(u32, Words)]) -> CellBatch {
        CellBatch {
            entity: cells.iter().map(|c| c.0).collect(),
            words: cells.iter().flat_map(|c| c.1).collect(),
        }
    }

    #[test]
    fn only_changed_cells_go_back_in_entity_order() {
        let mut cells = Cells::new(batch(&[(2, [1, 2, 3, 4]), (5, [0; 4]), (9, [7; 4])])).unwrap();
        assert_eq!(cells.get(5), [0; 4]);
        cells.set(9, [7; 4]); // unchanged value: not dirty
        cells.update(5, |w| w[0] += 10);
        cells.set(7, [1, 1, 1, 1]); // an entity the host sent no cell for
        cells.set(1, [2; 4]);
        assert_eq!(cells.get(7), [1; 4]);
        assert_eq!(cells.get(2), [1, 2, 3, 4]);
        let changed = cells.into_changed();
        assert_eq!(changed.entity, [1, 5, 7]);
        assert_eq!(changed.words, [2, 2, 2, 2, 10, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn for_each_changed_sees_and_keeps_edits() {
        let mut cells = Cells::new(batch(&[(1, [0; 4]), (2, [0; 4])])).unwrap();
        cells.update(2, |w| w[1] = 5);
        let mut seen = vec![];
        cells.for_each_changed(|e, w| {
            seen.push(e);
            w[2] = 9;
        });
        assert_eq!(seen, [2]);
        assert_eq!(cells.get(2), [0, 5, 9, 0]);
    }

    #[test]
    fn a_malformed_batch_is_refused() {
        let ragged = CellBatch {
            entity: vec![1, 2],
            words: vec![0; 7],
        };
        assert!(
            Cells::new(ragged)
                .unwrap_err()
                .contains("2 entities need 8 words")
        );
        let unsorted = batch(&[(3, [0; 4]), (1, [0; 4])]);
        assert!(Cells::new(unsorted).unwrap_err().contains("sorted"));
        let twice = batch(&[(3, [0; 4]), (3, [0; 4])]);
        assert!(Cells::new(twice).is_err());
    }
}
