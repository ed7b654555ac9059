//! The producer: reads its sources' output, runs the producer strategy every
//! `tick_ms`, and publishes the priced output commands it decides on its own
//! channel in its grid's store. It registers with the grid like any entity;
//! the grid's ledger holds its account, and payouts come back as transfers.
//! A tick's books, sealed commands, consumed records, transfer cursor and
//! tick-log entry commit in one transaction.

use powerplug_domain::EntityKind;
use powerplug_domain::{Tokens, UnixMs, Wh};
use std::sync::Mutex;

use super::config::ProducerConfig;
use super::member::MemberState;
use super::{Clock, Hub, Step};
use crate::books::{ProducerNews, StoredBooks, producer_input, store_decision};
use crate::counter::Counter;
use crate::inbox::{self, Command};
use crate::limits::MAX_RECORDS_PER_TICK;
use crate::registry;
use crate::tick_log::{self, Outcome};
use powerplug_channel::HttpTransport;
use powerplug_client::Client;
use powerplug_ledger::{Ledger, RemoteLedger};
use powerplug_storage::{self as storage, Store};
use powerplug_strategy::{
    Entity, ProducerDecision, ProducerInput, ProducerStrategy, SourceOutput, Transfer,
};

const SLOT: &str = "producer";
/// The last payout on the grid's ledger a tick took (its `seq`).
const CURSOR: &str = "producer/transfer-cursor";

pub struct Producer {
    pub hub: Hub,
    /// The strategy, and how it is replaced.
    pub slot: super::swap::Slot<ProducerStrategy>,
    clock: Clock,
    grid_url: String,
    grid: HttpTransport,
    /// The grid's API (registration), and the agent under it (its ledger).
    api: Client,
    agent: ureq::Agent,
    /// The registration token the grid's operator issued, if the grid needs one.
    admission: Option<String>,
    key: ed25519_dalek::SigningKey,
    /// The producer's membership at its grid; one scheduler uses it at a time.
    member: Mutex<MemberState>,
    schedule: super::TickSchedule,
    /// The grid's timeline that every request to it names.
    timeline: powerplug_channel::Timeline,
    resend_window: u64,
    /// Whether this host ticks and reports, or stands by.
    pub leader: super::leader::Leadership,
}

/// What a tick took in, to be marked as taken when it commits.
struct Gathered {
    records: Vec<inbox::Record>,
    joined: Vec<u32>,
    left: Vec<u32>,
    next_cursor: u64,
    income: u64,
}

impl Producer {
    pub fn open(config: &ProducerConfig, db: powerplug_storage::Db) -> anyhow::Result<Self> {
        let id = &config.service.id;
        let objects = super::open_objects(&config.service, &db)?;
        let mut hub = Hub::new(
            id,
            db,
            objects,
            &[EntityKind::Source],
            config.admission.clone(),
            config.operator_token.clone(),
        )?;
        hub.plausible = config.plausible;
        hub.keep_sent = config.resend_window;
        hub.retention = crate::retention::Keeper::new(
            config.retention,
            config.strategy.tick_log_keep,
            u64::from(config.strategy.dry_run_ticks),
        );
        hub.operators = super::config::Operators::new(
            config.operator_token.as_deref(),
            &config.operator_tokens,
        );
        let slot = super::swap::Slot::open(
            &hub.db,
            &hub.objects,
            SLOT,
            &config.strategy,
            &config.service.data_dir,
            &config.trusted_keys,
            config.service.clock,
        )?;
        // The producer's own channel to the grid is signed with the key of its id.
        let key = super::signing_key(&hub.secret, &format!("member/{id}"));
        let member = match MemberState::load(&hub.db, id)? {
            Some(m) => m,
            None => {
                let tx = hub.db.write()?;
                let m = MemberState::create(&*tx, id, &key, 0, None)?;
                tx.commit()?;
                m
            }
        };
        let grid_url = config.grid_url.trim_end_matches('/').to_owned();
        let timeline = powerplug_channel::Timeline::default();
        super::catch_up::remember(&hub.db, &timeline)?;
        let agent = powerplug_channel::agent_on(&timeline);
        let leader = super::leader::Leadership::start(
            hub.db.clone(),
            SLOT,
            std::time::Duration::from_millis(config.service.lease_ms),
        )?;
        Ok(Self {
            leader,
            hub,
            slot,
            clock: config.service.clock,
            grid: HttpTransport::with_agent(&grid_url, agent.clone()),
            api: Client::with_agent(agent.clone(), &grid_url),
            grid_url,
            agent,
            timeline,
            resend_window: config.resend_window,
            admission: config.admission_token.clone(),
            key,
            member: Mutex::new(member),
            schedule: super::TickSchedule::new(config.strategy.tick_ms),
        })
    }

