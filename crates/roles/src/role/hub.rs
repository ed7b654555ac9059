//! What a grid and a producer share: a database, a registry of the entities
//! that publish to them, and the channel store those entities write into.

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

/// How often a hub sweeps on over its registered channels, reading those
/// not written to as well.
const FULL_POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Registrations one round's sweep reads: all of them up to this many, so
/// that a round costs no more at a million than at ten thousand.
const SWEEP: usize = 10_000;

/// A sweep over every registered channel, in pages of [`SWEEP`].
struct Sweep {
    /// The last id of the page before; `None`: from the start.
    after: Option<String>,
    /// A page every round until the sweep wraps (after a start, or when
    /// the store's notices of writes were lost).
    catching_up: bool,
    last: std::time::Instant,
}

/// The channel an outside message claims a place on.
struct Place {
    root: [u8; 32],
    /// Where the host has read that channel to.
    read_index: u64,
}

/// An outside message on its way into the store: its address, its bytes,
/// and whether the host has read that index already (then it is only
/// compared with what is there).
type Incoming = (Address, Vec<u8>, bool);

/// Where each message goes, if its author signed it for its index, and
/// whether the host has read that index already (see [`Incoming`]).
fn check(
    places: &[Result<Place, Refusal>],
    messages: &[Sealed],
) -> Vec<Result<(Address, bool), Refusal>> {
    let claims: Vec<(usize, envelope::Claim)> = (places.iter().zip(messages).enumerate())
        .filter_map(|(i, (place, m))| {
            let place = place.as_ref().ok()?;
            let claim = envelope::Claim {
                author: &m.author,
                address: Address::of(&place.root, m.index),
                next: Address::of(&place.root, m.index.saturating_add(1)),
                bytes: &m.bytes,
            };
            Some((i, claim))
        })
        .collect();
    let (at, claims): (Vec<usize>, Vec<envelope::Claim>) = claims.into_iter().unzip();
    let mut signed = vec![false; messages.len()];
    for (i, ok) in at.into_iter().zip(envelope::are_signed(&claims)) {
        signed[i] = ok;
    }
    (places.iter().zip(messages).zip(signed))
        .map(|((place, m), signed)| {
            let place = place.as_ref().map_err(Clone::clone)?;
            if !signed {
                return Err(Refusal::never(
                    "message",
                    "not signed by the channel's author for this index",
                ));
            }
            // Read already (a resend after a crash): taken if it is what is
            // there, but not stored again; nothing needs it, and retention
            // may have let the message there go.
            Ok((
                Address::of(&place.root, m.index),
                m.index < place.read_index,
            ))
        })
        .collect()
}

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
    /// Where the sweep over every channel is.
    sweep: std::sync::Mutex<Sweep>,
    /// How the scheduler's rounds went, for `/status`.
    pub scheduler: super::SchedulerHealth,
    /// What goes once read and old enough (set by the role from its config).
    pub retention: crate::retention::Keeper,
    /// What the store holds, taken now and then.
    pub figures: std::sync::Arc<crate::figures::Taker>,
    /// The store's history (see [`powerplug_storage::timeline`]); a request
    /// that names another one is refused.
    pub timeline: String,
    /// Messages per channel kept after the host above took them (a
    /// producer's reports), for a resend to a restored grid.
    pub keep_sent: u64,
    /// Ticks and polls since the start, for `/metrics` and the console.
    pub telemetry: crate::telemetry::Telemetry,
    /// Outside messages on their way into the store, from every request.
    ingest: super::group_commit::GroupCommit<Vec<Incoming>, Vec<bool>>,
    /// No two channels in the store share a root, so every message at a
    /// channel's addresses was checked at the door against that channel's
    /// author: the poll need not check the signatures again.
    roots_unique: bool,
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
        registry::index_next_addresses(&*db)?;
        let roots_unique = registry::index_roots(&*db, &key.verifying_key().to_bytes())?;
        if !roots_unique {
            tracing::warn!(
                "two channels in this store share a root (registered before roots were kept apart): the poll checks every signature again"
            );
        }
        let paged = crate::books::migrate_cells(&*db)?;
        if paged > 0 {
            tracing::info!(cells = paged, "moved strategy cells onto pages");
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
            sweep: std::sync::Mutex::new(Sweep {
                after: None,
                catching_up: true,
                last: std::time::Instant::now(),
            }),
            scheduler: Default::default(),
            retention: crate::retention::Keeper::new(Default::default(), 10_000, 1),
            figures: Default::default(),
            telemetry: Default::default(),
            ingest: Default::default(),
            roots_unique,
        })
    }

    /// Reads the registered channels that moved since the last round, and
    /// a page of the sweep over all of them when one is due.
    pub fn poll(&self, now_ms: u64) -> anyhow::Result<inbox::Polled> {
        let mut unfinished = self.unfinished.lock().unwrap_or_else(|e| e.into_inner());
        let written = self.store.take_written()?;
        let mut moved: std::collections::HashSet<Address> = unfinished.drain(..).collect();
        let mut sweep = self.sweep.lock().unwrap_or_else(|e| e.into_inner());
        match written {
            Some(written) => moved.extend(written),
            // Anything may have been written unnoticed (the first round after
            // a start, a feed trimmed past this poller, a restored store):
            // sweep every channel, a page a round, until the sweep wraps.
            None => sweep.catching_up = true,
        }
        // Now and then every channel, whatever moved: a write whose notice
        // was missed (an A/B demo once waited 30 s for one consumer host's
        // last slice) then waits one period, not forever.
        let page = if sweep.catching_up || sweep.last.elapsed() >= FULL_POLL_EVERY {
            sweep.last = std::time::Instant::now();
            let (page, next) =
                registry::page(&*self.db, None, "", sweep.after.as_deref(), SWEEP, SWEEP)?;
            sweep.catching_up &= next.is_some();
            sweep.after = next;
            page
        } else {
            Vec::new()
        };
        drop(sweep);
        let started = std::time::Instant::now();
        let due = inbox::Due {
            moved: &moved,
            sweep: page,
        };
        let polled = inbox::poll(
            &self.db,
            &self.store.snapshot()?,
            due,
            self.roots_unique,
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
        use rayon::prelude::*;
        let places: Vec<Result<Place, Refusal>> = {
            let tx = self.db.read()?;
            let authors: Vec<[u8; 32]> = messages.iter().map(|m| m.author).collect();
            registry::prefetch_authors(&*tx, &authors)?;
            messages.iter().map(|m| self.place(&*tx, m)).collect()
        };
        // The signatures on every core, in batches.
        let checked: Vec<Result<(Address, bool), Refusal>> = (places.par_chunks(64))
            .zip(messages.par_chunks(64))
            .flat_map_iter(|(places, messages)| check(places, messages))
            .collect();
        let mut verdicts = Vec::with_capacity(messages.len());
        let mut signed = Vec::new();
        for (position, checked) in checked.into_iter().enumerate() {
            match checked {
                Ok((address, read)) => {
                    signed.push((position, address, read));
                    verdicts.push(None);
                }
                Err(refusal) => verdicts.push(Some(refusal)),
            }
        }
        let job: Vec<Incoming> = (signed.iter())
            .map(|&(position, address, read)| (address, messages[position].bytes.clone(), read))
            .collect();
        // With the other requests in flight: one transaction and disk sync.
        let conflicts = self.ingest.run(job, |jobs| self.store(jobs))?;
        for ((position, _, _), conflict) in signed.into_iter().zip(conflicts) {
            if conflict {
                verdicts[position] = Some(Refusal::never(
                    "index",
                    "another message is stored at this index already",
                ));
            }
        }
        Ok(verdicts)
    }

    /// Stores checked outside messages, in one transaction; answers per job
    /// which of its messages met another one at their address. A message at
    /// an index read already is only compared.
    fn store(&self, jobs: Vec<Vec<Incoming>>) -> anyhow::Result<Vec<Vec<bool>>> {
        let tx = self.db.write()?;
        let addresses: Vec<Address> = jobs.iter().flatten().map(|(a, _, _)| *a).collect();
        powerplug_channel::prefetch_in(&*tx, &addresses)?;
        let mut stored = Vec::with_capacity(addresses.len());
        let mut answers: Vec<Vec<bool>> = jobs.iter().map(|job| vec![false; job.len()]).collect();
        // In address order (stable: of two at one address the first sent
        // wins): a B-tree takes a batch in key order page by page, where
        // random addresses would go back and forth across the whole tree.
        let mut order: Vec<(usize, usize)> = (jobs.iter().enumerate())
            .flat_map(|(j, job)| (0..job.len()).map(move |m| (j, m)))
            .collect();
        order.sort_by_key(|&(j, m)| jobs[j][m].0);
        for (j, m) in order {
            let (address, bytes, read) = &jobs[j][m];
            let there = powerplug_channel::messages_in(&*tx, address)?;
            // The same bytes again: a harmless resend.
            answers[j][m] = !there.is_empty() && !there.iter().any(|b| b == bytes);
            if there.is_empty() && !read {
                powerplug_channel::store_after(&*tx, address, bytes, &there)?;
                stored.push(*address);
            }
        }
        powerplug_channel::note_written(&*tx, &stored)?;
        tx.commit()?;
        Ok(answers)
    }

    /// Where an outside message would go, if its author and index allow it
    /// (its signature is checked next, by [`Place::check`]).
    fn place(&self, tx: &dyn ReadTx, m: &Sealed) -> Result<Place, Refusal> {
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
        Ok(Place {
            root: r.channel.root,
            read_index: r.read_index,
        })
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
