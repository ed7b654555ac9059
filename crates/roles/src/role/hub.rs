//! What a grid and a producer share: a database, a registry of the entities
//! that publish to them, and the channel store those entities write into.

use ed25519_dalek::VerifyingKey;
use powerplug_domain::EntityKind;

use crate::limits::WRITE_WINDOW;
use crate::registry::{self, LOCAL, Registry};
use crate::{admission, inbox, outbox};
use powerplug_channel::{Address, EmbeddedTransport, Sealed, Transport, envelope};
use powerplug_storage::ReadTx;

/// Why the channel store did not take an outside message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub reason: String,
    /// The store may take it later (it is ahead of the window).
    pub retry: bool,
}

impl Refusal {
    fn never(field: &'static str, reason: impl ToString) -> Self {
        Self {
            field,
            reason: reason.to_string(),
            retry: false,
        }
    }
}

/// How often a hub reads every registered channel, not only those written to.
const FULL_POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Hub {
    pub id: String,
    pub db: powerplug_storage::Db,
    /// Where `/storage` documents' bodies and components' bytes are.
    pub objects: powerplug_storage::Objects,
    pub registry: Registry,
    /// The channel store this host serves at `/channels`.
    pub store: EmbeddedTransport,
    pub secret: [u8; 32],
    pub operator_token: Option<String>,
    /// What a reading may claim.
    pub plausible: inbox::Plausible,
    /// Every operator token with its scopes (`operator_token` among them).
    pub operators: super::config::Operators,
    unfinished: std::sync::Mutex<Vec<powerplug_channel::Address>>,
    /// When every channel was last read, whatever moved.
    full_poll: std::sync::Mutex<std::time::Instant>,
    /// How the scheduler's rounds went, for `/status`.
    pub scheduler: super::SchedulerHealth,
    /// What goes once read and old enough (set by the role from its config).
    pub retention: crate::retention::Keeper,
    /// The store's history (see [`powerplug_storage::timeline`]); a request
    /// that names another one is refused.
    pub timeline: String,
    /// Messages per channel kept after the host above took them (a
    /// producer's reports), for a resend to a restored grid.
    pub keep_sent: u64,
    /// Ticks and polls since the start, for `/metrics` and the console.
    pub telemetry: crate::telemetry::Telemetry,
}

impl Hub {
    pub fn new(
        id: &str,
        db: powerplug_storage::Db,
        objects: powerplug_storage::Objects,
        accepts: &[EntityKind],
        admission: admission::Policy,
        operator_token: Option<String>,
    ) -> anyhow::Result<Self> {
        // Hosts that share a store are one entity: the id names its account
        // and derives its keys, so another id would sign with another key.
        let owner: String = powerplug_storage::meta_or_init(&*db, "id", || Ok(id.to_owned()))?;
        anyhow::ensure!(
            owner == id,
            "id: the store is `{owner}`'s; a host that shares it (a standby) has the same id, and `{id}` needs a store of its own"
        );
        let secret = super::secret(&db)?;
        let key = super::signing_key(&secret, id);
        let timeline = powerplug_storage::timeline(&*db)?;
        let adopted = objects.adopt(&*db)?;
        if adopted > 0 {
            tracing::info!(objects = adopted, to = %objects.place(), "moved objects out of the store (a restored backup's)");
        }
        let moved = crate::documents::migrate(&*db, &objects)?;
        if moved > 0 {
            tracing::info!(documents = moved, objects = %objects.place(), "moved documents from the store to objects");
        }
        Ok(Self {
            timeline,
            keep_sent: 0,
            id: id.to_owned(),
            registry: Registry::new(secret, key, id, accepts, admission),
            store: EmbeddedTransport::new(db.clone()),
            db,
            objects,
            secret,
            operators: super::config::Operators::new(operator_token.as_deref(), &[]),
            operator_token: operator_token.filter(|t| !t.is_empty()),
            plausible: Default::default(),
            unfinished: Default::default(),
            full_poll: std::sync::Mutex::new(std::time::Instant::now()),
            scheduler: Default::default(),
            retention: crate::retention::Keeper::new(Default::default(), 10_000, 1),
            telemetry: Default::default(),
        })
    }

    /// Reads the registered channels that moved since the last round (all of
    /// them on the first round after a start).
    pub fn poll(&self, now_ms: u64) -> anyhow::Result<inbox::Polled> {
        let mut unfinished = self.unfinished.lock().unwrap_or_else(|e| e.into_inner());
        let mut moved = self.store.take_written()?.map(|mut moved| {
            moved.extend(unfinished.drain(..));
            moved
        });
        // Now and then every channel, whatever moved: a write whose notice
        // was missed (an A/B demo once waited 30 s for one consumer host's
        // last slice) then waits one period, not forever.
        let mut full_poll = self.full_poll.lock().unwrap_or_else(|e| e.into_inner());
        if full_poll.elapsed() >= FULL_POLL_EVERY {
            *full_poll = std::time::Instant::now();
            unfinished.clear();
            moved = None;
        }
        drop(full_poll);
        let started = std::time::Instant::now();
        let polled = inbox::poll(
            &self.db,
            &self.store.snapshot()?,
            moved.as_ref(),
            &self.plausible,
            now_ms,
        )?;
        self.telemetry.poll(started.elapsed());
        unfinished.extend(polled.unfinished.iter().copied());
        Ok(polled)
    }

