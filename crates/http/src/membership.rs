//! A producer's membership at its grid, for its operator: the original's
//! `/initialise`, `/closedown` and `/reset`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;

use crate::{ApiResult, Authorized, DEPLOY, blocking};
use powerplug_roles::role::member::MemberState;
use powerplug_roles::role::producer::Producer;

#[derive(utoipa::OpenApi)]
#[openapi(paths(initialise, closedown, reset))]
pub struct Api;

pub fn routes() -> Router<Arc<Producer>> {
    Router::new()
        .route("/initialise", post(initialise))
        .route("/closedown", post(closedown))
        .route("/reset", post(reset))
}

async fn membership(
    producer: Arc<Producer>,
    change: fn(&Producer) -> anyhow::Result<MemberState>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let m = change(&producer)?;
        Ok(Json(serde_json::json!({
            "id": m.id,
            "registered": m.credential.is_some(),
            "closed": m.closed,
            "index": m.index,
        })))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/initialise",
    tag = "membership",
    description = "Registers with the grid (again). Operator scope: `deploy`.",
    responses(
        (status = 200, description = "The membership", body = serde_json::Value),
        (status = "4XX", description = "Refused", body = crate::openapi::ErrorBody),
    ),
    security(("operator" = []), ("session" = []))
)]
async fn initialise(
    State(p): State<Arc<Producer>>,
    _: Authorized<DEPLOY>,
) -> ApiResult<Json<serde_json::Value>> {
    membership(p, Producer::initialise).await
}

#[utoipa::path(
    post,
    path = "/closedown",
    tag = "membership",
    description = "Says goodbye to the grid: it reads nothing more of this producer. Operator scope: `deploy`.",
    responses(
        (status = 200, description = "The membership", body = serde_json::Value),
        (status = "4XX", description = "Refused", body = crate::openapi::ErrorBody),
    ),
    security(("operator" = []), ("session" = []))
)]
async fn closedown(
    State(p): State<Arc<Producer>>,
    _: Authorized<DEPLOY>,
) -> ApiResult<Json<serde_json::Value>> {
    membership(p, Producer::closedown).await
}

#[utoipa::path(
    post,
    path = "/reset",
    tag = "membership",
    description = "Forgets the membership to register anew (the grid keeps the id's index and balance). Operator scope: `deploy`.",
    responses(
        (status = 200, description = "The membership", body = serde_json::Value),
        (status = "4XX", description = "Refused", body = crate::openapi::ErrorBody),
    ),
    security(("operator" = []), ("session" = []))
)]
async fn reset(
    State(p): State<Arc<Producer>>,
    _: Authorized<DEPLOY>,
) -> ApiResult<Json<serde_json::Value>> {
    membership(p, Producer::reset).await
}
