//! Registrations: the entities that publish to this host (consumers and
//! producers at a grid, sources at a producer) and the credential each one must
//! present for every later change.
//!
//! A credential is an HMAC of the entity's id and channel root under the host's
//! secret, written `id.mac`: registering the same channel again gives the same
//! credential (a registrant that crashed before saving it just asks again), and
//! the host stores no password. Changing the channel of a registered id (a
//! reset) or removing it needs the current credential.

use std::collections::{HashMap, HashSet};

use hmac::{Hmac, Mac};
pub use powerplug_domain::EntityKind;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::admission::{self, AdmissionError};
use crate::counter::Counter;
use crate::outbox;
use powerplug_channel::{Address, ChannelInfo, ChannelWriter, Message, envelope};
use powerplug_storage::{Order, ReadTx, Store, WriteTx, key, last, valid_name};

const REGISTRATIONS: &str = "registrations";
const BY_INDEX: &str = "registration_index";
/// Author key → the id whose channel it writes: how the channel store finds
/// the channel an outside message claims to be on.
const BY_AUTHOR: &str = "registration_authors";
/// Ids that deregistered: who they were, so nobody else can take them over.
const TOMBSTONES: &str = "registration_tombstones";
/// The next address of each open channel → its id: how a poll finds the
/// channels that were written to without reading every registration.
const BY_NEXT: &str = "registration_next";
/// Set once [`BY_NEXT`] and [`SUMMARY`] hold every registration.
const BY_NEXT_BUILT: &str = "registry/by-next";
/// Kind → [`Summary`].
const SUMMARY: &str = "registration_summary";
/// Entities that joined or left since the last tick: (index, joined?) → ().
const NEWS: &str = "registration_news";
/// Channel root → [`Holder`]: the entities' channels and the host's return
/// channels. A reader reads by root, so two channels with one root would
/// read each other's addresses (the first to write an address would block
/// the other there); and a root stays its channel's after a reset or a
/// goodbye until retention has forgotten the channel's messages
/// ([`release_root`]), so nobody reads them as their own.
const BY_ROOT: &str = "registration_roots";
/// Set once [`BY_ROOT`] holds every root: `true` if no two channels shared
/// one when it was built (a store from before roots were kept apart).
const BY_ROOT_BUILT: &str = "registry/by-root";

/// Where the host's own return channels are delivered: its own store.
pub const LOCAL: &str = "local";

impl Registration {
    /// What a registration answers (and `GET /registrations/{id}`): the
    /// credential only to a `PUT`, the return channel under the host's key.
    pub fn answer(
        &self,
        credential: Option<String>,
        host_key: &[u8; 32],
    ) -> crate::api::Registered {
        crate::api::Registered {
            id: self.id.clone(),
            index: self.index,
            kind: self.kind,
            credential,
            return_channel: self.return_channel.as_ref().map(|w| crate::api::Channel {
                root: hex::encode(w.root),
                author: hex::encode(host_key),
                side_key: w.side_key.map(hex::encode),
            }),
            return_next: self.return_channel.as_ref().map(|w| w.next_index),
            read_index: self.read_index,
            closed: self.closed,
            dropped: self.dropped,
            rejected: self.rejected,
        }
    }
}

/// A channel this host writes: its key signs, so only root, side key and
/// position are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterState {
    pub root: [u8; 32],
    pub side_key: Option<[u8; 32]>,
    pub next_index: u64,
}

impl WriterState {
    pub fn of(writer: &ChannelWriter) -> Self {
        let info = writer.info();
        Self {
            root: info.root,
            side_key: info.side_key,
            next_index: writer.next_index(),
        }
    }

