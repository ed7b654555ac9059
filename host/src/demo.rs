//! `powerplug demo`: a grid, producers with their sources, and consumers, each
//! a role with its own database and HTTP API on loopback, wired through the
//! same HTTP routes and channels that separate processes use. Simulated time
//! runs `time_scale` times faster than real time. It ends with a summary whose
//! money checks are computed, not assumed.

use crate::domain::{EntityKind, UnixMs};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::counter::{self, Counter};
use crate::http::run;
use crate::http::run::Running;
use crate::role::config::{GridConfig, MetersConfig, ProducerConfig, Service};
use crate::role::grid::Grid;
use crate::role::meters::Meters;
use crate::role::producer::Producer;
use crate::role::{Clock, MeterConfig, unix_ms};
use crate::storage::StorageConfig;
use crate::{api, wallet};
use powerplug_client::Client;
use powerplug_domain::Tokens;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Options {
    pub producers: u32,
    pub sources_per_producer: u32,
    pub consumers: u32,
    pub time_scale: u64,
    /// Stop after this many grid ticks…
    pub ticks: Option<u64>,
    /// …or after this much real time.
    pub duration: Option<Duration>,
    pub data_dir: PathBuf,
    /// Where the grid listens; the other roles take free loopback ports.
    pub listen: SocketAddr,
    pub grid_component: PathBuf,
    pub producer_component: PathBuf,
    /// Tokens issued to each consumer at the start.
    pub consumer_funds: u64,
    pub seed: u64,
    /// The grid's operator token (strategy uploads); random if `None`.
    pub operator_token: Option<String>,
    /// A grid token that may only read: the console for onlookers.
    pub viewer_token: Option<String>,
    /// What the grid and the producers keep of what they finished with.
    pub retention: powerplug_roles::retention::Retention,
    /// Where every role keeps its store.
    pub storage: DemoStorage,
}

/// Where the demo's roles keep their stores.
#[derive(Debug, Clone, Default)]
pub enum DemoStorage {
    /// Each in a redb file in its data directory.
    #[default]
    Redb,
    /// Each in a namespace `<prefix>_<role id>` of one PostgreSQL database.
    Postgres { url: String, prefix: String },
}

impl DemoStorage {
    /// The ids of the roles the demo runs, as their stores are named.
    pub fn role_ids(o: &Options) -> Vec<String> {
        let mut ids = vec!["grid".to_owned(), "consumer".to_owned()];
        for p in 0..o.producers {
            ids.push(format!("producer-{p}"));
            ids.push(format!("source-{p}"));
        }
        ids
    }

    /// Removes what the demo's roles stored (a PostgreSQL namespace each).
    /// Blocking.
    pub fn remove(&self, o: &Options) -> anyhow::Result<()> {
        if let Self::Postgres { url, .. } = self {
            for id in Self::role_ids(o) {
                if let StorageConfig::Postgres { namespace, .. } = self.config(&id) {
                    crate::storage::PgStore::connect(url, &namespace)?.drop_namespace()?;
                }
            }
        }
        Ok(())
    }

    /// The store of the role `id`.
    pub fn config(&self, id: &str) -> StorageConfig {
        match self {
            Self::Redb => StorageConfig::default(),
            Self::Postgres { url, prefix } => StorageConfig::Postgres {
                url: url.clone(),
                namespace: format!("{prefix}_{id}"),
            },
        }
    }
}

/// Readings a demo meter host keeps, all its meters together, for a host
/// above restored from a backup (~300 B each). The default window (a day of
/// one reading a minute) suits a real meter, one to a device; the demo's
/// thousands of meters in one store kept 1.3 GB of it at 2,000 consumers,
/// and 100,000 meters would keep 12 M readings (BENCHMARKS.md, the soaks).
const DEMO_RESEND_COPIES: u64 = 500_000;

/// Readings each of a host's `meters` keeps: an hour of 30 s slices, fewer
/// where the host has so many meters that it would keep more than
/// [`DEMO_RESEND_COPIES`] (at 100,000 meters, 5: a round over that many
/// meters takes minutes, so each reading covers several slices).
fn demo_resend_window(meters: u32) -> u64 {
    (DEMO_RESEND_COPIES / u64::from(meters.max(1))).clamp(4, 120)
}

