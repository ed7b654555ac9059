//! Starting a role: its database, its HTTP API on its listener, and its
//! scheduler thread. The same code runs one role per process (`powerplug
//! grid …`) and many in one (`powerplug demo`, tests).

use powerplug_domain::EntityKind;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use powerplug_roles::role::config::{
    GridConfig, MetersConfig, ProducerConfig, Service, StateKeeping,
};
use powerplug_roles::role::grid::Grid;
use powerplug_roles::role::meters::Meters;
use powerplug_roles::role::producer::Producer;
use powerplug_roles::role::{Meter, Step, finish, open_database, round};
use tokio_util::sync::CancellationToken;

/// How long [`Running::stop`] waits for requests in flight to let go of the
/// role (an upload compiles for up to tens of seconds).
const RELEASE_WAIT: Duration = Duration::from_secs(120);

/// A role that runs until [`Running::stop`] (or until it is dropped hard).
pub struct Running<R> {
    pub role: Arc<R>,
    pub url: String,
    /// Cancelled to stop: wakes the scheduler and the server at once.
    stop: CancellationToken,
    scheduler: Option<tokio::task::JoinHandle<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Cloned into the routes, each request in flight and the blocking work a
    /// request started: when only this one is left, nothing of the server
    /// holds the role (and its database) any more.
    lease: Lease,
}

impl<R> Running<R> {
    /// Stops the scheduler after its current round and the server after its
    /// current requests, and returns once nothing of the role but what the
    /// caller holds (clones of `role`) uses its database: the same data
    /// directory can be opened again at once.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let scheduler = match self.scheduler.take() {
            Some(scheduler) => scheduler
                .await
                .map_err(|_| anyhow::anyhow!("the scheduler panicked")),
            None => Ok(()),
        };
        let server = match self.server.take() {
            Some(server) => server.await.map_err(anyhow::Error::from).and_then(|r| r),
            None => Ok(()),
        };
        // The server has returned, but a connection task may still be
        // dropping its copy of the routes, and a request whose client went
        // away may still run its blocking work: both hold the role.
        let since = Instant::now();
        while Arc::strong_count(&self.lease) > 1 {
            anyhow::ensure!(
                since.elapsed() < RELEASE_WAIT,
                "stopping: a request still holds the role {} s after the server stopped",
                RELEASE_WAIT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        scheduler.and(server)
    }

    /// Waits until the role is stopped from elsewhere (Ctrl-C).
    pub async fn until_ctrl_c(self) -> anyhow::Result<()> {
        tokio::signal::ctrl_c().await?;
        self.stop().await
    }
}

impl<R> Drop for Running<R> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start<R: Step>(
    service: &Service,
    role: Arc<R>,
    router: axum::Router,
) -> anyhow::Result<Running<R>> {
    let listener = tokio::net::TcpListener::bind(service.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listen: cannot bind {}: {e}", service.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let lease = Lease::default();
    let router = router.layer(LeaseLayer(lease.clone()));
    let server = tokio::spawn(crate::serve(
        listener,
        router,
        stop.clone(),
        service.http.clone(),
    ));
    let scheduler = schedule(
        &service.id,
        role.clone(),
        Duration::from_millis(service.poll_ms.max(1)),
        stop.clone(),
    );
    Ok(Running {
        role,
        url,
        stop,
        scheduler: Some(scheduler),
        server: Some(server),
        lease,
    })
}

/// Repeats `role.step()` every `every` until `stop` is cancelled, then
/// finishes the role. Rounds start every `every` however long a round took (a
/// late round starts at once), so a slow round does not slow the rhythm; a
/// round blocks (the database, channels, the strategy), so it runs off the
/// async workers.
fn schedule<R: Step>(
    name: &str,
    role: Arc<R>,
    every: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        loop {
            let (r, n) = (role.clone(), name.clone());
            // `round` catches a panic of the step; an error here is a
            // runtime shutting down under us.
            if tokio::task::spawn_blocking(move || round(&n, &*r))
                .await
                .is_err()
            {
                return;
            }
            next = (next + every).max(tokio::time::Instant::now());
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(next) => {}
            }
        }
        let _ = tokio::task::spawn_blocking(move || finish(&name, &*role)).await;
    })
}