    pub fn writer(&self, key: &ed25519_dalek::SigningKey) -> ChannelWriter {
        ChannelWriter::resume(key.clone(), self.root, self.side_key, self.next_index)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    /// The entity's number in strategy inputs; kept across resets.
    pub index: u32,
    pub kind: EntityKind,
    pub channel: ChannelInfo,
    /// Where the reader of `channel` continues.
    pub read_index: u64,
    /// Invalid messages already counted at `read_index`.
    pub examined: u64,
    /// The entity said goodbye: nothing more is read.
    pub closed: bool,
    /// Messages at the channel's addresses that failed their checks.
    pub dropped: u64,
    /// Commands that were valid messages but not valid commands.
    pub rejected: u64,
    /// The channel this host writes back on (consumers: payment requests).
    /// Its position as it moves on is kept in [`crate::returns`].
    pub return_channel: Option<WriterState>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("id: 1 to 64 of A-Z a-z 0-9 _ - . , not starting with a dot")]
    BadId,
    #[error("id: `{0}` is this host's own")]
    ReservedId(String),
    #[error("kind: this host does not take {0:?} registrations")]
    WrongKind(EntityKind),
    #[error("kind: `{0}` is registered as {1:?}")]
    KindChanged(String, EntityKind),
    #[error("credential: missing or not valid for `{0}`")]
    Unauthorized(String),
    #[error("id: `{0}` is not registered")]
    Unknown(String),
    #[error(
        "id: `{0}` left; only its last key (or a token the operator issued for it) brings it back"
    )]
    Tombstoned(String),
    #[error("channel.author: the key already writes `{0}`'s channel")]
    AuthorTaken(String),
    #[error(
        "channel.root: another channel has this root (a root stays one channel's until retention has forgotten its messages)"
    )]
    RootTaken,
    #[error("hello: {0}")]
    Hello(&'static str),
    #[error("{0}")]
    Admission(#[from] AdmissionError),
    #[error("storage: {0:#}")]
    Storage(#[from] anyhow::Error),
}

impl RegistryError {
    /// The request field the error is about (`""`: none, a fault of ours).
    pub fn field(&self) -> &'static str {
        match self {
            Self::BadId | Self::ReservedId(_) | Self::Unknown(_) | Self::Tombstoned(_) => "id",
            Self::WrongKind(_) | Self::KindChanged(..) => "kind",
            Self::Unauthorized(_) => "credential",
            Self::AuthorTaken(_) => "channel.author",
            Self::RootTaken => "channel.root",
            Self::Hello(_) => "hello",
            Self::Admission(_) => "admission",
            Self::Storage(_) => "",
        }
    }
}

impl From<postcard::Error> for RegistryError {
    fn from(e: postcard::Error) -> Self {
        RegistryError::Storage(e.into())
    }
}

/// What a host needs to run its registry.
pub struct Registry {
    secret: [u8; 32],
    key: ed25519_dalek::SigningKey,
    own_id: String,
    accepts: Vec<EntityKind>,
    admission: admission::Policy,
}

/// What an entity sends to register (`PUT /registrations/{id}`).
pub struct Application<'a> {
    pub kind: EntityKind,
    pub channel: ChannelInfo,
    /// The channel's first message, sealed: a new channel opens with it.
    pub hello: Option<&'a [u8]>,
    /// The id's current credential: needed to change its channel (a reset).
    pub credential: Option<&'a str>,
    /// A registration token from the operator, where admission needs one.
    pub admission: Option<&'a str>,
}

/// What the registry keeps of an id that left.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tombstone {
    author: [u8; 32],
    kind: EntityKind,
    index: u32,
}

/// Whose a channel root is: the id and the channel's author (the host's key
/// for a return channel; nobody's, all zeros, for a channel that retired
/// before roots were kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    id: String,
    author: [u8; 32],
}

/// What a registration answers.
#[derive(Debug, Clone)]
pub struct Registered {
    pub registration: Registration,
    pub credential: String,
    /// False when the same channel was registered before (idempotent repeat).
    pub changed: bool,
}

impl Registry {
    pub fn new(
        secret: [u8; 32],
        key: ed25519_dalek::SigningKey,
        own_id: &str,
        accepts: &[EntityKind],
        admission: admission::Policy,
    ) -> Self {
        Self {
            secret,
            key,
            own_id: own_id.to_owned(),
            accepts: accepts.to_vec(),
            admission,
        }
    }

    fn mac(&self, id: &str, root: &[u8; 32]) -> Hmac<Sha256> {
        // The key is 32 bytes; HMAC takes any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(b"powerplug/credential/v1");
        mac.update(&(id.len() as u64).to_be_bytes());
        mac.update(id.as_bytes());
        mac.update(root);
        mac
    }

    fn credential(&self, id: &str, root: &[u8; 32]) -> String {
        format!(
            "{id}.{}",
            hex::encode(self.mac(id, root).finalize().into_bytes())
        )
    }

    /// The registration a credential belongs to, if it is valid now.
    pub fn authenticate(
        &self,
        db: &dyn Store,
        credential: &str,
    ) -> Result<Registration, RegistryError> {
        self.authenticate_in(&*db.read()?, credential)
    }

    /// [`Registry::authenticate`] as `tx` sees the registration.
    fn authenticate_in(
        &self,
        tx: &dyn ReadTx,
        credential: &str,
    ) -> Result<Registration, RegistryError> {
        let unauthorized = || RegistryError::Unauthorized(String::new());
        let (id, mac) = credential.rsplit_once('.').ok_or_else(unauthorized)?;
        let mac = hex::decode(mac).map_err(|_| unauthorized())?;
        let mut registration =
            read(tx, id)?.ok_or_else(|| RegistryError::Unauthorized(id.to_owned()))?;
        self.mac(id, &registration.channel.root)
            .verify_slice(&mac)
            .map_err(|_| RegistryError::Unauthorized(id.to_owned()))?;
        crate::returns::current(tx, &mut registration)?;
        Ok(registration)
    }