/// What the demo shows while it runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    /// Where the grid's API is (for uploads while the demo runs).
    pub grid_url: String,
    pub elapsed_ms: u64,
    pub simulated_s: u64,
    /// The simulated clock's time: what the strategies see.
    pub simulated_ms: u64,
    pub grid_ticks: u64,
    pub generated_wh: u64,
    pub reported_wh: u64,
    pub used_wh: u64,
    pub billed_wh: u64,
    pub requested: u64,
    pub paid_by_consumers: u64,
    pub paid_to_producers: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub holds: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub progress: Progress,
    pub producers: u32,
    pub sources: u32,
    pub consumers: u32,
    pub failed_ticks: u64,
    pub payment_requests: u64,
    pub requests_read_by_consumers: u64,
    pub consumer_payments: u64,
    pub running_costs: u64,
    pub undistributed: u64,
    pub consumers_outstanding: u64,
    pub grid_balance: Tokens,
    pub producer_balances: Vec<(String, Tokens)>,
    pub messages_dropped: u64,
    /// Source Wh the producers' strategies dropped as too late to report.
    pub late_wh: u64,
    /// Per producer: tokens its reports asked, and the Wh they reported.
    pub producer_asks: Vec<(Tokens, u64)>,
    pub checks: Vec<Check>,
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.holds)
    }
}

fn metric(list: &[(String, i64)], name: &str) -> u64 {
    list.iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, v)| (*v).max(0) as u64)
}

fn check(name: &str, holds: bool, detail: String) -> Check {
    Check {
        name: name.to_owned(),
        holds,
        detail,
    }
}

/// How long the demo waits for a host of `meters` meters to move on before
/// it gives up: two of its rounds. A round over many meters (sign, store and
/// send a reading each, read their payment requests, pay) takes ~2 ms a
/// meter on a 2-core machine, and moves nothing the others can see until it
/// commits: 30 s was less than one round of 100,000 meters (3.5 minutes).
fn patience(meters: u32) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(4 * u64::from(meters))
}

/// Waits until `done` holds, as long as `moving` keeps changing: after
/// `patience` without change it gives up (and a check below says what is off).
async fn wait(
    patience: Duration,
    mut done: impl FnMut() -> anyhow::Result<bool>,
    mut moving: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<()> {
    let mut last = moving()?;
    let mut deadline = Instant::now() + patience;
    while !done()? && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = moving()?;
        if now != last {
            last = now;
            deadline = Instant::now() + patience;
        }
    }
    Ok(())
}

/// The running roles of a demo, each with its own database and HTTP API.
struct Network {
    clock: Clock,
    grid: Running<Grid>,
    producers: Vec<Running<Producer>>,
    sources: Vec<Running<Meters>>,
    consumers: Running<Meters>,
}

/// Runs the demo: start every role, trade until the ticks or the time are
/// up, settle, check the money. `progress` is called about twice a second.
pub async fn run(
    options: &Options,
    mut progress: impl FnMut(&Progress),
) -> anyhow::Result<Summary> {
    let o = options;
    anyhow::ensure!(o.time_scale >= 1, "--time-scale: at least 1");
    anyhow::ensure!(
        o.producers >= 1 && o.consumers >= 1,
        "--producers and --consumers: at least 1"
    );
    let network = start(o).await?;
    let watch = Watch::of(&network);
    let everyone = u64::from(o.consumers) + u64::from(o.producers * o.sources_per_producer.max(1));
    // Ticks count from when every entity is registered: at 10,000 consumers
    // registering takes a while, and ticks before it bill nobody.
    wait(
        patience(o.consumers),
        || Ok(watch.registered()? == everyone),
        || watch.registered(),
    )
    .await?;
    let trading_from = Counter::Ticks.read(watch.grid.db())?;
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = watch.progress(started, trading_from)?;
        progress(&now);
        let by_ticks = o.ticks.is_some_and(|t| now.grid_ticks >= t);
        let by_time = o.duration.is_some_and(|d| started.elapsed() >= d);
        let neither = o.ticks.is_none() && o.duration.is_none();
        if by_ticks || by_time || (neither && started.elapsed() >= Duration::from_secs(60)) {
            break;
        }
    }
    settle(network, &watch, o).await?;
    let last = watch.progress(started, trading_from)?;
    summarise(o, &watch, last)
}

