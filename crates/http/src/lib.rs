//! The roles' HTTP APIs (axum). Handlers parse and authenticate, then hand the
//! work to the role on a blocking thread (redb and the channel layer are
//! synchronous). Every error is JSON naming the field it is about:
//! `{"error": "...", "field": "..."}`; a refused request changes nothing.
//! Before any handler, [`serve`] applies the `[http]` limits and the
//! Host/Origin checks; an operator route authenticates with [`Authorized`]
//! from headers alone, before its body is read; a JSON body is read only as
//! `application/json`.

mod admin;
mod console;
mod experiments;
mod hub;
mod membership;
pub mod openapi;
pub mod run;
mod server;
mod strategies;
mod wallet;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;

use powerplug_roles::role::grid::Grid;
use powerplug_roles::role::meters::Meters;
use powerplug_roles::role::producer::Producer;

pub use hub::HasHub;
pub use server::serve;

use powerplug_roles::role::config::{Denied, Scope};

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
        // A page of another site can make a browser send a `text/plain` body
        // without asking first, never an `application/json` one.
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type",
                "the body must be JSON, sent as `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
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

/// A raw body (a component upload) whose errors are JSON like every other.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(body_error)
    }
}

/// Why a body could not be read: too large (413), too slow (408).
pub fn body_error(r: axum::extract::rejection::BytesRejection) -> ApiError {
    let text = r.body_text();
    let slow = std::iter::successors(std::error::Error::source(&r), |e| e.source())
        .any(|e| e.is::<server::BodyTimeout>())
        || text.contains("did not arrive within");
    let status = if slow {
        StatusCode::REQUEST_TIMEOUT
    } else {
        r.status()
    };
    ApiError::new(status, "body", text)
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
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Ok(Bearer(Some(token.trim().to_owned())));
        }
        // A browser's login prompt (the report page): any user name, the
        // token as password.
        if let Some(encoded) = value.strip_prefix("Basic ") {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            if let Some((_, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Ok(Bearer(Some(password.to_owned())));
            }
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "expected `Bearer <credential>`",
        ))
    }
}

/// An operator's token: the bearer token, or the console session's.
pub struct OperatorToken(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for OperatorToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        Ok(OperatorToken(bearer.0.or_else(|| {
            parts
                .extensions
                .get::<Arc<console::session::Sessions>>()
                .and_then(|s| s.token(&parts.headers))
        })))
    }
}

/// The operator scopes, as the const parameter of [`Authorized`].
pub const MINT: u8 = 0;
pub const DEPLOY: u8 = 1;
pub const READ: u8 = 2;
pub const ADMIT: u8 = 3;
pub const BACKUP: u8 = 4;

fn scope(s: u8) -> Scope {
    match s {
        MINT => Scope::Mint,
        DEPLOY => Scope::Deploy,
        ADMIT => Scope::Admit,
        BACKUP => Scope::Backup,
        _ => Scope::Read,
    }
}

/// Why an operator token is refused, as an answer.
pub(crate) fn denied(why: Denied) -> ApiError {
    match why {
        Denied::NoOperator => ApiError::new(
            StatusCode::FORBIDDEN,
            "authorization",
            "this host has no operator token configured",
        ),
        Denied::Unknown => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "the operator token is missing or wrong",
        ),
        Denied::OutOfScope(scope) => ApiError::new(
            StatusCode::FORBIDDEN,
            "authorization",
            format!("this operator token may not {scope}"),
        ),
    }
}

/// An operator token with scope `S` ([`MINT`], [`DEPLOY`], [`READ`], [`ADMIT`],
/// [`BACKUP`]). As an extractor it reads only headers, and axum runs it before
/// the body is read: an upload without it is refused before a byte of its
/// body is taken.
pub struct Authorized<const S: u8>;

impl<R: HasHub, const S: u8> FromRequestParts<Arc<R>> for Authorized<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, role: &Arc<R>) -> Result<Self, Response> {
        let token = OperatorToken::from_request_parts(parts, role)
            .await
            .map_err(IntoResponse::into_response)?;
        match role.hub().operators.check(token.0.as_deref(), scope(S)) {
            Ok(()) => Ok(Authorized),
            Err(why) => {
                let unknown = why == Denied::Unknown;
                let mut response = denied(why).into_response();
                // Lets a browser ask for the token when it opens a page (the
                // report page); never for a script's call (the console), which
                // would get the browser's login prompt instead of the answer.
                let page = parts
                    .headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"));
                if unknown && S == READ && page {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        axum::http::HeaderValue::from_static(
                            "Basic realm=\"powerplug operator\", charset=\"UTF-8\"",
                        ),
                    );
                }
                Err(response)
            }
        }
    }
}

