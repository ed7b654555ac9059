//! Starting a role: its database, its HTTP API on its listener, and its
//! scheduler thread. The same code runs one role per process (`powerplug
//! grid …`) and many in one (`powerplug demo`, tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::config::{GridConfig, MetersConfig, ProducerConfig, Service, StateKeeping};
use super::grid::Grid;
use super::meters::Meters;
use super::producer::Producer;
use super::{SimulatedMeter, Step, open_database, schedule};
use crate::http;
use crate::registry::Kind;

/// A role that runs until [`Running::stop`] (or until it is dropped hard).
pub struct Running<R> {
    pub role: Arc<R>,
    pub url: String,
    stop: Arc<AtomicBool>,
    scheduler: Option<std::thread::JoinHandle<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// One more reference for every copy of the router the server holds.
    router_copies: Arc<()>,
}

impl<R> Running<R> {
    /// Stops the scheduler after its current round and the server after its
    /// current requests.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(scheduler) = self.scheduler.take() {
            tokio::task::spawn_blocking(move || scheduler.join())
                .await?
                .map_err(|_| anyhow::anyhow!("the scheduler panicked"))?;
        }
        if let Some(server) = self.server.take() {
            server.await??;
        }
        // axum's serve returns once every connection has said it is done, a
        // moment before each connection's task drops its copy of the router,
        // which holds the role and its database: wait for those copies, or a
        // restart in this process can find the database still locked.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.router_copies) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Waits until the role is stopped from elsewhere (Ctrl-C).
    pub async fn until_ctrl_c(self) -> anyhow::Result<()> {
        tokio::signal::ctrl_c().await?;
        self.stop().await
    }
}

impl<R> Drop for Running<R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
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
    let stop = Arc::new(AtomicBool::new(false));
    let router_copies = Arc::new(());
    let router = router.layer(axum::Extension(router_copies.clone()));
    let server = tokio::spawn(http::serve(
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
    )?;
    Ok(Running {
        role,
        url,
        stop,
        scheduler: Some(scheduler),
        server: Some(server),
        router_copies,
    })
}

pub async fn grid(config: &GridConfig) -> anyhow::Result<Running<Grid>> {
    let db = open_database(&config.service.data_dir)?;
    let config2 = config.clone();
    let grid = Arc::new(tokio::task::spawn_blocking(move || Grid::open(&config2, db)).await??);
    start(&config.service, grid.clone(), http::grid_router(grid)).await
}

pub async fn producer(config: &ProducerConfig) -> anyhow::Result<Running<Producer>> {
    let db = open_database(&config.service.data_dir)?;
    let config2 = config.clone();
    let producer =
        Arc::new(tokio::task::spawn_blocking(move || Producer::open(&config2, db)).await??);
    start(
        &config.service,
        producer.clone(),
        http::producer_router(producer),
    )
    .await
}

pub async fn meters(config: &MetersConfig, kind: Kind) -> anyhow::Result<Running<Meters>> {
    let db: crate::storage::Db = match config.state {
        StateKeeping::Local => open_database(&config.service.data_dir)?,
        // No disk: what must survive lives upstream; the rest in memory.
        StateKeeping::Remote { .. } => Arc::new(crate::storage::RedbStore::in_memory()?),
    };
    let meter: SimulatedMeter = config.meter;
    let config2 = config.clone();
    let meters = Arc::new(
        tokio::task::spawn_blocking(move || Meters::open(config2, kind, db, Box::new(meter)))
            .await??,
    );
    start(&config.service, meters.clone(), http::meters_router(meters)).await
}
