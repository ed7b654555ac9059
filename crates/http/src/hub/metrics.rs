//! `GET /metrics`: a grid's or producer's ticks, money, energy, channels,
//! HTTP requests, store and retention in Prometheus' text format. Names
//! follow Prometheus' conventions (`powerplug_` prefix, base units,
//! `_total` for counters); no per-entity or per-slot labels, nothing
//! secret, and nothing that scans: the store's figures are taken at most
//! every few seconds however often anyone asks
//! ([`powerplug_roles::retention::Keeper::figures`]), the rest are counters
//! kept as things happen. So it is open like the public `/status`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::HasHub;
use crate::{ApiResult, blocking};
use powerplug_roles::counter::Counter;
use powerplug_roles::telemetry::{Ended, Histogram};

#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub struct Api;

pub fn routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new().route("/metrics", get(metrics::<R>))
}

/// HTTP requests by route, method and status. Bounded: routes are the
/// router's patterns (or `unmatched`), methods the standard ones (or
/// `other`), statuses what handlers answer.
#[derive(Default)]
pub struct Requests(Mutex<BTreeMap<(String, &'static str, u16), u64>>);

impl Requests {
    fn add(&self, route: String, method: &'static str, status: u16) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((route, method, status)).or_default() += 1;
    }

    fn read(&self) -> Vec<((String, &'static str, u16), u64)> {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

static STANDARD: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];

/// The layer that counts every request into [`Requests`].
pub async fn count(
    State(requests): State<Arc<Requests>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = STANDARD
        .iter()
        .find(|m| *m == request.method())
        .map_or("other", Method::as_str);
    let response = next.run(request).await;
    requests.add(route, method, response.status().as_u16());
    response
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "monitoring",
    description = "Counters, gauges and histograms in Prometheus' text format (docs/console.md lists them). Open: counts only.",
    responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain"), crate::openapi::Refused),
)]
async fn metrics<R: HasHub>(
    State(role): State<Arc<R>>,
    axum::Extension(requests): axum::Extension<Arc<Requests>>,
) -> ApiResult<impl IntoResponse> {
    let text = blocking(move || {
        let mut out = render(role.hub())?;
        roles(&mut out, &*role, &requests)?;
        Ok(out)
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    head(out, name, "histogram", help);
    let (buckets, count, sum) = h.read();
    for (bound, below) in buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {below}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
    );
}

/// The stored counters as Prometheus counters: name, help.
const COUNTERS: &[(Counter, &str, &str)] = &[
    (
        Counter::RecordsReceived,
        "powerplug_records_received_total",
        "Records taken from channels.",
    ),
    (
        Counter::RecordsDuplicate,
        "powerplug_records_duplicate_total",
        "Records seen before, not taken again.",
    ),
    (
        Counter::MessagesDropped,
        "powerplug_messages_dropped_total",
        "Channel messages dropped: not ours to read, or unreadable.",
    ),
    (
        Counter::CommandsRejected,
        "powerplug_commands_rejected_total",
        "Records refused as implausible.",
    ),
    (
        Counter::OutboxRefused,
        "powerplug_outbox_refused_total",
        "Outbox items refused for good by their destination.",
    ),
    (
        Counter::UsageWh,
        "powerplug_usage_wh_total",
        "Energy consumers reported, Wh.",
    ),
    (
        Counter::OutputWh,
        "powerplug_output_wh_total",
        "Energy producers reported, Wh.",
    ),
    (
        Counter::BilledWh,
        "powerplug_billed_wh_total",
        "Energy billed, Wh.",
    ),
    (
        Counter::PaymentRequests,
        "powerplug_payment_requests_total",
        "Payment requests sent to consumers.",
    ),
    (
        Counter::Requested,
        "powerplug_requested_tokens_total",
        "Tokens payment requests asked for.",
    ),
    (
        Counter::RequestsUndeliverable,
        "powerplug_requests_undeliverable_total",
        "Payment requests with no channel to go to.",
    ),
    (
        Counter::Income,
        "powerplug_payments_tokens_total",
        "Tokens consumers paid the grid.",
    ),
    (
        Counter::PaidOut,
        "powerplug_payouts_tokens_total",
        "Tokens paid out to producers.",
    ),
    (
        Counter::SourceWh,
        "powerplug_source_wh_total",
        "Energy sources reported to this producer, Wh.",
    ),
    (
        Counter::ReportedWh,
        "powerplug_reported_wh_total",
        "Energy this producer reported to its grid, Wh.",
    ),
    (
        Counter::Received,
        "powerplug_received_tokens_total",
        "Tokens this producer was paid.",
    ),
];

/// What the role did: ticks, polls, the stored counters, the outbox, the
/// active strategy, HTTP requests.
fn roles<R: HasHub>(out: &mut String, role: &R, requests: &Requests) -> anyhow::Result<()> {
    let hub = role.hub();
    let t = &hub.telemetry;
    head(
        out,
        "powerplug_ticks_total",
        "counter",
        "Ticks since the start, by outcome: decided, failed (nothing applied), error (the host could not run it).",
    );
    for ended in Ended::ALL {
        let _ = writeln!(
            out,
            "powerplug_ticks_total{{outcome=\"{}\"}} {}",
            ended.as_str(),
            t.ticks(ended)
        );
    }
    histogram(
        out,
        "powerplug_tick_duration_seconds",
        "How long ticks took, from turn to commit.",
        &t.tick_seconds,
    );
    histogram(
        out,
        "powerplug_tick_fuel",
        "Fuel the active strategy used per decided tick (0 when metering by epoch only).",
        &t.fuel,
    );
    histogram(
        out,
        "powerplug_channel_poll_duration_seconds",
        "How long reading the registered channels took.",
        &t.poll_seconds,
    );
    let counters = powerplug_roles::counter::all(&*hub.db)?;
    for (counter, name, help) in COUNTERS {
        head(out, name, "counter", help);
        let value = counters.get(counter.name()).copied().unwrap_or(0);
        let _ = writeln!(out, "{name} {value}");
    }
    head(
        out,
        "powerplug_outbox_depth",
        "gauge",
        "Messages waiting in the outbox (at most; items set aside leave gaps).",
    );
    let _ = writeln!(
        out,
        "powerplug_outbox_depth {}",
        powerplug_roles::outbox::backlog(&*hub.db)?
    );
    if let Some(sha256) = role.active_strategy() {
        head(
            out,
            "powerplug_strategy_info",
            "gauge",
            "The active strategy version, by SHA-256.",
        );
        let _ = writeln!(out, "powerplug_strategy_info{{sha256=\"{sha256}\"}} 1");
    }
    head(
        out,
        "powerplug_leading",
        "gauge",
        "1 if this host ticks, 0 for a standby.",
    );
    let _ = writeln!(out, "powerplug_leading {}", u8::from(role.leading()));
    head(
        out,
        "powerplug_http_requests_total",
        "counter",
        "HTTP requests answered, by route pattern, method and status.",
    );
    for ((route, method, status), n) in requests.read() {
        let route = route.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "powerplug_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
        );
    }
    Ok(())
}

fn render(hub: &powerplug_roles::role::Hub) -> anyhow::Result<String> {
    let figures = hub.figures.get(&hub.db)?;
    let size = figures.size;
    let ticks = figures.tick_log.values().map(|h| h.ticks).sum();
    let tick_bytes = figures.tick_log.values().map(|h| h.bytes).sum();
    let done = hub.retention.report();
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, value: u64| {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    put(
        "powerplug_store_file_bytes",
        "gauge",
        "Size of the store's file.",
        size.file_bytes,
    );
    put(
        "powerplug_store_stored_bytes",
        "gauge",
        "Keys and values stored.",
        size.stored_bytes,
    );
    put(
        "powerplug_store_free_bytes",
        "gauge",
        "Free pages in the store's file: what compaction gives back.",
        size.free_bytes,
    );
    put(
        "powerplug_tick_log_ticks",
        "gauge",
        "Ticks the tick log holds, every slot.",
        ticks,
    );
    put(
        "powerplug_tick_log_bytes",
        "gauge",
        "Bytes of the ticks the tick log holds, every slot.",
        tick_bytes,
    );
    put(
        "powerplug_ledger_transfers_held",
        "gauge",
        "Transfers the ledger holds in detail, at most (besides each payer's latest).",
        figures.ledger.transfers(),
    );
    put(
        "powerplug_ledger_addresses_held",
        "gauge",
        "Receive addresses that still resolve.",
        figures.ledger.addresses(),
    );
    put(
        "powerplug_ledger_conserved",
        "gauge",
        "1 if every balance sums to what was issued (as last taken with the store's figures): alert on 0.",
        u64::from(figures.money.holds()),
    );
    put(
        "powerplug_retention_passes_total",
        "counter",
        "Retention passes run.",
        done.passes,
    );
    put(
        "powerplug_retention_failing",
        "gauge",
        "1 if the last retention pass (or its compaction) failed.",
        u64::from(done.last_error.is_some()),
    );
    put(
        "powerplug_retention_messages_deleted_total",
        "counter",
        "Channel messages retention deleted.",
        done.messages_deleted,
    );
    put(
        "powerplug_retention_message_bytes_total",
        "counter",
        "Bytes of the channel messages retention deleted.",
        done.message_bytes_freed,
    );
    put(
        "powerplug_retention_objects_deleted_total",
        "counter",
        "Replaced or deleted document bodies deleted from object storage.",
        done.objects_deleted,
    );
    put(
        "powerplug_retention_records_deleted_total",
        "counter",
        "Received records retention deleted.",
        done.records_deleted,
    );
    put(
        "powerplug_retention_ticks_deleted_total",
        "counter",
        "Tick log ticks retention deleted.",
        done.ticks_deleted,
    );
    put(
        "powerplug_retention_tick_bytes_total",
        "counter",
        "Bytes of the tick log ticks retention deleted.",
        done.tick_bytes_freed,
    );
    put(
        "powerplug_retention_transfers_deleted_total",
        "counter",
        "Ledger transfers (with their keys) retention deleted.",
        done.transfers_deleted,
    );
    put(
        "powerplug_retention_addresses_deleted_total",
        "counter",
        "Receive addresses retention deleted.",
        done.addresses_deleted,
    );
    put(
        "powerplug_retention_ledger_bytes_total",
        "counter",
        "Bytes of the ledger history retention deleted.",
        done.ledger_bytes_freed,
    );
    put(
        "powerplug_store_compactions_total",
        "counter",
        "Compactions the host ran.",
        done.compactions,
    );
    put(
        "powerplug_scheduler_rounds_failed_total",
        "counter",
        "Scheduler rounds that failed (a full disk, say): alert on its rate.",
        hub.scheduler.rounds_failed(),
    );
    Ok(out)
}
