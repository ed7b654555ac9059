//! Routes of a host that entities register with (grid, producer):
//! registrations, the channel store, `/storage` documents, `/status`,
//! `/metrics`.

pub(crate) mod browse;
pub(crate) mod metrics;
mod standby;
pub(crate) mod timeline;

pub(crate) use metrics::{Requests, count};
pub use standby::leader_only;
pub use timeline::fence;

use powerplug_domain::EntityKind;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Bearer, Body, Params, blocking};
use powerplug_channel::{
    Address, Batch, ManyMessages, Messages, READ_BATCH, READ_BYTES, ReadMany, RefusedMessage,
    Sealed, Stored, Transport,
};
use powerplug_roles::admission::{self as admission, AdmissionError};
use powerplug_roles::api;
use powerplug_roles::documents::{self as documents, DocumentError};
use powerplug_roles::registry::{Application, Registration, RegistryError};
use powerplug_roles::role::Hub;
use powerplug_roles::role::grid::Grid;
use powerplug_roles::role::producer::Producer;

/// These routes in the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register,
    registration,
    deregister,
    put_batch,
    read_batch,
    get_channel,
    put_channel,
    admit,
    admissions,
    pending,
    approve,
    refuse,
    list_documents,
    delete_context,
    get_document,
    put_document,
    delete_document
))]
pub struct Api;

/// A role that hosts registrations.
pub trait HasHub: Send + Sync + 'static {
    fn hub(&self) -> &Hub;
    /// What `GET /status` answers.
    fn status(&self) -> anyhow::Result<serde_json::Value>;
    /// Whether this host ticks (not a standby).
    fn leading(&self) -> bool {
        true
    }
    /// Whether this is a grid (the console's grid-only pages).
    fn is_grid(&self) -> bool {
        false
    }
    /// The active strategy version (`powerplug_strategy_info`).
    fn active_strategy(&self) -> Option<String> {
        None
    }
}

pub fn routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new()
        .route(
            "/registrations/{id}",
            put(register::<R>)
                .get(registration::<R>)
                .delete(deregister::<R>),
        )
        .route("/channels", post(put_batch::<R>))
        .route("/channels/read", post(read_batch::<R>))
        .route("/channels/{address}", get(get_channel::<R>))
        .route("/channels/{author}/{index}", put(put_channel::<R>))
        .route("/admissions", post(admit::<R>).get(admissions::<R>))
        .route("/admissions/pending", get(pending::<R>))
        .route("/admissions/pending/{id}/approve", post(approve::<R>))
        .route("/admissions/pending/{id}/refuse", post(refuse::<R>))
        .route(
            "/storage/{id}/{context}",
            get(list_documents::<R>).delete(delete_context::<R>),
        )
        .route(
            "/storage/{id}/{context}/{key}",
            get(get_document::<R>)
                .put(put_document::<R>)
                .delete(delete_document::<R>),
        )
        .merge(metrics::routes::<R>())
        .merge(browse::routes::<R>())
        .merge(timeline::routes::<R>())
}

pub async fn status<R: HasHub>(State(role): State<Arc<R>>) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || Ok(Json(role.status()?))).await
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = match &e {
            RegistryError::BadId => StatusCode::BAD_REQUEST,
            RegistryError::ReservedId(_)
            | RegistryError::KindChanged(..)
            | RegistryError::Tombstoned(_)
            | RegistryError::AuthorTaken(_)
            | RegistryError::RootTaken => StatusCode::CONFLICT,
            RegistryError::WrongKind(_) | RegistryError::Hello(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RegistryError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RegistryError::Admission(_) => StatusCode::FORBIDDEN,
            RegistryError::Unknown(_) => StatusCode::NOT_FOUND,
            RegistryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let field = match e.field() {
            // The credential comes in the `Authorization` header.
            "credential" => "authorization",
            field => field,
        };
        ApiError::new(status, field, e.to_string())
    }
}

