//! Consumers and sources: meters, each one an entity with its own signed,
//! encrypted channel in its upstream host's store and its own registration
//! there. Every slice a meter publishes one reading (usage for a consumer,
//! output for a source) of what its [`Meter`] says, once the meter knows it.
//! Consumers also read payment requests from their return channel and pay
//! them, in multiples of `payment_step`, from their account in the grid's
//! ledger.
//!
//! Crash safety: a reading and the meter's new position commit together into
//! the outbox; a payment is first recorded as pending with its idempotency key,
//! then sent, then confirmed, so a restart sends it again under the same key and
//! the ledger moves the money once.

use powerplug_domain::EntityKind;
use powerplug_domain::{UnixMs, Wh};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use ed25519_dalek::SigningKey;
use serde::Serialize;

use super::catch_up::{self, CaughtUp};
use super::config::{MetersConfig, StateKeeping};
use super::member::{MemberState, Payment};
use super::{Clock, Meter, Step};
use crate::counter::Counter;
use crate::inbox::Command;
use crate::limits::{MAX_READINGS_PER_ROUND, REGISTRATION_THREADS};
use powerplug_channel::{Address, ChannelReader, HttpTransport, Transport};
use powerplug_client::Client;
use powerplug_ledger::{BatchPayment, pay_batch};

pub struct Meters {
    pub config: MetersConfig,
    pub db: powerplug_storage::Db,
    kind: EntityKind,
    ids: Vec<String>,
    keys: BTreeMap<String, SigningKey>,
    upstream: HttpTransport,
    /// The host above's API (registrations, kept state), and the agent
    /// under it (payments).
    api: Client,
    agent: ureq::Agent,
    meter: Box<dyn Meter>,
    clock: Clock,
    /// Cleared to stop taking readings while payments go on (winding down).
    /// Held while readings are taken, so that once `stop_readings` returns
    /// no reading is being published any more.
    reading: std::sync::Mutex<bool>,
    /// Set when the state is kept upstream.
    remote: Option<Remote>,
    /// How the scheduler's rounds went, for `/status`.
    pub scheduler: super::SchedulerHealth,
    /// The timeline of the host above that every request names.
    timeline: powerplug_channel::Timeline,
    /// The last catching up with a host above that was restored, for `/status`.
    caught_up: std::sync::Mutex<Option<CaughtUp>>,
}

/// What a meter host without a disk remembers in memory.
#[derive(Default)]
struct Remote {
    restored: AtomicBool,
    /// Each meter's state as last kept upstream.
    kept: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

/// The channel of a meter without a disk: root and side key from its secret.
fn derived_channel(secret: &[u8; 32], id: &str) -> ([u8; 32], [u8; 32]) {
    use sha2::{Digest, Sha256};
    let derive = |what: &str| -> [u8; 32] {
        Sha256::new()
            .chain_update(b"powerplug/meter-channel/v1")
            .chain_update(secret)
            .chain_update(what)
            .chain_update(id)
            .finalize()
            .into()
    };
    (derive("root"), derive("side-key"))
}

/// What a meter host knows, for `/status`.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct MetersStatus {
    pub meters: usize,
    pub registered: usize,
    pub published_wh: u64,
    pub requests: u64,
    pub requested: u64,
    pub paid: u64,
    pub payments: u64,
    pub outstanding: u64,
    pub pending_payments: u64,
    pub refused_payments: u64,
    /// Messages waiting to go up (at most: see [`crate::outbox::backlog`]).
    pub waiting: u64,
    /// Whether the meters take no readings because too many wait (`backlog`).
    pub holding: bool,
}