    /// Registers `id` with the application's channel. The same channel again
    /// is a no-op; a new channel for a known id is a reset and needs the id's
    /// current credential: the old return channel says goodbye, a new one
    /// opens, the index is kept. A new channel must come with its hello, which
    /// is stored in the same transaction. A new id needs admission; an id that
    /// left comes back only with its last key or a token issued for it.
    pub fn register(
        &self,
        db: &dyn Store,
        id: &str,
        application: Application,
    ) -> Result<Registered, RegistryError> {
        let (kind, author) = (application.kind, application.channel.author);
        match self.register_now(db, id, application) {
            // Kept for the operator, outside the refused registration's
            // transaction.
            Err(RegistryError::Admission(AdmissionError::Waiting(id))) => {
                let asked = admission::Asked {
                    kind,
                    author,
                    asked_ms: crate::role::unix_ms(),
                };
                admission::ask(db, &id, &asked)??;
                Err(AdmissionError::Waiting(id).into())
            }
            answer => answer,
        }
    }

    fn register_now(
        &self,
        db: &dyn Store,
        id: &str,
        application: Application,
    ) -> Result<Registered, RegistryError> {
        let tx = db.write()?;
        let registered = self.register_in(&*tx, id, application)?;
        if registered.changed {
            tx.commit()?;
        }
        Ok(registered)
    }

    /// Registers many entities in one transaction, all or none: for importing
    /// a community's meters at once (a million registrations one commit each
    /// would take hours). The same rules as [`Self::register`]; an entity that
    /// must wait for approval fails the batch instead of waiting.
    pub fn register_batch(
        &self,
        db: &dyn Store,
        applications: Vec<(&str, Application)>,
    ) -> Result<Vec<Registered>, RegistryError> {
        let tx = db.write()?;
        let registered = applications
            .into_iter()
            .map(|(id, application)| self.register_in(&*tx, id, application))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(registered)
    }

    fn register_in(
        &self,
        tx: &dyn WriteTx,
        id: &str,
        application: Application,
    ) -> Result<Registered, RegistryError> {
        let Application {
            kind,
            channel,
            hello,
            credential: presented,
            admission: token,
        } = application;
        if !valid_name(id) {
            return Err(RegistryError::BadId);
        }
        if id == self.own_id {
            return Err(RegistryError::ReservedId(id.to_owned()));
        }
        if !self.accepts(kind) {
            return Err(RegistryError::WrongKind(kind));
        }
        let mut old = read(tx, id)?;
        if let Some(old) = old.as_mut() {
            crate::returns::current(tx, old)?;
        }
        if let Some(old) = &old
            && old.kind != kind
        {
            return Err(RegistryError::KindChanged(id.to_owned(), old.kind));
        }
        if let Some(old) = &old
            && old.channel == channel
            && !old.closed
        {
            let credential = self.credential(id, &old.channel.root);
            return Ok(Registered {
                registration: old.clone(),
                credential,
                changed: false,
            });
        }
        if let Some(writer) = author_of(tx, &channel.author)?
            && writer != id
        {
            return Err(RegistryError::AuthorTaken(writer));
        }
        hold_root(tx, &channel.root, id, &channel.author)?;
        let hello = hello.ok_or(RegistryError::Hello("a new channel needs its hello"))?;
        check_hello(&channel, hello)?;
        let before = old.clone();
        let registration = match old {
            Some(old) => self.reset(tx, old, channel, presented)?,
            None => self.newcomer(tx, id, kind, channel, token)?,
        };
        powerplug_channel::store_in(tx, &Address::of(&registration.channel.root, 0), hello)?;
        // The hello is in the store: every host's next poll reads the channel.
        let next = Address::of(&registration.channel.root, registration.read_index);
        powerplug_channel::note_written(tx, &[next])?;
        tx.put(
            BY_AUTHOR,
            &key::of(&[&registration.channel.author]),
            id.as_bytes(),
        )?;
        news(tx, registration.index, true)?;
        let mut tally = Tally::default();
        put_changed(tx, before.as_ref(), &registration, &mut tally)?;
        tally.write(tx)?;
        Counter::Registrations.add(tx, 1)?;
        let credential = self.credential(id, &registration.channel.root);
        Ok(Registered {
            registration,
            credential,
            changed: true,
        })
    }

    /// A registered entity moves to a new channel: only with its current
    /// credential. Its old return channel says goodbye; it keeps its index.
    fn reset(
        &self,
        tx: &dyn WriteTx,
        old: Registration,
        channel: ChannelInfo,
        presented: Option<&str>,
    ) -> Result<Registration, RegistryError> {
        let valid = presented == Some(self.credential(&old.id, &old.channel.root).as_str());
        if !valid {
            return Err(RegistryError::Unauthorized(old.id.clone()));
        }
        if let Some(back) = &old.return_channel {
            self.say(tx, back, Message::Goodbye)?;
        }
        if !old.closed {
            news(tx, old.index, false)?;
        }
        tx.remove(BY_AUTHOR, &key::of(&[&old.channel.author]))?;
        crate::retention::retire(tx, &old)?;
        Ok(Registration {
            channel,
            read_index: 0,
            examined: 0,
            closed: false,
            return_channel: self.open_return(tx, &old.id, old.kind, old.index)?,
            ..old
        })
    }

