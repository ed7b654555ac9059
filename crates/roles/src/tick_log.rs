//! The tick log: every tick's input and what came of it, append-only, written in
//! the tick's own transaction. Dry runs, replays and audits read it: because a
//! strategy decides from its input alone, running the recorded input through the
//! recorded strategy version must give the recorded decision again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use powerplug_strategy::{GridDecision, GridInput, ProducerDecision, ProducerInput};

use crate::counter::Counter;
use crate::limits::FAILURES_LOGGED;
use powerplug_storage::{Order, ReadTx, Store, WriteTx, key, last};

/// (slot, tick number) → record.
const LOG: &str = "tick_log";
/// (slot, tick number) → (the tick's time ms, the record's bytes): what
/// retention weighs without reading the records.
const INDEX: &str = "tick_log_index";

/// The format records are written in. A record starts with a zero byte and
/// its format number. Format 3: the tick number (a postcard varint), then
/// the rest of the record in postcard, LZ4-compressed with its size before
/// it (a tick's inputs repeat their times and ids: varied readings take
/// about half the bytes, so retention's byte bound holds twice the ticks).
/// Format 2: the record in postcard. Format 1 had
/// neither byte; its first byte was the tick number (from 1, as a varint:
/// never a zero byte), so the formats cannot be mistaken for each other.
/// Recorded types come from the WIT (the input, the decision): a change to
/// them is a new format here, with a reader of the old one in `decode`.
pub const FORMAT: u8 = 3;

/// The most a record's compressed rest may say it holds: LZ4 packs at most
/// ~255 bytes into one, and no record is near 1 GiB.
fn unpacked_size_ok(claimed: usize, packed: usize) -> bool {
    claimed <= packed.saturating_mul(255).saturating_add(64) && claimed <= 1 << 30
}