/// See [`Running::lease`].
pub(crate) type Lease = Arc<()>;

tokio::task_local! {
    static LEASE: Lease;
}

/// The lease of the request being served, for work it hands to a thread of
/// its own (which may outlive the request if its client goes away).
pub(crate) fn current_lease() -> Option<Lease> {
    LEASE.try_with(Arc::clone).ok()
}

/// Puts a clone of the lease into every route and, while it is served, every
/// request.
#[derive(Clone)]
struct LeaseLayer(Lease);

impl<S> tower_layer::Layer<S> for LeaseLayer {
    type Service = Leased<S>;

    fn layer(&self, inner: S) -> Leased<S> {
        Leased {
            inner,
            lease: self.0.clone(),
        }
    }
}

/// A route with the lease. Fields drop in order: `inner` (which holds the
/// role) before `lease`, so a released lease means a released role.
#[derive(Clone)]
struct Leased<S> {
    inner: S,
    lease: Lease,
}

impl<S, B> tower_service::Service<axum::http::Request<B>> for Leased<S>
where
    S: tower_service::Service<axum::http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<Lease, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        // A task-local future drops the request's future (which holds the
        // role) before its lease.
        LEASE.scope(self.lease.clone(), self.inner.call(request))
    }
}

// Stores open on blocking threads: a PostgreSQL connection runs a runtime of
// its own, which may not start on an async one.

pub async fn grid(config: &GridConfig) -> anyhow::Result<Running<Grid>> {
    let config2 = config.clone();
    let grid = tokio::task::spawn_blocking(move || {
        let db = open_database(&config2.service)?;
        Grid::open(&config2, db)
    });
    let grid = Arc::new(grid.await??);
    start(&config.service, grid.clone(), crate::grid_router(grid)).await
}

pub async fn producer(config: &ProducerConfig) -> anyhow::Result<Running<Producer>> {
    let config2 = config.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let db = open_database(&config2.service)?;
        Producer::open(&config2, db)
    });
    let producer = Arc::new(producer.await??);
    start(
        &config.service,
        producer.clone(),
        crate::producer_router(producer),
    )
    .await
}

pub async fn meters(config: &MetersConfig, kind: EntityKind) -> anyhow::Result<Running<Meters>> {
    let meter = config.meter.clone();
    meters_with(config, kind, move |config, db| {
        let clock = config.service.clock;
        meter.open(powerplug_meter::Context {
            host: config.service.id.clone(),
            ids: config.ids(),
            db: db.clone(),
            now_ms: Arc::new(move || clock.now_ms()),
            max_reading_wh: config.max_reading_wh,
            max_reading_ms: config.max_reading_ms,
        })
    })
    .await
}

/// Meters whose readings come from `meter` (a feed of the caller's) rather
/// than the configured one.
pub async fn meters_reading(
    config: &MetersConfig,
    kind: EntityKind,
    meter: Box<dyn Meter>,
) -> anyhow::Result<Running<Meters>> {
    meters_with(config, kind, move |_, _| Ok(meter)).await
}

/// Meters whose meter `open` makes once their store is open.
async fn meters_with(
    config: &MetersConfig,
    kind: EntityKind,
    open: impl FnOnce(&MetersConfig, &powerplug_storage::Db) -> anyhow::Result<Box<dyn Meter>>
    + Send
    + 'static,
) -> anyhow::Result<Running<Meters>> {
    let config2 = config.clone();
    let meters = tokio::task::spawn_blocking(move || {
        let db: powerplug_storage::Db = match config2.state {
            StateKeeping::Local => open_database(&config2.service)?,
            // No disk: what must survive lives upstream; the rest in memory.
            StateKeeping::Remote { .. } => Arc::new(powerplug_storage::RedbStore::in_memory()?),
        };
        let meter = open(&config2, &db)?;
        Meters::open(config2, kind, db, meter)
    });
    let meters = Arc::new(meters.await??);
    start(
        &config.service,
        meters.clone(),
        crate::meters_router(meters),
    )
    .await
}
