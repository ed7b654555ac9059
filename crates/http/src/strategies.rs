//! Strategy versions of a running grid or producer, for the operator: upload
//! (checked, dry-run, activated between ticks), list, activate (roll back or
//! forward), delete inactive versions.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde::Deserialize;

use super::hub::HasHub;
use super::{ApiError, ApiResult, Authorized, DEPLOY, Params, READ, RawBody, blocking};
use powerplug_roles::role::swap::{Offered, SwapError, SwapOptions, Swappable, Swapped};
use powerplug_roles::versions::{self as versions, Lookup, RemoveError, Version};
use powerplug_strategy::text::for_log;
use powerplug_strategy::{Sha256, StrategyKind};

#[derive(utoipa::OpenApi)]
#[openapi(paths(upload, list, activate, remove))]
pub struct Api;

/// The header of an upload's detached signature (hex), over its SHA-256.
pub const SIGNATURE: &str = "x-powerplug-signature";

/// Components can be large (an interpreter inside: tens of MB); only this
/// route takes that much, and only after the token is checked.
const MAX_COMPONENT_BYTES: usize = 64 << 20;

pub fn routes<R: HasHub + Swappable>() -> Router<Arc<R>> {
    Router::new()
        .route(
            "/strategies/{kind}",
            put(upload::<R>).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route("/strategies", get(list::<R>))
        .route("/strategies/{kind}/activate/{version}", post(activate::<R>))
        .route("/strategies/{kind}/{version}", delete(remove::<R>))
}

impl From<SwapError> for ApiError {
    fn from(e: SwapError) -> Self {
        let (status, field) = match &e {
            SwapError::Load(_) => (StatusCode::UNPROCESSABLE_ENTITY, "component"),
            SwapError::WrongKind { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "kind"),
            SwapError::DryRun { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "component"),
            SwapError::State(_) => (StatusCode::CONFLICT, "fresh"),
            SwapError::Unknown(_) => (StatusCode::NOT_FOUND, "version"),
            SwapError::Busy(_) => (StatusCode::CONFLICT, "version"),
            SwapError::Untrusted(_) => (StatusCode::FORBIDDEN, "version"),
            SwapError::Storage(_) => return ApiError::internal(e),
        };
        ApiError::new(status, field, e)
    }
}

/// The path's kind must be the one this host runs.
fn own_kind<R: Swappable>(role: &R, kind: &str) -> ApiResult<StrategyKind> {
    match kind.parse::<StrategyKind>() {
        Ok(k) if k == role.kind() => Ok(k),
        Ok(_) => Err(ApiError::unprocessable(
            "kind",
            format!("this host runs {} strategies", role.kind()),
        )),
        Err(_) => Err(ApiError::bad("kind", "`grid` or `producer`")),
    }
}

/// A version in a path: its SHA-256, or the name it was uploaded with.
fn find_version<R: Swappable>(role: &R, wanted: &str) -> ApiResult<Sha256> {
    let known = versions::list(role.store(), role.kind())?;
    match versions::lookup(&known, wanted) {
        Lookup::Found(sha) => Ok(sha),
        Lookup::Unknown => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "version",
            format!(
                "version: no such version `{}` (a SHA-256, or the name it was uploaded with)",
                for_log(wanted)
            ),
        )),
        Lookup::Ambiguous => Err(ApiError::unprocessable(
            "version",
            format!(
                "version: `{}` names more than one upload: use its SHA-256",
                for_log(wanted)
            ),
        )),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    name: Option<String>,
    notes: Option<String>,
    #[serde(default)]
    fresh: bool,
    /// False: check and keep it for an experiment or a shadow run.
    #[serde(default = "yes")]
    activate: bool,
    /// Activate even if the dry run over recent ticks is refused.
    #[serde(default)]
    force: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(
    put,
    path = "/strategies/{kind}",
    tag = "strategies",
    description = "Uploads a strategy component: checked, dry-run on recent ticks, stored and (unless `activate=false`) activated between two ticks. Operator scope: `deploy`.",
    params(("kind" = String, Path, description = "`grid` or `producer`: the kind this host runs"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The component (`.wasm`), any content type"),
    responses((status = 201, description = "The version, its dry run, whether it went live", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn upload<R: HasHub + Swappable>(
    State(role): State<Arc<R>>,
    Path(kind): Path<String>,
    _: Authorized<DEPLOY>,
    Params(query): Params<UploadQuery>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Swapped>)> {
    own_kind(&*role, &kind)?;
    let signature = headers
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| !role.trusted_keys().is_empty())
        .map(str::to_owned);
    if !role.trusted_keys().is_empty()
        && !versions::verify(
            role.trusted_keys(),
            &Sha256::of(&body),
            signature.as_deref().unwrap_or_default(),
        )
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            SIGNATURE,
            "this host takes only components signed by a trusted key: a missing or wrong signature",
        ));
    }
    for (field, text) in [("name", &query.name), ("notes", &query.notes)] {
        if text.as_ref().is_some_and(|t| t.len() > 1_000) {
            return Err(ApiError::unprocessable(field, "at most 1,000 bytes"));
        }
    }
    blocking(move || {
        let options = SwapOptions {
            fresh: query.fresh,
            activate: query.activate,
            force: query.force,
        };
        let offered = Offered {
            bytes: &body,
            name: query.name,
            notes: query.notes,
            signature,
        };
        let swapped = role.upload(offered, options)?;
        Ok((StatusCode::CREATED, Json(swapped)))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Fresh {
    #[serde(default)]
    fresh: bool,
    #[serde(default)]
    force: bool,
}

#[utoipa::path(
    post,
    path = "/strategies/{kind}/activate/{version}",
    tag = "strategies",
    description = "Activates a stored version (roll back or forward) between two ticks. Operator scope: `deploy`.",
    params(("kind" = String, Path, description = "`grid` or `producer`: the kind this host runs"), ("version" = String, Path, description = "A SHA-256, or the name it was uploaded with"), Fresh),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn activate<R: HasHub + Swappable>(
    State(role): State<Arc<R>>,
    Path((kind, version)): Path<(String, String)>,
    _: Authorized<DEPLOY>,
    Params(query): Params<Fresh>,
) -> ApiResult<Json<Swapped>> {
    own_kind(&*role, &kind)?;
    let options = SwapOptions {
        fresh: query.fresh,
        activate: true,
        force: query.force,
    };
    blocking(move || {
        let version = find_version(&*role, &version)?;
        Ok(Json(role.activate(&version, options)?))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/strategies",
    operation_id = "list_strategies",
    tag = "strategies",
    description = "The stored versions, the active one and the history of activations. Operator scope: `read`.",
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn list<R: HasHub + Swappable>(
    State(role): State<Arc<R>>,
    _: Authorized<READ>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let (db, kind) = (role.store(), role.kind());
        Ok(Json(serde_json::json!({
            "active": { kind.as_str(): versions::active(db, kind)? },
            "versions": versions::list(db, kind)?,
            "history": versions::history(db, kind)?,
        })))
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/strategies/{kind}/{version}",
    tag = "strategies",
    description = "Deletes a version that is not active. Operator scope: `deploy`.",
    params(("kind" = String, Path, description = "`grid` or `producer`: the kind this host runs"), ("version" = String, Path, description = "A SHA-256, or the name it was uploaded with")),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn remove<R: HasHub + Swappable>(
    State(role): State<Arc<R>>,
    Path((kind, version)): Path<(String, String)>,
    _: Authorized<DEPLOY>,
) -> ApiResult<Json<Version>> {
    let kind = own_kind(&*role, &kind)?;
    blocking(move || {
        let version = find_version(&*role, &version)?;
        match versions::remove(role.store(), kind, &version) {
            Ok(v) => Ok(Json(v)),
            Err(e @ RemoveError::Active(_)) => {
                Err(ApiError::new(StatusCode::CONFLICT, "version", e))
            }
            Err(e @ RemoveError::Unknown) => {
                Err(ApiError::new(StatusCode::NOT_FOUND, "version", e))
            }
            Err(RemoveError::Storage(e)) => Err(ApiError::internal(format!("{e:#}"))),
        }
    })
    .await
}
