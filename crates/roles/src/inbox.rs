//! The inbox: commands read from registered channels (consumer usage and
//! producer output at a grid, source output at a producer), kept once per
//! (entity, start time) as the original did, and pending until a tick that
//! commits consumes them. A failed tick consumes nothing.

use powerplug_domain::EntityKind;
use powerplug_domain::{Tokens, UnixMs, Wh};
use serde::{Deserialize, Serialize};

use std::collections::{HashMap, HashSet};

use crate::counter::Counter;
use crate::registry;
use powerplug_channel::{Address, ChannelReader, MAX_PER_POLL, Source, envelope};
use powerplug_storage::{Order, Store, WriteTx, key};

/// (entity index, start ms) → (end ms, Wh, price): every record ever received.
const RECEIVED: &str = "inbox_received";
/// The received records no tick has consumed yet, with the record too (a
/// tick then reads one small table; rows written before carry none, and are
/// read from [`RECEIVED`]).
const PENDING: &str = "inbox_pending";
/// entity index → start ms: retention deleted the received records below
/// it, so a record starting below it is refused as already received.
const FLOOR: &str = "inbox_floor";

fn encode(r: &Record) -> [u8; 24] {
    let mut out = [0; 24];
    out[..8].copy_from_slice(&r.end_ms.to_be_bytes());
    out[8..16].copy_from_slice(&r.wh.to_be_bytes());
    out[16..].copy_from_slice(&r.price.to_be_bytes());
    out
}

/// A pending row: the record and its sender's kind, so that a tick sorts
/// usage from output without reading a registration per record.
fn encode_pending(r: &Record) -> Vec<u8> {
    let mut out = encode(r).to_vec();
    out.extend(r.kind.map(kind_byte));
    out
}

// A match, not a table: a new kind does not compile until it has a byte.
fn kind_byte(kind: EntityKind) -> u8 {
    match kind {
        EntityKind::Consumer => 0,
        EntityKind::Producer => 1,
        EntityKind::Source => 2,
    }
}

fn byte_kind(byte: u8) -> anyhow::Result<EntityKind> {
    Ok(match byte {
        0 => EntityKind::Consumer,
        1 => EntityKind::Producer,
        2 => EntityKind::Source,
        b => anyhow::bail!("inbox record: kind {b}"),
    })
}

/// A received row (24 bytes) or a pending one (the same and a kind byte).
fn decode(entity: u32, start_ms: u64, bytes: &[u8]) -> anyhow::Result<Record> {
    let kind = match bytes.len() {
        24 => None,
        25 => Some(byte_kind(bytes[24])?),
        n => anyhow::bail!("inbox record: {n} bytes"),
    };
    Ok(Record {
        entity,
        kind,
        start_ms,
        end_ms: key::u64_value(&bytes[..8])?,
        wh: key::u64_value(&bytes[8..16])?,
        price: key::u64_value(&bytes[16..24])?,
    })
}

pub use powerplug_strategy::{MAX_PRICE, MAX_WH};

/// What a record may claim before the host refuses it: an entity is paid (or
/// billed) for what it reports, so a reading far beyond what a meter can see,
/// or dated far from now, is refused at the door (counted `commands-rejected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Plausible {
    /// Energy one record may claim, Wh (at most [`MAX_WH`]).
    pub max_wh: u64,
    /// The longest time one record may cover, ms.
    pub max_span_ms: u64,
    /// How long before the host's clock a record may start, ms; none by
    /// default (meters catch up after an outage, replays bring old records).
    pub max_age_ms: Option<u64>,
    /// How far after the host's clock a record may end, ms (clock skew).
    pub max_ahead_ms: u64,
}

impl Default for Plausible {
    fn default() -> Self {
        Self {
            max_wh: 1_000_000,
            max_span_ms: 3_600_000,
            max_age_ms: None,
            max_ahead_ms: 300_000,
        }
    }
}

impl Plausible {
    fn allows(&self, r: &Record, now_ms: u64) -> bool {
        r.start_ms < r.end_ms
            && r.end_ms - r.start_ms <= self.max_span_ms
            && r.wh <= self.max_wh.min(MAX_WH)
            && r.price <= MAX_PRICE
            && self
                .max_age_ms
                .is_none_or(|age| r.start_ms.saturating_add(age) >= now_ms)
            && r.end_ms <= now_ms.saturating_add(self.max_ahead_ms)
    }
}