    /// Takes messages from outside into the channel store: only a registered
    /// author's, signed for an index of its own channel that the host has not
    /// read yet and that is within [`WRITE_WINDOW`] of it, one message per
    /// address (the same bytes again are a harmless resend). So nobody can
    /// fill another entity's addresses, the host's return channels, or the disk.
    /// Answers, per message, why it was refused.
    pub fn accept(&self, messages: &[Sealed]) -> anyhow::Result<Vec<Option<Refusal>>> {
        // Checks that need no lock first: signatures cost tens of microseconds.
        let mut verdicts = Vec::with_capacity(messages.len());
        let mut fresh = Vec::new();
        {
            let tx = self.db.read()?;
            let authors: Vec<[u8; 32]> = messages.iter().map(|m| m.author).collect();
            registry::prefetch_authors(&*tx, &authors)?;
            for (position, m) in messages.iter().enumerate() {
                match self.check(&*tx, m) {
                    Ok(address) => {
                        fresh.extend(address.map(|a| (position, a)));
                        verdicts.push(None);
                    }
                    Err(refusal) => verdicts.push(Some(refusal)),
                }
            }
        }
        let tx = self.db.write()?;
        let addresses: Vec<Address> = fresh.iter().map(|&(_, a)| a).collect();
        powerplug_channel::prefetch_in(&*tx, &addresses)?;
        let mut stored = Vec::with_capacity(fresh.len());
        for (position, address) in fresh {
            let bytes = &messages[position].bytes;
            let there = powerplug_channel::messages_in(&*tx, &address)?;
            if there.iter().any(|m| m == bytes) {
                continue;
            }
            if !there.is_empty() {
                verdicts[position] = Some(Refusal::never(
                    "index",
                    "another message is stored at this index already",
                ));
                continue;
            }
            powerplug_channel::store_after(&*tx, &address, bytes, &there)?;
            stored.push(address);
        }
        powerplug_channel::note_written(&*tx, &stored)?;
        tx.commit()?;
        Ok(verdicts)
    }

    /// Where an outside message goes, if the store may take it (`None`: it
    /// takes it by keeping nothing).
    fn check(&self, tx: &dyn ReadTx, m: &Sealed) -> Result<Option<Address>, Refusal> {
        if m.bytes.is_empty() || m.bytes.len() > powerplug_channel::MAX_MESSAGE_BYTES {
            return Err(Refusal::never(
                "message",
                format!("1 to {} bytes", powerplug_channel::MAX_MESSAGE_BYTES),
            ));
        }
        let storage = |e: registry::RegistryError| Refusal {
            field: "",
            reason: e.to_string(),
            retry: true,
        };
        let id = registry::author_of(tx, &m.author)
            .map_err(storage)?
            .ok_or_else(|| Refusal::never("author", "no registered channel has this author"))?;
        let r = registry::read(tx, &id)
            .map_err(storage)?
            .ok_or_else(|| Refusal::never("author", "no registered channel has this author"))?;
        if r.closed {
            return Err(Refusal::never("author", "the channel said goodbye"));
        }
        if m.index >= r.read_index.saturating_add(WRITE_WINDOW) {
            return Err(Refusal {
                field: "index",
                reason: format!(
                    "more than {WRITE_WINDOW} ahead of where this host has read ({})",
                    r.read_index
                ),
                retry: true,
            });
        }
        let address = Address::of(&r.channel.root, m.index);
        let next = Address::of(&r.channel.root, m.index.saturating_add(1));

        let signed = VerifyingKey::from_bytes(&m.author)
            .map(|author| envelope::is_signed(&author, &address, &next, &m.bytes))
            .unwrap_or(false);
        if !signed {
            return Err(Refusal::never(
                "message",
                "not signed by the channel's author for this index",
            ));
        }
        // Read already (a resend after a crash): taken, but not stored
        // again; nothing needs it, and retention may have let it go.
        Ok((m.index >= r.read_index).then_some(address))
    }

    /// Sends what ticks and registrations left in the outbox: this host's own
    /// return channels go to its own store, `upstream` to the host above.
    pub fn drain(&self, upstream: Option<&dyn Transport>) -> anyhow::Result<usize> {
        let local: &dyn Transport = &self.store;
        outbox::drain(
            &self.db,
            100_000,
            self.keep_sent,
            |destination| match destination {
                LOCAL => Some(local),
                outbox::UPSTREAM => upstream,
                _ => None,
            },
        )?
        .sent()
    }
}