impl From<DocumentError> for ApiError {
    fn from(e: DocumentError) -> Self {
        match &e {
            DocumentError::BadName(field) => ApiError::bad(field, e.to_string()),
            DocumentError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body", e.to_string())
            }
            DocumentError::Full => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "key", e.to_string())
            }
            DocumentError::Waiting => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "body", e.to_string())
            }
            DocumentError::Storage(_) => ApiError::internal(e),
        }
    }
}

/// The registration behind the request's credential, which must be `id`'s.
pub fn authenticate(hub: &Hub, bearer: &Bearer, id: &str) -> ApiResult<Registration> {
    let Some(credential) = bearer.0.as_deref() else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "a credential is needed: `Authorization: Bearer <credential>`",
        ));
    };
    let registration = hub.registry.authenticate(&hub.db, credential)?;
    if registration.id != id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "id",
            format!("the credential is `{}`'s, not `{id}`'s", registration.id),
        ));
    }
    Ok(registration)
}

#[utoipa::path(
    put,
    path = "/registrations/{id}",
    tag = "registrations",
    description = "Registers an entity with its channel (its first message, the hello, comes with it), or repeats a registration. A new id of a kind admitted by token needs `admission`.",
    params(("id" = String, Path, description = "The entity's id")),
    request_body = powerplug_roles::api::Register,
    responses((status = 201, description = "Registered: the answer has the credential", body = powerplug_roles::api::Registered), (status = 200, description = "Registered before: the same registration", body = powerplug_roles::api::Registered), crate::openapi::Refused),
)]
async fn register<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(id): Path<String>,
    bearer: Bearer,
    Body(body): Body<api::Register>,
) -> ApiResult<(StatusCode, Json<api::Registered>)> {
    if !powerplug_storage::valid_name(&id) {
        return Err(RegistryError::BadId.into());
    }
    let channel = body
        .channel
        .info()
        .map_err(|field| ApiError::unprocessable(field, "expected 32 bytes in hex"))?;
    let hello = match &body.hello {
        Some(text) => Some(hex::decode(text).map_err(|_| ApiError::bad("hello", "expected hex"))?),
        None => None,
    };
    if hello
        .as_ref()
        .is_some_and(|h| h.len() > powerplug_channel::MAX_MESSAGE_BYTES)
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "hello",
            format!("at most {} bytes", powerplug_channel::MAX_MESSAGE_BYTES),
        ));
    }
    blocking(move || {
        let hub = role.hub();
        let registered = hub.registry.register(
            &hub.db,
            &id,
            Application {
                kind: body.kind,
                channel,
                hello: hello.as_deref(),
                credential: bearer.0.as_deref(),
                admission: body.admission.as_deref(),
            },
        )?;
        let status = if registered.changed {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let key = hub.registry.key().verifying_key().to_bytes();
        Ok((
            status,
            Json(
                registered
                    .registration
                    .answer(Some(registered.credential), &key),
            ),
        ))
    })
    .await
}

/// `POST /admissions`: a registration token (operator only).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Admit {
    kind: EntityKind,
    #[serde(default)]
    id: Option<String>,
    #[serde(default = "one")]
    uses: u32,
}

fn one() -> u32 {
    1
}

#[utoipa::path(
    post,
    path = "/admissions",
    tag = "admissions",
    description = "Issues a registration token (shown once; only its hash is kept). Operator scope: `admit`.",
    request_body = Admit,
    responses((status = 201, description = "The token", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn admit<R: HasHub>(
    State(role): State<Arc<R>>,
    _: super::Authorized<{ super::ADMIT }>,
    Body(body): Body<Admit>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    if !role.hub().registry.accepts(body.kind) {
        return Err(RegistryError::WrongKind(body.kind).into());
    }
    if let Some(id) = &body.id
        && !powerplug_storage::valid_name(id)
    {
        return Err(RegistryError::BadId.into());
    }
    if !(1..=1_000_000).contains(&body.uses) {
        return Err(ApiError::unprocessable("uses", "1 to 1000000"));
    }
    blocking(move || {
        let grant = admission::Grant {
            kind: body.kind,
            id: body.id,
            uses: body.uses,
            issued_ms: powerplug_roles::role::unix_ms(),
        };
        let token = admission::issue(&role.hub().db, &grant)?;
        Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({
                "token": token,
                "kind": grant.kind,
                "id": grant.id,
                "uses": grant.uses,
            })),
        ))
    })
    .await
}