/// Starts the grid, funds the consumers, then starts each producer with its
/// sources, and the consumers. The demo is every host's operator: it issues
/// the admission tokens the grid and the producers ask for.
async fn start(o: &Options) -> anyhow::Result<Network> {
    let clock = Clock {
        epoch_ms: unix_ms(),
        scale: o.time_scale,
    };
    // Schedulers poll four times per grid tick, in real time.
    let poll_ms = (15_000 / o.time_scale / 4).clamp(10, 1_000);
    let token = match &o.operator_token {
        Some(token) => token.clone(),
        None => hex::encode(crate::channel::random32()?),
    };
    let service = |id: &str, listen: SocketAddr| Service {
        id: id.to_owned(),
        listen,
        data_dir: o.data_dir.join(id),
        poll_ms,
        clock,
        http: Default::default(),
        storage: o.storage.config(id),
        objects: None,
        lease_ms: Service::DEFAULT_LEASE_MS,
    };
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));

    let mut grid_config = GridConfig {
        service: service("grid", o.listen),
        ..GridConfig::default()
    };
    grid_config.strategy.component = o.grid_component.clone();
    grid_config.operator_token = Some(token.clone());
    grid_config.operator_tokens = o
        .viewer_token
        .iter()
        .map(|t| powerplug_roles::role::config::OperatorToken {
            token: t.clone(),
            scopes: vec![powerplug_roles::role::config::Scope::Read],
        })
        .collect();
    grid_config.strategy.cache_dir = Some(o.data_dir.join("cache"));
    grid_config.retention = o.retention;
    let grid = run::grid(&grid_config).await?;
    let grid_api = Client::new(&grid.url).with_token(&token);

    let consumers_config = MetersConfig {
        service: service("consumer", any_port),
        upstream_url: grid.url.clone(),
        count: o.consumers,
        meter: MeterConfig::Random {
            seed: o.seed,
            min_wh: 0,
            max_wh: 1_000,
        },
        resend_window: demo_resend_window(o.consumers),
        ..MetersConfig::consumers()
    };
    fund(&grid_api, consumers_config.ids(), Tokens(o.consumer_funds)).await?;

    let mut producers = Vec::new();
    let mut sources = Vec::new();
    for p in 0..o.producers {
        let id = format!("producer-{p}");
        let mut config = ProducerConfig {
            service: service(&id, any_port),
            ..ProducerConfig::default()
        };
        config.strategy.component = o.producer_component.clone();
        config.grid_url = grid.url.clone();
        config.strategy.cache_dir = Some(o.data_dir.join("cache"));
        config.operator_token = Some(token.clone());
        config.retention = o.retention;
        config.admission_token = Some(admit(&grid_api, EntityKind::Producer, Some(&id), 1).await?);
        let producer = run::producer(&config).await?;
        let producer_api = Client::new(&producer.url).with_token(&token);
        let count = o.sources_per_producer.max(1);
        let sources_config = MetersConfig {
            service: service(&format!("source-{p}"), any_port),
            upstream_url: producer.url.clone(),
            count,
            meter: MeterConfig::Random {
                seed: o.seed.wrapping_add(1),
                min_wh: 2_000,
                max_wh: 10_000,
            },
            admission_token: Some(admit(&producer_api, EntityKind::Source, None, count).await?),
            resend_window: demo_resend_window(count),
            ..MetersConfig::sources()
        };
        sources.push(run::meters(&sources_config, EntityKind::Source).await?);
        producers.push(producer);
    }
    let consumers = run::meters(&consumers_config, EntityKind::Consumer).await?;
    Ok(Network {
        clock,
        grid,
        producers,
        sources,
        consumers,
    })
}

/// Every consumer starts with money, issued by the grid's operator before
/// the meters start and register.
async fn fund(grid: &Client, ids: Vec<String>, funds: Tokens) -> anyhow::Result<()> {
    let operator = grid.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for id in ids {
            operator.issue(&api::Issue {
                key: format!("demo-funds-{id}"),
                to: id,
                amount: funds,
                unregistered: true,
            })?;
        }
        Ok(())
    })
    .await?
}

