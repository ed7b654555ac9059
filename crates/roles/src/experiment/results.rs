//! What each variant did, kept tick by tick inside the grid tick's
//! transaction: one row per consumer (its cohort, its real bills and payments,
//! and its bill under every variant) and one row per tick (each variant's
//! totals, for the charts).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::Experiment;
use super::billing::{self, Billing};
use crate::pages::{PAGE, Pages};
use powerplug_storage::{self as storage, Order, ReadTx, Store, WriteTx, key};
use powerplug_strategy::PaymentRequest;

/// (experiment, consumer page) → the page's [`ConsumerRow`]s ([`pages`]): a
/// tick reads and writes every row it touches.
const PAGES: &str = "experiment_consumer_pages";
/// (experiment, consumer) → [`ConsumerRow`]: rows written before pages, read
/// until their experiment's rows are forgotten; a row written again moves
/// onto its page.
const CONSUMERS: &str = "experiment_consumers";
/// (experiment, tick) → [`TickRow`].
const TICKS: &str = "experiment_ticks";
/// Open requests kept per consumer for the time to payment; older ones merge
/// (at their token-weighted time, so a merged lump paid at once waited
/// exactly as long). A consumer's row is rewritten every tick it is billed:
/// 64 made a late payer's row ~0.5 KiB (~8 bytes an entry), 16 keep it
/// under ~0.2 KiB.
const OPEN_REQUESTS: usize = 16;

/// The time of an open request made before the experiment's start.
const BEFORE: u64 = 0;

/// A bill: energy and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    pub wh: u64,
    pub owed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRow {
    pub consumer: u32,
    pub variant: u32,
    pub usage_wh: u64,
    /// Billed by its own variant (sent).
    pub billed_wh: u64,
    pub requested: u64,
    pub collected: u64,
    /// Tokens paid, times how long after their request (FIFO), in ms.
    pub waited_token_ms: u128,
    pub settled: u64,
    /// Requests not yet paid: (time, tokens left).
    pub open: VecDeque<(u64, u64)>,
    /// Its bills under every variant, by variant.
    pub bills: Vec<Bill>,
    /// Its lifetime billing when the experiment first saw it (nothing
    /// changes it in between): what it had used, been billed and paid
    /// before the span the other figures count.
    pub opening: Billing,
    /// What it pays, by the payment model, under each variant that is not
    /// its own ([`ConsumerRow::modeled_payment`]).
    pub cf_paid: Vec<u64>,
}

impl ConsumerRow {
    /// The payment model of the counterfactual books ([`billing::modeled_paid`]),
    /// lifetime, opening balances included: in a tick in which the consumer
    /// actually paid `paid_now`, what it pays under variant `v`.
    pub fn modeled_payment(&self, v: usize, paid_now: u64) -> u64 {
        let bill = self.bills.get(v).map_or(0, |b| b.owed);
        let target = billing::modeled_paid(
            self.opening.requested + self.requested,
            self.opening.paid + self.collected + paid_now,
            self.opening.requested + bill,
        );
        target.saturating_sub(self.opening.paid + self.cf_paid.get(v).copied().unwrap_or(0))
    }

    fn requested_at(&mut self, at_ms: u64, owed: u64) {
        // `while`: rows written when more were kept shrink at their next
        // request. The opening outstanding (untimed) stays first and apart.
        while self.open.len() >= OPEN_REQUESTS {
            let at = usize::from(self.open.front().is_some_and(|o| o.0 == BEFORE));
            let (Some(a), Some(b)) = (self.open.remove(at), self.open.remove(at)) else {
                break;
            };
            self.open.insert(at, merged(a, b));
        }
        self.open.push_back((at_ms, owed));
    }

    fn paid(&mut self, at_ms: u64, mut amount: u64) {
        self.collected += amount;
        while amount > 0 {
            let Some(front) = self.open.front_mut() else {
                break; // paid ahead of any request
            };
            let take = amount.min(front.1);
            if front.0 != BEFORE {
                self.waited_token_ms +=
                    u128::from(take) * u128::from(at_ms.saturating_sub(front.0));
                self.settled += take;
            }
            front.1 -= take;
            amount -= take;
            if front.1 == 0 {
                self.open.pop_front();
            }
        }
    }
}