/// `GET /admissions`: the tokens not used up (their hashes' first digits, never the tokens).
#[utoipa::path(
    get,
    path = "/admissions",
    tag = "admissions",
    description = "The registration tokens not used up (their hashes' first digits). Operator scope: `read`.",
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn admissions<R: HasHub>(
    State(role): State<Arc<R>>,
    _: super::Authorized<{ super::READ }>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let grants = admission::list(&role.hub().db)?;
        Ok(Json(serde_json::json!({
            "admissions": grants
                .into_iter()
                .map(|(hash, g)| serde_json::json!({
                    "hash": hash, "kind": g.kind, "id": g.id, "uses": g.uses,
                    "issued_ms": g.issued_ms,
                }))
                .collect::<Vec<_>>(),
        })))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/admissions/pending",
    tag = "admissions",
    description = "New entities waiting for the operator's approval (rule `approve`). Operator scope: `read`.",
    responses((status = 200, description = "The requests", body = serde_json::Value), super::openapi::Refused),
    security(("operator" = []), ("session" = []))
)]
async fn pending<R: HasHub>(
    State(role): State<Arc<R>>,
    _: super::Authorized<{ super::READ }>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let waiting = admission::pending(&role.hub().db)?;
        Ok(Json(serde_json::json!({
            "pending": waiting
                .into_iter()
                .map(|(id, a)| serde_json::json!({
                    "id": id, "kind": a.kind, "author": hex::encode(a.author),
                    "asked_ms": a.asked_ms,
                }))
                .collect::<Vec<_>>(),
        })))
    })
    .await
}

/// The operator's answer to a waiting entity.
async fn decide<R: HasHub>(
    role: Arc<R>,
    id: String,
    approve: bool,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(
        move || match admission::decide(&role.hub().db, &id, approve)? {
            Some(a) => Ok(Json(serde_json::json!({
                "id": id, "kind": a.kind, "author": hex::encode(a.author), "approved": approve,
            }))),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "id",
                format!(
                    "`{}` is not waiting for approval",
                    powerplug_strategy::text::for_log(&id)
                ),
            )),
        },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/admissions/pending/{id}/approve",
    tag = "admissions",
    description = "Lets a waiting entity in: its next registration, with the same channel key, is admitted. Operator scope: `admit`.",
    params(("id" = String, Path, description = "The waiting entity's id")),
    responses((status = 200, description = "Approved", body = serde_json::Value), super::openapi::Refused),
    security(("operator" = []), ("session" = []))
)]
async fn approve<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(id): Path<String>,
    _: super::Authorized<{ super::ADMIT }>,
) -> ApiResult<Json<serde_json::Value>> {
    decide(role, id, true).await
}

#[utoipa::path(
    post,
    path = "/admissions/pending/{id}/refuse",
    tag = "admissions",
    description = "Drops a waiting entity's request. Operator scope: `admit`.",
    params(("id" = String, Path, description = "The waiting entity's id")),
    responses((status = 200, description = "Refused", body = serde_json::Value), super::openapi::Refused),
    security(("operator" = []), ("session" = []))
)]
async fn refuse<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(id): Path<String>,
    _: super::Authorized<{ super::ADMIT }>,
) -> ApiResult<Json<serde_json::Value>> {
    decide(role, id, false).await
}

impl From<AdmissionError> for ApiError {
    fn from(e: AdmissionError) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "admission", e.to_string())
    }
}

