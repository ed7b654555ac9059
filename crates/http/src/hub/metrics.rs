//! `GET /metrics`: a grid's or producer's store and retention in
//! Prometheus' text format, for whoever watches its disk. Names follow
//! Prometheus' conventions (`powerplug_` prefix, base units, `_total` for
//! counters); no per-entity or per-slot labels, nothing secret, and the
//! store's figures taken at most every few seconds however often anyone
//! asks ([`powerplug_roles::retention::Keeper::figures`]), so it is open
//! like the public `/status`.

use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::HasHub;
use crate::{ApiResult, blocking};

pub fn routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new().route("/metrics", get(metrics::<R>))
}

async fn metrics<R: HasHub>(State(role): State<Arc<R>>) -> ApiResult<impl IntoResponse> {
    let text = blocking(move || Ok(render(role.hub())?)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

fn render(hub: &powerplug_roles::role::Hub) -> anyhow::Result<String> {
    let figures = hub.retention.figures(&*hub.db)?;
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