fn decode<R: serde::de::DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<R> {
    match bytes {
        [0, FORMAT, rest @ ..] => {
            let (tick, packed) = postcard::take_from_bytes::<u64>(rest)?;
            let (size, packed) = lz4_flex::block::uncompressed_size(packed)?;
            anyhow::ensure!(
                unpacked_size_ok(size, packed.len()),
                "tick log: a record of {} bytes says it holds {size}",
                packed.len()
            );
            let mut whole = postcard::to_allocvec(&tick)?;
            whole.extend(lz4_flex::block::decompress(packed, size)?);
            Ok(postcard::from_bytes(&whole)?)
        }
        [0, 2, record @ ..] => Ok(postcard::from_bytes(record)?),
        [0, format, ..] => anyhow::bail!(
            "tick log: a record of format {format}; this host reads formats 1 to {FORMAT}"
        ),
        // Format 1: the same record, without the two bytes.
        record => Ok(postcard::from_bytes(record)?),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<D> {
    Decided(D),
    /// The tick failed; the cause as `CallError` printed it.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickRecord<I, D> {
    pub tick: u64,
    /// SHA-256 of the strategy component that decided.
    pub strategy: powerplug_strategy::Sha256,
    /// SHA-256 of (strategy, encoded input): equal hashes must mean equal decisions.
    pub hash: powerplug_strategy::Sha256,
    pub input: I,
    pub outcome: Outcome<D>,
}

pub type GridTickRecord = TickRecord<GridInput, GridDecision>;
pub type ProducerTickRecord = TickRecord<ProducerInput, ProducerDecision>;

/// Appends a grid tick to `slot`'s log inside the tick's transaction.
pub fn record_grid(
    tx: &dyn WriteTx,
    slot: &str,
    strategy_sha256: &powerplug_strategy::Sha256,
    input: GridInput,
    outcome: Outcome<GridDecision>,
) -> anyhow::Result<u64> {
    let entry = Entry::new(strategy_sha256, input.now_ms, &input, &outcome)?;
    entry.append(tx, slot)
}

/// Appends a producer tick to `slot`'s log inside the tick's transaction.
pub fn record_producer(
    tx: &dyn WriteTx,
    slot: &str,
    strategy_sha256: &powerplug_strategy::Sha256,
    input: ProducerInput,
    outcome: Outcome<ProducerDecision>,
) -> anyhow::Result<u64> {
    let entry = Entry::new(strategy_sha256, input.now_ms, &input, &outcome)?;
    entry.append(tx, slot)
}

/// A tick's record, encoded, hashed and compressed before its transaction
/// (a grid tick prepares its runs' entries beside its store work: at 10,000
/// consumers an input is ~0.4 MB, and an experiment logs nine a tick) and
/// numbered when appended.
pub struct Entry {
    strategy: powerplug_strategy::Sha256,
    now_ms: u64,
    failed: bool,
    /// The record after its tick number, compressed ([`FORMAT`]): postcard
    /// writes a struct as its fields one after another, so the input is
    /// encoded once, for its hash and for the record.
    packed: Vec<u8>,
}

impl Entry {
    pub fn new<I: Serialize, D: Serialize>(
        strategy: &powerplug_strategy::Sha256,
        now_ms: u64,
        input: &I,
        outcome: &Outcome<D>,
    ) -> anyhow::Result<Self> {
        let encoded_input = postcard::to_allocvec(input)?;
        let hash = powerplug_strategy::Sha256(
            Sha256::new()
                .chain_update(strategy.hex())
                .chain_update(&encoded_input)
                .finalize()
                .into(),
        );
        let mut rest = Vec::with_capacity(encoded_input.len() + 96);
        rest = postcard::to_extend(strategy, rest)?;
        rest = postcard::to_extend(&hash, rest)?;
        rest.extend_from_slice(&encoded_input);
        let rest = postcard::to_extend(outcome, rest)?;
        Ok(Self {
            strategy: *strategy,
            now_ms,
            failed: matches!(outcome, Outcome::Failed(_)),
            packed: lz4_flex::block::compress_prepend_size(&rest),
        })
    }

    /// Appends it to `slot`'s log; its tick number there.
    pub fn append(self, tx: &dyn WriteTx, slot: &str) -> anyhow::Result<u64> {
        let tick = position(tx, slot)? + 1;
        // A version that fails tick after tick logs the first failures of its
        // streak only (with their inputs): the rest would add a full input each
        // time until the version is rolled back, or forever if none is left.
        let streak_key = format!("tick-log/{slot}/failing");
        let streak: Option<(powerplug_strategy::Sha256, u64)> =
            powerplug_storage::meta_in(tx, &streak_key)?;
        match (self.failed, streak) {
            (true, Some((sha, n))) if sha == self.strategy => {
                if n >= FAILURES_LOGGED {
                    Counter::TicksFailedUnlogged.add(tx, 1)?;
                    return Ok(tick - 1);
                }
                powerplug_storage::set_meta(tx, &streak_key, &(sha, n + 1))?;
            }
            (true, _) => powerplug_storage::set_meta(tx, &streak_key, &(self.strategy, 1u64))?,
            (false, Some(_)) => powerplug_storage::delete_meta(tx, &streak_key)?,
            (false, None) => {}
        }
        let mut bytes = Vec::with_capacity(self.packed.len() + 12);
        bytes.extend([0, FORMAT]);
        bytes = postcard::to_extend(&tick, bytes)?;
        bytes.extend_from_slice(&self.packed);
        let k = key::of(&[&slot, &tick]);
        tx.put(INDEX, &k, &index_value(self.now_ms, bytes.len() as u64))?;
        tx.put(LOG, &k, &bytes)?;
        Ok(tick)
    }
}

/// `slot`'s grid ticks after `since`, oldest first, at most `limit`.
pub fn grid_ticks(
    db: &dyn Store,
    slot: &str,
    since: u64,
    limit: usize,
) -> anyhow::Result<Vec<GridTickRecord>> {
    ticks(db, slot, since, limit)
}

/// The number of `slot`'s last recorded tick; 0 before the first.
pub fn position(tx: &dyn powerplug_storage::ReadTx, slot: &str) -> anyhow::Result<u64> {
    match last(tx, LOG, &key::of(&[&slot]))? {
        Some((k, _)) => {
            let mut r = key::Reader::new(&k);
            r.str()?;
            r.u64()
        }
        None => Ok(0),
    }
}

/// `slot`'s most recent grid tick.
pub fn last_grid(db: &dyn Store, slot: &str) -> anyhow::Result<Option<GridTickRecord>> {
    match last(&*db.read()?, LOG, &key::of(&[&slot]))? {
        Some((_, v)) => Ok(Some(decode(&v)?)),
        None => Ok(None),
    }
}

/// `slot`'s most recent producer tick.
pub fn last_producer(db: &dyn Store, slot: &str) -> anyhow::Result<Option<ProducerTickRecord>> {
    match last(&*db.read()?, LOG, &key::of(&[&slot]))? {
        Some((_, v)) => Ok(Some(decode(&v)?)),
        None => Ok(None),
    }
}

/// `slot`'s producer ticks after `since`, oldest first, at most `limit`.
pub fn producer_ticks(
    db: &dyn Store,
    slot: &str,
    since: u64,
    limit: usize,
) -> anyhow::Result<Vec<ProducerTickRecord>> {
    ticks(db, slot, since, limit)
}

fn ticks<R: serde::de::DeserializeOwned>(
    db: &dyn Store,
    slot: &str,
    since: u64,
    limit: usize,
) -> anyhow::Result<Vec<R>> {
    let start = key::of(&[&slot, &since.saturating_add(1)]);
    let end = key::after_prefix(&key::of(&[&slot]));
    let entries = db
        .read()?
        .range(LOG, &start, end.as_deref(), Order::Ascending, limit)?;
    entries.iter().map(|(_, v)| decode(v)).collect()
}

fn index_value(at_ms: u64, bytes: u64) -> [u8; 16] {
    let mut v = [0; 16];
    v[..8].copy_from_slice(&at_ms.to_be_bytes());
    v[8..].copy_from_slice(&bytes.to_be_bytes());
    v
}

/// How much of the log retention keeps: a tick goes when any bound is
/// passed, oldest first, except the newest `at_least` (what a dry run
/// replays, and the last tick, from which the next one is numbered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub ticks: u64,
    pub age_ms: u64,
    pub bytes: u64,
    pub at_least: u64,
}

/// What one slot's log holds (ticks logged before the index existed are
/// not counted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Held {
    pub ticks: u64,
    pub bytes: u64,
    /// Time of the oldest tick held.
    pub oldest_ms: Option<u64>,
}