/// What travels on channels, as JSON (the original's command payloads,
/// integers: the domain types are written as the bare numbers they wrap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// Source → producer (no price), producer → grid (with its asking price).
    Output {
        start_ms: UnixMs,
        end_ms: UnixMs,
        wh: Wh,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<Tokens>,
    },
    /// Consumer → grid. `read`: where the consumer has read its return
    /// channel, so that the grid may let go of what was read.
    Usage {
        start_ms: UnixMs,
        end_ms: UnixMs,
        wh: Wh,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read: Option<u64>,
    },
    /// Grid → consumer, on its return channel: pay `owed` to `pay_to`.
    PaymentRequest {
        owed: Tokens,
        wh: Wh,
        pay_to: String,
    },
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing a plain enum of integers and strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// A received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub entity: u32,
    /// What the sender was registered as when the record came; `None` for
    /// a pending row a poll kept before rows carried it.
    pub kind: Option<EntityKind>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub wh: u64,
    pub price: u64,
}

/// The record a command from an entity of `kind` carries, if it is one this
/// host takes from that kind and its numbers are plausible now.
fn record(
    kind: EntityKind,
    entity: u32,
    command: Command,
    plausible: &Plausible,
    now_ms: u64,
) -> Option<Record> {
    let (start_ms, end_ms, wh, price) = match (kind, command) {
        (
            EntityKind::Consumer,
            Command::Usage {
                start_ms,
                end_ms,
                wh,
                ..
            },
        ) => (start_ms, end_ms, wh, Tokens::ZERO),
        (
            EntityKind::Producer,
            Command::Output {
                start_ms,
                end_ms,
                wh,
                price: Some(price),
            },
        ) => (start_ms, end_ms, wh, price),
        (
            EntityKind::Source,
            Command::Output {
                start_ms,
                end_ms,
                wh,
                price: None,
            },
        ) => (start_ms, end_ms, wh, Tokens::ZERO),
        _ => return None,
    };
    // Inside the host a record is plain integers, as the strategies see it.
    let r = Record {
        entity,
        kind: Some(kind),
        start_ms: start_ms.get(),
        end_ms: end_ms.get(),
        wh: wh.get(),
        price: price.get(),
    };
    plausible.allows(&r, now_ms).then_some(r)
}

/// What one poll of the registered channels did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Polled {
    pub records: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub closed: u64,
    /// Next addresses of channels this poll did not finish (more than one
    /// poll's worth, or the store failed): read them again next round.
    pub unfinished: Vec<Address>,
}

/// Which channels a poll reads: those whose next address was written, and
/// a page of a sweep over every registration (the sweep finds what a missed
/// notice would leave waiting; the hub pages it so that a round costs the
/// same with ten thousand registrations or a million).
pub struct Due<'a> {
    pub moved: &'a HashSet<Address>,
    pub sweep: Vec<registry::Registration>,
}

/// The messages a poll gathered from its source, to check on every core.
struct Gathered {
    messages: HashMap<Address, Vec<Vec<u8>>>,
    signed: Signed,
}

/// Which of the gathered messages' signatures are known to be good.
enum Signed {
    /// Every one: the store's door checked them.
    AtTheDoor,
    /// Those found good together: (author, address, position).
    Checking(HashSet<([u8; 32], Address, usize)>),
}

/// Checks the signatures of the messages gathered for `channels`, in batches
/// on every core (Ed25519 batch verification costs about half of checking
/// one at a time, as each reader would otherwise): those found good.
fn check_signatures(
    messages: &HashMap<Address, Vec<Vec<u8>>>,
    channels: &[registry::Registration],
) -> HashSet<([u8; 32], Address, usize)> {
    use rayon::prelude::*;
    let mut claims = Vec::new();
    let mut places = Vec::new();
    for r in channels {
        let root = &r.channel.root;
        for index in r.read_index.. {
            let address = Address::of(root, index);
            let Some(there) = messages.get(&address) else {
                break;
            };
            let next = Address::of(root, index.saturating_add(1));
            for (position, bytes) in there.iter().enumerate() {
                claims.push(envelope::Claim {
                    author: &r.channel.author,
                    address,
                    next,
                    bytes,
                });
                places.push((r.channel.author, address, position));
            }
        }
    }
    (claims.par_chunks(64).zip(places.par_chunks(64)))
        .flat_map_iter(|(claims, places)| {
            (envelope::are_signed(claims).into_iter().zip(places))
                .filter_map(|(good, place)| good.then_some(*place))
        })
        .collect()
}

