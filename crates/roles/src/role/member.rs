//! An entity's membership of the host above it (a producer at its grid, a
//! meter at its grid or producer): its own channel in that host's store, its
//! registration and credential, and the return channel it reads.

use ed25519_dalek::SigningKey;
use powerplug_domain::EntityKind;
use powerplug_storage::{Store, WriteTx};
use serde::{Deserialize, Serialize};

use anyhow::Context;
use powerplug_client::Client;

use crate::api;
use crate::outbox;
use crate::registry::WriterState;
use powerplug_channel::{Address, ChannelInfo, ChannelWriter, Message};
use powerplug_storage as storage;

pub use crate::outbox::UPSTREAM;

/// Where an entity without a disk keeps its state upstream: `/storage/{id}/powerplug/member`.
const REMOTE_CONTEXT: &str = "powerplug";
const REMOTE_KEY: &str = "member";

/// A payment handed to the ledger and not yet confirmed: retried with the same
/// key after a crash, so it is made once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub key: String,
    pub to: String,
    pub amount: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberState {
    pub id: String,
    pub channel: WriterState,
    pub credential: Option<String>,
    pub index: Option<u32>,
    pub return_channel: Option<ChannelInfo>,
    pub return_read: u64,
    /// Meters: the next slice to report.
    pub next_slice: u64,
    pub published_wh: u64,
    /// Consumers: what the grid asked, what was paid, what is still owed.
    pub requested: u64,
    pub requests: u64,
    pub paid: u64,
    pub payments: u64,
    pub outstanding: u64,
    pub pay_to: Option<String>,
    pub pending: Option<Payment>,
    pub refused: u64,
    /// Closed down: said goodbye and deregistered; publishes nothing.
    #[serde(default)]
    pub closed: bool,
}

fn meta_name(id: &str) -> String {
    format!("member/{id}")
}

impl MemberState {
    pub fn load(db: &dyn Store, id: &str) -> anyhow::Result<Option<Self>> {
        storage::meta(db, &meta_name(id))
    }

    pub fn save(&self, tx: &dyn WriteTx) -> anyhow::Result<()> {
        storage::set_meta(tx, &meta_name(&self.id), self)
    }

    /// A new member with a restricted channel, in the caller's transaction.
    /// Its hello goes with the registration, so its messages start at 1.
    /// `channel`: the root and side key to use; random if `None`.
    pub fn create(
        tx: &dyn WriteTx,
        id: &str,
        key: &SigningKey,
        first_slice: u64,
        channel: Option<([u8; 32], [u8; 32])>,
    ) -> anyhow::Result<Self> {
        let mut writer = match channel {
            Some((root, side)) => ChannelWriter::resume(key.clone(), root, Some(side), 0),
            None => ChannelWriter::new(key.clone(), true)?,
        };
        writer.prepare(Message::Hello)?;
        let state = Self {
            id: id.to_owned(),
            channel: WriterState::of(&writer),
            credential: None,
            index: None,
            return_channel: None,
            return_read: 0,
            next_slice: first_slice,
            published_wh: 0,
            requested: 0,
            requests: 0,
            paid: 0,
            payments: 0,
            outstanding: 0,
            pay_to: None,
            pending: None,
            refused: 0,
            closed: false,
        };
        state.save(tx)?;
        Ok(state)
    }

    /// Seals the next message on the member's channel into the outbox.
    pub fn publish(
        &mut self,
        tx: &dyn WriteTx,
        key: &SigningKey,
        data: Vec<u8>,
    ) -> anyhow::Result<Address> {
        let mut writer = self.channel.writer(key);
        let sealed = writer.prepare(Message::Data(data))?;
        let address = sealed.address;
        outbox::enqueue(tx, UPSTREAM, sealed)?;
        self.channel.next_index = writer.next_index();
        Ok(address)
    }