/// Two open requests as one: their tokens at their token-weighted time (paid
/// at once, the lump waited as long as the two did).
fn merged(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    let tokens = a.1 + b.1;
    if tokens == 0 {
        return (a.0, 0);
    }
    let weighted = (u128::from(a.0) * u128::from(a.1)
        + u128::from(b.0) * u128::from(b.1)
        + u128::from(tokens) / 2)
        / u128::from(tokens);
    (weighted as u64, tokens)
}

/// One variant's totals in one tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantTick {
    /// Its cohort's usage and real bills and payments.
    pub usage_wh: u64,
    pub billed_wh: u64,
    pub requested: u64,
    pub collected: u64,
    /// Its bills over every consumer (its cohort and the counterfactuals).
    pub all: Bill,
    /// What its books took in: its cohort's payments and, by the payment
    /// model, the other cohorts' on its bills.
    pub all_income: u64,
    /// Payouts its runs decided (carried out for the control only).
    pub payouts_decided: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickRow {
    pub at_ms: u64,
    pub paid_out: u64,
    pub variants: Vec<VariantTick>,
}

/// What a grid tick hands over.
pub struct TickFacts<'a> {
    pub at_ms: u64,
    /// The variant of every consumer the tick mentions.
    pub variant_of: &'a dyn Fn(u32) -> usize,
    pub usage: Vec<(u32, u64)>,
    /// Payments from consumers: (consumer, amount).
    pub incoming: Vec<(u32, u64)>,
    /// The requests sent: the real bills.
    pub sent: Vec<PaymentRequest>,
    /// Every bill each variant decided (its cohort and the others), by variant.
    pub bills: Vec<Vec<PaymentRequest>>,
    /// The modeled payments each variant's counterfactual books took in.
    pub modeled: Vec<Vec<(u32, u64)>>,
    pub payouts_decided: Vec<u64>,
    /// Payouts carried out.
    pub paid_out: u64,
}