impl Source for Gathered {
    fn messages(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        Ok(self.messages.get(address).cloned().unwrap_or_default())
    }

    fn signed(&self, author: &[u8; 32], address: &Address, position: usize) -> bool {
        match &self.signed {
            Signed::AtTheDoor => true,
            Signed::Checking(good) => good.contains(&(*author, *address, position)),
        }
    }
}

/// What one channel's read found, before it is stored.
struct Read {
    registration: registry::Registration,
    reader: ChannelReader,
    poll: powerplug_channel::Poll,
}

/// Reads the due channels from where they stopped and stores what is new,
/// with the readers' new positions, in one transaction. The messages are
/// fetched first, then checked (signature, link, decryption) in parallel;
/// the signatures not again where `door_checked`: the source is a store
/// whose door checked each message for the one channel its address is on.
pub fn poll(
    db: &dyn Store,
    source: &dyn Source,
    due: Due<'_>,
    door_checked: bool,
    plausible: &Plausible,
    now_ms: u64,
) -> anyhow::Result<Polled> {
    use rayon::prelude::*;
    let mut polled = Polled::default();
    let mut records = Vec::new();
    let mut acks = std::collections::BTreeMap::new();
    let mut channels = registry::at_next(&*db.read()?, due.moved)?;
    let named: HashSet<String> = channels.iter().map(|r| r.id.clone()).collect();
    channels.extend((due.sweep.into_iter()).filter(|r| !r.closed && !named.contains(&r.id)));
    // The next address of each and the one after, where most channels' news
    // ends: read at once, not one round trip each.
    let mut ahead = Vec::with_capacity(channels.len() * 2);
    for r in &channels {
        ahead.push(Address::of(&r.channel.root, r.read_index));
        ahead.push(Address::of(&r.channel.root, r.read_index.saturating_add(1)));
    }
    source.prefetch(&ahead)?;
    let mut gathered = HashMap::new();
    let mut readable = Vec::with_capacity(channels.len());
    'channels: for r in channels {
        for index in r.read_index..r.read_index.saturating_add(MAX_PER_POLL as u64 + 1) {
            let address = Address::of(&r.channel.root, index);
            match source.messages(&address) {
                Ok(there) if there.is_empty() => break,
                Ok(there) => gathered.insert(address, there),
                Err(_) => {
                    polled
                        .unfinished
                        .push(Address::of(&r.channel.root, r.read_index));
                    continue 'channels;
                }
            };
        }
        readable.push(r);
    }
    let signed = match door_checked {
        true => Signed::AtTheDoor,
        false => Signed::Checking(check_signatures(&gathered, &readable)),
    };
    let gathered = Gathered {
        messages: gathered,
        signed,
    };
    let read: Vec<Read> = readable
        .into_par_iter()
        .filter_map(|registration| {
            let mut reader = ChannelReader::resume_at(
                &registration.channel,
                registration.read_index,
                registration.examined as usize,
            )
            .ok()?;
            // A channel that stopped making sense is skipped; the others go on.
            let poll = reader.poll(&gathered).ok()?;
            Some(Read {
                registration,
                reader,
                poll,
            })
        })
        .collect();
    let mut changed = Vec::new();
    for Read {
        mut registration,
        reader,
        poll,
    } in read
    {
        if poll.data.len() >= MAX_PER_POLL {
            polled
                .unfinished
                .push(Address::of(&registration.channel.root, reader.next_index()));
        }
        if reader.next_index() == registration.read_index && poll.dropped == 0 {
            continue;
        }
        for data in poll.data {
            let command = Command::decode(&data);
            if let Some(Command::Usage {
                read: Some(read), ..
            }) = &command
            {
                let ack = acks.entry(registration.id.clone()).or_insert(0);
                *ack = (*ack).max(*read);
            }
            match command
                .and_then(|c| record(registration.kind, registration.index, c, plausible, now_ms))
            {
                Some(r) => records.push(r),
                None => {
                    registration.rejected += 1;
                    polled.rejected += 1;
                }
            }
        }
        registration.dropped += poll.dropped as u64;
        registration.read_index = reader.next_index();
        registration.examined = reader.examined() as u64;
        polled.dropped += poll.dropped as u64;
        if poll.closed {
            polled.closed += 1;
        }
        changed.push((registration, poll.closed));
    }
    if changed.is_empty() {
        return Ok(polled);
    }
    // Written in key order: a B-tree takes a batch in order page by page
    // (see `wallet::receive_addresses`); channels come in address order.
    records.sort_unstable_by_key(|r| (r.entity, r.start_ms));
    changed.sort_unstable_by(|a, b| a.0.id.cmp(&b.0.id));
    let tx = db.write()?;
    crate::retention::acknowledge(&*tx, &acks)?;
    // One round trip for all of them on a networked store.
    let floor_keys: Vec<Vec<u8>> = records.iter().map(|r| key::of(&[&r.entity])).collect();
    tx.prefetch(FLOOR, &floor_keys)?;
    let received: Vec<Vec<u8>> = records
        .iter()
        .map(|r| key::of(&[&r.entity, &r.start_ms]))
        .collect();
    tx.prefetch(RECEIVED, &received)?;
    registry::prefetch(&*tx, changed.iter().map(|(r, _)| r.id.as_str()))?;
    let mut floors = std::collections::HashMap::new();
    for r in records {
        let k = key::of(&[&r.entity, &r.start_ms]);
        let floor = match floors.get(&r.entity) {
            Some(&floor) => floor,
            None => *floors.entry(r.entity).or_insert(floor_in(&*tx, r.entity)?),
        };
        if r.start_ms < floor || tx.get(RECEIVED, &k)?.is_some() {
            polled.duplicates += 1;
            continue;
        }
        tx.put(RECEIVED, &k, &encode(&r))?;
        tx.put(PENDING, &k, &encode_pending(&r))?;
        polled.records += 1;
    }
    let mut tally = registry::Tally::default();
    for (polled_as, closed) in changed {
        // The registration may have changed since it was read (a reset, a
        // removal): then what was read of the old channel stays recorded above,
        // but the new registration is not overwritten with the old one.
        let Some(mut current) = registry::read(&*tx, &polled_as.id)? else {
            continue;
        };
        if current.channel != polled_as.channel || current.closed {
            continue;
        }
        let before = current.clone();
        current.read_index = polled_as.read_index;
        current.examined = polled_as.examined;
        current.dropped = polled_as.dropped;
        current.rejected = polled_as.rejected;
        if closed {
            registry::close(&*tx, &mut current)?;
        }
        registry::put_changed(&*tx, Some(&before), &current, &mut tally)?;
    }
    tally.write(&*tx)?;
    Counter::RecordsReceived.add(&*tx, polled.records)?;
    Counter::RecordsDuplicate.add(&*tx, polled.duplicates)?;
    Counter::MessagesDropped.add(&*tx, polled.dropped)?;
    Counter::CommandsRejected.add(&*tx, polled.rejected)?;
    tx.commit()?;
    Ok(polled)
}

