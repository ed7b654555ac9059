//! The four roles as long-running services. Each one owns a data directory
//! with one redb database, and a scheduler thread that repeats one `step`
//! (poll channels, tick, drain the outbox); its HTTP API and the start of a
//! role live in the `powerplug-http` crate.
//!
//! - [`grid::Grid`]: takes registrations of consumers and producers, bills and pays.
//! - [`producer::Producer`]: takes registrations of sources, prices their output
//!   and reports it to its grid.
//! - [`meters::Meters`]: consumers or sources, simulated meters that publish a
//!   reading per slice (consumers also pay their payment requests).

pub mod catch_up;
pub mod config;
pub mod grid;
mod group_commit;
mod hub;
pub mod leader;
pub mod member;
pub mod meters;
pub mod producer;
pub mod status;
pub mod swap;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::limits::WRITE_WINDOW;
pub use hub::{Hub, Refusal};

/// The time every role of a grid agrees on. `scale` > 1 runs simulated time
/// faster than real time from `epoch_ms` on, so 30 s slices pass in a fraction
/// of a second; roles in separate processes agree if they share both values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clock {
    pub epoch_ms: u64,
    pub scale: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            epoch_ms: 0,
            scale: 1,
        }
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        let real = unix_ms();
        self.epoch_ms
            + real
                .saturating_sub(self.epoch_ms)
                .saturating_mul(self.scale.max(1))
    }

    /// How long `sim_ms` of simulated time takes in real time.
    pub fn real(&self, sim_ms: u64) -> Duration {
        Duration::from_millis(sim_ms / self.scale.max(1))
    }

    /// The time the role's strategy sees, for `/status`: a demo's clock runs
    /// `scale` times faster than real time from `epoch_ms`, so its hours are
    /// not the wall clock's.
    pub fn status(&self) -> serde_json::Value {
        let now = self.now_ms();
        serde_json::json!({
            "now_ms": now,
            "utc": powerplug_domain::UnixMs(now).utc(),
            "scale": self.scale.max(1),
        })
    }
}

/// Opens (or creates) the role's store, as its `storage` says. Its data
/// directory (0700) holds the redb file (0600) by default, and the cache and
/// archives whatever the store: one that group or others can reach is
/// refused, since the store holds the host's secret. Blocking.
pub fn open_database(service: &config::Service) -> anyhow::Result<powerplug_storage::Db> {
    use powerplug_storage::private;
    let data_dir = &service.data_dir;
    private::create_dir(data_dir)
        .map_err(|e| anyhow::anyhow!("data_dir: cannot create {}: {e}", data_dir.display()))?;
    private::check_dir(data_dir, "data_dir", private::Allow::Nothing)?;
    powerplug_storage::open(&service.storage, data_dir)
}

/// Opens the role's object storage (`objects`), for its host id. Blocking.
pub fn open_objects(
    service: &config::Service,
    db: &powerplug_storage::Db,
) -> anyhow::Result<powerplug_storage::Objects> {
    powerplug_storage::Objects::open(&service.objects(), &service.data_dir, db, &service.id)
}

/// The host's secret (credentials, keys of its entities), made on first start.
pub fn secret(db: &dyn powerplug_storage::Store) -> anyhow::Result<[u8; 32]> {
    powerplug_storage::meta_or_init(db, "secret", powerplug_channel::random32)
}

/// A signing key derived from the host's secret, one per name: an entity's
/// channels survive a restart without storing its key apart.
pub fn signing_key(secret: &[u8; 32], name: &str) -> SigningKey {
    let seed: [u8; 32] = Sha256::new()
        .chain_update(b"powerplug/signing-key/v1")
        .chain_update(secret)
        .chain_update(name)
        .finalize()
        .into();
    SigningKey::from_bytes(&seed)
}