/// Runs synchronous work (redb, channels) off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    // The work holds the role; the request's lease tells a stopping role
    // when it is done, even if the client went away first.
    let lease = crate::run::current_lease();
    tokio::task::spawn_blocking(move || {
        let answer = work();
        drop(lease);
        answer
    })
    .await
    .map_err(ApiError::internal)?
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
    let requests = Arc::new(hub::Requests::default());
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            requests.clone(),
            hub::count,
        ))
        .layer(axum::Extension(requests))
        .layer(axum::Extension(Arc::new(
            console::session::Sessions::default(),
        )))
        .with_state(state)
}

/// A role whose `GET /status` has a part anyone may read cheaply and a full
/// form for a read token (it scans every registration and balance).
pub trait Status: HasHub {
    fn public_status(&self) -> anyhow::Result<serde_json::Value>;
}

impl Status for Grid {
    fn public_status(&self) -> anyhow::Result<serde_json::Value> {
        powerplug_roles::role::status::grid_public(self)
    }
}

impl Status for Producer {
    fn public_status(&self) -> anyhow::Result<serde_json::Value> {
        powerplug_roles::role::status::producer_public(self)
    }
}

/// `GET /status`: the cheap part for anyone, everything for a read token.
#[utoipa::path(
    get,
    path = "/status",
    tag = "monitoring",
    description = "What anyone may read (a fixed number of reads); with an operator token of scope `read`, everything (each a scan).",
    responses(
        (status = 200, description = "The status", body = serde_json::Value),
        (status = "4XX", description = "A token that is not this host's", body = openapi::ErrorBody),
    ),
    security((), ("operator" = []), ("session" = []))
)]
async fn status<R: Status>(
    axum::extract::State(role): axum::extract::State<Arc<R>>,
    token: OperatorToken,
) -> ApiResult<axum::Json<serde_json::Value>> {
    if token.0.is_some() {
        role.hub()
            .operators
            .check(token.0.as_deref(), Scope::Read)
            .map_err(denied)?;
        return hub::status::<R>(axum::extract::State(role)).await;
    }
    blocking(move || Ok(axum::Json(role.public_status()?))).await
}

/// `/status` in the API description.
fn status_api() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(status))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

pub fn grid_router(grid: Arc<Grid>) -> Router {
    finish(
        hub::routes::<Grid>()
            .merge(wallet::routes())
            .merge(
                strategies::routes::<Grid>()
                    .merge(experiments::routes())
                    .layer(axum::middleware::from_fn_with_state(
                        grid.clone(),
                        hub::leader_only::<Grid>,
                    )),
            )
            .merge(admin::routes::<Grid>())
            .merge(console::routes::<Grid>())
            .merge(console::grid_routes::<Grid>())
            .merge(openapi::routes::<Grid>())
            .route("/status", get(status::<Grid>))
            .layer(axum::middleware::from_fn_with_state(
                grid.clone(),
                hub::fence::<Grid>,
            )),
        grid,
    )
}

pub fn producer_router(producer: Arc<Producer>) -> Router {
    finish(
        hub::routes::<Producer>()
            .merge(
                strategies::routes::<Producer>()
                    .merge(membership::routes())
                    .layer(axum::middleware::from_fn_with_state(
                        producer.clone(),
                        hub::leader_only::<Producer>,
                    )),
            )
            .merge(admin::routes::<Producer>())
            .merge(console::routes::<Producer>())
            .merge(openapi::routes::<Producer>())
            .route("/status", get(status::<Producer>))
            .layer(axum::middleware::from_fn_with_state(
                producer.clone(),
                hub::fence::<Producer>,
            )),
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
                // Devices over MQTT: connected, messages, resets, gaps, refusals.
                "feed": meters.feed(),
                // Per meter only for small hosts: a balance is a ledger call each.
                "each": meters.each(100)?,
                "scheduler": meters.scheduler.status(),
                // What the last catching up with a restored host above changed.
                "caught_up": meters.caught_up(),
            })))
        })
        .await
    }
    finish(Router::new().route("/status", get(status)), meters)
}

#[cfg(test)]
mod tests {
    use super::parse_json;

    /// Found by fuzzing (`json_bodies`): without correctly rounded parsing, a
    /// long number read, written and read again came back one step off, so
    /// a `/storage` document changed on its way through the host.
    #[test]
    fn numbers_read_back_as_they_were_written() {
        let body = b"999999999999998999999999999999999999999999999999999999.9999999";
        let first: serde_json::Value = parse_json(body).unwrap();
        let written = serde_json::to_vec(&first).unwrap();
        let again: serde_json::Value = parse_json(&written).unwrap();
        assert_eq!(first, again);
    }
}