/// What the demo reads of its roles, in process: they outlive their servers.
struct Watch {
    clock: Clock,
    grid_url: String,
    grid: Arc<Grid>,
    producers: Vec<Arc<Producer>>,
    sources: Vec<Arc<Meters>>,
    consumers: Arc<Meters>,
}

impl Watch {
    fn of(n: &Network) -> Self {
        Self {
            clock: n.clock,
            grid_url: n.grid.url.clone(),
            grid: n.grid.role.clone(),
            producers: n.producers.iter().map(|p| p.role.clone()).collect(),
            sources: n.sources.iter().map(|s| s.role.clone()).collect(),
            consumers: n.consumers.role.clone(),
        }
    }

    /// Consumers and sources registered so far.
    fn registered(&self) -> anyhow::Result<u64> {
        let mut n = self.consumers.status()?.registered as u64;
        for s in &self.sources {
            n += s.status()?.registered as u64;
        }
        Ok(n)
    }

    fn grid_counter(&self, counter: Counter) -> anyhow::Result<u64> {
        counter.read(self.grid.db())
    }

    /// Wh the sources published.
    fn generated(&self) -> anyhow::Result<u64> {
        self.sources
            .iter()
            .map(|s| Ok(s.status()?.published_wh))
            .sum()
    }

    /// Wh the producers took from their sources.
    fn producers_took(&self) -> anyhow::Result<u64> {
        self.producers
            .iter()
            .map(|p| Counter::SourceWh.read(p.db()))
            .sum()
    }

    /// Wh the producers reported to the grid.
    fn producers_reported(&self) -> anyhow::Result<u64> {
        self.producers
            .iter()
            .map(|p| Ok(p.member()?.published_wh))
            .sum()
    }

    fn progress(&self, started: Instant, trading_from: u64) -> anyhow::Result<Progress> {
        let counters = counter::all(self.grid.db())?;
        let c = |counter: Counter| counters.get(counter.name()).copied().unwrap_or(0);
        let consumers = self.consumers.status()?;
        Ok(Progress {
            grid_url: self.grid_url.clone(),
            elapsed_ms: started.elapsed().as_millis() as u64,
            simulated_s: self.clock.now_ms().saturating_sub(self.clock.epoch_ms) / 1000,
            simulated_ms: self.clock.now_ms(),
            grid_ticks: c(Counter::Ticks).saturating_sub(trading_from),
            generated_wh: self.generated()?,
            reported_wh: self.producers_reported()?,
            used_wh: consumers.published_wh,
            billed_wh: c(Counter::BilledWh),
            requested: c(Counter::Requested),
            paid_by_consumers: consumers.paid,
            paid_to_producers: c(Counter::PaidOut),
        })
    }
}

/// Winds the entities down in order, each phase waiting until what was sent
/// has been taken in, so that every check after it is exact.
async fn settle(n: Network, w: &Watch, o: &Options) -> anyhow::Result<()> {
    for s in n.sources {
        s.stop().await?;
    }
    wait(
        patience(o.sources_per_producer),
        || Ok(w.producers_took()? == w.generated()?),
        || w.producers_took(),
    )
    .await?;
    for p in n.producers {
        p.stop().await?;
    }
    wait(
        patience(o.producers),
        || Ok(w.grid_counter(Counter::OutputWh)? == w.producers_reported()?),
        || w.grid_counter(Counter::OutputWh),
    )
    .await?;
    w.consumers.stop_readings();
    wait(
        patience(o.consumers),
        || {
            let c = w.consumers.status()?;
            Ok(w.grid_counter(Counter::UsageWh)? == c.published_wh
                && w.grid_counter(Counter::PaymentRequests)? == c.requests
                && c.pending_payments == 0)
        },
        || {
            let c = w.consumers.status()?;
            Ok(w.grid_counter(Counter::UsageWh)? + c.requests + c.paid)
        },
    )
    .await?;
    n.consumers.stop().await?;
    let paid = w.consumers.status()?.paid;
    wait(
        patience(o.consumers),
        || Ok(w.grid_counter(Counter::Income)? == paid),
        || w.grid_counter(Counter::Income),
    )
    .await?;
    n.grid.stop().await
}

