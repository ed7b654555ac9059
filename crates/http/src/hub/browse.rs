//! What an operator browses (the console, or curl with a read token): the
//! last ticks with their duration, fuel and outcome, and the registrations
//! a page at a time, found by kind and id prefix, with their books.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;

use super::HasHub;
use crate::{ApiError, ApiResult, Authorized, Params, READ, blocking};
use powerplug_domain::EntityKind;
use powerplug_roles::experiment::billing;
use powerplug_roles::registry;

#[derive(utoipa::OpenApi)]
#[openapi(paths(recent, list))]
pub struct Api;

pub fn routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new()
        .route("/ticks/recent", get(recent::<R>))
        .route("/registrations", get(list::<R>))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Recent {
    #[param(minimum = 1, maximum = 2880)]
    limit: Option<usize>,
    /// Ticks before this tick number (the next page).
    before: Option<u64>,
}

/// `GET /ticks/recent`: the newest ticks this host ran since it started.
#[utoipa::path(
    get,
    path = "/ticks/recent",
    tag = "monitoring",
    description = "The last ticks this host ran since it started, newest first. Operator scope: `read`.",
    params(Recent),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn recent<R: HasHub>(
    State(role): State<Arc<R>>,
    _: Authorized<READ>,
    Params(query): Params<Recent>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=powerplug_roles::telemetry::RECENT_TICKS).contains(&limit) {
        return Err(ApiError::unprocessable(
            "limit",
            format!("1 to {}", powerplug_roles::telemetry::RECENT_TICKS),
        ));
    }
    let ticks = role.hub().telemetry.recent(limit, query.before);
    Ok(Json(serde_json::json!({ "ticks": ticks })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Listing {
    kind: Option<EntityKind>,
    /// Ids that start with this.
    #[serde(default)]
    #[param(max_length = 64)]
    q: String,
    /// The id after which the page starts.
    #[param(max_length = 64)]
    after: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Registrations read per request at most, whatever the filter finds.
const SCAN: usize = 10_000;

/// `GET /registrations`: a page of registrations with their books (a
/// consumer's billing, anyone's balance on this host's ledger).
#[utoipa::path(
    get,
    path = "/registrations",
    operation_id = "list_registrations",
    tag = "registrations",
    description = "Registrations by id, with their books, a page at a time. Operator scope: `read`.",
    params(Listing),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn list<R: HasHub>(
    State(role): State<Arc<R>>,
    _: Authorized<READ>,
    Params(query): Params<Listing>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::unprocessable("limit", "1 to 1,000"));
    }
    for (field, text) in [("q", Some(&query.q)), ("after", query.after.as_ref())] {
        if text.is_some_and(|t| t.len() > 64) {
            return Err(ApiError::unprocessable(field, "at most 64 bytes (an id)"));
        }
    }
    blocking(move || {
        let db = &*role.hub().db;
        let (page, next) = registry::page(
            db,
            query.kind,
            &query.q,
            query.after.as_deref(),
            limit,
            SCAN,
        )?;
        let tx = db.read()?;
        let paid_out_total = powerplug_roles::counter::Counter::PaidOut.read(db)?;
        let mut rows = Vec::with_capacity(page.len());
        for r in page {
            let mut row = serde_json::json!({
                "id": r.id,
                "index": r.index,
                "kind": r.kind,
                "closed": r.closed,
                "read": r.read_index,
                "dropped": r.dropped,
                "rejected": r.rejected,
                "balance": powerplug_ledger::balance(db, &r.id)?,
            });
            if r.kind == EntityKind::Producer {
                let s = billing::supplied(&*tx, r.index)?;
                row["output_wh"] = s.output_wh.into();
                row["paid_out"] = s.paid_out.into();
                // Its part of every payout the grid made, in hundredths of a percent.
                row["share_bp"] = (u128::from(s.paid_out) * 10_000)
                    .checked_div(u128::from(paid_out_total))
                    .unwrap_or(0)
                    .min(10_000)
                    .try_into()
                    .unwrap_or(10_000u64)
                    .into();
            }
            if r.kind == EntityKind::Consumer {
                let b = billing::get(&*tx, r.index)?;
                row["used_wh"] = b.used_wh.into();
                row["billed_wh"] = b.billed_wh.into();
                row["requested"] = b.requested.into();
                row["paid"] = b.paid.into();
                row["outstanding"] = b.outstanding().into();
            }
            rows.push(row);
        }
        Ok(Json(
            serde_json::json!({ "registrations": rows, "next": next }),
        ))
    })
    .await
}