/// Adds one tick to `experiment`'s results, starting from the pages `met`
/// read before the tick decided.
pub fn record(
    tx: &dyn WriteTx,
    experiment: &Experiment,
    facts: &TickFacts,
    met: &Met,
) -> anyhow::Result<()> {
    let n = experiment.variants.len();
    // Every consumer the tick touches, read once.
    let touched = facts
        .usage
        .iter()
        .map(|u| u.0)
        .chain(facts.bills.iter().flatten().map(|b| b.consumer))
        .chain(facts.sent.iter().map(|b| b.consumer))
        .chain(facts.incoming.iter().map(|p| p.0));
    let stored = rows_of(&experiment.id);
    let mut pages: BTreeMap<u32, BTreeMap<u32, ConsumerRow>> = BTreeMap::new();
    let mut rows: BTreeMap<u32, ConsumerRow> = BTreeMap::new();
    // Rows not on their page yet: new, or from before pages.
    let mut off_page = Vec::new();
    for consumer in touched {
        if rows.contains_key(&consumer) {
            continue;
        }
        let page = match pages.entry(consumer / PAGE) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(match met.pages.get(&(consumer / PAGE)) {
                    Some(page) => page.clone(),
                    None => stored.read(tx, consumer / PAGE)?,
                })
            }
        };
        let r = match page.remove(&consumer) {
            Some(r) => fit(r, n),
            None => {
                off_page.push(consumer);
                row_outside_pages(tx, experiment, consumer, (facts.variant_of)(consumer))?
            }
        };
        rows.insert(consumer, r);
    }
    let mut tick = TickRow {
        at_ms: facts.at_ms,
        paid_out: facts.paid_out,
        variants: vec![VariantTick::default(); n],
    };
    for (consumer, wh) in &facts.usage {
        let Some(r) = rows.get_mut(consumer) else {
            continue;
        };
        r.usage_wh += wh;
        tick.variants[r.variant as usize].usage_wh += wh;
    }
    for (v, bills) in facts.bills.iter().enumerate() {
        tick.variants[v].payouts_decided = facts.payouts_decided.get(v).copied().unwrap_or(0);
        for b in bills {
            let Some(r) = rows.get_mut(&b.consumer) else {
                continue;
            };
            r.bills[v].wh += b.wh;
            r.bills[v].owed += b.owed;
            let t = &mut tick.variants[v];
            t.all.wh += b.wh;
            t.all.owed += b.owed;
        }
    }
    for b in &facts.sent {
        let Some(r) = rows.get_mut(&b.consumer) else {
            continue;
        };
        r.billed_wh += b.wh;
        r.requested += b.owed;
        r.requested_at(facts.at_ms, b.owed);
        let t = &mut tick.variants[r.variant as usize];
        t.billed_wh += b.wh;
        t.requested += b.owed;
    }
    for (v, modeled) in facts.modeled.iter().enumerate() {
        for (consumer, amount) in modeled {
            if let (Some(r), Some(t)) = (rows.get_mut(consumer), tick.variants.get_mut(v)) {
                r.cf_paid[v] += amount;
                t.all_income += amount;
            }
        }
    }
    for (consumer, amount) in &facts.incoming {
        let Some(r) = rows.get_mut(consumer) else {
            continue;
        };
        r.paid(facts.at_ms, *amount);
        let t = &mut tick.variants[r.variant as usize];
        t.collected += amount;
        t.all_income += amount;
    }
    // A row from before pages moves onto its page (a lookup for every
    // consumer every tick cost an experiment's tick at 10,000 ~3 ms).
    for consumer in off_page {
        tx.remove(CONSUMERS, &key::of(&[&experiment.id, &consumer]))?;
    }
    for (consumer, r) in rows {
        pages
            .entry(consumer / PAGE)
            .or_default()
            .insert(consumer, r);
    }
    for (page, rows) in pages {
        stored.write(tx, page, &rows)?;
    }
    let seq = match storage::last(tx, TICKS, &key::of(&[&experiment.id]))? {
        Some((k, _)) => {
            let mut r = key::Reader::new(&k);
            r.str()?;
            r.u64()? + 1
        }
        None => 1,
    };
    tx.put(
        TICKS,
        &key::of(&[&experiment.id, &seq]),
        &postcard::to_allocvec(&tick)?,
    )?;
    Ok(())
}

/// A consumer's row, or a new one in cohort `variant` that opens with its
/// lifetime billing so far (read before this tick's is added).
pub fn row(
    tx: &dyn ReadTx,
    experiment: &Experiment,
    consumer: u32,
    variant: usize,
) -> anyhow::Result<ConsumerRow> {
    match rows_of(&experiment.id).get(tx, consumer)? {
        Some(r) => Ok(fit(r, experiment.variants.len())),
        None => row_outside_pages(tx, experiment, consumer, variant),
    }
}

/// The result pages of the consumers a tick names, read before it decides:
/// their cohorts, and the payers' rows for the modeled payments. The
/// tick's transaction starts from them instead of reading them again
/// (only the tick, in its turn, writes them). Each page is read once: a
/// page read per payer decoded a page's 64 rows each.
#[derive(Debug, Default)]
pub struct Met {
    pages: BTreeMap<u32, BTreeMap<u32, ConsumerRow>>,
}

impl Met {
    pub fn read(
        tx: &dyn ReadTx,
        experiment: &Experiment,
        consumers: impl IntoIterator<Item = u32>,
    ) -> anyhow::Result<Self> {
        let n = experiment.variants.len();
        let stored = rows_of(&experiment.id);
        let mut pages = BTreeMap::new();
        for consumer in consumers {
            if let std::collections::btree_map::Entry::Vacant(e) = pages.entry(consumer / PAGE) {
                let rows: BTreeMap<u32, ConsumerRow> = stored.read(tx, consumer / PAGE)?;
                e.insert(rows.into_iter().map(|(c, r)| (c, fit(r, n))).collect());
            }
        }
        Ok(Self { pages })
    }

    /// `consumer`'s row, if the experiment has met it (on a page read).
    pub fn row(&self, consumer: u32) -> Option<&ConsumerRow> {
        self.pages.get(&(consumer / PAGE))?.get(&consumer)
    }