fn floor_in(tx: &dyn powerplug_storage::ReadTx, entity: u32) -> anyhow::Result<u64> {
    match tx.get(FLOOR, &key::of(&[&entity]))? {
        Some(bytes) => key::u64_value(&bytes),
        None => Ok(0),
    }
}

/// Retention: deletes the received records that ended before `before_ms`
/// and that a tick consumed, entity by entity (the oldest first, so each
/// entity's scan stops at its first record to keep), and raises each
/// entity's floor past them. Meters send their slices in order, so a
/// reading that is new always starts above the floor. The records deleted.
pub fn forget_received(db: &dyn Store, before_ms: u64) -> anyhow::Result<u64> {
    let mut deleted = 0;
    let mut from = Some(Vec::new());
    while from.is_some() {
        // A thousand entities per transaction: few disk syncs, short holds.
        let tx = db.write()?;
        for _ in 0..1_000 {
            let Some(start) = from.take() else { break };
            let Some((first, _)) = tx.range(RECEIVED, &start, None, Order::Ascending, 1)?.pop()
            else {
                break;
            };
            let prefix = key::of(&[&key::Reader::new(&first).u32()?]);
            deleted += forget_entity(&*tx, &prefix, before_ms)?;
            from = key::after_prefix(&prefix);
        }
        tx.commit()?;
    }
    Ok(deleted)
}

