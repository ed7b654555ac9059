//! Which of the hosts that share a store leads: polls, ticks and sends for
//! the role. The others stand by: they serve the HTTP API (registrations,
//! channel writes, the wallet, status) on the same store, and one of them
//! takes over within about a lease period of the leader's last renewal.
//!
//! A thread of its own renews the lease three times a period, beside the
//! ticks (a tick at 10,000 consumers takes longer than that). A tick
//! captures the epoch it began in and fences its commit with it, so a
//! leader paused past its lease cannot commit what it decided before
//! (see [`powerplug_storage::lease`]). On redb every host leads: only one
//! process can open the file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use powerplug_storage::{Db, Lease, Store, WriteTx, lease::MIN_PERIOD};

pub struct Leadership {
    name: &'static str,
    period: Duration,
    shared: Arc<Shared>,
    /// Stops the renewing thread; it releases the lease as it ends.
    stop: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// The epoch of the scheduler's last round (see [`turn`](Self::turn)).
    stepped: AtomicU64,
    /// The epoch the tick in progress began in (see [`begin_tick`](Self::begin_tick)).
    ticking: AtomicU64,
}

/// A round of a leading host's scheduler.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    pub epoch: u64,
    /// The first round in this epoch: what the host holds in memory of the
    /// store (the active strategy, a membership) may have moved on under
    /// another leader, and is read again.
    pub new: bool,
}

struct Shared {
    /// The epoch this host leads in; 0 while it stands by.
    epoch: AtomicU64,
    /// When the lease was last taken or renewed.
    renewed: Mutex<Instant>,
    /// Who held it at the last look, for `/status`.
    seen: Mutex<Option<Lease>>,
}

impl Shared {
    fn epoch(&self, period: Duration) -> Option<u64> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        (epoch != 0 && renewed.elapsed() < period).then_some(epoch)
    }
}

/// Whether the host leads, from any thread.
#[derive(Clone)]
pub struct Leading {
    shared: Arc<Shared>,
    period: Duration,
}

impl Leading {
    pub fn now(&self) -> bool {
        self.shared.epoch(self.period).is_some()
    }
}

impl Leadership {
    /// Looks at the lease `name` once (taking it if it is free) and starts
    /// the thread that keeps it.
    pub fn start(db: Db, name: &'static str, period: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(
            period >= MIN_PERIOD,
            "lease_ms: at least {} ms",
            MIN_PERIOD.as_millis()
        );
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            // Read only while the epoch is set, which a renewal does.
            renewed: Mutex::new(Instant::now()),
            seen: Mutex::new(None),
        });
        shared.look(&*db, name, period);
        let (stop, stopped) = mpsc::channel::<()>();
        let keeper = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("powerplug-lease-{name}"))
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period / 3) {
                    keeper.look(&*db, name, period);
                }
                if keeper.epoch.swap(0, Ordering::AcqRel) != 0
                    && let Err(e) = db.release(name)
                {
                    tracing::warn!(lease = name, error = %format!("{e:#}"), "could not hand the lease on");
                }
            })?;
        Ok(Self {
            name,
            period,
            shared,
            stop: Mutex::new(Some((stop, thread))),
            stepped: AtomicU64::new(0),
            ticking: AtomicU64::new(0),
        })
    }

    /// Whether the scheduler's round leads, and in which epoch.
    pub fn turn(&self) -> Option<Turn> {
        let epoch = self.epoch()?;
        let new = self.stepped.swap(epoch, Ordering::AcqRel) != epoch;
        Some(Turn { epoch, new })
    }

    /// A tick begins (its caller holds the role's tick turn): the epoch it
    /// begins in fences all its transactions. Refused, as a fenced commit
    /// would be, if this host does not lead.
    pub fn begin_tick(&self) -> anyhow::Result<()> {
        let epoch = self.epoch().ok_or_else(|| powerplug_storage::Fenced {
            lease: self.name.to_owned(),
            epoch: self.stepped.load(Ordering::Acquire),
        })?;
        self.ticking.store(epoch, Ordering::Release);
        Ok(())
    }

    /// A transaction of the tick in progress: it commits only while this
    /// host still holds the lease in the epoch the tick began in.
    pub fn tick_tx<'a>(&self, db: &'a dyn Store) -> anyhow::Result<Box<dyn WriteTx + 'a>> {
        let tx = db.write()?;
        tx.fence(self.name, self.ticking.load(Ordering::Acquire))?;
        Ok(tx)
    }

    /// The epoch this host leads in, if it does: it holds the lease and
    /// renewed it less than a period ago.
    pub fn epoch(&self) -> Option<u64> {
        self.shared.epoch(self.period)
    }

    /// A handle for another thread of the role to ask whether this host
    /// leads (a grid's anchoring: only the leader posts).
    pub fn watch(&self) -> Leading {
        Leading {
            shared: self.shared.clone(),
            period: self.period,
        }
    }

    /// Stops renewing and hands the lease on (a graceful stop). Waits for
    /// the thread.
    pub fn stop(&self) {
        let stop = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((sender, thread)) = stop {
            drop(sender);
            let _ = thread.join();
        }
    }

    /// For `/status`.
    pub fn status(&self) -> serde_json::Value {
        let seen = self
            .shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        serde_json::json!({
            "name": self.name,
            "leading": self.epoch().is_some(),
            "period_ms": self.period.as_millis() as u64,
            "seen": seen,
        })
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Takes or renews the lease, or learns who holds it.
    fn look(&self, db: &dyn Store, name: &str, period: Duration) {
        let asked = Instant::now();
        let answer = db.lease(name, period);
        match &answer {
            Ok(Lease::Me { epoch }) => {
                *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = asked;
                if self.epoch.swap(*epoch, Ordering::AcqRel) != *epoch {
                    tracing::info!(lease = name, epoch, "leading");
                }
            }
            Ok(Lease::Other { holder, epoch, .. }) => {
                if self.epoch.swap(0, Ordering::AcqRel) != 0 {
                    tracing::warn!(lease = name, %holder, epoch, "lost the lease; standing by");
                }
            }
            // The lease runs out a period after the last renewal: past
            // that, another host may lead.
            Err(e) => {
                tracing::warn!(lease = name, error = %format!("{e:#}"), "cannot renew the lease")
            }
        }
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = answer.ok();
    }
}