    /// Every consumer on the pages read, with its variant.
    pub fn variants(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        (self.pages.values().flatten()).map(|(&c, r)| (c, r.variant as usize))
    }
}

fn rows_of(experiment: &str) -> Pages<'static> {
    Pages::new(PAGES, &[&experiment])
}

/// A row from before pages, or a new one.
fn row_outside_pages(
    tx: &dyn ReadTx,
    experiment: &Experiment,
    consumer: u32,
    variant: usize,
) -> anyhow::Result<ConsumerRow> {
    let r = match tx.get(CONSUMERS, &key::of(&[&experiment.id, &consumer]))? {
        Some(bytes) => postcard::from_bytes(&bytes)?,
        None => {
            let opening = billing::get(tx, consumer)?;
            let mut r = ConsumerRow {
                consumer,
                variant: variant as u32,
                opening,
                ..ConsumerRow::default()
            };
            if opening.outstanding() > 0 {
                // Requested before the start: paid first, not timed.
                r.open.push_back((BEFORE, opening.outstanding() as u64));
            }
            r
        }
    };
    Ok(fit(r, experiment.variants.len()))
}

/// A row with a bill and a modeled payment for each of `n` variants.
fn fit(mut r: ConsumerRow, n: usize) -> ConsumerRow {
    r.bills.resize(n, Bill::default());
    r.cf_paid.resize(n, 0);
    r
}