/// Every slot that has ticks in the log (the grid's, a shadow's, each
/// experiment variant's): one index entry read per slot. (A slot whose
/// every tick was logged before the index existed, and which never ticks
/// again, is not listed: its ticks stay.)
pub fn slots(db: &dyn Store) -> anyhow::Result<Vec<String>> {
    let tx = db.read()?;
    let mut out = Vec::new();
    let mut from = Vec::new();
    while let Some((k, _)) = tx.range(INDEX, &from, None, Order::Ascending, 1)?.pop() {
        let slot = key::Reader::new(&k).str()?.to_owned();
        let Some(next) = key::after_prefix(&key::of(&[&slot])) else {
            break;
        };
        out.push(slot);
        from = next;
    }
    Ok(out)
}

/// The ticks of `slot` as the index has them: (tick, time, bytes), oldest
/// first. Ticks logged before the index existed are not in it.
fn indexed(tx: &dyn ReadTx, slot: &str) -> anyhow::Result<Vec<(u64, u64, u64)>> {
    let entries = tx.range(
        INDEX,
        &key::of(&[&slot]),
        key::after_prefix(&key::of(&[&slot])).as_deref(),
        Order::Ascending,
        usize::MAX,
    )?;
    entries
        .iter()
        .map(|(k, v)| {
            let mut r = key::Reader::new(k);
            r.str()?;
            anyhow::ensure!(v.len() == 16, "tick log index: {} bytes", v.len());
            Ok((r.u64()?, key::u64_value(&v[..8])?, key::u64_value(&v[8..])?))
        })
        .collect()
}

/// The first tick of `slot` the log holds.
fn first(tx: &dyn ReadTx, slot: &str) -> anyhow::Result<Option<u64>> {
    let prefix = key::of(&[&slot]);
    let entries = powerplug_storage::prefixed(tx, LOG, &prefix, Order::Ascending, 1)?;
    match entries.first() {
        Some((k, _)) => {
            let mut r = key::Reader::new(k);
            r.str()?;
            Ok(Some(r.u64()?))
        }
        None => Ok(None),
    }
}

/// What `slot`'s log holds now, by its index alone (cheap enough for
/// `/status` and `/metrics`: no record is read).
pub fn held(db: &dyn Store, slot: &str) -> anyhow::Result<Held> {
    let index = indexed(&*db.read()?, slot)?;
    Ok(Held {
        ticks: index.len() as u64,
        bytes: index.iter().map(|&(_, _, b)| b).sum(),
        oldest_ms: index.first().map(|&(_, at, _)| at),
    })
}

/// `slot`'s newest tick: its time and its record's size in bytes.
pub fn newest(db: &dyn Store, slot: &str) -> anyhow::Result<Option<(u64, u64)>> {
    let prefix = key::of(&[&slot]);
    let tx = db.read()?;
    let newest = powerplug_storage::prefixed(&*tx, INDEX, &prefix, Order::Descending, 1)?;
    match newest.first() {
        Some((_, v)) => {
            anyhow::ensure!(v.len() == 16, "tick log index: {} bytes", v.len());
            Ok(Some((key::u64_value(&v[..8])?, key::u64_value(&v[8..])?)))
        }
        None => Ok(None),
    }
}