#[utoipa::path(
    get,
    path = "/registrations/{id}",
    tag = "registrations",
    description = "The entity's own registration.",
    params(("id" = String, Path, description = "The entity's id")),
    responses((status = 200, description = "The registration", body = powerplug_roles::api::Registered), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn registration<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> ApiResult<Json<api::Registered>> {
    blocking(move || {
        let hub = role.hub();
        let registration = authenticate(hub, &bearer, &id)?;
        let key = hub.registry.key().verifying_key().to_bytes();
        Ok(Json(registration.answer(None, &key)))
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/registrations/{id}",
    tag = "registrations",
    description = "The entity leaves; its id is kept for its own key.",
    params(("id" = String, Path, description = "The entity's id")),
    responses((status = 200, description = "Left", body = powerplug_roles::api::Registered), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn deregister<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> ApiResult<Json<api::Registered>> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        let credential = bearer.0.unwrap_or_default();
        let removed = hub.registry.remove(&hub.db, &credential)?;
        let key = hub.registry.key().verifying_key().to_bytes();
        Ok(Json(removed.answer(None, &key)))
    })
    .await
}

fn address(text: &str, field: &str) -> ApiResult<Address> {
    let bytes = hex::decode(text).map_err(|_| ApiError::bad(field, "expected 32 bytes in hex"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ApiError::bad(field, "expected 32 bytes in hex"))?;
    Ok(Address(bytes))
}

fn key32(text: &str, field: &str) -> ApiResult<[u8; 32]> {
    let bytes = hex::decode(text).map_err(|_| ApiError::bad(field, "expected 32 bytes in hex"))?;
    bytes
        .try_into()
        .map_err(|_| ApiError::bad(field, "expected 32 bytes in hex"))
}

/// The messages at `address`, at most [`READ_BYTES`] of them: a host's own
/// store holds one message an address (two after a resend), so this only
/// cuts what no honest store holds.
fn bounded(messages: Vec<Vec<u8>>, budget: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    for m in messages {
        if m.len() > *budget {
            break;
        }
        *budget -= m.len();
        out.push(hex::encode(m));
    }
    out
}

#[utoipa::path(
    get,
    path = "/channels/{address}",
    tag = "channels",
    description = "The messages at an address, in hex.",
    params(("address" = String, Path, description = "32 bytes in hex")),
    responses((status = 200, description = "The messages", body = powerplug_channel::Messages), crate::openapi::Refused),
)]
async fn get_channel<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(text): Path<String>,
) -> ApiResult<Json<Messages>> {
    let address = address(&text, "address")?;
    blocking(move || {
        let messages = role.hub().store.get(&address)?;
        let mut budget = READ_BYTES;
        Ok(Json(Messages {
            messages: bounded(messages, &mut budget),
        }))
    })
    .await
}

/// One message: number `index` of the channel `author` registered here.
/// Only that author's signed message, within the host's write window, is
/// taken (see [`Hub::accept`]).
#[utoipa::path(
    put,
    path = "/channels/{author}/{index}",
    tag = "channels",
    description = "Stores message `index` of the channel of `author`: the sealed bytes as the body.",
    params(("author" = String, Path, description = "The author's public key, 32 bytes in hex"), ("index" = u64, Path, description = "The message's index")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored"), (status = 200, description = "Stored before"), crate::openapi::Refused),
)]
async fn put_channel<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((author, index)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let author = key32(&author, "author")?;
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad("index", "expected a whole number"))?;
    if body.is_empty() {
        return Err(ApiError::unprocessable("body", "an empty message"));
    }
    if body.len() > powerplug_channel::MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!(
                "a message is 1 to {} bytes",
                powerplug_channel::MAX_MESSAGE_BYTES
            ),
        ));
    }
    let sealed = Sealed {
        author,
        index,
        address: Address([0; 32]),
        bytes: body.to_vec(),
    };
    blocking(
        move || match role.hub().accept(&[sealed])?.pop().flatten() {
            None => Ok(StatusCode::CREATED),
            Some(refusal) => Err(refused(refusal)),
        },
    )
    .await
}

fn refused(r: powerplug_roles::role::Refusal) -> ApiError {
    let status = match (r.field, r.retry) {
        (_, true) => StatusCode::TOO_MANY_REQUESTS,
        ("author", _) => StatusCode::NOT_FOUND,
        ("index", _) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, r.field, r.reason)
}