/// Deletes an experiment's rows (retention); how many.
pub fn forget(tx: &dyn WriteTx, experiment: &str) -> anyhow::Result<u64> {
    let mut deleted = 0;
    for table in [PAGES, CONSUMERS, TICKS] {
        let rows = storage::prefixed(
            tx,
            table,
            &key::of(&[&experiment]),
            Order::Ascending,
            usize::MAX,
        )?;
        for (k, _) in rows {
            tx.remove(table, &k)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Every consumer row of an experiment, by consumer.
pub fn consumers(db: &dyn Store, experiment: &str) -> anyhow::Result<Vec<ConsumerRow>> {
    let tx = db.read()?;
    let mut rows: BTreeMap<u32, ConsumerRow> = BTreeMap::new();
    let old: Vec<ConsumerRow> = storage::values(storage::prefixed(
        &*tx,
        CONSUMERS,
        &key::of(&[&experiment]),
        Order::Ascending,
        usize::MAX,
    )?)?;
    rows.extend(old.into_iter().map(|r| (r.consumer, r)));
    rows.extend(rows_of(experiment).all(&*tx)?);
    Ok(rows.into_values().collect())
}

/// Every tick row of an experiment, oldest first.
pub fn ticks(db: &dyn Store, experiment: &str) -> anyhow::Result<Vec<TickRow>> {
    storage::values(storage::prefixed(
        &*db.read()?,
        TICKS,
        &key::of(&[&experiment]),
        Order::Ascending,
        usize::MAX,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payments_settle_the_oldest_requests_first() {
        let mut r = ConsumerRow::default();
        r.requested_at(1_000, 10);
        r.requested_at(2_000, 10);
        r.paid(5_000, 15);
        // 10 tokens waited 4 s, 5 tokens waited 3 s.
        assert_eq!(r.waited_token_ms, 10 * 4_000 + 5 * 3_000);
        assert_eq!((r.settled, r.collected), (15, 15));
        assert_eq!(r.open, VecDeque::from([(2_000, 5)]));
    }

    #[test]
    fn rows_written_before_pages_are_read_and_move_onto_their_page() {
        use super::super::{Status, Variant};
        use powerplug_storage::RedbStore;
        let variant = |name: &str| Variant {
            name: name.into(),
            version: "v".into(),
            weight: 1,
        };
        let e = Experiment {
            id: "price".into(),
            kind: "grid".into(),
            variants: vec![variant("a"), variant("b")],
            control: 0,
            start_ms: 0,
            created_ms: 0,
            status: Status::Running { since_ms: 0 },
            notes: None,
        };
        let db = RedbStore::in_memory().unwrap();
        let tx = db.write().unwrap();
        let old = ConsumerRow {
            consumer: 70,
            variant: 1,
            usage_wh: 500,
            ..ConsumerRow::default()
        };
        let k = key::of(&[&"price", &70u32]);
        tx.put(CONSUMERS, &k, &postcard::to_allocvec(&old).unwrap())
            .unwrap();
        let bill = |consumer, wh| PaymentRequest {
            consumer,
            wh,
            owed: wh * 2,
        };
        let variant_of = |c: u32| (c % 2) as usize;
        let facts = TickFacts {
            at_ms: 1_000,
            variant_of: &variant_of,
            usage: vec![(70, 100), (3, 40), (200, 7)],
            incoming: vec![],
            sent: vec![bill(70, 100), bill(3, 40)],
            bills: vec![vec![bill(70, 90)], vec![bill(70, 100), bill(3, 40)]],
            modeled: vec![vec![], vec![]],
            payouts_decided: vec![0, 0],
            paid_out: 0,
        };
        record(&*tx, &e, &facts, &Met::default()).unwrap();
        assert!(tx.get(CONSUMERS, &k).unwrap().is_none(), "moved");
        tx.commit().unwrap();

        let rows = consumers(&db, "price").unwrap();
        let found: Vec<(u32, u32, u64)> = rows
            .iter()
            .map(|r| (r.consumer, r.variant, r.usage_wh))
            .collect();
        assert_eq!(found, [(3, 1, 40), (70, 1, 600), (200, 0, 7)]);
        assert_eq!(
            rows[1].bills,
            [Bill { wh: 90, owed: 180 }, Bill { wh: 100, owed: 200 }]
        );
        let again = row(&*db.read().unwrap(), &e, 70, 0).unwrap();
        assert_eq!(again, rows[1]);
        // A tick's cohorts: the pages of the consumers it names, each read
        // once; one never met has no row.
        let met = Met::read(&*db.read().unwrap(), &e, [200, 5, 70, 3, 200]).unwrap();
        let variants: Vec<(u32, usize)> = met.variants().collect();
        assert_eq!(variants, [(3, 1), (70, 1), (200, 0)]);
        assert_eq!(met.row(70), Some(&rows[1]));
        assert_eq!(met.row(5), None);
        let tx = db.write().unwrap();
        assert_eq!(
            forget(&*tx, "price").unwrap(),
            4,
            "three pages (consumers 3, 70, 200) and a tick row"
        );
        tx.commit().unwrap();
        assert!(consumers(&db, "price").unwrap().is_empty());
    }

    #[test]
    fn many_open_requests_merge_instead_of_growing() {
        let mut r = ConsumerRow::default();
        // Owed before the experiment: paid first, never timed, never merged.
        r.open.push_back((BEFORE, 7));
        for i in 1..=1_000u64 {
            r.requested_at(i * 1_000, i % 5 + 1);
        }
        assert_eq!(r.open.len(), OPEN_REQUESTS);
        assert_eq!(r.open[0], (BEFORE, 7));
        let owed: u64 = (1..=1_000u64).map(|i| i % 5 + 1).sum();
        assert_eq!(r.open.iter().map(|o| o.1).sum::<u64>(), 7 + owed);

        // Paid at once, the merged requests waited as long as the thousand
        // did, within 0.01 % (the weighted times are rounded to the ms).
        let at = 2_000_000;
        r.paid(at, 7 + owed);
        let exact: u128 = (1..=1_000u128)
            .map(|i| (i % 5 + 1) * (at as u128 - i * 1_000))
            .sum();
        assert_eq!(r.settled, owed);
        assert!(r.open.is_empty());
        assert!(
            r.waited_token_ms.abs_diff(exact) * 10_000 < exact,
            "{} against {exact}",
            r.waited_token_ms
        );
    }

    #[test]
    fn a_row_that_kept_more_open_requests_shrinks_at_its_next_request() {
        let mut r = ConsumerRow::default();
        r.open.extend((1..=64u64).map(|i| (i * 1_000, 2)));
        r.requested_at(65_000, 2);
        assert_eq!(r.open.len(), OPEN_REQUESTS);
        assert_eq!(r.open.iter().map(|o| o.1).sum::<u64>(), 130);
        assert_eq!(r.open.back(), Some(&(65_000, 2)));
    }
}
