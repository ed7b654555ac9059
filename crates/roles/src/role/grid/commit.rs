//! Carrying out a tick: every run's books, the payouts, the payment requests
//! (sealed on the consumers' return channels, into the outbox), the consumed
//! news, the counters, an experiment's results and the tick log, in one
//! transaction.

use powerplug_domain::EntityKind;
use powerplug_domain::{Tokens, Wh};
use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;

use super::invariants;
use super::runs::{self, Cohorts, Run};
use super::{Grid, SLOT};
use crate::books::store_decision;
use crate::counter::Counter;
use crate::experiment::billing::{self, Billing};
use crate::experiment::{results, shadow};
use crate::inbox::{self, Command};
use crate::outbox;
use crate::registry::{self, LOCAL, Registration, WriterState};
use crate::returns;
use crate::settlement;
use crate::tick_log::{self, Outcome};
use powerplug_channel::Message;
use powerplug_ledger as wallet;
use powerplug_storage as storage;
use powerplug_strategy::{GridDecision, GridInput, GridStrategy, Metric, PaymentRequest};

impl Grid {
    pub(super) fn record_failure(
        &self,
        strategy: &GridStrategy,
        input: GridInput,
        why: &str,
    ) -> anyhow::Result<()> {
        let tx = self.tick_tx()?;
        tick_log::record_grid(
            &*tx,
            SLOT,
            &strategy.info().sha256,
            input,
            Outcome::Failed(why.to_owned()),
        )?;
        Counter::TicksFailed.add(&*tx, 1)?;
        tx.commit()?;
        Ok(())
    }

