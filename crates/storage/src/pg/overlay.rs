//! What a PostgreSQL transaction keeps on the client: its writes until
//! commit, and what it already read.
//!
//! A round trip to the server costs ~100–200 µs; a tick of 10,000 consumers
//! makes tens of thousands of reads and writes. Writes therefore wait here
//! and go to the server at commit in a few statements, and the transaction's
//! reads see them merged in. What the server answered is remembered: inside
//! a writer nobody else changes the namespace (it holds the lock), inside a
//! reader the snapshot does not move, so an answer stays true until the
//! transaction ends.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::{Entries, Order};

/// A key's state as this transaction sees it: a value, or none (deleted, or
/// the server has no entry).
type Known = Option<Vec<u8>>;

#[derive(Default)]
pub(super) struct Overlay {
    /// Writes not yet sent, per table in key order: a value, or deleted.
    pending: BTreeMap<String, BTreeMap<Vec<u8>, Known>>,
    /// What the server answered for single keys.
    read: HashMap<String, HashMap<Vec<u8>, Known>>,
    /// What the server answered for small ranges (a writer's `last` of a
    /// table it appends to, over and over), and whether that was all.
    ranges: HashMap<Range, (Entries, bool)>,
}

/// A range asked for: table, start, end, descending.
type Range = (String, Vec<u8>, Option<Vec<u8>>, bool);

/// Ranges of at most this many entries are remembered.
pub const SMALL_RANGE: usize = 16;

/// A transaction's writes as the columns of the statements that send them.
#[derive(Default)]
pub(super) struct Writes {
    pub put_tables: Vec<String>,
    pub put_keys: Vec<Vec<u8>>,
    pub put_values: Vec<Vec<u8>>,
    pub delete_tables: Vec<String>,
    pub delete_keys: Vec<Vec<u8>>,
}

impl Overlay {
    /// The key's state if this transaction knows it without asking.
    pub fn get(&self, table: &str, key: &[u8]) -> Option<Known> {
        let pending = self.pending.get(table).and_then(|t| t.get(key));
        pending
            .or_else(|| self.read.get(table).and_then(|t| t.get(key)))
            .cloned()
    }

    /// Remembers the server's answer for a key.
    pub fn learn(&mut self, table: &str, key: Vec<u8>, value: Known) {
        if !self.read.contains_key(table) {
            self.read.insert(table.to_owned(), HashMap::new());
        }
        if let Some(t) = self.read.get_mut(table) {
            t.insert(key, value);
        }
    }

