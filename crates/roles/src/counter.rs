//! The counters a host keeps, one name each: written in a tick's or a
//! round's transaction, shown under `totals` in `/status`, read back by the
//! demo's checks.

use std::collections::BTreeMap;

use powerplug_storage::{Store, WriteTx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Ticks that decided and were carried out.
    Ticks,
    /// Ticks whose strategy failed or whose decision was refused.
    TicksFailed,
    /// Failed ticks of a failing streak whose input was not logged again.
    TicksFailedUnlogged,
    /// Readings a meter host published.
    Readings,
    /// Registrations taken.
    Registrations,
    /// Inbox: records taken, records seen before, commands refused as
    /// implausible, messages that were not ours to read.
    RecordsReceived,
    RecordsDuplicate,
    CommandsRejected,
    MessagesDropped,
    /// Outbox items refused for good by their destination.
    OutboxRefused,
    /// Grid: Wh used and produced, Wh billed, payment requests sent and what
    /// they asked, requests with no channel to go to, income, payouts.
    UsageWh,
    OutputWh,
    BilledWh,
    PaymentRequests,
    Requested,
    RequestsUndeliverable,
    Income,
    PaidOut,
    /// Producer: Wh its sources reported, Wh and price it reported to the
    /// grid, outputs sent, payouts received.
    SourceWh,
    ReportedWh,
    Asked,
    Commands,
    Received,
    /// Producer: source Wh its strategy dropped as too late to report (the
    /// sum of the strategy's `late-wh` metric, where it reports one).
    LateWh,
}

impl Counter {
    /// The counter's name in the store and in `/status`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ticks => "ticks",
            Self::TicksFailed => "ticks-failed",
            Self::TicksFailedUnlogged => "ticks-failed-unlogged",
            Self::Readings => "readings",
            Self::Registrations => "registrations",
            Self::RecordsReceived => "records-received",
            Self::RecordsDuplicate => "records-duplicate",
            Self::CommandsRejected => "commands-rejected",
            Self::MessagesDropped => "messages-dropped",
            Self::OutboxRefused => "outbox_refused",
            Self::UsageWh => "usage-wh",
            Self::OutputWh => "output-wh",
            Self::BilledWh => "billed-wh",
            Self::PaymentRequests => "payment-requests",
            Self::Requested => "requested",
            Self::RequestsUndeliverable => "requests-undeliverable",
            Self::Income => "income",
            Self::PaidOut => "paid-out",
            Self::SourceWh => "source-wh",
            Self::ReportedWh => "reported-wh",
            Self::Asked => "asked",
            Self::Commands => "commands",
            Self::Received => "received",
            Self::LateWh => "late-wh",
        }
    }

    /// Adds `by` inside `tx`.
    pub fn add(self, tx: &dyn WriteTx, by: u64) -> anyhow::Result<()> {
        powerplug_storage::count(tx, self.name(), by)
    }

    /// The count now (0 if never counted).
    pub fn read(self, db: &dyn Store) -> anyhow::Result<u64> {
        powerplug_storage::counter(db, self.name())
    }
}

/// Every counter of a host, by name.
pub fn all(db: &dyn Store) -> anyhow::Result<BTreeMap<String, u64>> {
    powerplug_storage::counters(db)
}