impl Meters {
    pub fn open(
        config: MetersConfig,
        kind: EntityKind,
        db: powerplug_storage::Db,
        meter: Box<dyn Meter>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            matches!(kind, EntityKind::Consumer | EntityKind::Source),
            "meters are consumers or sources"
        );
        anyhow::ensure!(config.slice_ms > 0, "slice_ms: at least 1");
        anyhow::ensure!(config.payment_step > 0, "payment_step: at least 1");
        anyhow::ensure!(config.backlog > 0, "backlog: at least 1");
        anyhow::ensure!(
            config.max_reading_ms >= config.slice_ms,
            "max_reading_ms: at least slice_ms ({})",
            config.slice_ms
        );
        anyhow::ensure!(config.max_reading_wh > 0, "max_reading_wh: at least 1");
        // A device's counter is state: without a disk, a restart would
        // forget the last one and the energy since.
        anyhow::ensure!(
            !matches!(config.meter, super::MeterConfig::Mqtt(_))
                || config.state == StateKeeping::Local,
            "meter.mqtt: needs state = \"local\" (a device's last counter is kept on disk)"
        );
        // Without a disk, the secret comes from the configuration: keys and
        // channel roots derive from it, the same after every restart.
        let remote = match &config.state {
            StateKeeping::Local => None,
            StateKeeping::Remote { secret } => {
                let bytes: [u8; 32] = hex::decode(secret)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| anyhow::anyhow!("state.remote.secret: 32 bytes in hex"))?;
                let tx = db.write()?;
                powerplug_storage::set_meta(&*tx, "secret", &bytes)?;
                tx.commit()?;
                Some(Remote::default())
            }
        };
        let secret = super::secret(&db)?;
        let ids = config.ids();
        let keys: BTreeMap<String, SigningKey> = ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    super::signing_key(&secret, &format!("member/{id}")),
                )
            })
            .collect();
        let clock = config.service.clock;
        // New meters start with the current slice; a restarted one goes on where it was.
        let first_slice = clock.now_ms() / config.slice_ms;
        let tx = db.write()?;
        for (id, key) in &keys {
            if MemberState::load(&db, id)?.is_none() {
                let channel = remote.as_ref().map(|_| derived_channel(&secret, id));
                MemberState::create(&*tx, id, key, first_slice, channel)?;
            }
        }
        tx.commit()?;
        let timeline = powerplug_channel::Timeline::default();
        catch_up::remember(&db, &timeline)?;
        let agent = powerplug_channel::agent_on(&timeline);
        Ok(Self {
            upstream: HttpTransport::with_agent(&config.upstream_url, agent.clone()),
            api: Client::with_agent(agent.clone(), &config.upstream_url),
            agent,
            timeline,
            caught_up: Default::default(),
            config,
            db,
            kind,
            ids,
            keys,
            meter,
            clock,
            reading: std::sync::Mutex::new(true),
            remote,
            scheduler: Default::default(),
        })
    }

    fn url(&self) -> &str {
        self.config.upstream_url.trim_end_matches('/')
    }

    /// Remote state, after a start: each meter registers again with its
    /// derived channel (same channel, same credential) and reads back the
    /// state it kept upstream.
    fn restore(&self, remote: &Remote) -> anyhow::Result<()> {
        if remote.restored.load(Ordering::Relaxed) {
            return Ok(());
        }
        // An unreachable host must not look like a first start (which would
        // begin the channels again over the ones kept there): try again later.
        let status = self.api.get("/status")?.status;
        anyhow::ensure!(
            (200..300).contains(&status),
            "{}: {status}, state not restored yet",
            self.url()
        );
        let mut members = self.members()?;
        let mut restored = Vec::new();
        for m in members.iter_mut() {
            // Not there yet (a first start): the normal round registers it.
            let key = self.key(&m.id)?;
            if m.register(&self.api, self.kind, key, self.admission())
                .is_err()
            {
                continue;
            }
            let credential = m.credential.clone().unwrap_or_default();
            if let Some(kept) = MemberState::fetch(&self.api, &m.id, &credential)? {
                *m = MemberState {
                    credential: Some(credential),
                    ..kept
                };
                self.follow_own_channel(m)?;
            }
            restored.push(m.clone());
        }
        self.save(&restored)?;
        remote.restored.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Remote state, after a restore: what the meter sent after it last kept
    /// its state upstream (a stop or crash between sending and keeping) is
    /// read back from its own channel there, so that it goes on after it
    /// instead of sealing those slices again at addresses already taken.
    fn follow_own_channel(&self, m: &mut MemberState) -> anyhow::Result<()> {
        let key = self.key(&m.id)?;
        let mut reader = ChannelReader::resume(&m.info(key), m.channel.next_index)?;
        let slice_ms = self.config.slice_ms;
        loop {
            let poll = reader.poll(&self.upstream)?;
            for data in &poll.data {
                let Some(Command::Usage { end_ms, wh, .. } | Command::Output { end_ms, wh, .. }) =
                    Command::decode(data)
                else {
                    continue;
                };
                m.published_wh += wh.0;
                m.next_slice = m.next_slice.max(end_ms.0 / slice_ms);
            }
            if poll.closed || poll.data.len() < powerplug_channel::MAX_PER_POLL {
                break;
            }
        }
        if reader.next_index() > m.channel.next_index {
            tracing::info!(
                id = %m.id,
                from = m.channel.next_index,
                to = reader.next_index(),
                "went on after what was sent but not kept upstream"
            );
            m.channel.next_index = reader.next_index();
        }
        Ok(())
    }

    /// Remote state: pushes every meter whose state changed since it was last
    /// kept upstream. Called after the outbox drained (a kept channel position
    /// never runs ahead of what was sent) and before payments are sent (a
    /// pending payment is kept before it is made).
    fn sync(&self) -> anyhow::Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let mut kept = remote.kept.lock().unwrap_or_else(|e| e.into_inner());
        for m in self.members()? {
            if m.credential.is_none() {
                continue;
            }
            let now = serde_json::to_vec(&m)?;
            if kept.get(&m.id) != Some(&now) {
                m.store(&self.api)?;
                kept.insert(m.id.clone(), now);
            }
        }
        Ok(())
    }

    fn members(&self) -> anyhow::Result<Vec<MemberState>> {
        let mut out = Vec::with_capacity(self.ids.len());
        for id in &self.ids {
            if let Some(m) = MemberState::load(&self.db, id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn admission(&self) -> Option<&str> {
        self.config.admission_token.as_deref()
    }

    fn key(&self, id: &str) -> anyhow::Result<&SigningKey> {
        self.keys
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("no key for {id}"))
    }

    /// Catches up if the host above went back in time (see [`catch_up`]);
    /// says whether it did.
    fn follow_timeline(&self) -> anyhow::Result<bool> {
        let Some(theirs) = catch_up::check(&self.api, &self.timeline, &self.db)? else {
            return Ok(false);
        };
        if let Some(remote) = &self.remote {
            // What the restored host holds of their state is older: the
            // caught-up state goes there again (`sync`).
            remote
                .kept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        let unsent = crate::outbox::unsent(&self.db)?;
        let ledger = self.kind == EntityKind::Consumer;
        let mut total = CaughtUp::default();
        for mut m in self.members()? {
            let key = self.key(&m.id)?;
            let mut up = catch_up::ask(&self.api, &self.agent, &*self.db.read()?, &m, ledger)?;
            up.unsent_from = unsent.get(&key.verifying_key().to_bytes()).copied();
            let tx = self.db.write()?;
            total.add(m.catch_up(&*tx, key, &up, self.config.resend_window)?);
            m.save(&*tx)?;
            tx.commit()?;
        }
        catch_up::seen(&self.db, &theirs)?;
        tracing::warn!(timeline = %theirs, ?total, "the host above was restored from a backup: caught up with it");
        *self.caught_up.lock().unwrap_or_else(|e| e.into_inner()) = Some(total);
        Ok(true)
    }

    fn drain(&self) -> anyhow::Result<usize> {
        crate::outbox::drain(&self.db, 100_000, self.config.resend_window, |d| {
            (d == super::member::UPSTREAM).then_some(&self.upstream as &dyn Transport)
        })?
        .sent()
    }

    /// Registers the meters that are not yet (each with its hello), a
    /// few at a time.
    fn register(&self, members: &mut [MemberState]) -> anyhow::Result<()> {
        let mut waiting: Vec<&mut MemberState> = members
            .iter_mut()
            .filter(|m| m.credential.is_none())
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let per_thread = waiting.len().div_ceil(REGISTRATION_THREADS);
        let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = waiting
                .chunks_mut(per_thread)
                .map(|chunk| {
                    scope.spawn(move || -> anyhow::Result<()> {
                        for m in chunk {
                            let key = self.key(&m.id)?;
                            m.register(&self.api, self.kind, key, self.admission())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a registration thread panicked")))
                })
                .collect()
        });
        let registered: Vec<MemberState> = waiting
            .iter()
            .filter(|m| m.credential.is_some())
            .map(|m| (**m).clone())
            .collect();
        self.save(&registered)?;
        results.into_iter().collect()
    }

    fn save(&self, members: &[MemberState]) -> anyhow::Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let tx = self.db.write()?;
        for m in members {
            m.save(&*tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Seals, for each meter, readings of the slices that ended (and that
    /// its [`Meter`] knows: a device may not have reported yet) since its
    /// last: one reading for all of them, unless that is longer or more than
    /// a reading may be (`max_reading_ms`, `max_reading_wh`). A host that
    /// keeps up reads one slice at a time; one that fell behind, fewer and
    /// longer readings. None while too many wait to go up (`backlog`). What a
    /// meter gives for a slice is taken in the transaction that publishes it.
    fn publish_readings(&self, members: &mut [MemberState]) -> anyhow::Result<u64> {
        if self.holding(crate::outbox::backlog(&self.db)?, members.len()) {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let slice_ms = self.config.slice_ms;
        let (ended, most_slices) = (now / slice_ms, self.config.max_reading_ms / slice_ms);
        let tx = self.db.write()?;
        let mut published = 0;
        for m in members.iter_mut() {
            let settled = self.meter.settled(&*tx, &m.id, now)? / slice_ms;
            let ended = ended.min(settled);
            let mut n = 0;
            // A slice taken from the meter that did not fit the last reading.
            let mut carried = None;
            while carried.is_some() || (m.next_slice < ended && n < MAX_READINGS_PER_ROUND) {
                let (first, mut slices, mut wh) = (m.next_slice, 0, 0u64);
                while first + slices < ended && slices < most_slices {
                    let more = match carried.take() {
                        Some(more) => more,
                        None => self.meter.take(&*tx, &m.id, first + slices, slice_ms)?,
                    };
                    let total = wh.saturating_add(more);
                    if slices > 0 && total > self.config.max_reading_wh {
                        carried = Some(more);
                        break;
                    }
                    (wh, slices) = (total, slices + 1);
                }
                let (start_ms, end_ms) = (first * slice_ms, (first + slices) * slice_ms);
                let command = match self.kind {
                    // Where it has read its return channel, as stored (the
                    // members were loaded at the round's start): the grid
                    // lets go of nothing the meter could still need.
                    EntityKind::Consumer => Command::Usage {
                        start_ms: UnixMs(start_ms),
                        end_ms: UnixMs(end_ms),
                        wh: Wh(wh),
                        read: m.return_channel.is_some().then_some(m.return_read),
                    },
                    _ => Command::Output {
                        start_ms: UnixMs(start_ms),
                        end_ms: UnixMs(end_ms),
                        wh: Wh(wh),
                        price: None,
                    },
                };
                m.publish(&*tx, &self.keys[&m.id], command.encode())?;
                m.published_wh += wh;
                m.next_slice += slices;
                n += 1;
            }
            if n > 0 {
                m.save(&*tx)?;
                published += n;
            }
        }
        Counter::Readings.add(&*tx, published)?;
        tx.commit()?;
        Ok(published)
    }

    /// Reads payment requests and decides payments; records them as pending.
    /// One batched read finds the return channels that moved; only those are
    /// followed.
    fn read_requests(&self, members: &mut [MemberState]) -> anyhow::Result<()> {
        let step = self.config.payment_step;
        let with_channel: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].return_channel.is_some())
            .collect();
        let next: Vec<Address> = with_channel
            .iter()
            .filter_map(|&i| {
                let m = &members[i];
                m.return_channel
                    .as_ref()
                    .map(|c| Address::of(&c.root, m.return_read))
            })
            .collect();
        let found = self.upstream.get_many(&next)?;
        let mut changed = Vec::new();
        let mut read = Vec::new();
        for (&i, messages) in with_channel.iter().zip(found) {
            let m = &mut members[i];
            let mut dirty = false;
            if !messages.is_empty() {
                let Some(info) = &m.return_channel else {
                    continue;
                };
                let mut reader = ChannelReader::resume(info, m.return_read)?;
                let Ok(poll) = reader.poll(&self.upstream) else {
                    continue;
                };
                // Only the host writes the channel: one message an index, a
                // hello at 0.
                let first = m.return_read.max(1);
                for (index, data) in (first..).zip(poll.data) {
                    if let Some(Command::PaymentRequest { owed, pay_to, .. }) =
                        Command::decode(&data)
                    {
                        read.push((m.id.clone(), index, owed.get()));
                        m.requested += owed.get();
                        m.requests += 1;
                        m.outstanding += owed.get();
                        m.pay_to = Some(pay_to);
                    }
                }
                dirty = reader.next_index() != m.return_read;
                m.return_read = reader.next_index();
            }
            if let Some(to) = m
                .pay_to
                .clone()
                .filter(|_| m.pending.is_none() && m.outstanding >= step)
            {
                let amount = m.outstanding / step * step;
                m.payments += 1;
                m.outstanding -= amount;
                m.pending = Some(Payment {
                    key: catch_up::payment_key(&m.id, m.payments),
                    to,
                    amount,
                });
                dirty = true;
            }
            if dirty {
                changed.push(m.clone());
            }
        }
        let tx = self.db.write()?;
        for (id, index, owed) in &read {
            catch_up::log_request(&*tx, id, *index, *owed, self.config.resend_window)?;
        }
        for m in &changed {
            m.save(&*tx)?;
        }
        tx.commit()
    }

    /// Sends the pending payments, many consumers' in one request; confirms or
    /// undoes each by what the ledger says.
    fn pay(&self, members: &mut [MemberState]) -> anyhow::Result<()> {
        let url = self.config.upstream_url.trim_end_matches('/');
        let due: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].pending.is_some() && members[i].credential.is_some())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let batch: Vec<BatchPayment> = due
            .iter()
            .filter_map(|&i| {
                let m = &members[i];
                let (p, credential) = (m.pending.as_ref()?, m.credential.clone()?);
                Some(BatchPayment {
                    credential,
                    to: p.to.clone(),
                    amount: powerplug_ledger::Tokens(p.amount),
                    key: p.key.clone(),
                })
            })
            .collect();
        // Unreachable: every payment stays pending and goes again, same keys.
        let outcomes = match pay_batch(&self.agent, url, &batch) {
            Ok(outcomes) => outcomes,
            Err(_) => return Ok(()),
        };
        let tx = self.db.write()?;
        let window = self.config.resend_window;
        for (&i, outcome) in due.iter().zip(outcomes) {
            let m = &mut members[i];
            let Some(payment) = m.pending.take() else {
                continue;
            };
            match outcome {
                Ok(_) => {
                    m.paid += payment.amount;
                    catch_up::log_payment(&*tx, &m.id, m.payments, payment.amount, window)?;
                }
                Err(why) => {
                    tracing::warn!(entity = %m.id, key = %payment.key, why = %powerplug_strategy::text::for_log(&why.to_string()), "payment refused");
                    m.outstanding += payment.amount;
                    m.refused += 1;
                    // Nothing moved under its key: logged as nothing paid.
                    catch_up::log_payment(&*tx, &m.id, m.payments, 0, window)?;
                }
            }
            m.save(&*tx)?;
        }
        tx.commit()
    }

    /// What `/status` shows of a device feed (MQTT), if the meters read one.
    pub fn feed(&self) -> Option<serde_json::Value> {
        self.meter.status()
    }

    /// The last catching up with a host above that was restored, if any.
    pub fn caught_up(&self) -> Option<CaughtUp> {
        *self.caught_up.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> anyhow::Result<MetersStatus> {
        let mut s = MetersStatus::default();
        for m in self.members()? {
            s.meters += 1;
            s.registered += usize::from(m.credential.is_some());
            s.published_wh += m.published_wh;
            s.requests += m.requests;
            s.requested += m.requested;
            s.paid += m.paid;
            s.payments += m.payments;
            s.outstanding += m.outstanding;
            s.pending_payments += u64::from(m.pending.is_some());
            s.refused_payments += m.refused;
        }
        s.waiting = crate::outbox::backlog(&self.db)?;
        s.holding = self.holding(s.waiting, s.meters);
        Ok(s)
    }

    /// Whether so many readings wait to go up that the meters take none.
    fn holding(&self, waiting: u64, meters: usize) -> bool {
        waiting > self.config.backlog.saturating_mul(meters as u64)
    }

    /// Each meter as `/status` shows it (for hosts of up to `limit` meters):
    /// its registration, channel positions, totals and, for consumers, its
    /// balance in the grid's ledger (`null` when the ledger cannot be reached).
    pub fn each(&self, limit: usize) -> anyhow::Result<Option<Vec<serde_json::Value>>> {
        if self.ids.len() > limit {
            return Ok(None);
        }
        let mut out = Vec::new();
        for m in self.members()? {
            let balance = match (&m.credential, self.kind) {
                (Some(credential), EntityKind::Consumer) => {
                    use powerplug_ledger::Ledger;
                    powerplug_ledger::RemoteLedger::with_agent(
                        self.agent.clone(),
                        self.url(),
                        credential,
                    )
                    .balance()
                    .ok()
                }
                _ => None,
            };
            out.push(serde_json::json!({
                "id": m.id,
                "registered": m.credential.is_some(),
                "index": m.index,
                "channel_position": m.channel.next_index,
                "return_position": m.return_read,
                "next_slice": m.next_slice,
                "published_wh": m.published_wh,
                "requested": m.requested,
                "paid": m.paid,
                "outstanding": m.outstanding,
                // Where the last payment request asked to be paid.
                "pay_to": m.pay_to,
                "pending_payment": m.pending.as_ref().map(|p| p.amount),
                "balance": balance,
            }));
        }
        Ok(Some(out))
    }

    /// Stops taking readings, after the ones being taken now; registrations
    /// and payments go on. (Without the wait, a demo winding down compared
    /// totals while a last reading was still being published.)
    pub fn stop_readings(&self) {
        *self.reading.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }

    pub fn kind(&self) -> EntityKind {
        self.kind
    }

    /// Every meter's state, by id.
    pub fn members_state(&self) -> anyhow::Result<Vec<MemberState>> {
        self.members()
    }
}

impl Step for Meters {
    fn scheduler(&self) -> &super::SchedulerHealth {
        &self.scheduler
    }

    fn step(&self) -> anyhow::Result<()> {
        if let Some(remote) = &self.remote {
            self.restore(remote)?;
        }
        let mut members = self.members()?;
        {
            let reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
            if *reading {
                self.publish_readings(&mut members)?;
            }
        }
        // Nothing goes up before catching up with a host above that went
        // back in time.
        if self.follow_timeline()? {
            members = self.members()?;
        }
        // Registered first: the upstream store takes a channel's messages
        // only once the channel is registered there.
        self.register(&mut members)?;
        self.drain()?;
        self.sync()?;
        if self.kind == EntityKind::Consumer {
            self.read_requests(&mut members)?;
            self.sync()?;
            self.pay(&mut members)?;
            self.sync()?;
        }
        Ok(())
    }

    /// What was read goes out before the meters stop, and (remote state)
    /// the channel positions it reached are kept upstream: without the
    /// sync, a round that failed after publishing left them behind what
    /// was sent, and meters started again wrote on addresses already taken.
    fn finish(&self) -> anyhow::Result<()> {
        self.drain()?;
        self.sync()
    }
}