/// One entity's part of [`forget_received`]: pages of its oldest records
/// until the first to keep, so a pass reads little more than it deletes.
fn forget_entity(tx: &dyn WriteTx, prefix: &[u8], before_ms: u64) -> anyhow::Result<u64> {
    const PAGE: usize = 64;
    let mut floor = None;
    let mut deleted = 0;
    let end = key::after_prefix(prefix);
    'pages: loop {
        let page = tx.range(RECEIVED, prefix, end.as_deref(), Order::Ascending, PAGE)?;
        let full = page.len() == PAGE;
        for (k, v) in page {
            let mut r = key::Reader::new(&k);
            let (entity, start_ms) = (r.u32()?, r.u64()?);
            if decode(entity, start_ms, &v)?.end_ms >= before_ms || tx.get(PENDING, &k)?.is_some() {
                break 'pages;
            }
            tx.delete(RECEIVED, &k)?;
            floor = Some(start_ms + 1);
            deleted += 1;
        }
        if !full {
            break;
        }
    }
    if let Some(floor) = floor {
        tx.put(FLOOR, prefix, &floor.to_be_bytes())?;
    }
    Ok(deleted)
}

/// Pending records, oldest entity-and-start first, at most `limit`.
pub fn pending(db: &dyn Store, limit: usize) -> anyhow::Result<Vec<Record>> {
    let tx = db.read()?;
    let mut out = Vec::new();
    let pending = tx.range(PENDING, &[], None, Order::Ascending, limit)?;
    let older: Vec<Vec<u8>> = (pending.iter())
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    tx.prefetch(RECEIVED, &older)?;
    for (k, v) in pending {
        let mut r = key::Reader::new(&k);
        let (entity, start_ms) = (r.u32()?, r.u64()?);
        let v = match v.is_empty() {
            true => tx.get(RECEIVED, &k)?,
            false => Some(v),
        };
        if let Some(v) = v {
            out.push(decode(entity, start_ms, &v)?);
        }
    }
    Ok(out)
}

/// Marks records consumed, inside the tick's transaction.
pub fn consume(tx: &dyn WriteTx, records: &[Record]) -> anyhow::Result<()> {
    for r in records {
        tx.remove(PENDING, &key::of(&[&r.entity, &r.start_ms]))?;
    }
    Ok(())
}