/// The strategy runtime for components cached in `cache_dir` under `limits`,
/// one per process, directory and limits: every role in a process (the demo
/// runs a hundred producers) shares one engine and its pool instead of
/// reserving one each.
pub fn runtime(
    cache_dir: &Path,
    limits: powerplug_strategy::Limits,
) -> anyhow::Result<powerplug_strategy::Runtime> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Key = (std::path::PathBuf, powerplug_strategy::Limits);
    static RUNTIMES: OnceLock<Mutex<HashMap<Key, powerplug_strategy::Runtime>>> = OnceLock::new();
    let mut runtimes = RUNTIMES
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| anyhow::anyhow!("runtime registry lock poisoned"))?;
    let key = (cache_dir.to_owned(), limits);
    if let Some(runtime) = runtimes.get(&key) {
        return Ok(runtime.clone());
    }
    let runtime = powerplug_strategy::Runtime::new(limits, Some(cache_dir))?;
    runtimes.insert(key, runtime.clone());
    Ok(runtime)
}

/// Something a scheduler repeats.
pub trait Step: Send + Sync + 'static {
    fn step(&self) -> anyhow::Result<()>;

    /// Where the scheduler reports how its rounds went (shown in `/status`).
    fn scheduler(&self) -> &SchedulerHealth;

    /// Runs once after the last round when the role is stopped gracefully.
    fn finish(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How a role's scheduler is doing, for `/status`: a round that panicked is
/// caught, counted and shown here and in the log, and the next round runs as
/// usual (a panic must not leave a role that serves but never ticks).
#[derive(Debug, Default)]
pub struct SchedulerHealth {
    rounds: AtomicU64,
    failed: AtomicU64,
    panics: AtomicU64,
    last_panic: std::sync::Mutex<Option<String>>,
    /// Why the last failed round failed, and when (unix ms): a full disk
    /// fails the rounds that write while those that only read go on, so
    /// whether "the last round" failed would flicker.
    last_failure: std::sync::Mutex<Option<(String, u64)>>,
}

impl SchedulerHealth {
    /// Rounds that failed (not panicked) since the start.
    pub fn rounds_failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> serde_json::Value {
        let last = self
            .last_panic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let failure = self
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map(|(why, at)| {
                serde_json::json!({ "why": why, "at_ms": at, "utc": powerplug_domain::UnixMs(at).utc() })
            });
        serde_json::json!({
            "rounds": self.rounds.load(Ordering::Relaxed),
            "rounds_failed": self.rounds_failed(),
            "last_failure": failure,
            "panics": self.panics(),
            "last_panic": last,
        })
    }

    /// Counts a panic; whether to log it (the first, and then each time the
    /// count doubles, so that a panic in every round does not flood the log).
    fn panicked(&self, message: String) -> (u64, bool) {
        let n = self.panics.fetch_add(1, Ordering::Relaxed) + 1;
        *self.last_panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
        (n, n.is_power_of_two())
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs one round; a panic inside it is caught and reported (see
/// [`SchedulerHealth`]). A failed round is logged and the next one tries
/// again: the host keeps serving whatever one round hit.
pub fn round<R: Step>(name: &str, role: &R) {
    let health = role.scheduler();
    health.rounds.fetch_add(1, Ordering::Relaxed);
    // AssertUnwindSafe: what a round changes is committed in transactions
    // (a panic before the commit changes nothing), and the locks it takes
    // are taken poison-tolerantly.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| role.step())) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            health.failed.fetch_add(1, Ordering::Relaxed);
            let why = powerplug_strategy::text::for_log(&format!("{e:#}"));
            tracing::error!(role = name, error = %why, "round failed");
            *health
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((why, unix_ms()));
        }
        Err(payload) => {
            let message = powerplug_strategy::text::for_log(&panic_message(&*payload));
            let (n, log) = health.panicked(message.clone());
            if log {
                tracing::error!(role = name, panics = n, panic = %message, "a round panicked; going on");
            }
        }
    }
}

/// The span a tick runs in: the role, the books slot and the strategy
/// version; the tick's number, the fuel its strategy used and how long it
/// took are recorded as they become known, so every event of the tick
/// carries them.
pub(crate) fn tick_span(
    role: &'static str,
    slot: &str,
    sha256: &powerplug_strategy::Sha256,
) -> tracing::Span {
    let empty = tracing::field::Empty;
    tracing::info_span!(
        "tick",
        role,
        slot,
        strategy = sha256.short(),
        tick = empty,
        fuel = empty,
        duration_us = empty,
    )
}

/// What a tick's end tells the telemetry.
#[derive(Default)]
pub(crate) struct Ticked {
    pub tick: u64,
    pub fuel: u64,
    pub why: Option<String>,
    pub usage_wh: u64,
    pub output_wh: u64,
    pub requested: u64,
    pub paid_out: u64,
}

/// A tick being timed for the telemetry.
pub(crate) struct Seen<'h> {
    hub: &'h Hub,
    at_ms: u64,
    strategy: powerplug_strategy::Sha256,
    started: std::time::Instant,
}

impl<'h> Seen<'h> {
    pub fn start(hub: &'h Hub, at_ms: u64, strategy: powerplug_strategy::Sha256) -> Self {
        Self {
            hub,
            at_ms,
            strategy,
            started: std::time::Instant::now(),
        }
    }

    pub fn done(self, ticked: Result<&Ticked, &anyhow::Error>) {
        use crate::telemetry::{Ended, TickSeen};
        let duration_us = self.started.elapsed().as_micros() as u64;
        let seen = match ticked {
            Ok(t) => TickSeen {
                tick: t.tick,
                at_ms: self.at_ms,
                duration_us,
                fuel: t.fuel,
                strategy: self.strategy,
                ended: if t.why.is_some() {
                    Ended::Failed
                } else {
                    Ended::Decided
                },
                why: t.why.clone(),
                usage_wh: t.usage_wh,
                output_wh: t.output_wh,
                requested: t.requested,
                paid_out: t.paid_out,
            },
            Err(e) => TickSeen {
                tick: 0,
                at_ms: self.at_ms,
                duration_us,
                fuel: 0,
                strategy: self.strategy,
                ended: Ended::Error,
                why: Some(format!("{e:#}")),
                usage_wh: 0,
                output_wh: 0,
                requested: 0,
                paid_out: 0,
            },
        };
        self.hub.telemetry.tick(seen);
    }
}

/// Closes a tick's span: how long it took, and a line for the tick (a
/// warning with the reason if it failed).
pub(crate) fn tick_done(span: &tracing::Span, started: std::time::Instant, failed: Option<&str>) {
    span.record("duration_us", started.elapsed().as_micros() as u64);
    match failed {
        Some(why) => tracing::warn!(why = %powerplug_strategy::text::for_log(why), "tick failed"),
        None => tracing::debug!("tick"),
    }
}

/// Runs after the last round when a role stops gracefully; a failure or a
/// panic is logged, not raised (the role is stopping anyway).
pub fn finish<R: Step>(name: &str, role: &R) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| role.finish())) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(
            role = name,
            error = %powerplug_strategy::text::for_log(&format!("{e:#}")),
            "stopping failed"
        ),
        Err(payload) => tracing::error!(
            role = name,
            panic = %powerplug_strategy::text::for_log(&panic_message(&*payload)),
            "stopping panicked"
        ),
    }
}