/// The summary of a settled demo, with its money checks computed from what
/// each role recorded.
fn summarise(o: &Options, w: &Watch, last: Progress) -> anyhow::Result<Summary> {
    let consumer_status = w.consumers.status()?;
    let generated = w.generated()?;
    let source_wh_taken = w.producers_took()?;
    let reported = w.producers_reported()?;

    let db = w.grid.db();
    let counters = counter::all(db)?;
    let c = |counter: Counter| counters.get(counter.name()).copied().unwrap_or(0);
    let metrics = w.grid.metrics()?;
    let running_costs = metric(&metrics, "running-costs-received");
    let undistributed = metric(&metrics, "available");
    let paid_out = c(Counter::PaidOut);
    let income = c(Counter::Income);
    let grid_balance = wallet::balance(db, w.grid.account())?;
    let mut producer_balances = Vec::new();
    for p in &w.producers {
        let id = p.member()?.id;
        producer_balances.push((id.clone(), wallet::balance(db, &id)?));
    }
    let producers_hold: Tokens = producer_balances.iter().map(|(_, b)| *b).sum();
    let issued = wallet::issued(db)?;
    let held = wallet::total_balances(db)?;
    let checks = vec![
        check(
            "every source reading reached its producer, once",
            source_wh_taken == generated,
            format!("sources sent {generated} Wh · producers took {source_wh_taken} Wh"),
        ),
        check(
            "every producer report reached the grid, once",
            c(Counter::OutputWh) == reported,
            format!(
                "producers reported {reported} Wh · the grid took {} Wh",
                c(Counter::OutputWh)
            ),
        ),
        check(
            "every consumer reading reached the grid, once",
            c(Counter::UsageWh) == consumer_status.published_wh,
            format!(
                "consumers sent {} Wh · the grid took {} Wh",
                consumer_status.published_wh,
                c(Counter::UsageWh)
            ),
        ),
        check(
            "every payment request reached its consumer, once",
            c(Counter::PaymentRequests) == consumer_status.requests
                && c(Counter::Requested) == consumer_status.requested,
            format!(
                "grid sent {} asking {} · consumers read {} asking {}{}",
                c(Counter::PaymentRequests),
                c(Counter::Requested),
                consumer_status.requests,
                consumer_status.requested,
                // Where the difference went, when there is one.
                match (c(Counter::RequestsUndeliverable), c(Counter::OutboxRefused)) {
                    (0, 0) => String::new(),
                    (lost, refused) => format!(
                        " · {lost} without a channel to a consumer · {refused} set aside by the grid's outbox"
                    ),
                }
            ),
        ),
        check(
            "consumers' payments all reached the grid's books",
            income == consumer_status.paid,
            format!("paid {} · seen by the grid {income}", consumer_status.paid),
        ),
        check(
            "paid by consumers = running costs + producer payouts + undistributed",
            income == running_costs + paid_out + undistributed,
            format!("{income} = {running_costs} + {paid_out} + {undistributed}"),
        ),
        check(
            "the grid's wallet holds what came in less what went out",
            grid_balance.get() == income - paid_out.min(income),
            format!("{} = {income} - {paid_out}", grid_balance.get()),
        ),
        check(
            "producers hold exactly their payouts",
            producers_hold.get() == paid_out,
            format!("{} = {paid_out}", producers_hold.get()),
        ),
        check(
            "the ledger holds exactly what was issued",
            issued == held,
            format!("issued {} · held {}", issued.get(), held.get()),
        ),
        check(
            "no consumer paid more than it was asked",
            consumer_status.paid <= consumer_status.requested,
            format!(
                "paid {} ≤ asked {}",
                consumer_status.paid, consumer_status.requested
            ),
        ),
    ];
    Ok(Summary {
        progress: last,
        producers: o.producers,
        sources: o.producers * o.sources_per_producer.max(1),
        consumers: o.consumers,
        failed_ticks: c(Counter::TicksFailed),
        payment_requests: c(Counter::PaymentRequests),
        requests_read_by_consumers: consumer_status.requests,
        consumer_payments: consumer_status.payments,
        running_costs,
        undistributed,
        consumers_outstanding: consumer_status.outstanding,
        grid_balance,
        producer_balances,
        messages_dropped: c(Counter::MessagesDropped),
        producer_asks: w
            .producers
            .iter()
            .map(|p| {
                Ok((
                    Tokens(Counter::Asked.read(p.db())?),
                    Counter::ReportedWh.read(p.db())?,
                ))
            })
            .collect::<anyhow::Result<_>>()?,
        late_wh: w
            .producers
            .iter()
            .map(|p| Counter::LateWh.read(p.db()))
            .sum::<anyhow::Result<u64>>()?,
        checks,
    })
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>5.1}s real {:>6}s sim, {} | grid ticks {:>4} | Wh generated {:>9} reported {:>9} used {:>7} billed {:>7} | tokens asked {:>6} paid {:>6} to producers {:>6}",
            self.elapsed_ms as f64 / 1000.0,
            self.simulated_s,
            UnixMs(self.simulated_ms).utc(),
            self.grid_ticks,
            self.generated_wh,
            self.reported_wh,
            self.used_wh,
            self.billed_wh,
            self.requested,
            self.paid_by_consumers,
            self.paid_to_producers,
        )
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.progress;
        writeln!(
            f,
            "\n{} producers with {} sources, {} consumers; {} grid ticks ({} failed) in {:.1} s, {} s simulated (to {}: the strategies' clock runs faster than real time)",
            self.producers,
            self.sources,
            self.consumers,
            p.grid_ticks,
            self.failed_ticks,
            p.elapsed_ms as f64 / 1000.0,
            p.simulated_s,
            UnixMs(p.simulated_ms).utc()
        )?;
        writeln!(
            f,
            "energy   generated {} Wh · reported to the grid {} Wh · dropped as late {} Wh · not yet reported {} Wh",
            p.generated_wh,
            p.reported_wh,
            self.late_wh,
            p.generated_wh
                .saturating_sub(p.reported_wh)
                .saturating_sub(self.late_wh)
        )?;
        writeln!(
            f,
            "         used {} Wh · billed {} Wh (the rest carries over)",
            p.used_wh, p.billed_wh
        )?;
        writeln!(
            f,
            "tokens   requested {} in {} requests ({} read by consumers) · paid by consumers {} in {} payments · outstanding {}",
            p.requested,
            self.payment_requests,
            self.requests_read_by_consumers,
            p.paid_by_consumers,
            self.consumer_payments,
            self.consumers_outstanding
        )?;
        let balances: Vec<u64> = self
            .producer_balances
            .iter()
            .map(|(_, b)| b.get())
            .collect();
        let each = if balances.len() <= 8 {
            format!("{balances:?}")
        } else {
            let (min, max) = (balances.iter().min(), balances.iter().max());
            format!(
                "{} producers, {} to {} each",
                balances.len(),
                min.unwrap_or(&0),
                max.unwrap_or(&0)
            )
        };
        writeln!(
            f,
            "         running costs {} · paid to producers {} ({each}) · undistributed {} · grid wallet {}",
            self.running_costs,
            p.paid_to_producers,
            self.undistributed,
            self.grid_balance.get()
        )?;
        let asks: Vec<String> = self
            .producer_asks
            .iter()
            .take(8)
            .map(|(asked, wh)| match *wh {
                0 => "-".to_owned(),
                wh => format!("{:.2}", asked.get() as f64 * 1000.0 / wh as f64),
            })
            .collect();
        writeln!(
            f,
            "         producers asked [{}] tokens per kWh reported (what the grid pays is its strategy's choice)",
            asks.join(", ")
        )?;
        writeln!(
            f,
            "channels {} invalid messages dropped",
            self.messages_dropped
        )?;
        for c in &self.checks {
            writeln!(
                f,
                "{} {} ({})",
                if c.holds { "✓" } else { "✗" },
                c.name,
                c.detail
            )?;
        }
        Ok(())
    }
}

/// A registration token from a host (`POST /admissions`), as its operator.
async fn admit(
    host: &Client,
    kind: EntityKind,
    id: Option<&str>,
    uses: u32,
) -> anyhow::Result<String> {
    let (host, id) = (host.clone(), id.map(str::to_owned));
    tokio::task::spawn_blocking(move || host.admit(kind, id.as_deref(), uses)).await?
}
