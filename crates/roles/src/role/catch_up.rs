//! Catching up with a host above that went back in time. A grid or producer
//! restored from a backup holds nothing of what happened after the backup;
//! its store has a new timeline ([`powerplug_storage::timeline`]). A member
//! (meter, producer) that sees the timeline change asks the host what it
//! holds of it and then:
//!
//! - sends again what the host lost of its channel (the outbox keeps the
//!   last `resend_window` messages it sent);
//! - forgets the payment requests it read that the host no longer sent: the
//!   host's strategy bills that usage again, in requests of the new history;
//! - counts as owed again the payments the host's ledger lost (the money is
//!   back in the consumer's account there), and pays them again.
//!
//! Until then every request the member makes names the timeline it knew,
//! and the host refuses it (`409`): nothing meant for the lost history lands
//! in the new one.

use anyhow::Context;
use ed25519_dalek::SigningKey;
use serde::Serialize;

use super::member::MemberState;
use crate::{api, outbox};
use powerplug_channel::Timeline;
use powerplug_client::Client;
use powerplug_storage::{self as storage, Order, ReadTx, Store, WriteTx, key};

/// The timeline of the host above that a member last caught up with.
const SEEN: &str = "upstream/timeline";

/// At start: requests name the timeline last caught up with.
pub fn remember(db: &dyn Store, timeline: &Timeline) -> anyhow::Result<()> {
    if let Some(seen) = storage::meta::<String>(db, SEEN)? {
        timeline.set(seen);
    }
    Ok(())
}

/// Asks the host above for its timeline. `Some(new)`: it changed since it
/// was last seen, and requests name the new one from now on; catch up, then
/// call [`seen`]. A first sight is simply remembered.
pub fn check(api: &Client, timeline: &Timeline, db: &dyn Store) -> anyhow::Result<Option<String>> {
    let theirs = api.timeline()?;
    match timeline.get() {
        Some(ours) if ours == theirs => Ok(None),
        Some(_) => {
            timeline.set(theirs.clone());
            Ok(Some(theirs))
        }
        None => {
            timeline.set(theirs.clone());
            seen(db, &theirs)?;
            Ok(None)
        }
    }
}

/// Caught up with `timeline`: a restart does not do it again.
pub fn seen(db: &dyn Store, timeline: &str) -> anyhow::Result<()> {
    let tx = db.write()?;
    storage::set_meta(&*tx, SEEN, &timeline.to_owned())?;
    tx.commit()
}

/// The payment requests a consumer read: (id, index on the return channel) → owed.
const REQUESTS: &str = "member_requests";
/// The payments a consumer made: (id, number) → amount.
const PAYMENTS: &str = "member_payments";

/// The idempotency key of a consumer's `number`th payment.
pub fn payment_key(id: &str, number: u64) -> String {
    format!("{id}/pay/{number}")
}

/// Notes a payment request read at `index`, keeping the last `window`.
pub fn log_request(
    tx: &dyn WriteTx,
    id: &str,
    index: u64,
    owed: u64,
    window: u64,
) -> anyhow::Result<()> {
    log(tx, REQUESTS, id, index, owed, window)
}

/// Notes the `number`th payment, keeping the last `window`.
pub fn log_payment(
    tx: &dyn WriteTx,
    id: &str,
    number: u64,
    amount: u64,
    window: u64,
) -> anyhow::Result<()> {
    log(tx, PAYMENTS, id, number, amount, window)
}

fn log(
    tx: &dyn WriteTx,
    table: &str,
    id: &str,
    at: u64,
    value: u64,
    window: u64,
) -> anyhow::Result<()> {
    tx.put(table, &key::of(&[&id, &at]), &value.to_be_bytes())?;
    if let Some(gone) = at.checked_sub(window) {
        tx.delete(table, &key::of(&[&id, &gone]))?;
    }
    Ok(())
}

fn logged(tx: &dyn ReadTx, table: &str, id: &str, at: u64) -> anyhow::Result<Option<u64>> {
    tx.get(table, &key::of(&[&id, &at]))?
        .map(|v| key::u64_value(&v))
        .transpose()
}

/// What the host above holds of a member.
#[derive(Debug, Default)]
pub struct Upstream {
    /// `None`: the host does not know the member (it registered after the
    /// backup was taken) and it registers again.
    pub registration: Option<api::Registered>,
    /// The payments the ledger does not hold, newest first: (number, amount).
    pub lost_payments: Vec<(u64, u64)>,
    /// Whether the ledger holds the payment that is pending, if one is.
    pub pending_paid: Option<bool>,
    /// The first message of the member's channel still in the outbox, not
    /// sent yet (see [`outbox::unsent`]).
    pub unsent_from: Option<u64>,
}

/// What catching up changed, for the log and `/status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CaughtUp {
    pub members: u64,
    /// Messages sent again.
    pub resent: u64,
    /// Payment requests read that the host no longer sent, and what they asked.
    pub requests_void: u64,
    pub requested_void: u64,
    /// Payments the host's ledger lost, and their amount: owed again.
    pub payments_lost: u64,
    pub paid_lost: u64,
    /// What the host lost that was no longer kept here (older than the
    /// resend window): messages that cannot be sent again and requests or
    /// payments that cannot be undone. Not zero means a backup older than
    /// the window was restored.
    pub not_kept: u64,
}