/// Several messages, each checked on its own: the answer names the refused
/// ones, the others are stored.
#[utoipa::path(
    post,
    path = "/channels",
    tag = "channels",
    description = "Stores messages of registered authors' channels, each signed for its address.",
    request_body = powerplug_channel::Batch,
    responses((status = 200, description = "What was not stored, by position", body = powerplug_channel::Stored), crate::openapi::Refused),
)]
async fn put_batch<R: HasHub>(
    State(role): State<Arc<R>>,
    Body(batch): Body<Batch>,
) -> ApiResult<Json<Stored>> {
    if batch.messages.len() > powerplug_channel::BATCH {
        return Err(ApiError::unprocessable(
            "messages",
            format!("at most {} messages a batch", powerplug_channel::BATCH),
        ));
    }
    let mut messages = Vec::with_capacity(batch.messages.len());
    for (i, m) in batch.messages.iter().enumerate() {
        let author = key32(&m.author, &format!("messages[{i}].author"))?;
        let bytes = hex::decode(&m.message)
            .map_err(|_| ApiError::bad(&format!("messages[{i}].message"), "expected hex"))?;
        messages.push(Sealed {
            author,
            index: m.index,
            address: Address([0; 32]),
            bytes,
        });
    }
    blocking(move || {
        let verdicts = role.hub().accept(&messages)?;
        let refused = verdicts
            .into_iter()
            .enumerate()
            .filter_map(|(position, v)| {
                v.map(|r| RefusedMessage {
                    position,
                    error: format!("messages[{position}].{}: {}", r.field, r.reason),
                    retry: r.retry,
                })
            })
            .collect();
        Ok(Json(Stored { refused }))
    })
    .await
}

/// The messages at several addresses. Each address is read once however
/// often it is listed, and the answer stops at [`READ_BYTES`] of messages
/// (the client asks again for the rest), so a small request cannot make the
/// host build a large answer.
#[utoipa::path(
    post,
    path = "/channels/read",
    tag = "channels",
    description = "The messages at several addresses (at most 1 MiB an answer: ask again for the rest).",
    request_body = powerplug_channel::ReadMany,
    responses((status = 200, description = "Per address, its messages in hex", body = powerplug_channel::ManyMessages), crate::openapi::Refused),
)]
async fn read_batch<R: HasHub>(
    State(role): State<Arc<R>>,
    Body(body): Body<ReadMany>,
) -> ApiResult<Json<ManyMessages>> {
    if body.addresses.len() > READ_BATCH {
        return Err(ApiError::unprocessable(
            "addresses",
            format!("at most {READ_BATCH} addresses a request"),
        ));
    }
    let addresses = body
        .addresses
        .iter()
        .enumerate()
        .map(|(i, a)| address(a, &format!("addresses[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    blocking(move || {
        let mut unique = addresses.clone();
        unique.sort();
        unique.dedup();
        let found = role.hub().store.get_many(&unique)?;
        let mut budget = READ_BYTES;
        let mut seen = std::collections::HashSet::new();
        let mut messages = Vec::with_capacity(addresses.len());
        for a in &addresses {
            // A listed address is answered once; a repeat gets nothing.
            if !seen.insert(*a) {
                messages.push(Vec::new());
                continue;
            }
            let Ok(at) = unique.binary_search(a) else {
                break;
            };
            let size: usize = found[at].iter().map(Vec::len).sum();
            if size > budget && !messages.is_empty() {
                break;
            }
            messages.push(bounded(found[at].clone(), &mut budget));
        }
        Ok(Json(ManyMessages { messages }))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct Document {
    key: String,
    value: serde_json::Value,
}

#[derive(Serialize)]
struct Page {
    items: Vec<Document>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null)
}

#[utoipa::path(
    get,
    path = "/storage/{id}/{context}",
    tag = "storage",
    description = "A page of the owner's documents in a context.",
    params(("id" = String, Path, description = "The owner's id"), ("context" = String, Path, description = "A name for a set of documents"), PageQuery),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn list_documents<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((id, context)): Path<(String, String)>,
    bearer: Bearer,
    Params(query): Params<PageQuery>,
) -> ApiResult<Json<Page>> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        let limit = query.limit.unwrap_or(100);
        let (items, next) = documents::list(
            &*hub.db,
            &hub.objects,
            &id,
            &context,
            query.after.as_deref(),
            limit,
        )?;
        Ok(Json(Page {
            items: items
                .into_iter()
                .map(|(key, value)| Document {
                    key,
                    value: json(&value),
                })
                .collect(),
            next,
        }))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/storage/{id}/{context}/{key}",
    tag = "storage",
    description = "A document.",
    params(("id" = String, Path, description = "The owner's id"), ("context" = String, Path, description = "A name for a set of documents"), ("key" = String, Path, description = "The document's key")),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn get_document<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((id, context, key)): Path<(String, String, String)>,
    bearer: Bearer,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        match documents::get(&*hub.db, &hub.objects, &id, &context, &key)? {
            Some(bytes) => Ok(Json(json(&bytes))),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "key",
                format!("no document `{context}/{key}`"),
            )),
        }
    })
    .await
}

