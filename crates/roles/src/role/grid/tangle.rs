//! The grid on the IOTA Tangle (feature `iota`): receive addresses derived as
//! Bech32 addresses of the wallet seed, and a thread that anchors each
//! tick's settlement, oldest first, and notes the block that holds it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use powerplug_iota::{Bech32Wallet, Node, NodeConfig, anchor};
use powerplug_ledger::{Addresses, WalletError};
use powerplug_storage::Db;

use crate::role::config::IotaConfig;
use crate::role::leader::Leading;
use crate::settlement;

/// Bech32 receive addresses, derived on every core (a key derivation each).
/// The BIP-44 index is the account's own address index, so one seed serves
/// one account: the grid's.
struct Bech32 {
    wallet: Bech32Wallet,
    account: String,
}

impl Addresses for Bech32 {
    fn derive(
        &self,
        account: &str,
        first: u64,
        _number: u64,
        count: u64,
    ) -> Result<Vec<String>, WalletError> {
        use rayon::prelude::*;
        if account != self.account {
            return Err(WalletError::Storage(format!(
                "Bech32 addresses are the account `{}`'s, not `{account}`'s",
                self.account
            )));
        }
        (first..first + count)
            .into_par_iter()
            .map(|n| {
                self.wallet
                    .address(n)
                    .map_err(|e| WalletError::Storage(format!("address {n}: {e:#}")))
            })
            .collect()
    }
}

/// Anchors settlements until dropped.
pub(super) struct Anchorer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Anchorer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the grid does on the Tangle.
pub(super) struct OnTangle {
    /// Bech32, when asked for.
    pub addresses: Option<super::AddressFormat>,
    /// When asked to anchor.
    pub anchorer: Option<Anchorer>,
}

/// Connects to the node, starts what `config` asks for.
pub(super) fn open(
    config: &IotaConfig,
    db: &Db,
    leading: Leading,
    account: &str,
    seed: &[u8; 32],
) -> anyhow::Result<OnTangle> {
    let node = Node::connect(NodeConfig {
        url: config.node.clone(),
        coin_type: config.coin_type,
        confirm_every_secs: config.confirm_every_secs,
        confirm_attempts: config.confirm_attempts,
    })?;
    let addresses = if config.bech32_addresses {
        let hrp = node.bech32_hrp()?;
        let wallet = Bech32Wallet::new(seed, &hrp, config.coin_type)?;
        let account = account.to_owned();
        Some(Box::new(Bech32 { wallet, account }) as super::AddressFormat)
    } else {
        None
    };
    let anchorer = config.anchor.then(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let (db, stopped) = (db.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("anchor".into())
            .spawn(move || anchor_until(&node, &db, &leading, &stopped));
        thread.map(|t| Anchorer {
            stop,
            thread: Some(t),
        })
    });
    Ok(OnTangle {
        addresses,
        anchorer: anchorer.transpose()?,
    })
}

/// Hosts sharing a store anchor only while they lead: one poster at a time.
fn anchor_until(node: &Node, db: &Db, leading: &Leading, stop: &AtomicBool) {
    let mut pause = Duration::from_millis(200);
    while !stop.load(Ordering::Relaxed) {
        if !leading.now() {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        match anchor_pending(node, db, stop) {
            Ok(0) => pause = Duration::from_millis(200),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "anchoring a settlement failed; trying again");
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
        // Sleeps in steps, so a stop is seen within 100 ms.
        let mut slept = Duration::ZERO;
        while slept < pause && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            slept += Duration::from_millis(100);
        }
    }
}

/// Posts the oldest pending settlements; answers how many.
fn anchor_pending(node: &Node, db: &Db, stop: &AtomicBool) -> anyhow::Result<usize> {
    let pending = settlement::pending(&**db, 16)?;
    let mut done = 0;
    for s in pending {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let block = anchor::post(
            node,
            &anchor::Anchored {
                grid: s.grid.clone(),
                tick: s.tick,
                settlement: hex::encode(s.hash),
            },
        )?;
        // A crash before this line posts the tick again after the restart:
        // a second block with the same content, which verifies the same.
        settlement::anchored(&**db, s.tick, &block)?;
        tracing::debug!(tick = s.tick, %block, "settlement anchored");
        done += 1;
    }
    Ok(done)
}
