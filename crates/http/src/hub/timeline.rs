//! The store's timeline over HTTP: `GET /timeline` says which history of its
//! store a host is in, and a request that names another one (header
//! `powerplug-timeline`) is refused before it changes anything. After a
//! restore from a backup, a meter or producer still acting on what it knew
//! of the history the host lost gets `409` until it has caught up (see
//! `MemberState::catch_up`).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::HasHub;
use crate::ApiError;
use powerplug_channel::TIMELINE_HEADER;

#[derive(utoipa::OpenApi)]
#[openapi(paths(timeline))]
pub struct Api;

pub fn routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new().route("/timeline", get(timeline::<R>))
}

#[utoipa::path(
    get,
    path = "/timeline",
    tag = "monitoring",
    description = "Which history of its store this host is in (a request naming another, in `powerplug-timeline`, is refused).",
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
)]
async fn timeline<R: HasHub>(State(role): State<Arc<R>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "timeline": role.hub().timeline }))
}

/// Refuses a request meant for another timeline of this host's store.
pub async fn fence<R: HasHub>(
    State(role): State<Arc<R>>,
    request: Request,
    next: Next,
) -> Response {
    let ours = &role.hub().timeline;
    match request.headers().get(TIMELINE_HEADER) {
        // Asking which timeline it is now is how a client catches up.
        _ if request.uri().path() == "/timeline" => next.run(request).await,
        Some(named) if named.as_bytes() != ours.as_bytes() => ApiError::new(
            StatusCode::CONFLICT,
            "timeline",
            format!(
                "this host was restored from a backup and is on timeline {ours} now: read GET /timeline and catch up first"
            ),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}
