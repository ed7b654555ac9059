//! The roles' HTTP APIs (axum). Handlers parse and authenticate, then hand the
//! work to the role on a blocking thread (redb and the channel layer are
//! synchronous). Every error is JSON naming the field it is about:
//! `{"error": "...", "field": "..."}`; a refused request changes nothing.

mod experiments;
mod hub;
mod strategies;
mod wallet;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::role::grid::Grid;
use crate::role::meters::Meters;
use crate::role::producer::Producer;

pub use hub::HasHub;

/// Largest request body any route takes (a batch of channel messages).
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, field: &str, message: impl ToString) -> Self {
        Self {
            status,
            field: (!field.is_empty()).then(|| field.to_owned()),
            message: message.to_string(),
        }
    }

    pub fn bad(field: &str, message: impl ToString) -> Self {
        Self::new(StatusCode::BAD_REQUEST, field, message)
    }

    pub fn unprocessable(field: &str, message: impl ToString) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, field, message)
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "", format!("{e:#}"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(format!("{e:#}"))
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            field: self.field.as_deref(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose errors name the field (`channel.root`, `amount`).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), "body", r.body_text()))?;
        parse_json(&bytes).map(Body)
    }
}

/// A JSON body as [`Body`] reads it (public for the fuzz targets).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        ApiError::unprocessable(&field_of(&path, &message, "body"), message)
    })?;
    // One JSON value and nothing after it (found by fuzzing: `{…} junk` was
    // taken as `{…}`).
    de.end()
        .map_err(|e| ApiError::unprocessable("body", e.to_string()))?;
    Ok(value)
}

/// The field a serde error is about: its path, or for a missing or unknown
/// field the name below the path; `whole` when the error is about everything.
fn field_of(path: &str, message: &str, whole: &str) -> String {
    let whole_value = path == "." || path == "?";
    let name = message.split('`').nth(1);
    match name {
        // The path already ends at an unknown field.
        Some(name) if message.starts_with("unknown field") && whole_value => name.to_owned(),
        Some(_) if message.starts_with("unknown field") => path.to_owned(),
        // A missing field is named below the path.
        Some(name) if message.starts_with("missing field") && whole_value => name.to_owned(),
        Some(name) if message.starts_with("missing field") => format!("{path}.{name}"),
        _ if whole_value => whole.to_owned(),
        _ => path.to_owned(),
    }
}

/// A query string whose errors name the parameter.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                ApiError::bad(&field_of(&path, &message, "query"), message)
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// The bearer token of a request, if any.
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Bearer(None));
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "authorization", "not text"))?;
        match value.strip_prefix("Bearer ") {
            Some(token) => Ok(Bearer(Some(token.trim().to_owned()))),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authorization",
                "expected `Bearer <credential>`",
            )),
        }
    }
}

/// Runs synchronous work (redb, channels) off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    // The work holds the role; the request's lease tells a stopping role
    // when it is done, even if the client went away first.
    let lease = crate::role::run::current_lease();
    tokio::task::spawn_blocking(move || {
        let answer = work();
        drop(lease);
        answer
    })
    .await
    .map_err(ApiError::internal)?
}

/// Checks the operator token in constant time.
pub fn operator(configured: Option<&str>, bearer: &Bearer) -> ApiResult<()> {
    let Some(configured) = configured else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "authorization",
            "this host has no operator token configured",
        ));
    };
    let presented = bearer.0.as_deref().unwrap_or("");
    let same = presented.len() == configured.len()
        && presented
            .bytes()
            .zip(configured.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "the operator token is missing or wrong",
        ))
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "path", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method",
        "this route does not take that method",
    )
}

fn finish<S: Clone + Send + Sync + 'static>(router: Router<S>, state: S) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

pub fn grid_router(grid: Arc<Grid>) -> Router {
    finish(
        hub::routes::<Grid>()
            .merge(wallet::routes())
            .merge(strategies::routes::<Grid>())
            .merge(experiments::routes())
            .route("/status", get(hub::status::<Grid>)),
        grid,
    )
}

pub fn producer_router(producer: Arc<Producer>) -> Router {
    use axum::extract::State;
    use axum::routing::post;

    /// The original's `/initialise`, `/closedown` and `/reset`, for the operator.
    async fn membership(
        producer: Arc<Producer>,
        bearer: Bearer,
        change: fn(&Producer) -> anyhow::Result<crate::role::member::MemberState>,
    ) -> ApiResult<axum::Json<serde_json::Value>> {
        operator(producer.hub.operator_token.as_deref(), &bearer)?;
        blocking(move || {
            let m = change(&producer)?;
            Ok(axum::Json(serde_json::json!({
                "id": m.id,
                "registered": m.credential.is_some(),
                "closed": m.closed,
                "index": m.index,
            })))
        })
        .await
    }
    async fn initialise(
        State(p): State<Arc<Producer>>,
        bearer: Bearer,
    ) -> ApiResult<axum::Json<serde_json::Value>> {
        membership(p, bearer, Producer::initialise).await
    }
    async fn closedown(
        State(p): State<Arc<Producer>>,
        bearer: Bearer,
    ) -> ApiResult<axum::Json<serde_json::Value>> {
        membership(p, bearer, Producer::closedown).await
    }
    async fn reset(
        State(p): State<Arc<Producer>>,
        bearer: Bearer,
    ) -> ApiResult<axum::Json<serde_json::Value>> {
        membership(p, bearer, Producer::reset).await
    }
    finish(
        hub::routes::<Producer>()
            .merge(strategies::routes::<Producer>())
            .route("/status", get(hub::status::<Producer>))
            .route("/initialise", post(initialise))
            .route("/closedown", post(closedown))
            .route("/reset", post(reset)),
        producer,
    )
}

pub fn meters_router(meters: Arc<Meters>) -> Router {
    async fn status(
        axum::extract::State(meters): axum::extract::State<Arc<Meters>>,
    ) -> ApiResult<axum::Json<serde_json::Value>> {
        blocking(move || {
            let s = meters.status()?;
            Ok(axum::Json(serde_json::json!({
                "role": meters.kind(),
                "id": meters.config.service.id,
                "upstream": meters.config.upstream_url,
                "meters": s,
                // Per meter only for small hosts: a balance is a ledger call each.
                "each": meters.each(100)?,
                "scheduler": meters.scheduler.status(),
            })))
        })
        .await
    }
    finish(Router::new().route("/status", get(status)), meters)
}

/// Serves `router` on `listener` until `stop` is set.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        })
        .await?;
    Ok(())
}
