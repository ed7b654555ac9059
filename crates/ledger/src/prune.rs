//! Letting go of the ledger's history, so that a grid's disk stays bounded.
//!
//! Balances and the issued total are kept for ever; what goes is the detail
//! behind them: transfers below a floor (with their idempotency keys and
//! account index entries), and receive addresses below another. The caller
//! (retention) decides how far, by age and by what the grid has read.
//!
//! One transfer of each payer stays whatever its age: its latest payment.
//! A payer that retries, or asks after, a payment whose answer it lost does
//! so for its latest (a meter makes its next payment only once it knows how
//! the last ended), so a retry is always recognised and never moves money
//! twice. When a payer pays again, its kept payment goes at the next
//! pruning, if below the floor.
//!
//! What goes can be handed to an archive first (retention's
//! `ledger_archive`): the deletion commits only once the archive has it.

use super::{BY_ACCOUNT, BY_KEY, LAST_PAID, TRANSFERS, Transfer, WalletError, number};
use powerplug_storage::{Order, ReadTx, Store, WriteTx, key};

/// name → floor: below it, what the name says is gone.
const FLOORS: &str = "wallet_pruned";
const TRANSFERS_FLOOR: &str = "transfers";
/// Payments a newer one of their payer replaced, below the floor: the next
/// pruning takes them.
const SUPERSEDED: &str = "wallet_superseded";

/// Transfers per write transaction.
const CHUNK: u64 = 1_000;

/// What a pruning deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: u64,
    /// Keys and values deleted, bytes.
    pub bytes: u64,
}

pub(super) fn floor(tx: &dyn ReadTx, name: &str) -> Result<u64, WalletError> {
    number(tx, FLOORS, &key::of(&[&name]))
}

pub(super) fn set_floor(tx: &dyn WriteTx, name: &str, to: u64) -> Result<(), WalletError> {
    Ok(tx.put(FLOORS, &key::of(&[&name]), &to.to_be_bytes())?)
}

/// Transfers with a `seq` below this are no longer held, but for each
/// payer's latest payment (0: nothing pruned yet).
pub fn transfers_floor(db: &dyn Store) -> Result<u64, WalletError> {
    floor(&*db.read()?, TRANSFERS_FLOOR)
}

/// Deletes transfer `seq` with its key and index entries: the transfer,
/// and the bytes it freed.
fn forget_transfer(tx: &dyn WriteTx, seq: u64) -> Result<Option<(Transfer, u64)>, WalletError> {
    let k = key::of(&[&seq]);
    let Some(bytes) = tx.get(TRANSFERS, &k)? else {
        return Ok(None);
    };
    let t: Transfer = postcard::from_bytes(&bytes)?;
    let mut freed = (k.len() + bytes.len()) as u64;
    tx.remove(TRANSFERS, &k)?;
    let by_key = key::of(&[&t.key]);
    // A key names one transfer; checked all the same, so that pruning can
    // never take a key from the transfer it names.
    if tx
        .get(BY_KEY, &by_key)?
        .is_some_and(|v| v == seq.to_be_bytes())
    {
        tx.remove(BY_KEY, &by_key)?;
        freed += by_key.len() as u64 + 8;
    }
    for account in [&t.from, &t.to] {
        let entry = key::of(&[&account.as_str(), &seq]);
        tx.remove(BY_ACCOUNT, &entry)?;
        freed += entry.len() as u64;
    }
    Ok(Some((t, freed)))
}

/// Inside a new transfer's transaction: `payer`'s latest payment is now
/// `seq`; the one it replaces is doomed if it is below the floor.
pub(super) fn paid(tx: &dyn WriteTx, payer: &str, seq: u64) -> Result<(), WalletError> {
    let k = key::of(&[&payer]);
    let previous = number(tx, LAST_PAID, &k)?;
    tx.put(LAST_PAID, &k, &seq.to_be_bytes())?;
    if previous != 0 && previous < floor(tx, TRANSFERS_FLOOR)? {
        tx.put(SUPERSEDED, &key::of(&[&previous]), &[])?;
    }
    Ok(())
}

/// Raises the transfers' floor to `below` (never lowers it): every
/// transfer under it goes, but each payer's latest payment, and so do the
/// kept ones that newer payments replaced since. Each transaction's
/// transfers go to `archive` before it commits; if that fails, they stay.
/// In transactions of a thousand transfers, so that ticks interleave.
pub fn prune_transfers(
    db: &dyn Store,
    below: u64,
    archive: &mut dyn FnMut(&[Transfer]) -> anyhow::Result<()>,
) -> Result<Pruned, WalletError> {
    let mut done = Pruned::default();
    loop {
        let tx = db.write()?;
        let from = floor(&*tx, TRANSFERS_FLOOR)?;
        let mut doomed = Vec::new();
        for (k, _) in tx.range(SUPERSEDED, &[], None, Order::Ascending, CHUNK as usize)? {
            tx.remove(SUPERSEDED, &k)?;
            doomed.push(key::Reader::new(&k).u64()?);
        }
        if doomed.is_empty() && from >= below {
            return Ok(done);
        }
        let to = below.min(from.saturating_add(CHUNK)).max(from);
        let (start, end) = (key::of(&[&from]), key::of(&[&to]));
        for (_, v) in tx.range(TRANSFERS, &start, Some(&end), Order::Ascending, usize::MAX)? {
            let t: Transfer = postcard::from_bytes(&v)?;
            if number(&*tx, LAST_PAID, &key::of(&[&t.from.as_str()]))? != t.seq {
                doomed.push(t.seq);
            }
        }
        let mut gone = Vec::with_capacity(doomed.len());
        for seq in doomed {
            if let Some((t, bytes)) = forget_transfer(&*tx, seq)? {
                done.bytes += bytes;
                gone.push(t);
            }
        }
        archive(&gone)?;
        done.deleted += gone.len() as u64;
        set_floor(&*tx, TRANSFERS_FLOOR, to)?;
        tx.commit()?;
    }
}