#[utoipa::path(
    put,
    path = "/storage/{id}/{context}/{key}",
    tag = "storage",
    description = "Stores a JSON document.",
    params(("id" = String, Path, description = "The owner's id"), ("context" = String, Path, description = "A name for a set of documents"), ("key" = String, Path, description = "The document's key")),
    request_body = serde_json::Value,
    responses((status = 201, description = "Stored, new"), (status = 200, description = "Stored, replacing the last"), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn put_document<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((id, context, key)): Path<(String, String, String)>,
    bearer: Bearer,
    Body(value): Body<serde_json::Value>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        let bytes = serde_json::to_vec(&value).map_err(ApiError::internal)?;
        let new = documents::put(&*hub.db, &hub.objects, &id, &context, &key, &bytes)?;
        Ok(if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        })
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/storage/{id}/{context}/{key}",
    tag = "storage",
    description = "Deletes a document.",
    params(("id" = String, Path, description = "The owner's id"), ("context" = String, Path, description = "A name for a set of documents"), ("key" = String, Path, description = "The document's key")),
    responses((status = 204, description = "Deleted"), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn delete_document<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((id, context, key)): Path<(String, String, String)>,
    bearer: Bearer,
) -> ApiResult<StatusCode> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        match documents::delete(&*hub.db, &id, &context, Some(&key))? {
            0 => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "key",
                format!("no document `{context}/{key}`"),
            )),
            _ => Ok(StatusCode::NO_CONTENT),
        }
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/storage/{id}/{context}",
    tag = "storage",
    description = "Deletes every document of a context.",
    params(("id" = String, Path, description = "The owner's id"), ("context" = String, Path, description = "A name for a set of documents")),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn delete_context<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((id, context)): Path<(String, String)>,
    bearer: Bearer,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        let removed = documents::delete(&*hub.db, &id, &context, None)?;
        Ok(Json(serde_json::json!({ "removed": removed })))
    })
    .await
}

impl HasHub for Grid {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn is_grid(&self) -> bool {
        true
    }

    fn active_strategy(&self) -> Option<String> {
        Some(self.slot.current().info().sha256.to_string())
    }

    fn status(&self) -> anyhow::Result<serde_json::Value> {
        powerplug_roles::role::status::grid(self)
    }

    fn leading(&self) -> bool {
        self.leader.epoch().is_some()
    }
}

impl HasHub for Producer {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn active_strategy(&self) -> Option<String> {
        Some(self.slot.current().info().sha256.to_string())
    }

    fn status(&self) -> anyhow::Result<serde_json::Value> {
        powerplug_roles::role::status::producer(self)
    }

    fn leading(&self) -> bool {
        self.leader.epoch().is_some()
    }
}