    /// An id this host holds no registration of: new (admitted by the
    /// host's rule), or one that deregistered (its index back, to its last
    /// key or to a token issued for that very id).
    fn newcomer(
        &self,
        tx: &dyn WriteTx,
        id: &str,
        kind: EntityKind,
        channel: ChannelInfo,
        token: Option<&str>,
    ) -> Result<Registration, RegistryError> {
        let index = match tombstone(tx, id)? {
            // Its last key proves it is the same entity; anyone else
            // needs a token the operator issued for this very id.
            Some(t) if t.kind != kind => {
                return Err(RegistryError::KindChanged(id.to_owned(), t.kind));
            }
            Some(t) if t.author == channel.author => t.index,
            Some(t) => match token {
                Some(_) => {
                    self.admit(tx, token, kind, id, true, &channel.author)?;
                    t.index
                }
                None => return Err(RegistryError::Tombstoned(id.to_owned())),
            },
            None => {
                self.admit(tx, token, kind, id, false, &channel.author)?;
                let index = match last(tx, BY_INDEX, &[])? {
                    Some((k, _)) => key::Reader::new(&k).u32()? + 1,
                    None => 0,
                };
                tx.put(BY_INDEX, &key::of(&[&index]), id.as_bytes())?;
                index
            }
        };
        tx.remove(TOMBSTONES, &key::of(&[&id]))?;
        Ok(Registration {
            id: id.to_owned(),
            index,
            kind,
            channel,
            read_index: 0,
            examined: 0,
            closed: false,
            dropped: 0,
            rejected: 0,
            return_channel: self.open_return(tx, id, kind, index)?,
        })
    }

    /// Admits a new `id` by the host's rule for `kind`; `bound`: only a token
    /// issued for this very id will do.
    fn admit(
        &self,
        tx: &dyn WriteTx,
        token: Option<&str>,
        kind: EntityKind,
        id: &str,
        bound: bool,
        author: &[u8; 32],
    ) -> Result<(), RegistryError> {
        match (bound, self.admission.rule(kind), token) {
            (false, admission::Rule::Open, _) => return Ok(()),
            (false, admission::Rule::Approve, None) => {
                return match admission::take_approval(tx, id, kind, author)? {
                    true => Ok(()),
                    false => Err(AdmissionError::Waiting(id.to_owned()).into()),
                };
            }
            _ => {}
        }
        admission::spend(tx, token, kind, id, bound)??;
        Ok(())
    }

    /// Removes a registration (the original's DELETE): the entity leaves the
    /// next tick and its return channel says goodbye. Its index stays
    /// reserved, and a tombstone keeps its key: only that key, or the
    /// operator, may bring the id back (with its balance and documents).
    pub fn remove(&self, db: &dyn Store, credential: &str) -> Result<Registration, RegistryError> {
        // Read in the transaction that removes it: a poll may close it (its
        // goodbye) in between, and the per-kind summary and the news must
        // undo what is stored, not what was read before (a closed producer
        // stayed counted as closed for good).
        let tx = db.write()?;
        let registration = self.authenticate_in(&*tx, credential)?;
        if let Some(back) = &registration.return_channel {
            self.say(&*tx, back, Message::Goodbye)?;
        }
        if !registration.closed {
            news(&*tx, registration.index, false)?;
        }
        tx.remove(REGISTRATIONS, &key::of(&[&registration.id]))?;
        crate::returns::forget(&*tx, registration.index)?;
        if let Some(next) = next_address(&registration) {
            tx.remove(BY_NEXT, &next.0)?;
        }
        let mut tally = Tally::default();
        tally.change(Some(&registration), None);
        tally.write(&*tx)?;
        tx.remove(BY_AUTHOR, &key::of(&[&registration.channel.author]))?;
        crate::retention::retire(&*tx, &registration)?;
        let stone = Tombstone {
            author: registration.channel.author,
            kind: registration.kind,
            index: registration.index,
        };
        tx.put(
            TOMBSTONES,
            &key::of(&[&registration.id]),
            &postcard::to_allocvec(&stone)?,
        )?;
        tx.commit()?;
        Ok(registration)
    }

    /// Opens a return channel for a consumer: hello goes out through the outbox.
    fn open_return(
        &self,
        tx: &dyn WriteTx,
        id: &str,
        kind: EntityKind,
        index: u32,
    ) -> Result<Option<WriterState>, RegistryError> {
        if kind != EntityKind::Consumer {
            return Ok(None);
        }
        let mut writer = ChannelWriter::new(self.key.clone(), true)?;
        let host = self.key.verifying_key().to_bytes();
        hold_root(tx, &writer.info().root, id, &host)?;
        outbox::enqueue(tx, LOCAL, writer.prepare(Message::Hello)?)?;
        let state = WriterState::of(&writer);
        crate::returns::open(tx, index, &state)?;
        Ok(Some(state))
    }

    fn say(
        &self,
        tx: &dyn WriteTx,
        state: &WriterState,
        message: Message,
    ) -> Result<(), RegistryError> {
        outbox::enqueue(tx, LOCAL, state.writer(&self.key).prepare(message)?)?;
        Ok(())
    }