    /// Closes the member's channel: goodbye goes out through the outbox.
    pub fn goodbye(&mut self, tx: &dyn WriteTx, key: &SigningKey) -> anyhow::Result<()> {
        let mut writer = self.channel.writer(key);
        outbox::enqueue(tx, UPSTREAM, writer.prepare(Message::Goodbye)?)?;
        self.channel.next_index = writer.next_index();
        Ok(())
    }

    /// A fresh channel (new root and side key), whose hello goes with the
    /// next registration; the credential is kept, since re-registering the id
    /// needs it (a reset).
    pub fn renew(&mut self, key: &SigningKey) -> anyhow::Result<()> {
        let mut writer = ChannelWriter::new(key.clone(), true)?;
        writer.prepare(Message::Hello)?;
        self.channel = WriterState::of(&writer);
        self.return_channel = None;
        self.return_read = 0;
        Ok(())
    }

    /// Removes the registration at the host (`DELETE /registrations/{id}`).
    pub fn deregister(&mut self, upstream: &Client) -> anyhow::Result<()> {
        let Some(credential) = &self.credential else {
            return Ok(());
        };
        let answer = upstream.with_token(credential).deregister(&self.id)?;
        // Already gone (401: the credential no longer matches anything) is done too.
        anyhow::ensure!(
            (200..300).contains(&answer.status) || answer.status == 401,
            "deregistering {} at {}: {} {}",
            self.id,
            upstream.base(),
            answer.status,
            answer.body
        );
        self.credential = None;
        self.index = None;
        Ok(())
    }

    /// The state kept in the upstream host's `/storage`, if any.
    pub fn fetch(upstream: &Client, id: &str, credential: &str) -> anyhow::Result<Option<Self>> {
        let answer = upstream
            .with_token(credential)
            .document(id, REMOTE_CONTEXT, REMOTE_KEY)?;
        match answer.status {
            200 => Ok(Some(serde_json::from_value(answer.body)?)),
            404 => Ok(None),
            status => anyhow::bail!(
                "reading {id}'s state at {}: {status} {}",
                upstream.base(),
                answer.body
            ),
        }
    }

    /// Keeps the state in the upstream host's `/storage`.
    pub fn store(&self, upstream: &Client) -> anyhow::Result<()> {
        let credential = self.credential.as_deref().ok_or_else(|| {
            anyhow::anyhow!("{}: not registered, nowhere to keep its state", self.id)
        })?;
        let answer = upstream.with_token(credential).put_document(
            &self.id,
            REMOTE_CONTEXT,
            REMOTE_KEY,
            self,
        )?;
        anyhow::ensure!(
            (200..300).contains(&answer.status),
            "keeping {}'s state at {}: {} {}",
            self.id,
            upstream.base(),
            answer.status,
            answer.body
        );
        Ok(())
    }

    pub fn info(&self, key: &SigningKey) -> ChannelInfo {
        self.channel.writer(key).info()
    }

    /// Registers (or registers again: idempotent) with the host above, with
    /// the channel's hello and, where the host needs one, an admission token
    /// from its operator.
    pub fn register(
        &mut self,
        upstream: &Client,
        kind: EntityKind,
        key: &SigningKey,
        admission: Option<&str>,
    ) -> anyhow::Result<()> {
        let channel = &self.channel;
        let mut first = ChannelWriter::resume(key.clone(), channel.root, channel.side_key, 0);
        let body = api::Register::open(kind, &mut first, admission)?;
        let answer = match &self.credential {
            Some(credential) => upstream.with_token(credential).register(&self.id, &body)?,
            None => upstream.register(&self.id, &body)?,
        };
        let registered: api::Registered = answer
            .json()
            .with_context(|| format!("registering {} at {}", self.id, upstream.base()))?;
        let return_channel = match &registered.return_channel {
            Some(c) => Some(
                c.info()
                    .map_err(|field| anyhow::anyhow!("answer: bad {field}"))?,
            ),
            None => None,
        };
        if return_channel != self.return_channel {
            self.return_read = 0;
        }
        self.return_channel = return_channel;
        self.credential = registered.credential;
        self.index = Some(registered.index);
        Ok(())
    }
}
