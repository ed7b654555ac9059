//! What a host's store holds, for `/status` and `/metrics`: its size, the
//! tick log per slot, the ledger's history and its balances' sum. Taking
//! them reads the whole store (every page for its sizes, every account for
//! the sum): at a million consumers that is seconds of a core. So they are
//! taken now and then on a thread of their own, and askers get the last ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::tick_log;
use powerplug_storage::{Db, Store};

/// What the store holds.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub size: powerplug_storage::StoreStats,
    /// Per slot.
    pub tick_log: BTreeMap<String, tick_log::Held>,
    pub ledger: LedgerHeld,
    /// Every balance summed beside what was issued, from one snapshot.
    pub money: powerplug_ledger::Conservation,
}

impl Figures {
    fn take(db: &dyn Store) -> anyhow::Result<Self> {
        let mut tick_log = BTreeMap::new();
        for slot in tick_log::slots(db)? {
            let held = tick_log::held(db, &slot)?;
            tick_log.insert(slot, held);
        }
        Ok(Self {
            size: db.stats()?,
            tick_log,
            ledger: LedgerHeld::of(db)?,
            money: powerplug_ledger::conservation(db)?,
        })
    }
}

/// The span of the ledger's history still held: transfers `transfers_from`
/// to `last_seq` (and each payer's latest before), addresses numbered
/// `addresses_from` to `addresses_issued`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LedgerHeld {
    pub transfers_from: u64,
    pub last_seq: u64,
    pub addresses_from: u64,
    pub addresses_issued: u64,
}

impl LedgerHeld {
    fn of(db: &dyn Store) -> anyhow::Result<Self> {
        use powerplug_ledger as wallet;
        Ok(Self {
            transfers_from: wallet::transfers_floor(db)?.max(1),
            last_seq: wallet::last_seq(db)?,
            addresses_from: wallet::addresses_floor(db)?.max(1),
            addresses_issued: wallet::addresses_issued(db)?,
        })
    }

    /// At most this many transfers (and payers' latest) are held.
    pub fn transfers(&self) -> u64 {
        (self.last_seq + 1).saturating_sub(self.transfers_from)
    }

    pub fn addresses(&self) -> u64 {
        (self.addresses_issued + 1).saturating_sub(self.addresses_from)
    }
}

/// How long figures serve at least, however often anyone asks.
const EVERY: Duration = Duration::from_secs(5);
/// Taking them may keep a core busy at most a twentieth of the time: a
/// store whose figures take 3 s has them taken once a minute.
const SHARE: u32 = 20;

struct Taken {
    at: Instant,
    took: Duration,
    figures: Arc<Figures>,
}

/// Takes a host's [`Figures`] behind its askers.
pub struct Taker {
    last: Arc<Mutex<Option<Taken>>>,
    taking: crate::background::Single,
    every: Duration,
}

impl Default for Taker {
    fn default() -> Self {
        Self::every(EVERY)
    }
}

impl Taker {
    fn every(every: Duration) -> Self {
        Self {
            last: Default::default(),
            taking: Default::default(),
            every,
        }
    }

    /// The last figures taken. Once they are older than 5 s (or twenty
    /// times what they took), a thread takes them again and this answers
    /// the old ones meanwhile; only the first asker waits.
    pub fn get(&self, db: &Db) -> anyhow::Result<Arc<Figures>> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.as_ref() {
            Some(t) if t.at.elapsed() >= self.every.max(t.took * SHARE) => {
                let old = t.figures.clone();
                drop(last);
                self.take_behind(db);
                Ok(old)
            }
            Some(t) => Ok(t.figures.clone()),
            None => {
                let taken = take(&**db)?;
                let figures = taken.figures.clone();
                *last = Some(taken);
                Ok(figures)
            }
        }
    }

    fn take_behind(&self, db: &Db) {
        let (db, last) = (db.clone(), self.last.clone());
        self.taking.start("figures", move || match take(&*db) {
            Ok(taken) => *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(taken),
            // The old figures stay; the next asker tries again.
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "the store's figures"),
        });
    }

    /// The last figures, if taken within `within`; nothing is taken.
    pub fn recent(&self, within: Duration) -> Option<Arc<Figures>> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let last = last.as_ref().filter(|t| t.at.elapsed() < within)?;
        Some(last.figures.clone())
    }

    /// Takes them again now, on this thread, after any taking under way,
    /// if any were taken (a compaction changed the sizes: no older figures
    /// may come after these).
    pub fn refresh(&self, db: &dyn Store) -> anyhow::Result<()> {
        self.taking.wait();
        if self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            return Ok(());
        }
        let taken = take(db)?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(taken);
        Ok(())
    }

    /// Waits for a taking under way (a stopping role lets go of its store).
    pub fn wait(&self) {
        self.taking.wait();
    }
}

fn take(db: &dyn Store) -> anyhow::Result<Taken> {
    let started = Instant::now();
    let figures = Arc::new(Figures::take(db)?);
    Ok(Taken {
        at: Instant::now(),
        took: started.elapsed(),
        figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_ledger::{Tokens, UnixMs};

    fn issue(db: &Db, amount: u64, key: &str) {
        let tx = db.write().unwrap();
        powerplug_ledger::issue(&*tx, "alice", Tokens(amount), key, UnixMs(0)).unwrap();
        tx.commit().unwrap();
    }

    /// Stale figures are answered at once while a thread takes them again;
    /// the next asker gets those.
    #[test]
    fn stale_figures_are_answered_while_a_thread_takes_them_again() {
        let db: Db = Arc::new(powerplug_storage::RedbStore::in_memory().unwrap());
        issue(&db, 100, "fund-1");
        let taker = Taker::every(Duration::ZERO);
        assert_eq!(
            taker.get(&db).unwrap().money.held,
            Tokens(100),
            "the first asker waits"
        );
        issue(&db, 50, "fund-2");
        // Stale once twenty times what they took has passed: the old ones
        // now, new ones taken behind.
        let took = taker.last.lock().unwrap().as_ref().unwrap().took;
        std::thread::sleep(took * SHARE + Duration::from_millis(1));
        let old = taker.get(&db).unwrap();
        assert_eq!(old.money.held, Tokens(100));
        taker.wait();
        let last = taker.last.lock().unwrap();
        let new = &last.as_ref().unwrap().figures;
        assert_eq!(
            (new.money.held, new.money.issued),
            (Tokens(150), Tokens(150))
        );
        assert!(new.money.holds() && new.ledger.last_seq == 2);
    }

    /// However often anyone asks, fresh figures are not taken again.
    #[test]
    fn fresh_figures_are_not_taken_again() {
        let db: Db = Arc::new(powerplug_storage::RedbStore::in_memory().unwrap());
        issue(&db, 100, "fund-1");
        let taker = Taker::default();
        let first = taker.get(&db).unwrap();
        issue(&db, 50, "fund-2");
        for _ in 0..10 {
            assert!(Arc::ptr_eq(&taker.get(&db).unwrap(), &first));
        }
        // Had a thread taken them behind, the last ones would be new now.
        taker.wait();
        assert!(
            Arc::ptr_eq(&taker.get(&db).unwrap(), &first),
            "none taken again"
        );
    }
}