    pub fn db(&self) -> &dyn Store {
        &self.hub.db
    }

    /// A transaction of the tick in progress (see [`Leadership::tick_tx`]).
    ///
    /// [`Leadership::tick_tx`]: super::leader::Leadership::tick_tx
    fn tick_tx(&self) -> anyhow::Result<Box<dyn storage::WriteTx + '_>> {
        self.leader.tick_tx(self.db())
    }

    /// Reads the active version and the membership (its channel's next
    /// index) again from the store: another leader may have moved them on.
    fn take_over(&self) -> anyhow::Result<()> {
        self.slot.reload()?;
        let mut member = self.lock()?;
        if let Some(stored) = MemberState::load(self.db(), &member.id)? {
            *member = stored;
        }
        Ok(())
    }

    /// The active version now.
    pub fn strategy(&self) -> ProducerStrategy {
        self.slot.current()
    }

    pub fn member(&self) -> anyhow::Result<MemberState> {
        Ok(self.lock()?.clone())
    }

    fn lock(&self) -> anyhow::Result<std::sync::MutexGuard<'_, MemberState>> {
        self.member
            .lock()
            .map_err(|_| anyhow::anyhow!("producer state lock poisoned"))
    }

    /// Registers (again) with the grid, with the operator's token if it has one.
    fn register(&self, member: &mut MemberState) -> anyhow::Result<()> {
        let admission = self.admission.as_deref();
        member.register(&self.api, EntityKind::Producer, &self.key, admission)
    }

    /// Registers with the grid (the hello goes with the registration).
    fn ensure_registered(&self) -> anyhow::Result<()> {
        let mut member = self.lock()?;
        if member.credential.is_some() || member.closed {
            return Ok(());
        }
        self.register(&mut member)?;
        let tx = self.db().write()?;
        member.save(&*tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Catches up if the grid went back in time (see [`super::catch_up`]):
    /// the reports it lost go again, and the payouts cursor goes back to
    /// where its ledger is.
    fn follow_timeline(&self) -> anyhow::Result<()> {
        let db = self.db();
        let Some(theirs) = super::catch_up::check(&self.api, &self.timeline, db)? else {
            return Ok(());
        };
        let mut member = self.lock()?;
        let mut up = super::catch_up::ask(&self.api, &self.agent, &*db.read()?, &member, false)?;
        up.unsent_from = crate::outbox::unsent(db)?
            .get(&self.key.verifying_key().to_bytes())
            .copied();
        let last_seq = match &member.credential {
            Some(c) => {
                RemoteLedger::with_agent(self.agent.clone(), &self.grid_url, c).last_seq()?
            }
            None => 0,
        };
        let tx = db.write()?;
        let mut next = member.clone();
        let caught = next.catch_up(&*tx, &self.key, &up, self.resend_window)?;
        next.save(&*tx)?;
        let cursor: u64 = storage::meta_in(&*tx, CURSOR)?.unwrap_or(0);
        storage::set_meta(&*tx, CURSOR, &cursor.min(last_seq))?;
        tx.commit()?;
        *member = next;
        drop(member);
        super::catch_up::seen(db, &theirs)?;
        tracing::warn!(timeline = %theirs, ?caught, "the grid was restored from a backup: caught up with it");
        Ok(())
    }

    /// One tick now. Returns the number of the tick and why it failed, if it did.
    pub fn tick(&self) -> anyhow::Result<(u64, Option<String>)> {
        // The grid is asked before the turn is taken, so that an activation
        // never waits on the network.
        let fetched = self.payouts_since(storage::meta(self.db(), CURSOR)?.unwrap_or(0))?;
        let _turn = self.slot.turn();
        self.leader.begin_tick()?;
        let sha256 = self.slot.current().info().sha256;
        let span = super::tick_span("producer", SLOT, &sha256);
        let _in = span.enter();
        let started = std::time::Instant::now();
        let seen = super::Seen::start(&self.hub, self.clock.now_ms(), sha256);
        let ticked = self.tick_in_turn(fetched);
        seen.done(ticked.as_ref());
        let super::Ticked { tick, why, .. } = ticked?;
        super::tick_done(&span, started, why.as_deref());
        Ok((tick, why))
    }

    /// Payouts on the grid's ledger after `cursor`; unreachable, none (the
    /// next tick asks again from the same cursor). No lock is held across the
    /// call: `/status` reads the membership meanwhile.
    fn payouts_since(&self, cursor: u64) -> anyhow::Result<Vec<powerplug_ledger::Transfer>> {
        let credential = self.lock()?.credential.clone();
        Ok(match credential {
            Some(credential) => {
                RemoteLedger::with_agent(self.agent.clone(), &self.grid_url, &credential)
                    .transfers_since(cursor)
                    .unwrap_or_default()
            }
            None => Vec::new(),
        })
    }

    /// A tick in three steps: gather the news, decide, commit.
    /// What it reported goes in `output_wh`.
    fn tick_in_turn(
        &self,
        fetched: Vec<powerplug_ledger::Transfer>,
    ) -> anyhow::Result<super::Ticked> {
        let strategy = self.slot.current();
        let db = self.db();
        let now = self.clock.now_ms();
        let mut member = self.lock()?;
        let (gathered, news) = self.gather(fetched, &member.id)?;
        let read = db.read()?;
        let books = StoredBooks::new(&*read, SLOT);
        let input = producer_input(&books, now, self.slot.settings(), news)?;
        drop(read);
        let tick = Counter::Ticks.read(db)? + 1;
        tracing::Span::current().record("tick", tick);
        let sha = &strategy.info().sha256;
        let (decision, fuel) = match strategy.tick(&input) {
            Ok(outcome) => {
                tracing::Span::current().record("fuel", outcome.fuel_used);
                (outcome.decision, outcome.fuel_used)
            }
            Err(failure) => {
                let why = failure.to_string();
                let tx = self.tick_tx()?;
                tick_log::record_producer(&*tx, SLOT, sha, input, Outcome::Failed(why.clone()))?;
                Counter::TicksFailed.add(&*tx, 1)?;
                tx.commit()?;
                return Ok(super::Ticked {
                    tick,
                    why: Some(why),
                    ..Default::default()
                });
            }
        };
        let output_wh = decision.commands.iter().map(|c| c.wh).sum();
        *member = self.commit(&member, gathered, sha, input, decision)?;
        drop(member);
        Ok(super::Ticked {
            tick,
            fuel,
            output_wh,
            ..Default::default()
        })
    }

    /// What the tick takes in: its sources' readings, who joined and left,
    /// and the grid's payouts to `me` fetched before the turn.
    fn gather(
        &self,
        fetched: Vec<powerplug_ledger::Transfer>,
        me: &str,
    ) -> anyhow::Result<(Gathered, ProducerNews)> {
        let db = self.db();
        let records = inbox::pending(db, MAX_RECORDS_PER_TICK)?;
        let (joined, left) = registry::news_since_tick(db, usize::MAX)?;
        // A tick that ran since the payouts were fetched took some of them.
        let cursor: u64 = storage::meta(db, CURSOR)?.unwrap_or(0);
        let transfers: Vec<_> = fetched.into_iter().filter(|t| t.seq > cursor).collect();
        let mut news = ProducerNews {
            left: left.clone(),
            ..ProducerNews::default()
        };
        for &index in &joined {
            if let Some(id) = registry::id_of(db, index)? {
                news.joined.push(Entity::new(index, EntityKind::Source, id));
            }
        }
        news.outputs = records
            .iter()
            .map(|r| SourceOutput {
                source: r.entity,
                start_ms: r.start_ms,
                end_ms: r.end_ms,
                wh: r.wh,
            })
            .collect();
        news.transfers = transfers
            .iter()
            .map(|t| Transfer {
                entity: None,
                amount: t.amount.get(),
                at_ms: t.at_ms.get(),
                incoming: t.to.as_str() == me,
            })
            .collect();
        let income = transfers
            .iter()
            .filter(|t| t.to.as_str() == me)
            .map(|t| t.amount.get())
            .sum();
        let gathered = Gathered {
            next_cursor: transfers.last().map_or(cursor, |t| t.seq),
            records,
            joined,
            left,
            income,
        };
        Ok((gathered, news))
    }

    /// Carries out a decision in one transaction: the books, the news taken,
    /// the outputs it reports to the grid (sealed into the outbox), counters
    /// and the tick log. Returns the membership as it is after the commit.
    fn commit(
        &self,
        member: &MemberState,
        gathered: Gathered,
        sha: &powerplug_strategy::Sha256,
        input: ProducerInput,
        decision: ProducerDecision,
    ) -> anyhow::Result<MemberState> {
        let tx = self.tick_tx()?;
        store_decision(&*tx, SLOT, &decision.state, &decision.cells)?;
        inbox::consume(&*tx, &gathered.records)?;
        registry::consume_news(&*tx, &gathered.joined, &gathered.left)?;
        storage::set_meta(&*tx, CURSOR, &gathered.next_cursor)?;
        let mut next = member.clone();
        for c in &decision.commands {
            anyhow::ensure!(
                c.start_ms < c.end_ms && c.wh <= inbox::MAX_WH && c.price <= inbox::MAX_PRICE,
                "the strategy reported an impossible output: {c:?}"
            );
            let command = Command::Output {
                start_ms: UnixMs(c.start_ms),
                end_ms: UnixMs(c.end_ms),
                wh: Wh(c.wh),
                price: Some(Tokens(c.price)),
            };
            next.publish(&*tx, &self.key, command.encode())?;
            next.published_wh += c.wh;
        }
        next.save(&*tx)?;
        storage::set_meta(
            &*tx,
            "producer/metrics",
            &decision
                .metrics
                .iter()
                .map(|m| (m.name.clone(), m.value))
                .collect::<Vec<_>>(),
        )?;
        Counter::Ticks.add(&*tx, 1)?;
        Counter::SourceWh.add(&*tx, input.outputs.iter().map(|o| o.wh).sum())?;
        Counter::ReportedWh.add(&*tx, decision.commands.iter().map(|c| c.wh).sum())?;
        Counter::Asked.add(&*tx, decision.commands.iter().map(|c| c.price).sum())?;
        Counter::Commands.add(&*tx, decision.commands.len() as u64)?;
        Counter::Received.add(&*tx, gathered.income)?;
        // Data the strategy says came too late is energy that was produced
        // and never sold: the operator sees it in `/status`.
        let late = decision.metrics.iter().find(|m| m.name == "late-wh");
        Counter::LateWh.add(&*tx, late.map_or(0, |m| m.value.max(0) as u64))?;
        tick_log::record_producer(&*tx, SLOT, sha, input, Outcome::Decided(decision))?;
        tx.commit()?;
        Ok(next)
    }

    pub fn metrics(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(storage::meta(self.db(), "producer/metrics")?.unwrap_or_default())
    }

    /// The clock its ticks run on.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Commits a change of the membership together with what it sends, then
    /// sends it.
    fn change(
        &self,
        member: &mut MemberState,
        f: impl FnOnce(&mut MemberState, &dyn storage::WriteTx) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let tx = self.db().write()?;
        f(member, &*tx)?;
        member.save(&*tx)?;
        tx.commit()?;
        self.hub.drain(Some(&self.grid))?;
        Ok(())
    }

    /// The original's closedown: goodbye on the channel to the grid, and the
    /// registration removed; the producer stops reporting until `initialise`.
    pub fn closedown(&self) -> anyhow::Result<MemberState> {
        let mut member = self.lock()?;
        if !member.closed {
            self.change(&mut member, |m, tx| {
                m.closed = true;
                m.goodbye(tx, &self.key)
            })?;
        }
        member.deregister(&self.api)?;
        self.change(&mut member, |_, _| Ok(()))?;
        Ok(member.clone())
    }

    /// The original's reset: goodbye, a fresh channel, a new registration of
    /// the same id (under the current credential, so the grid keeps its index).
    pub fn reset(&self) -> anyhow::Result<MemberState> {
        let mut member = self.lock()?;
        self.change(&mut member, |m, tx| {
            if !m.closed {
                m.goodbye(tx, &self.key)?;
            }
            m.closed = false;
            m.renew(&self.key)
        })?;
        self.register(&mut member)?;
        self.change(&mut member, |_, _| Ok(()))?;
        Ok(member.clone())
    }

    /// The original's initialise: after a closedown, a fresh channel and a new
    /// registration; otherwise (already registered) nothing changes.
    pub fn initialise(&self) -> anyhow::Result<MemberState> {
        let mut member = self.lock()?;
        if member.closed {
            self.change(&mut member, |m, _| {
                m.closed = false;
                m.renew(&self.key)
            })?;
        }
        if member.credential.is_none() {
            self.register(&mut member)?;
            self.change(&mut member, |_, _| Ok(()))?;
        }
        Ok(member.clone())
    }

    pub fn grid_url(&self) -> &str {
        &self.grid_url
    }

    /// The producer's balance in its grid's ledger; `None` if unknown now.
    pub fn balance(&self) -> Option<powerplug_ledger::Tokens> {
        let credential = self.lock().ok()?.credential.clone()?;
        RemoteLedger::with_agent(self.agent.clone(), &self.grid_url, &credential)
            .balance()
            .ok()
    }

    pub fn closed(&self) -> anyhow::Result<bool> {
        Ok(self.lock()?.closed)
    }
}

impl super::swap::Runs for Producer {
    type Strategy = ProducerStrategy;

    fn slot(&self) -> &super::swap::Slot<ProducerStrategy> {
        &self.slot
    }
}

impl Step for Producer {
    fn scheduler(&self) -> &super::SchedulerHealth {
        &self.hub.scheduler
    }

    /// As the grid's: a standby serves HTTP and follows the store.
    fn step(&self) -> anyhow::Result<()> {
        let Some(turn) = self.leader.turn() else {
            return self.take_over();
        };
        if turn.new {
            self.take_over()?;
        }
        self.hub.poll(self.clock.now_ms())?;
        let now = self.clock.now_ms();
        let open = !self.closed()?;
        if open && self.schedule.due(now) {
            let (_, failed) = self.tick()?;
            self.slot.watch(failed.as_deref())?;
        }
        self.follow_timeline()?;
        // Registered first: the grid's store takes the producer's output only
        // once its channel is registered there.
        self.ensure_registered()?;
        self.hub.drain(Some(&self.grid))?;
        self.hub
            .retention
            .maybe_run(&self.hub.db, &self.hub.objects, &self.hub.figures, now);
        Ok(())
    }

    fn finish(&self) -> anyhow::Result<()> {
        self.hub.retention.wait();
        self.hub.figures.wait();
        if self.leader.epoch().is_some() {
            self.hub.drain(Some(&self.grid))?;
        }
        self.leader.stop();
        Ok(())
    }
}
