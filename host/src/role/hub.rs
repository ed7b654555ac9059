//! What a grid and a producer share: a database, a registry of the entities
//! that publish to them, and the channel store those entities write into.

use crate::channel::{EmbeddedTransport, Transport};
use crate::registry::{Kind, LOCAL, Registry};
use crate::{inbox, outbox};

pub struct Hub {
    pub id: String,
    pub db: crate::storage::Db,
    pub registry: Registry,
    /// The channel store this host serves at `/channels`.
    pub store: EmbeddedTransport,
    pub secret: [u8; 32],
    pub operator_token: Option<String>,
    unfinished: std::sync::Mutex<Vec<crate::channel::Address>>,
    /// How the scheduler's rounds went, for `/status`.
    pub scheduler: super::SchedulerHealth,
}

impl Hub {
    pub fn new(
        id: &str,
        db: crate::storage::Db,
        accepts: &[Kind],
        operator_token: Option<String>,
    ) -> anyhow::Result<Self> {
        let secret = super::secret(&db)?;
        let key = super::signing_key(&secret, id);
        Ok(Self {
            id: id.to_owned(),
            registry: Registry::new(secret, key, id, accepts),
            store: EmbeddedTransport::new(db.clone()),
            db,
            secret,
            operator_token: operator_token.filter(|t| !t.is_empty()),
            unfinished: Default::default(),
            scheduler: Default::default(),
        })
    }

    /// Reads the registered channels that moved since the last round (all of
    /// them on the first round after a start).
    pub fn poll(&self) -> anyhow::Result<inbox::Polled> {
        let mut unfinished = self.unfinished.lock().unwrap_or_else(|e| e.into_inner());
        let moved = self.store.take_written().map(|mut moved| {
            moved.extend(unfinished.drain(..));
            moved
        });
        let polled = inbox::poll(&self.db, &self.store, moved.as_ref())?;
        unfinished.extend(polled.unfinished.iter().copied());
        Ok(polled)
    }

    /// Sends what ticks and registrations left in the outbox: this host's own
    /// return channels go to its own store, `upstream` to the host above.
    pub fn drain(&self, upstream: Option<&dyn Transport>) -> anyhow::Result<usize> {
        let local: &dyn Transport = &self.store;
        outbox::drain(&self.db, 100_000, |destination| match destination {
            LOCAL => Some(local),
            super::member::UPSTREAM => upstream,
            _ => None,
        })
    }
}
