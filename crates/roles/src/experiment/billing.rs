//! Each consumer's billing over its life on this grid, as the host carried it
//! out: Wh used, Wh billed and tokens requested by the payment requests the
//! grid sent (whichever policy decided them), tokens paid. The strategies'
//! cells are opaque to the host, so this is what hand-backs and reports are
//! checked against, and an experiment's report takes each consumer's
//! balances at its start from here. Written in the tick's transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pages::{self, Pages};
use powerplug_storage::{ReadTx, Store, WriteTx, key};

/// consumer page → the page's [`Billing`]s ([`pages`]).
const TABLE: &str = "grid_billing_pages";
/// consumer index → [`Billing`]: before pages.
const ROWS: &str = "grid_billing";

fn table() -> Pages<'static> {
    Pages::new(TABLE, &[])
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub used_wh: u64,
    pub billed_wh: u64,
    pub requested: u64,
    pub paid: u64,
}

impl Billing {
    /// Used but not billed yet (the policy's carry).
    pub fn unbilled_wh(&self) -> i64 {
        self.used_wh as i64 - self.billed_wh as i64
    }

    /// Requested but not paid yet.
    pub fn outstanding(&self) -> i64 {
        self.requested as i64 - self.paid as i64
    }

    fn add(&mut self, other: &Billing) {
        self.used_wh += other.used_wh;
        self.billed_wh += other.billed_wh;
        self.requested += other.requested;
        self.paid += other.paid;
    }
}

pub fn get(tx: &dyn ReadTx, consumer: u32) -> anyhow::Result<Billing> {
    Ok(table().get(tx, consumer)?.unwrap_or_default())
}

/// Adds one tick's usage, sent requests and payments.
pub fn add(tx: &dyn WriteTx, tick: &BTreeMap<u32, Billing>) -> anyhow::Result<()> {
    table().update(tx, tick.keys().copied(), |consumer, b: &mut Billing| {
        if let Some(change) = tick.get(&consumer) {
            b.add(change);
        }
        Ok(())
    })
}

/// Up to `limit` consumers after index `after` (from the first without).
pub fn page(
    db: &dyn Store,
    after: Option<u32>,
    limit: usize,
) -> anyhow::Result<Vec<(u32, Billing)>> {
    let from = match after.map(|a| a.checked_add(1)) {
        Some(None) => return Ok(Vec::new()),
        Some(Some(next)) => next,
        None => 0,
    };
    table().from(&*db.read()?, from, limit)
}

/// Moves the billing rows of a store written before pages onto pages (once).
pub fn migrate(db: &dyn Store) -> anyhow::Result<u64> {
    pages::migrate(db, ROWS, TABLE, |k, v| {
        let consumer = key::Reader::new(k).u32()?;
        Ok((Vec::new(), consumer, postcard::from_bytes::<Billing>(v)?))
    })
}

/// producer index → [`Supplied`].
const PRODUCERS: &str = "grid_producer_books";

/// Each producer's output the grid took and what it paid the producer,
/// since this table was added (written in the tick's transaction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supplied {
    pub output_wh: u64,
    pub paid_out: u64,
}

pub fn supplied(tx: &dyn ReadTx, producer: u32) -> anyhow::Result<Supplied> {
    match tx.get(PRODUCERS, &key::of(&[&producer]))? {
        Some(bytes) => Ok(postcard::from_bytes(&bytes)?),
        None => Ok(Supplied::default()),
    }
}

/// Adds one tick's output and payouts.
pub fn add_supplied(tx: &dyn WriteTx, tick: &BTreeMap<u32, Supplied>) -> anyhow::Result<()> {
    for (producer, change) in tick {
        let mut s = supplied(tx, *producer)?;
        s.output_wh = s.output_wh.saturating_add(change.output_wh);
        s.paid_out = s.paid_out.saturating_add(change.paid_out);
        tx.put(
            PRODUCERS,
            &key::of(&[producer]),
            &postcard::to_allocvec(&s)?,
        )?;
    }
    Ok(())
}

/// The payment model of counterfactual books: what a consumer has paid, in
/// all, on bills of `cf_billed` tokens, given that it has paid `real_paid` on
/// the `real_billed` tokens it was actually sent: the same share, so never
/// more than billed (a payment beyond its real bills, ahead of them, is
/// left out). Billed the same, it pays exactly what it paid.
pub fn modeled_paid(real_billed: u64, real_paid: u64, cf_billed: u64) -> u64 {
    (u128::from(cf_billed) * u128::from(real_paid.min(real_billed)))
        .checked_div(u128::from(real_billed))
        .unwrap_or(0) as u64
}

#[cfg(test)]
mod tests {
    use super::modeled_paid;

    #[test]
    fn the_same_bills_pay_the_same_and_others_pay_their_share() {
        assert_eq!(modeled_paid(100, 75, 100), 75);
        assert_eq!(modeled_paid(100, 75, 140), 105);
        assert_eq!(modeled_paid(100, 100, 60), 60);
        assert_eq!(modeled_paid(0, 0, 60), 0);
        assert_eq!(modeled_paid(100, 110, 50), 50);
    }
}
