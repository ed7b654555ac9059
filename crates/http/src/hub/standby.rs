//! A standby host (one that shares its store with the host that ticks, see
//! `powerplug_roles::role::leader`) serves reads and everything entities
//! send (registrations, channel writes, the wallet), but not what changes
//! the running strategy: an upload, an activation, an experiment, a
//! producer's membership. Those live in the leader's memory too, so they
//! are refused here with `503` and go to the leader (`/status` says which
//! host leads: `lease.leading`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::HasHub;
use crate::ApiError;

pub async fn leader_only<R: HasHub>(
    State(role): State<Arc<R>>,
    request: Request,
    next: Next,
) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if reads || role.leading() {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "host",
        "this host stands by for the one that ticks: send changes of strategies, experiments and membership to the host whose /status says lease.leading = true",
    )
    .into_response()
}