    /// Carries out every run's decision in one transaction. The runs'
    /// tick-log entries are encoded, hashed and compressed on a thread of their own
    /// meanwhile (up to ~0.4 MB each at 10,000 consumers, nine in an experiment).
    pub(super) fn commit(
        &self,
        decided: Decided<'_>,
        inputs: Vec<GridInput>,
        registrations: &mut HashMap<u32, Registration>,
        consumed: Consumed<'_>,
    ) -> anyhow::Result<Sent> {
        let (runs, decisions) = (decided.runs, decided.decisions);
        std::thread::scope(|scope| {
            let entries = scope.spawn(|| {
                (runs.iter().zip(&inputs).zip(decisions))
                    .map(|((run, input), decision)| {
                        let outcome = Outcome::Decided(decision);
                        let sha256 = &run.strategy.info().sha256;
                        tick_log::Entry::new(sha256, input.now_ms, input, &outcome)
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
            });
            let entries = || match entries.join() {
                Ok(entries) => entries,
                Err(_) => Err(anyhow::anyhow!("the tick log's thread panicked")),
            };
            self.carry_out(decided, &inputs, registrations, consumed, entries)
        })
    }

    fn carry_out(
        &self,
        decided: Decided<'_>,
        inputs: &[GridInput],
        registrations: &mut HashMap<u32, Registration>,
        consumed: Consumed<'_>,
        entries: impl FnOnce() -> anyhow::Result<Vec<tick_log::Entry>>,
    ) -> anyhow::Result<Sent> {
        let Decided {
            tick,
            now,
            runs,
            decisions,
            cohorts,
            shadow,
        } = decided;
        let active = &decisions[0];
        let tx = self.tick_tx()?;
        // The bills first, at their places on the return channels: they are
        // sealed on every core while this thread writes the rest of the tick.
        let mut sent = Sent::default();
        let mut bills = invariants::Bills::new();
        let mut requests = Vec::new();
        for (run, decision) in runs.iter().zip(decisions) {
            for r in decision.payment_requests.iter() {
                if runs::sends(run, cohorts, r.consumer) {
                    requests.push(request(&r, &mut sent));
                    let bill = bills.entry(r.consumer).or_default();
                    bill.0 = bill.0.saturating_add(r.wh);
                    bill.1 = bill.1.saturating_add(r.owed);
                }
            }
        }
        let placed = self.place(&*tx, requests, &mut sent)?;
        let key = self.hub.registry.key();
        let first = outbox::number(&*tx, placed.requests.len() as u64)?;
        std::thread::scope(|scope| {
            let (parts, sealed) = std::sync::mpsc::channel();
            let placed = &placed;
            let sealing = scope.spawn(move || placed.seal(key, first, SEAL_PART, parts));
            if let Some(pay_to) = &placed.pay_to {
                wallet::record_addresses(&*tx, pay_to)?;
            }
            // Payouts name producers; bills went by `returns`, with no
            // registration read.
            let paid = active.payouts.iter().map(|p| p.producer);
            registry::add_by_index(&*tx, registrations, paid)?;
            for (run, decision) in runs.iter().zip(decisions) {
                store_decision(&*tx, &run.slot, &decision.state, &decision.cells)?;
            }
            inbox::consume(&*tx, consumed.records)?;
            registry::consume_news(&*tx, consumed.joined, consumed.left)?;
            storage::set_meta(&*tx, super::TRANSFER_CURSOR, &consumed.cursor)?;
            let mut payouts = Vec::with_capacity(active.payouts.len());
            for p in &active.payouts {
                let producer = registrations
                    .get(&p.producer)
                    .filter(|r| r.kind == EntityKind::Producer)
                    .with_context(|| format!("payout to {}, not a producer", p.producer))?;
                payouts.push(wallet::transfer(
                    &*tx,
                    self.account(),
                    &producer.id,
                    wallet::Tokens(p.amount),
                    self.account(),
                    &wallet::host_key(&format!("payout/{tick}/{}", p.producer)),
                    wallet::UnixMs(now),
                )?);
            }
            invariants::check_and_record(&*tx, &inputs[0].usage, &bills, &placed.consumers)?;
            storage::set_meta(&*tx, "grid/metrics", &metrics(&active.metrics))?;
            let paid_out: u64 = active.payouts.iter().map(|p| p.amount).sum();
            Counter::Ticks.add(&*tx, 1)?;
            Counter::UsageWh.add(&*tx, inputs[0].usage.wh.iter().sum())?;
            Counter::OutputWh.add(&*tx, inputs[0].output.iter().map(|o| o.wh).sum())?;
            Counter::PaymentRequests.add(&*tx, sent.requests)?;
            Counter::RequestsUndeliverable.add(&*tx, sent.undeliverable)?;
            Counter::Requested.add(&*tx, sent.requested)?;
            Counter::BilledWh.add(&*tx, sent.billed_wh)?;
            Counter::PaidOut.add(&*tx, paid_out)?;
            Counter::Income.add(&*tx, consumed.income)?;
            if let Some(c) = cohorts {
                let variant_of = |consumer| c.variant(consumer);
                let facts =
                    experiment_facts(now, c, &variant_of, runs, decisions, &inputs[0], paid_out);
                // Before this tick's billing is added: a new row's opening balances.
                results::record(&*tx, c.experiment, &facts, &c.met)?;
            }
            billing::add(
                &*tx,
                &tick_billing(&inputs[0], std::mem::take(&mut sent.billing)),
            )?;
            billing::add_supplied(&*tx, &tick_supplied(&inputs[0], active))?;
            if let (Some(mut s), Some(candidate)) = (shadow, decisions.get(1)) {
                s.stats.compare(now, active, candidate);
                shadow::put(&*tx, &s)?;
            }
            // The sealed requests into the outbox, in order, as they come.
            let mut seq = first;
            for part in sealed {
                for item in part? {
                    outbox::put(&*tx, seq, &item)?;
                    seq += 1;
                }
            }
            if sealing.join().is_err() {
                anyhow::bail!("sealing the payment requests panicked");
            }
            anyhow::ensure!(
                seq == first + placed.requests.len() as u64,
                "{} of {} payment requests sealed",
                seq - first,
                placed.requests.len()
            );
            let mut logged = Vec::with_capacity(runs.len());
            for (run, entry) in runs.iter().zip(entries()?) {
                logged.push(entry.append(&*tx, &run.slot)?);
            }
            if self.anchoring {
                settlement::record(
                    &*tx,
                    &settlement::Settlement {
                        grid: self.account().to_owned(),
                        tick,
                        slot: runs[0].slot.clone(),
                        log_tick: logged[0],
                        hash: settlement::hash(self.account(), tick, active, &payouts)?,
                        payouts: payouts.iter().map(|t| t.seq).collect(),
                        block: None,
                    },
                )?;
            }
            anyhow::Ok(())
        })?;
        tx.commit()?;
        Ok(sent)
    }

    /// Puts the tick's payment requests at their places on the consumers'
    /// return channels, moving the channels past them, each with an address
    /// to pay to (reserved, recorded by the caller).
    fn place(
        &self,
        tx: &dyn storage::WriteTx,
        requests: Vec<Request>,
        sent: &mut Sent,
    ) -> anyhow::Result<Placed> {
        let mut count = BTreeMap::new();
        for r in &requests {
            *count.entry(r.consumer).or_insert(0) += 1;
        }
        let mut channels = returns::take(tx, &count)?;
        let consumers = channels.keys().copied().collect();
        // Each request at its place, in the order decided. A consumer that
        // deregistered after its last readings arrived is billed for them,
        // but there is no channel left to send it on.
        let mut requests_placed = Vec::with_capacity(requests.len());
        for r in requests {
            match channels.get_mut(&r.consumer).and_then(Option::as_mut) {
                Some(back) => {
                    requests_placed.push((r, back.clone()));
                    back.next_index += 1;
                }
                None => sent.undeliverable += 1,
            }
        }
        let pay_to = match requests_placed.len() as u64 {
            0 => None,
            n => Some(wallet::reserve_addresses(
                tx,
                &*self.addresses,
                self.account(),
                n,
            )?),
        };
        Ok(Placed {
            requests: requests_placed,
            pay_to,
            consumers,
        })
    }
}

/// Payment requests sealed and handed to the outbox at a time: small enough
/// that the first part is ready long before the tick's other writes are
/// done, large enough for every core to share it.
const SEAL_PART: usize = 8_192;

/// A tick's payment requests at their places, each with its address to pay
/// to: ready to seal.
struct Placed {
    requests: Vec<(Request, WriterState)>,
    pay_to: Option<wallet::Reserved>,
    /// The billed consumers still registered.
    consumers: HashSet<u32>,
}

impl Placed {
    /// Seals each request on its consumer's return channel, on every core
    /// (a signature and an encryption each), as the outbox's items numbered
    /// from `first`: handed on in order, a part at a time, so that the
    /// tick's thread writes the first parts while the rest are sealed.
    /// Stops at the first failure (handed on) or when nobody takes the parts.
    fn seal(
        &self,
        key: &ed25519_dalek::SigningKey,
        first: u64,
        part: usize,
        parts: std::sync::mpsc::Sender<anyhow::Result<Vec<Vec<u8>>>>,
    ) {
        use rayon::prelude::*;
        let Some(pay_to) = &self.pay_to else {
            return;
        };
        let requests = self.requests.chunks(part);
        for ((requests, pay_to), start) in requests
            .zip(pay_to.addresses.chunks(part))
            .zip((first..).step_by(part))
        {
            let sealed = (requests.par_iter().zip(pay_to).enumerate())
                .map(|(i, ((r, back), pay_to))| {
                    let command = Command::PaymentRequest {
                        owed: Tokens(r.owed),
                        wh: Wh(r.wh),
                        pay_to: pay_to.clone(),
                    };
                    let message = back.writer(key).prepare(Message::Data(command.encode()))?;
                    outbox::encode(start + i as u64, LOCAL, &message)
                })
                .collect::<anyhow::Result<Vec<_>>>();
            let failed = sealed.is_err();
            if parts.send(sealed).is_err() || failed {
                return;
            }
        }
    }
}

/// A payment request to send.
struct Request {
    consumer: u32,
    owed: u64,
    wh: u64,
}

/// Counts a payment request into `sent`: the request to send.
fn request(r: &PaymentRequest, sent: &mut Sent) -> Request {
    sent.requests += 1;
    sent.requested += r.owed;
    sent.billed_wh += r.wh;
    let b = sent.billing.entry(r.consumer).or_default();
    b.billed_wh += r.wh;
    b.requested += r.owed;
    Request {
        consumer: r.consumer,
        owed: r.owed,
        wh: r.wh,
    }
}

/// What a tick's runs decided, to carry out.
pub(super) struct Decided<'a> {
    pub tick: u64,
    pub now: u64,
    pub runs: &'a [Run],
    /// By run; the active version's first.
    pub decisions: &'a [GridDecision],
    pub cohorts: Option<&'a Cohorts<'a>>,
    pub shadow: Option<shadow::Shadow>,
}

/// The payment requests a tick sent.
#[derive(Default)]
pub(super) struct Sent {
    pub requests: u64,
    pub requested: u64,
    billed_wh: u64,
    undeliverable: u64,
    /// Per consumer: the Wh and tokens of the requests sent.
    billing: BTreeMap<u32, Billing>,
}

/// Each consumer's usage, sent bills and payments in this tick.
fn tick_billing(input: &GridInput, mut sent: BTreeMap<u32, Billing>) -> BTreeMap<u32, Billing> {
    for (&c, &wh) in input.usage.consumer.iter().zip(&input.usage.wh) {
        sent.entry(c).or_default().used_wh += wh;
    }
    for t in input.transfers.iter().filter(|t| t.incoming) {
        if let Some(c) = t.entity {
            sent.entry(c).or_default().paid += t.amount;
        }
    }
    sent
}

/// Each producer's output taken and payouts in this tick.
fn tick_supplied(input: &GridInput, decision: &GridDecision) -> BTreeMap<u32, billing::Supplied> {
    let mut tick: BTreeMap<u32, billing::Supplied> = BTreeMap::new();
    for o in &input.output {
        let s = tick.entry(o.producer).or_default();
        s.output_wh = s.output_wh.saturating_add(o.wh);
    }
    for p in &decision.payouts {
        let s = tick.entry(p.producer).or_default();
        s.paid_out = s.paid_out.saturating_add(p.amount);
    }
    tick
}

/// One tick of an experiment, for its results.
fn experiment_facts<'a>(
    at_ms: u64,
    cohorts: &'a Cohorts<'a>,
    variant_of: &'a dyn Fn(u32) -> usize,
    runs: &[Run],
    decisions: &[GridDecision],
    input: &GridInput,
    paid_out: u64,
) -> results::TickFacts<'a> {
    let n = cohorts.experiment.variants.len();
    let mut bills = vec![Vec::new(); n];
    let mut payouts_decided = vec![0; n];
    let mut sent = Vec::new();
    for (run, decision) in runs.iter().zip(decisions) {
        if let Some(v) = run.variant.filter(|&v| v < n) {
            bills[v].extend(decision.payment_requests.iter());
            payouts_decided[v] += decision.payouts.iter().map(|p| p.amount).sum::<u64>();
        }
        sent.extend(
            decision
                .payment_requests
                .iter()
                .filter(|r| runs::sends(run, Some(cohorts), r.consumer)),
        );
    }
    let modeled = cohorts
        .modeled
        .iter()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| Some((t.entity?, t.amount)))
                .collect()
        })
        .collect();
    let usage = input
        .usage
        .consumer
        .iter()
        .zip(&input.usage.wh)
        .map(|(&c, &wh)| (c, wh))
        .collect::<Vec<_>>();
    let incoming = input
        .transfers
        .iter()
        .filter(|t| t.incoming)
        .filter_map(|t| Some((t.entity?, t.amount)))
        .collect::<Vec<_>>();
    results::TickFacts {
        at_ms,
        variant_of,
        usage,
        incoming,
        sent,
        bills,
        modeled,
        payouts_decided,
        paid_out,
    }
}