    /// Which of `keys` this transaction would have to ask the server for.
    pub fn unknown(&self, table: &str, keys: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut unknown: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| self.get(table, k).is_none())
            .cloned()
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }

    pub fn write(&mut self, table: &str, key: &[u8], value: Known) {
        if !self.pending.contains_key(table) {
            self.pending.insert(table.to_owned(), BTreeMap::new());
        }
        if let Some(t) = self.pending.get_mut(table) {
            t.insert(key.to_vec(), value);
        }
    }

    /// This transaction's writes with `start <= key < end`.
    fn pending_in(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = (&Vec<u8>, &Known)> {
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let bounds = (Bound::Included(start), upper);
        // An empty or inverted range holds nothing (BTreeMap would panic).
        let empty = end.is_some_and(|end| end <= start);
        self.pending
            .get(table)
            .filter(|_| !empty)
            .into_iter()
            .flat_map(move |t| t.range::<[u8], _>(bounds))
    }

    /// How many of the server's entries in the range this transaction's
    /// writes may hide or replace: ask the server for that many more.
    pub fn shadowing(&self, table: &str, start: &[u8], end: Option<&[u8]>) -> usize {
        self.pending_in(table, start, end).count()
    }

    /// The first `limit` entries of a range in `order` as this transaction
    /// sees them: `server`'s (what the server answered for the range, in
    /// `order`; `complete` if that was all it holds there) with this
    /// transaction's writes merged in. `None` if `server` does not reach far
    /// enough to be sure (the writes hid too many of its entries).
    #[allow(clippy::too_many_arguments)]
    pub fn merge(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
        server: &[(Vec<u8>, Vec<u8>)],
        complete: bool,
    ) -> Option<Entries> {
        // Walk both in `order`, the transaction's writes winning on equal
        // keys, and stop at `limit`: a writer that appends to a table and
        // asks for its last key each time must not pay for all it wrote.
        let pending = self.pending_in(table, start, end);
        let mine: Box<dyn Iterator<Item = (&Vec<u8>, &Known)>> = match order {
            Order::Ascending => Box::new(pending),
            Order::Descending => Box::new(pending.rev()),
        };
        let mut mine = mine.map(|(k, v)| (&k[..], v.as_deref())).peekable();
        let mut theirs = server.iter().map(|(k, v)| (&k[..], &v[..])).peekable();
        let before = |a: &[u8], b: &[u8]| match order {
            Order::Ascending => a < b,
            Order::Descending => a > b,
        };
        // Past the server's last entry (in `order`) its other entries are
        // unknown here: only the entries up to it are sure.
        let boundary = server.last().map(|(k, _)| &k[..]).filter(|_| !complete);
        let mut sure = Vec::new();
        while sure.len() < limit {
            let (key, value) = match (mine.peek().copied(), theirs.peek().copied()) {
                (None, None) => break,
                (Some(m), None) => m,
                (None, Some((k, v))) => (k, Some(v)),
                (Some(m), Some((k, v))) => {
                    if before(k, m.0) {
                        (k, Some(v))
                    } else {
                        m
                    }
                }
            };
            if boundary.is_some_and(|b| before(b, key)) {
                break;
            }
            // The transaction's write wins over the server's entry.
            if mine.peek().is_some_and(|(k, _)| *k == key) {
                mine.next();
            }
            if theirs.peek().is_some_and(|(k, _)| *k == key) {
                theirs.next();
            }
            if let Some(value) = value {
                sure.push((key.to_vec(), value.to_vec()));
            }
        }
        (complete || sure.len() == limit).then_some(sure)
    }

    /// The server's answer to a range asked for before, and whether it was
    /// all the server holds there.
    pub fn asked(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
    ) -> Option<&(Entries, bool)> {
        let range = (
            table.to_owned(),
            start.to_vec(),
            end.map(<[u8]>::to_vec),
            order == Order::Descending,
        );
        self.ranges.get(&range)
    }

    /// Remembers the server's answer to a range, if it is small.
    pub fn answered(
        &mut self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        server: &[(Vec<u8>, Vec<u8>)],
        complete: bool,
    ) {
        if server.len() <= SMALL_RANGE {
            let range = (
                table.to_owned(),
                start.to_vec(),
                end.map(<[u8]>::to_vec),
                order == Order::Descending,
            );
            self.ranges.insert(range, (server.to_vec(), complete));
        }
    }

    /// The writes, for commit.
    pub fn take_writes(&mut self) -> Writes {
        let mut writes = Writes::default();
        for (table, entries) in std::mem::take(&mut self.pending) {
            for (key, value) in entries {
                match value {
                    Some(value) => {
                        writes.put_tables.push(table.clone());
                        writes.put_keys.push(key);
                        writes.put_values.push(value);
                    }
                    None => {
                        writes.delete_tables.push(table.clone());
                        writes.delete_keys.push(key);
                    }
                }
            }
        }
        writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(keys: &[u8]) -> Entries {
        keys.iter().map(|&k| (vec![k], vec![k])).collect()
    }

    fn keys(entries: &Entries) -> Vec<u8> {
        entries.iter().map(|(k, _)| k[0]).collect()
    }

    #[test]
    fn writes_hide_and_replace_the_servers_entries_in_either_order() {
        let mut o = Overlay::default();
        o.write("t", &[2], None);
        o.write("t", &[3], Some(vec![30]));
        o.write("t", &[5], Some(vec![5]));
        o.write("other", &[1], Some(vec![1]));
        assert_eq!(o.shadowing("t", &[0], Some(&[9])), 3);
        assert_eq!(o.shadowing("t", &[4], None), 1);
        assert_eq!(o.shadowing("t", &[4], Some(&[4])), 0, "an empty range");
        assert_eq!(o.shadowing("t", &[6], Some(&[4])), 0, "an inverted range");

        // The server's first 2 + 3 entries ascending.
        let server = entries(&[1, 2, 3, 4, 6]);
        let up = o.merge("t", &[0], None, Order::Ascending, 2, &server, false);
        let up = up.unwrap();
        assert_eq!(keys(&up), [1, 3]);
        assert_eq!(up[1].1, vec![30], "the transaction's value wins");
        let server = entries(&[9, 4, 2]);
        let down = o.merge("t", &[0], None, Order::Descending, 3, &server, false);
        assert_eq!(keys(&down.unwrap()), [9, 5, 4]);
        let bounded = o.merge(
            "t",
            &[3],
            Some(&[5]),
            Order::Ascending,
            10,
            &entries(&[4]),
            true,
        );
        assert_eq!(keys(&bounded.unwrap()), [3, 4], "the end stays excluded");
    }

    #[test]
    fn a_merge_answers_only_what_the_servers_entries_make_sure() {
        let mut o = Overlay::default();
        o.write("t", &[8], Some(vec![8]));
        o.write("t", &[5], None);
        // The server's last entry, 5, was asked for before: the new 8
        // comes first descending, whatever else the server holds below 5.
        let last = o.merge("t", &[], None, Order::Descending, 1, &entries(&[5]), false);
        assert_eq!(keys(&last.unwrap()), [8]);
        // The second is not sure: 5 is deleted, what lies below is unknown.
        assert_eq!(
            o.merge("t", &[], None, Order::Descending, 2, &entries(&[5]), false),
            None
        );
        // Unless the server said that was all.
        let all = o.merge("t", &[], None, Order::Descending, 2, &entries(&[5]), true);
        assert_eq!(keys(&all.unwrap()), [8]);
        // Ascending from 1, 2: 8 lies past 2, where the server may hold more.
        let up = |limit| {
            o.merge(
                "t",
                &[],
                None,
                Order::Ascending,
                limit,
                &entries(&[1, 2]),
                false,
            )
        };
        assert_eq!(up(3), None);
        assert_eq!(keys(&up(2).unwrap()), [1, 2]);
    }

    #[test]
    fn what_is_known_needs_no_asking_and_writes_win_over_reads() {
        let mut o = Overlay::default();
        o.learn("t", vec![1], Some(vec![1]));
        o.learn("t", vec![2], None);
        assert_eq!(o.get("t", &[1]), Some(Some(vec![1])));
        assert_eq!(o.get("t", &[2]), Some(None), "known absent");
        assert_eq!(o.get("t", &[3]), None);
        assert_eq!(o.get("u", &[1]), None, "tables are apart");
        o.write("t", &[1], None);
        assert_eq!(o.get("t", &[1]), Some(None));
        assert_eq!(
            o.unknown("t", &[vec![3], vec![1], vec![3], vec![0]]),
            [vec![0], vec![3]]
        );

        o.write("t", &[0], Some(vec![7]));
        let w = o.take_writes();
        assert_eq!((w.put_keys, w.put_values), (vec![vec![0]], vec![vec![7]]));
        assert_eq!(
            (w.delete_tables, w.delete_keys),
            (vec!["t".into()], vec![vec![1]])
        );
        assert!(o.take_writes().put_keys.is_empty(), "taken once");
    }
}