/// Wh per entity of every record a tick has consumed (received, not
/// pending), in a transaction: what a grid that counted nothing yet had
/// handed its strategies.
pub fn consumed_wh(tx: &dyn powerplug_storage::ReadTx) -> anyhow::Result<Vec<(u32, u64)>> {
    let mut out: Vec<(u32, u64)> = Vec::new();
    for (k, v) in tx.range(RECEIVED, &[], None, Order::Ascending, usize::MAX)? {
        if tx.get(PENDING, &k)?.is_some() {
            continue;
        }
        let mut r = key::Reader::new(&k);
        let (entity, start_ms) = (r.u32()?, r.u64()?);
        let wh = decode(entity, start_ms, &v)?.wh;
        match out.last_mut() {
            Some((e, sum)) if *e == entity => *sum = sum.saturating_add(wh),
            _ => out.push((entity, wh)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod signature_tests {
    use super::*;
    use powerplug_channel::{ChannelWriter, Message};

    /// Checked together, the good signatures pass and a forgery among them
    /// (another key's message at a channel's address, the same channel's
    /// message claimed for another channel on its root) does not.
    #[test]
    fn a_batch_finds_the_good_signatures_and_not_a_forgery_among_them() {
        let key = |seed| ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let mut alice = ChannelWriter::new(key(1), true).unwrap();
        let info = alice.info();
        let mut mallory = ChannelWriter::resume(key(2), info.root, info.side_key, 0);
        let mut messages: HashMap<Address, Vec<Vec<u8>>> = HashMap::new();
        let mut keep = |sealed: powerplug_channel::Sealed| {
            messages
                .entry(sealed.address)
                .or_default()
                .push(sealed.bytes)
        };
        keep(mallory.prepare(Message::Hello).unwrap());
        keep(alice.prepare(Message::Hello).unwrap());
        for n in 0..100u8 {
            keep(alice.prepare(Message::Data(vec![n])).unwrap());
        }
        let registration = |id: &str, author: &ed25519_dalek::SigningKey| registry::Registration {
            id: id.to_owned(),
            index: 0,
            kind: EntityKind::Consumer,
            channel: powerplug_channel::ChannelInfo {
                author: author.verifying_key().to_bytes(),
                ..info.clone()
            },
            read_index: 0,
            examined: 0,
            closed: false,
            dropped: 0,
            rejected: 0,
            return_channel: None,
        };
        let channels = [
            registration("alice", &key(1)),
            registration("mallory", &key(2)),
        ];
        let good = check_signatures(&messages, &channels);
        let (a, m) = (
            key(1).verifying_key().to_bytes(),
            key(2).verifying_key().to_bytes(),
        );
        let hello = Address::of(&info.root, 0);
        assert!(good.contains(&(a, hello, 1)) && good.contains(&(m, hello, 0)));
        assert!(!good.contains(&(a, hello, 0)) && !good.contains(&(m, hello, 1)));
        for index in 1..=100 {
            let at = Address::of(&info.root, index);
            assert!(good.contains(&(a, at, 0)), "alice's message {index}");
            assert!(
                !good.contains(&(m, at, 0)),
                "alice's {index} is not mallory's"
            );
        }
        assert_eq!(good.len(), 102);
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;

    /// As a poll keeps it; entity 2's as a poll did before pending rows
    /// carried the record, entity 3's before they carried its kind.
    fn receive(tx: &dyn WriteTx, r: &Record) {
        let k = key::of(&[&r.entity, &r.start_ms]);
        tx.put(RECEIVED, &k, &encode(r)).unwrap();
        let pending = match r.entity {
            2 => Vec::new(),
            3 => encode(r).to_vec(),
            _ => encode_pending(r),
        };
        tx.put(PENDING, &k, &pending).unwrap();
    }

    /// What a tick consumed and what ended long enough ago goes; what no tick
    /// consumed stays however old; the floor then refuses a resend of what
    /// went, so it cannot be billed twice.
    #[test]
    fn received_records_go_once_consumed_and_old_and_the_floor_refuses_them_after() {
        let db = powerplug_storage::RedbStore::in_memory().unwrap();
        let record = |entity, slice: u64| Record {
            entity,
            kind: (entity == 1).then_some(EntityKind::Consumer),
            start_ms: slice * 30_000,
            end_ms: (slice + 1) * 30_000,
            wh: 10,
            price: 0,
        };
        let tx = db.write().unwrap();
        for slice in 0..10 {
            receive(&*tx, &record(1, slice));
            receive(&*tx, &record(2, slice));
            if slice < 2 {
                receive(&*tx, &record(3, slice));
            }
        }
        // Entity 1's first 6 and entity 2's first 3 were ticked.
        let consumed: Vec<Record> = (0..6)
            .map(|s| record(1, s))
            .chain((0..3).map(|s| record(2, s)))
            .collect();
        consume(&*tx, &consumed).unwrap();
        tx.commit().unwrap();

        // Ended before slice 5's end: entity 1's slices 0–4, entity 2's 0–2.
        assert_eq!(forget_received(&db, 5 * 30_000 + 1).unwrap(), 8);
        let read = db.read().unwrap();
        assert_eq!(floor_in(&*read, 1).unwrap(), 4 * 30_000 + 1);
        assert_eq!(floor_in(&*read, 2).unwrap(), 2 * 30_000 + 1);
        assert_eq!(floor_in(&*read, 3).unwrap(), 0);
        drop(read);
        let left: Vec<Record> = (6..10)
            .map(|s| record(1, s))
            .chain((3..10).map(|s| record(2, s)))
            .chain((0..2).map(|s| record(3, s)))
            .collect();
        assert_eq!(pending(&db, 100).unwrap(), left, "the three layouts read");
        // Nothing more is old enough: a second pass deletes nothing.
        assert_eq!(forget_received(&db, 5 * 30_000 + 1).unwrap(), 0);
    }
}