    pub fn accepts(&self, kind: EntityKind) -> bool {
        self.accepts.contains(&kind)
    }

    pub fn key(&self) -> &ed25519_dalek::SigningKey {
        &self.key
    }
}

/// Checks that `hello` opens `channel`: its author signed it as message 0.
fn check_hello(channel: &ChannelInfo, hello: &[u8]) -> Result<(), RegistryError> {
    let author = ed25519_dalek::VerifyingKey::from_bytes(&channel.author)
        .map_err(|_| RegistryError::Hello("the channel's author is not an Ed25519 key"))?;
    let at = Address::of(&channel.root, 0);
    let next = Address::of(&channel.root, 1);
    match envelope::open(&author, channel.side_key.as_ref(), &at, &next, hello) {
        Some(Message::Hello) => Ok(()),
        Some(_) => Err(RegistryError::Hello("the channel does not open with hello")),
        None => Err(RegistryError::Hello(
            "not a message the channel's author sealed as its first",
        )),
    }
}

/// Says that the registrations of these channel authors are about to be
/// read (see [`ReadTx::prefetch`]): who they are, then the registrations.
pub fn prefetch_authors(tx: &dyn ReadTx, authors: &[[u8; 32]]) -> Result<(), RegistryError> {
    let keys: Vec<Vec<u8>> = authors.iter().map(|a| key::of(&[a])).collect();
    tx.prefetch(BY_AUTHOR, &keys)?;
    // An id that does not decode is the reader's to report, not this hint's.
    let ids: Vec<String> = authors
        .iter()
        .filter_map(|author| author_of(tx, author).ok().flatten())
        .collect();
    prefetch(tx, ids.iter().map(String::as_str))
}

/// The id whose channel `author` writes, if any.
pub fn author_of(tx: &dyn ReadTx, author: &[u8; 32]) -> Result<Option<String>, RegistryError> {
    match tx.get(BY_AUTHOR, &key::of(&[author]))? {
        Some(bytes) => Ok(Some(String::from_utf8(bytes).map_err(anyhow::Error::from)?)),
        None => Ok(None),
    }
}

/// Takes `root` for `id`'s channel by `author`: refused if it is another
/// channel's, now or before.
fn hold_root(
    tx: &dyn WriteTx,
    root: &[u8; 32],
    id: &str,
    author: &[u8; 32],
) -> Result<(), RegistryError> {
    let holder = Holder {
        id: id.to_owned(),
        author: *author,
    };
    let k = key::of(&[root]);
    match tx.get(BY_ROOT, &k)? {
        Some(bytes) if postcard::from_bytes::<Holder>(&bytes)? == holder => Ok(()),
        Some(_) => Err(RegistryError::RootTaken),
        None => Ok(tx.put(BY_ROOT, &k, &postcard::to_allocvec(&holder)?)?),
    }
}

/// Keeps every root of a store written before roots were kept (once; later
/// registrations keep them): the registrations' (their return channels by
/// `host`, this host's key) and those of channels that retired but may still
/// hold messages. Says whether no two channels shared a root.
pub fn index_roots(db: &dyn Store, host: &[u8; 32]) -> Result<bool, RegistryError> {
    if let Some(unique) = powerplug_storage::meta::<bool>(db, BY_ROOT_BUILT)? {
        return Ok(unique);
    }
    let tx = db.write()?;
    let mut unique = true;
    for (_, v) in tx.range(REGISTRATIONS, &[], None, Order::Ascending, usize::MAX)? {
        let r: Registration = postcard::from_bytes(&v)?;
        let back = r.return_channel.as_ref().map(|w| (&w.root, host));
        for (root, author) in [(&r.channel.root, &r.channel.author)]
            .into_iter()
            .chain(back)
        {
            match hold_root(&*tx, root, &r.id, author) {
                Err(RegistryError::RootTaken) => unique = false,
                other => other?,
            }
        }
    }
    let nobody = postcard::to_allocvec(&Holder {
        id: String::new(),
        author: [0; 32],
    })?;
    for root in crate::retention::retired_roots(&*tx)? {
        let k = key::of(&[&root]);
        if tx.get(BY_ROOT, &k)?.is_none() {
            tx.put(BY_ROOT, &k, &nobody)?;
        }
    }
    powerplug_storage::set_meta(&*tx, BY_ROOT_BUILT, &unique)?;
    tx.commit()?;
    Ok(unique)
}

/// Whether the roots table was built and no two channels shared a root then: its
/// holders alone say which root is in use.
pub fn roots_unique(db: &dyn Store) -> Result<bool, RegistryError> {
    Ok(powerplug_storage::meta::<bool>(db, BY_ROOT_BUILT)?.unwrap_or(false))
}

/// Whether a registration's channel, or its return channel, is at `root`
/// (in a store whose [`roots_unique`]).
pub fn uses_root(tx: &dyn ReadTx, root: &[u8; 32]) -> Result<bool, RegistryError> {
    let Some(bytes) = tx.get(BY_ROOT, &key::of(&[root]))? else {
        return Ok(false);
    };
    let holder: Holder = postcard::from_bytes(&bytes)?;
    if holder.id.is_empty() {
        return Ok(false);
    }
    Ok(read(tx, &holder.id)?.is_some_and(|r| {
        r.channel.root == *root || r.return_channel.is_some_and(|w| w.root == *root)
    }))
}