/// When a strategy ticks: every `every` simulated ms on schedule (the next tick
/// is due `every` after the last one was due, not after it ran); a host that
/// fell more than a tick behind skips ahead rather than ticking in a burst.
pub struct TickSchedule {
    every: u64,
    last_due: std::sync::atomic::AtomicU64,
}

impl TickSchedule {
    pub fn new(every: u64) -> Self {
        Self {
            every: every.max(1),
            last_due: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether a tick is due at `now`; if so, it counts as taken.
    pub fn due(&self, now: u64) -> bool {
        let last = self.last_due.load(Ordering::Relaxed);
        let next = last.saturating_add(self.every);
        if last != 0 && now < next {
            return false;
        }
        let on_time = last != 0 && now - next < self.every;
        self.last_due
            .store(if on_time { next } else { now }, Ordering::Relaxed);
        true
    }
}

// Meters live in their own crate; the roles' users name them from here.
pub use powerplug_meter::{Meter, MeterConfig};

#[cfg(test)]
mod tests {
    use super::TickSchedule;

    #[test]
    fn ticks_keep_to_their_schedule_and_skip_ahead_when_far_behind() {
        let s = TickSchedule::new(100);
        assert!(s.due(1_000), "the first round ticks");
        assert!(!s.due(1_099));
        // Late by 30: due again 100 after the last was due, not after it ran.
        assert!(s.due(1_130));
        assert!(!s.due(1_199));
        assert!(s.due(1_200));
        // Three ticks behind: one tick, then the schedule starts from now.
        assert!(s.due(1_550));
        assert!(!s.due(1_600));
        assert!(s.due(1_650));
    }
}