/// What a tick consumes, committed with its decision.
pub(super) struct Consumed<'a> {
    pub records: &'a [inbox::Record],
    pub joined: &'a [u32],
    pub left: &'a [u32],
    pub cursor: u64,
    pub income: u64,
}

fn metrics(metrics: &[Metric]) -> Vec<(String, i64)> {
    metrics.iter().map(|m| (m.name.clone(), m.value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_channel::{Address, envelope};
    use powerplug_storage::Store;

    #[test]
    fn requests_are_sealed_in_parts_as_outbox_items_numbered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = powerplug_storage::RedbStore::open(&dir.path().join("grid.redb")).unwrap();
        let tx = db.write().unwrap();
        let pay_to =
            wallet::reserve_addresses(&*tx, &wallet::Enciphered::new(&[1; 32]), "grid", 10)
                .unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let requests = (0..10u8)
            .map(|i| {
                let request = Request {
                    consumer: u32::from(i),
                    owed: 100 + u64::from(i),
                    wh: 10 + u64::from(i),
                };
                let back = WriterState {
                    root: [i; 32],
                    side_key: Some([9; 32]),
                    next_index: 1 + u64::from(i),
                };
                (request, back)
            })
            .collect();
        let placed = Placed {
            requests,
            pay_to: Some(pay_to),
            consumers: HashSet::new(),
        };
        let (parts, sealed) = std::sync::mpsc::channel();
        placed.seal(&key, 41, 3, parts);
        let parts: Vec<Vec<Vec<u8>>> = sealed.into_iter().map(|p| p.unwrap()).collect();
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
        let addresses = &placed.pay_to.as_ref().unwrap().addresses;
        for (i, bytes) in parts.iter().flatten().enumerate() {
            let item: outbox::Item = postcard::from_bytes(bytes).unwrap();
            let (r, back) = &placed.requests[i];
            assert_eq!(
                (item.seq, item.destination.as_str()),
                (41 + i as u64, LOCAL)
            );
            assert_eq!(item.message.index, back.next_index);
            let address = Address::of(&back.root, back.next_index);
            let next = Address::of(&back.root, back.next_index + 1);
            let opened = envelope::open(
                &key.verifying_key(),
                back.side_key.as_ref(),
                &address,
                &next,
                &item.message.bytes,
            );
            let Some(Message::Data(data)) = opened else {
                panic!("request {i} does not open: {opened:?}");
            };
            let expected = Command::PaymentRequest {
                owed: Tokens(r.owed),
                wh: Wh(r.wh),
                pay_to: addresses[i].clone(),
            };
            assert_eq!(Command::decode(&data), Some(expected));
        }
    }
}