/// Lets a retired channel's root go, in the transaction in which retention
/// forgets the last of its messages: nothing at its addresses is left to be
/// read as a newcomer's, and a root kept for ever would grow the store by a
/// row with every reset.
pub fn release_root(tx: &dyn WriteTx, root: &[u8; 32]) -> Result<(), RegistryError> {
    tx.remove(BY_ROOT, &key::of(&[root]))?;
    Ok(())
}

fn tombstone(tx: &dyn ReadTx, id: &str) -> Result<Option<Tombstone>, RegistryError> {
    Ok(match tx.get(TOMBSTONES, &key::of(&[&id]))? {
        Some(bytes) => Some(postcard::from_bytes(&bytes)?),
        None => None,
    })
}

fn news(tx: &dyn WriteTx, index: u32, joined: bool) -> Result<(), RegistryError> {
    tx.put(NEWS, &key::of(&[&index, &joined]), &[])?;
    Ok(())
}

pub fn get(db: &dyn Store, id: &str) -> Result<Option<Registration>, RegistryError> {
    read(&*db.read()?, id)
}

/// Says that the registrations of `ids` are about to be read (see
/// [`ReadTx::prefetch`]).
pub fn prefetch<'a>(
    tx: &dyn ReadTx,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<(), RegistryError> {
    let keys: Vec<Vec<u8>> = ids.into_iter().map(|id| key::of(&[&id])).collect();
    Ok(tx.prefetch(REGISTRATIONS, &keys)?)
}

/// Adds to `known` the registrations of the `indexes` it lacks (those of
/// entities that left are not found): a tick reads the entities it deals
/// with, never every registration.
pub fn add_by_index(
    tx: &dyn ReadTx,
    known: &mut HashMap<u32, Registration>,
    indexes: impl IntoIterator<Item = u32>,
) -> Result<(), RegistryError> {
    let mut missing: Vec<u32> = indexes
        .into_iter()
        .filter(|i| !known.contains_key(i))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let keys: Vec<Vec<u8>> = missing.iter().map(|i| key::of(&[i])).collect();
    tx.prefetch(BY_INDEX, &keys)?;
    let mut ids = Vec::with_capacity(missing.len());
    for k in &keys {
        if let Some(bytes) = tx.get(BY_INDEX, k)? {
            ids.push(String::from_utf8(bytes).map_err(anyhow::Error::from)?);
        }
    }
    prefetch(tx, ids.iter().map(String::as_str))?;
    for id in &ids {
        if let Some(r) = read(tx, id)? {
            known.insert(r.index, r);
        }
    }
    Ok(())
}

/// A registration as `tx` sees it (a write transaction sees its own changes).
pub fn read(tx: &dyn ReadTx, id: &str) -> Result<Option<Registration>, RegistryError> {
    Ok(match tx.get(REGISTRATIONS, &key::of(&[&id]))? {
        Some(bytes) => Some(postcard::from_bytes(&bytes)?),
        None => None,
    })
}

/// Writes a registration whose channel, read position, counts and state
/// are as stored (its return channel moved on); [`put_changed`] otherwise.
pub fn put(tx: &dyn WriteTx, registration: &Registration) -> Result<(), RegistryError> {
    tx.put(
        REGISTRATIONS,
        &key::of(&[&registration.id]),
        &postcard::to_allocvec(registration)?,
    )?;
    Ok(())
}

/// Where a poll reads a registration's channel next; `None` once it closed.
pub fn next_address(r: &Registration) -> Option<Address> {
    (!r.closed).then(|| Address::of(&r.channel.root, r.read_index))
}

/// Writes a registration whose channel, position, counts or state changed
/// from `before` (as stored; `None`: new), keeping the index by next address;
/// the change to the per-kind summary goes into `tally`, written once per
/// transaction by [`Tally::write`].
pub fn put_changed(
    tx: &dyn WriteTx,
    before: Option<&Registration>,
    after: &Registration,
    tally: &mut Tally,
) -> Result<(), RegistryError> {
    let (was, is) = (before.and_then(next_address), next_address(after));
    if was != is {
        if let Some(was) = was {
            tx.remove(BY_NEXT, &was.0)?;
        }
        if let Some(is) = is {
            tx.put(BY_NEXT, &is.0, after.id.as_bytes())?;
        }
    }
    tally.change(before, Some(after));
    put(tx, after)
}