impl CaughtUp {
    pub fn add(&mut self, other: CaughtUp) {
        self.members += other.members;
        self.resent += other.resent;
        self.requests_void += other.requests_void;
        self.requested_void += other.requested_void;
        self.payments_lost += other.payments_lost;
        self.paid_lost += other.paid_lost;
        self.not_kept += other.not_kept;
    }
}

/// Asks the host above what it holds of `m`, and for a consumer (`ledger`)
/// which of its last payments the ledger holds. `api` and `agent` must
/// already name the host's new timeline.
pub fn ask(
    api: &Client,
    agent: &ureq::Agent,
    tx: &dyn ReadTx,
    m: &MemberState,
    ledger: bool,
) -> anyhow::Result<Upstream> {
    let Some(credential) = &m.credential else {
        return Ok(Upstream::default());
    };
    let answer = api.with_token(credential).registration(&m.id)?;
    let registration = match answer.status {
        200 => Some(
            answer
                .json::<api::Registered>()
                .with_context(|| format!("{}'s registration at {}", m.id, api.base()))?,
        ),
        // The credential matches nothing there: the registration is lost.
        401 | 404 => None,
        status => anyhow::bail!(
            "{}'s registration at {}: {status} {}",
            m.id,
            api.base(),
            answer.body
        ),
    };
    let mut up = Upstream {
        registration,
        ..Upstream::default()
    };
    if !ledger {
        return Ok(up);
    }
    let remote = powerplug_ledger::RemoteLedger::with_agent(agent.clone(), api.base(), credential);
    let known = up.registration.is_some();
    let held =
        |key: &str| -> anyhow::Result<bool> { Ok(known && remote.paid_under(key)?.is_some()) };
    // Payments are made one after another, so what the ledger lost is the
    // newest ones: walk back until one it holds.
    let made = m.payments - u64::from(m.pending.is_some());
    for number in (1..=made).rev() {
        let Some(amount) = logged(tx, PAYMENTS, &m.id, number)? else {
            break;
        };
        if held(&payment_key(&m.id, number))? {
            break;
        }
        up.lost_payments.push((number, amount));
    }
    if let Some(p) = &m.pending {
        up.pending_paid = Some(held(&p.key)?);
    }
    Ok(up)
}

impl MemberState {
    /// Brings the member to what the host above holds (see the module), in
    /// the caller's transaction.
    pub fn catch_up(
        &mut self,
        tx: &dyn WriteTx,
        key: &SigningKey,
        up: &Upstream,
        window: u64,
    ) -> anyhow::Result<CaughtUp> {
        let mut done = CaughtUp {
            members: 1,
            ..CaughtUp::default()
        };
        if self.credential.is_none() {
            return Ok(done);
        }
        let (read_index, return_next) = match &up.registration {
            Some(r) => (r.read_index, r.return_next.unwrap_or(0)),
            None => {
                // Registers again in this round, before the outbox drains;
                // its hello goes with the registration.
                self.credential = None;
                self.index = None;
                (1, 0)
            }
        };

        // What the host lost of the channel goes again.
        let author = key.verifying_key().to_bytes();
        let next = self.channel.next_index;
        if read_index < next {
            // Kept after it was sent, or not sent yet: from `first` on.
            let unsent = up.unsent_from.unwrap_or(next);
            let first =
                outbox::resend_from(tx, &author, read_index)?.map_or(unsent, |f| f.min(unsent));
            done.resent = unsent.saturating_sub(first);
            done.not_kept += first.saturating_sub(read_index);
        }

        // Requests of the lost history are void.
        let mut void = 0;
        if return_next < self.return_read {
            let end = key::of(&[&self.id, &self.return_read]);
            let start = key::of(&[&self.id, &return_next]);
            let read = tx.range(REQUESTS, &start, Some(&end), Order::Ascending, usize::MAX)?;
            for (k, owed) in &read {
                void += key::u64_value(owed)?;
                tx.delete(REQUESTS, k)?;
            }
            let n = read.len() as u64;
            done.requests_void = n;
            done.requested_void = void;
            done.not_kept += (self.return_read - return_next).saturating_sub(n);
            self.requests = self.requests.saturating_sub(n);
            self.requested = self.requested.saturating_sub(void);
            self.return_read = return_next;
            // Where to pay came with a request that may be void: its
            // receive address may be unknown to the restored ledger. The
            // next request says again.
            self.pay_to = None;
        }

        // Payments the ledger lost are owed again; their numbers are used
        // again (the ledger has no transfer under those keys).
        let mut owed_again = 0;
        for &(number, amount) in &up.lost_payments {
            tx.delete(PAYMENTS, &key::of(&[&self.id, &number]))?;
            owed_again += amount;
        }
        done.payments_lost = up.lost_payments.len() as u64;
        done.paid_lost = owed_again;
        self.paid = self.paid.saturating_sub(owed_again);
        self.payments = self.payments.saturating_sub(done.payments_lost);
        if let Some(p) = self.pending.take() {
            if up.pending_paid == Some(true) {
                self.paid += p.amount;
                log_payment(tx, &self.id, self.payments, p.amount, window)?;
            } else {
                owed_again += p.amount;
                self.payments = self.payments.saturating_sub(1);
            }
        }
        let outstanding = self.outstanding + owed_again;
        if outstanding < void {
            // Paid in this history for a request of the lost one: cannot
            // happen while requests name their timeline; shown if it does.
            tracing::error!(entity = %self.id, outstanding, void, "paid more than the restored host asks");
        }
        self.outstanding = outstanding.saturating_sub(void);
        Ok(done)
    }
}