/// Deletes `slot`'s oldest ticks while any bound is passed (the newest
/// `at_least` always stay); the ticks and bytes deleted. Tick numbers are
/// dense (a tick that is not logged takes no number), so the count held is
/// last − first + 1. A tick logged before the index had one counts as
/// infinitely old and of no known size.
pub fn prune(
    db: &dyn Store,
    slot: &str,
    bounds: Bounds,
    now_ms: u64,
) -> anyhow::Result<(u64, u64)> {
    let (first, last, index) = {
        let tx = db.read()?;
        let Some(first) = first(&*tx, slot)? else {
            return Ok((0, 0));
        };
        (first, position(&*tx, slot)?, indexed(&*tx, slot)?)
    };
    let sizes: std::collections::BTreeMap<u64, (u64, u64)> =
        index.iter().map(|&(t, at, b)| (t, (at, b))).collect();
    let mut count = last.saturating_sub(first) + 1;
    let mut bytes: u64 = sizes.values().map(|&(_, b)| b).sum();
    let keep_from = last.saturating_sub(bounds.at_least.max(1)) + 1;
    let mut cut = first;
    while cut < keep_from {
        let (at, size) = sizes.get(&cut).copied().unwrap_or((0, 0));
        let over = count > bounds.ticks
            || now_ms.saturating_sub(at) > bounds.age_ms
            || bytes > bounds.bytes;
        if !over {
            break;
        }
        count -= 1;
        bytes -= size;
        cut += 1;
    }
    let mut freed = 0;
    // A tick's records can be large: a bounded number per transaction, so
    // that a big first pass does not hold the writer (and the next tick) long.
    for chunk_start in (first..cut).step_by(256) {
        let tx = db.write()?;
        for t in chunk_start..cut.min(chunk_start + 256) {
            let k = key::of(&[&slot, &t]);
            tx.remove(LOG, &k)?;
            tx.remove(INDEX, &k)?;
            freed += sizes.get(&t).map_or(0, |&(_, b)| b);
        }
        tx.commit()?;
    }
    Ok((cut - first, freed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_storage::RedbStore;

    fn ticks(db: &RedbStore) -> Vec<(u64, bool)> {
        let entries = db
            .read()
            .unwrap()
            .range(LOG, &key::of(&[&"s"]), None, Order::Ascending, 100)
            .unwrap();
        entries
            .iter()
            .map(|(_, v)| {
                let r: TickRecord<u32, u32> = decode(v).unwrap();
                (r.tick, matches!(r.outcome, Outcome::Failed(_)))
            })
            .collect()
    }

    fn sha(name: &str) -> powerplug_strategy::Sha256 {
        powerplug_strategy::Sha256::of(name.as_bytes())
    }

    fn record(
        tx: &dyn WriteTx,
        slot: &str,
        strategy: &powerplug_strategy::Sha256,
        now_ms: u64,
        input: u32,
        outcome: Outcome<u32>,
    ) -> anyhow::Result<u64> {
        Entry::new(strategy, now_ms, &input, &outcome)?.append(tx, slot)
    }

    /// An entry is put together from parts encoded ahead and compressed: it
    /// reads back as the record (past tick 127, a two-byte number), smaller
    /// than the record when its input repeats itself; a record that claims
    /// more than it can hold is refused before anything is allocated.
    #[test]
    fn an_entry_reads_back_as_its_record_and_a_false_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("log.redb")).unwrap();
        let tx = db.write().unwrap();
        let input: Vec<u64> = (0..10_000).map(|i| 1_700_000_000_000 + i % 3).collect();
        let outcome = Outcome::<String>::Failed("trap".into());
        for _ in 0..130 {
            let decided = Outcome::Decided("fine".to_owned());
            let entry = Entry::new(&sha("a"), 5, &input, &decided).unwrap();
            entry.append(&*tx, "s").unwrap();
        }
        let entry = Entry::new(&sha("a"), 5, &input, &outcome).unwrap();
        assert_eq!(entry.append(&*tx, "s").unwrap(), 131);
        let bytes = tx.get(LOG, &key::of(&[&"s", &131u64])).unwrap().unwrap();
        let read: TickRecord<Vec<u64>, String> = decode(&bytes).unwrap();
        assert_eq!(
            (read.tick, read.strategy, &read.input, &read.outcome),
            (131, sha("a"), &input, &outcome)
        );
        let whole = postcard::to_allocvec(&read).unwrap();
        assert!(
            bytes.len() * 10 < whole.len(),
            "{} of {}",
            bytes.len(),
            whole.len()
        );

        // Tick 1, then a size prefix of 4 GiB in front of a few bytes.
        let mut false_size = vec![0, FORMAT, 1];
        false_size.extend(u32::MAX.to_le_bytes());
        false_size.extend([0x10, b'x']);
        let refused = decode::<TickRecord<Vec<u64>, String>>(&false_size).unwrap_err();
        assert!(refused.to_string().contains("says it holds"), "{refused}");
    }

    #[test]
    fn a_failing_streak_logs_its_first_inputs_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("log.redb")).unwrap();
        let tx = db.write().unwrap();
        let failed = || Outcome::Failed("trap".into());
        record(&*tx, "s", &sha("a"), 0, 1, Outcome::Decided(1)).unwrap();
        for input in 0..FAILURES_LOGGED + 5 {
            record(&*tx, "s", &sha("a"), 0, input as u32, failed()).unwrap();
        }
        // Another version failing starts a streak of its own; a success ends one.
        record(&*tx, "s", &sha("b"), 0, 10, failed()).unwrap();
        record(&*tx, "s", &sha("b"), 0, 11, Outcome::Decided(11)).unwrap();
        record(&*tx, "s", &sha("b"), 0, 12, failed()).unwrap();
        tx.commit().unwrap();
        let n = FAILURES_LOGGED;
        let mut expected = vec![(1, false)];
        expected.extend((2..2 + n).map(|t| (t, true)));
        expected.extend([(n + 2, true), (n + 3, false), (n + 4, true)]);
        assert_eq!(ticks(&db), expected);
        assert_eq!(Counter::TicksFailedUnlogged.read(&db).unwrap(), 5);
    }

    /// Records written before records carried their format still read, as
    /// they were; a record of a newer format is refused by name, not misread.
    #[test]
    fn records_of_the_earlier_formats_read_as_they_were_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbStore::open(&dir.path().join("log.redb")).unwrap();
        let input = |now| crate::books::Books::default().grid_input(now, &[], Default::default());
        // Format 1 as it was written: hashes as strings, and the record's
        // postcard with nothing before it.
        #[derive(Serialize)]
        struct FirstFormat<I, D> {
            tick: u64,
            strategy: String,
            hash: String,
            input: I,
            outcome: Outcome<D>,
        }
        let old = FirstFormat::<_, powerplug_strategy::GridDecision> {
            tick: 1,
            strategy: "a".repeat(64),
            hash: "b".repeat(64),
            input: input(7),
            outcome: Outcome::Failed("trap".into()),
        };
        let first_format = GridTickRecord {
            tick: 1,
            strategy: "a".repeat(64).parse().unwrap(),
            hash: "b".repeat(64).parse().unwrap(),
            input: input(7),
            outcome: Outcome::Failed("trap".into()),
        };
        // Format 2: two bytes, then the record's postcard.
        let second_format = GridTickRecord {
            tick: 2,
            input: input(8),
            ..first_format.clone()
        };
        let tx = db.write().unwrap();
        let old = postcard::to_allocvec(&old).unwrap();
        tx.put(LOG, &key::of(&[&"grid", &1u64]), &old).unwrap();
        let mut second = vec![0, 2];
        second.extend(postcard::to_allocvec(&second_format).unwrap());
        tx.put(LOG, &key::of(&[&"grid", &2u64]), &second).unwrap();
        let tick = record_grid(
            &*tx,
            "grid",
            &sha("c"),
            input(9),
            Outcome::Failed("x".into()),
        );
        assert_eq!(tick.unwrap(), 3);
        tx.commit().unwrap();

        let read = grid_ticks(&db, "grid", 0, 10).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0], first_format);
        assert_eq!(read[1], second_format);
        assert_eq!((read[2].tick, read[2].input.now_ms), (3, 9));

        let tx = db.write().unwrap();
        let mut newer = vec![0, FORMAT + 1];
        newer.extend(&old);
        tx.put(LOG, &key::of(&[&"grid", &4u64]), &newer).unwrap();
        tx.commit().unwrap();
        let refused = grid_ticks(&db, "grid", 0, 10).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("format {}", FORMAT + 1)),
            "{refused}"
        );
    }
}