/// Changes to the per-kind [`Summary`] made in one transaction.
#[derive(Debug, Default)]
pub struct Tally(std::collections::BTreeMap<&'static str, [i128; 5]>);

impl Tally {
    pub fn change(&mut self, before: Option<&Registration>, after: Option<&Registration>) {
        for (r, sign) in [(before, -1), (after, 1)] {
            let Some(r) = r else { continue };
            let d = self.0.entry(kind_name(r.kind)).or_default();
            let fields = [
                u64::from(!r.closed),
                u64::from(r.closed),
                r.read_index,
                r.dropped,
                r.rejected,
            ];
            for (d, f) in d.iter_mut().zip(fields) {
                *d += sign * i128::from(f);
            }
        }
    }

    pub fn write(self, tx: &dyn WriteTx) -> Result<(), RegistryError> {
        for (kind, d) in self.0 {
            let k = key::of(&[&kind]);
            let mut summary: Summary = match tx.get(SUMMARY, &k)? {
                Some(bytes) => postcard::from_bytes(&bytes)?,
                None => Summary::default(),
            };
            let fields = [
                &mut summary.open,
                &mut summary.closed,
                &mut summary.read,
                &mut summary.dropped,
                &mut summary.rejected,
            ];
            for (f, d) in fields.into_iter().zip(d) {
                *f = u64::try_from((i128::from(*f) + d).max(0)).unwrap_or(u64::MAX);
            }
            tx.put(SUMMARY, &k, &postcard::to_allocvec(&summary)?)?;
        }
        Ok(())
    }
}

/// What the registrations of one kind add up to: kept as they change, so
/// that `/status` reads a row per kind, not every registration.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub open: u64,
    pub closed: u64,
    /// Messages read on their channels (where each channel is now).
    pub read: u64,
    pub dropped: u64,
    pub rejected: u64,
}

fn kind_name(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Consumer => "consumer",
        EntityKind::Producer => "producer",
        EntityKind::Source => "source",
    }
}

/// Each kind's [`Summary`].
pub fn summary(db: &dyn Store) -> Result<Vec<(EntityKind, Summary)>, RegistryError> {
    let tx = db.read()?;
    let mut out = Vec::new();
    for kind in [
        EntityKind::Consumer,
        EntityKind::Producer,
        EntityKind::Source,
    ] {
        if let Some(bytes) = tx.get(SUMMARY, &key::of(&[&kind_name(kind)]))? {
            out.push((kind, postcard::from_bytes(&bytes)?));
        }
    }
    Ok(out)
}

/// The open registrations whose channel goes on at one of `addresses`.
pub fn at_next(
    tx: &dyn ReadTx,
    addresses: &HashSet<Address>,
) -> Result<Vec<Registration>, RegistryError> {
    let keys: Vec<Vec<u8>> = addresses.iter().map(|a| a.0.to_vec()).collect();
    tx.prefetch(BY_NEXT, &keys)?;
    let mut ids = Vec::new();
    for k in &keys {
        if let Some(id) = tx.get(BY_NEXT, k)? {
            ids.push(String::from_utf8(id).map_err(anyhow::Error::from)?);
        }
    }
    prefetch(tx, ids.iter().map(String::as_str))?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        // The index and the registrations change in the same transactions;
        // checked anyway, so that a stale entry reads nothing wrong.
        if let Some(r) = read(tx, &id)?
            && next_address(&r).is_some_and(|next| addresses.contains(&next))
        {
            found.push(r);
        }
    }
    Ok(found)
}

/// Builds the index by next address and the summary for a store written
/// before they existed (once; later writes keep them).
pub fn index_next_addresses(db: &dyn Store) -> Result<(), RegistryError> {
    if powerplug_storage::meta::<bool>(db, BY_NEXT_BUILT)?.is_some() {
        return Ok(());
    }
    let tx = db.write()?;
    let mut tally = Tally::default();
    for (_, v) in tx.range(REGISTRATIONS, &[], None, Order::Ascending, usize::MAX)? {
        let r: Registration = postcard::from_bytes(&v)?;
        put_changed(&*tx, None, &r, &mut tally)?;
    }
    tally.write(&*tx)?;
    powerplug_storage::set_meta(&*tx, BY_NEXT_BUILT, &true)?;
    tx.commit()?;
    Ok(())
}

/// Every registration, by id.
pub fn all(db: &dyn Store) -> Result<Vec<Registration>, RegistryError> {
    let entries = db
        .read()?
        .range(REGISTRATIONS, &[], None, Order::Ascending, usize::MAX)?;
    let mut out = Vec::with_capacity(entries.len());
    for (_, v) in entries {
        out.push(postcard::from_bytes(&v)?);
    }
    Ok(out)
}

/// A page of registrations by id: those of `kind` (any when `None`) whose id
/// starts with `prefix`, after id `after`, at most `limit`. Reads at most
/// `scan` registrations, so a rare kind among many costs no more than a
/// common one: the page may then come short, with the id to go on from.
pub fn page(
    db: &dyn Store,
    kind: Option<EntityKind>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    scan: usize,
) -> Result<(Vec<Registration>, Option<String>), RegistryError> {
    let prefix_key = prefix.as_bytes().to_vec();
    let mut start = match after {
        // Just past `after`'s key (`after\0`), before any longer id.
        Some(after) => {
            let mut k = key::of(&[&after]);
            k.push(0);
            k.max(prefix_key.clone())
        }
        None => prefix_key.clone(),
    };
    let tx = db.read()?;
    let (mut found, mut scanned) = (Vec::new(), 0);
    loop {
        let batch = tx.range(REGISTRATIONS, &start, None, Order::Ascending, 256)?;
        let full = batch.len() == 256;
        for (k, v) in batch {
            if !k.starts_with(&prefix_key) {
                return Ok((found, None));
            }
            scanned += 1;
            let r: Registration = postcard::from_bytes(&v)?;
            let id = r.id.clone();
            if kind.is_none_or(|kind| kind == r.kind) {
                found.push(r);
            }
            if found.len() == limit || scanned == scan {
                return Ok((found, Some(id)));
            }
            start = k;
            start.push(0);
        }
        if !full {
            return Ok((found, None));
        }
    }
}

/// The id behind an index (also after the entity left).
pub fn id_of(db: &dyn Store, index: u32) -> Result<Option<String>, RegistryError> {
    match db.read()?.get(BY_INDEX, &key::of(&[&index]))? {
        Some(bytes) => Ok(Some(String::from_utf8(bytes).map_err(anyhow::Error::from)?)),
        None => Ok(None),
    }
}

/// Marks a registration whose channel said goodbye; it leaves at the next tick.
pub fn close(tx: &dyn WriteTx, registration: &mut Registration) -> Result<(), RegistryError> {
    if !registration.closed {
        registration.closed = true;
        news(tx, registration.index, false)?;
    }
    Ok(())
}

/// Who joined and who left since the last tick: (joined, left) indexes,
/// the lowest first, at most `entries` of them (an entity has at most two:
/// its joining and its leaving).
pub fn news_since_tick(
    db: &dyn Store,
    entries: usize,
) -> Result<(Vec<u32>, Vec<u32>), RegistryError> {
    let (mut joined, mut left) = (Vec::new(), Vec::new());
    for (k, _) in db
        .read()?
        .range(NEWS, &[], None, Order::Ascending, entries)?
    {
        let mut r = key::Reader::new(&k);
        let index = r.u32()?;
        if r.bool()? {
            joined.push(index)
        } else {
            left.push(index)
        }
    }
    Ok((joined, left))
}

/// Forgets the news a tick consumed, inside its transaction.
pub fn consume_news(tx: &dyn WriteTx, joined: &[u32], left: &[u32]) -> Result<(), RegistryError> {
    for &i in joined {
        tx.remove(NEWS, &key::of(&[&i, &true]))?;
    }
    for &i in left {
        tx.remove(NEWS, &key::of(&[&i, &false]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_channel::ChannelWriter;

    fn registry() -> Registry {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let accepts = [EntityKind::Consumer];
        Registry::new([2; 32], key, "grid", &accepts, Default::default())
    }

    fn register(db: &dyn Store, id: &str, writer: &mut ChannelWriter) -> Result<(), RegistryError> {
        let hello = writer.prepare(Message::Hello)?.bytes;
        let application = Application {
            kind: EntityKind::Consumer,
            channel: writer.info(),
            hello: Some(&hello),
            credential: None,
            admission: None,
        };
        registry().register(db, id, application).map(|_| ())
    }

    /// A store from before roots were kept learns them once, and says so
    /// when two channels shared one (its poll then checks signatures).
    #[test]
    fn the_roots_of_an_older_store_are_kept_once_and_a_shared_one_is_told() {
        let key = |seed| ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let host = key(1).verifying_key().to_bytes();
        for shared in [false, true] {
            let db = powerplug_storage::RedbStore::in_memory().unwrap();
            let mut alice = ChannelWriter::new(key(10), true).unwrap();
            let info = alice.info();
            let mut bob = match shared {
                true => ChannelWriter::resume(key(11), info.root, info.side_key, 0),
                false => ChannelWriter::new(key(11), true).unwrap(),
            };
            // Registered as an older host did, without keeping the roots.
            let forget_roots = || {
                let tx = db.write().unwrap();
                for (k, _) in tx.range(BY_ROOT, &[], None, Order::Ascending, 9).unwrap() {
                    tx.remove(BY_ROOT, &k).unwrap();
                }
                tx.commit().unwrap();
            };
            register(&db, "alice", &mut alice).unwrap();
            forget_roots();
            register(&db, "bob", &mut bob).unwrap();
            forget_roots();

            assert_eq!(index_roots(&db, &host).unwrap(), !shared);
            assert_eq!(index_roots(&db, &host).unwrap(), !shared, "once");
            // Both channels' roots (one, shared) and both return channels'.
            let held = (db.read().unwrap())
                .range(BY_ROOT, &[], None, Order::Ascending, 9)
                .unwrap();
            assert_eq!(held.len(), if shared { 3 } else { 4 });
            // Every root is held now: alice's against a newcomer.
            let mut carol = ChannelWriter::resume(key(12), info.root, info.side_key, 0);
            assert!(matches!(
                register(&db, "carol", &mut carol),
                Err(RegistryError::RootTaken)
            ));
        }
    }
}
