//! Routes of a host that entities register with (grid, producer):
//! registrations, the channel store, `/storage` documents, `/status`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Bearer, Body, Params, blocking};
use crate::api;
use crate::channel::{
    Address, Batch, ChannelReader, MAX_MESSAGE_BYTES, ManyMessages, Messages, READ_BATCH,
    ReadError, ReadMany, Transport,
};
use crate::documents::{self, DocumentError};
use crate::registry::{Registration, RegistryError};
use crate::role::Hub;
use crate::role::grid::Grid;
use crate::role::producer::Producer;

/// A role that hosts registrations.
pub trait HasHub: Send + Sync + 'static {
    fn hub(&self) -> &Hub;
    /// What `GET /status` answers.
    fn status(&self) -> anyhow::Result<serde_json::Value>;
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
        .route(
            "/channels/{address}",
            get(get_channel::<R>).put(put_channel::<R>),
        )
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
}

pub async fn status<R: HasHub>(State(role): State<Arc<R>>) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || Ok(Json(role.status()?))).await
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = match &e {
            RegistryError::BadId => StatusCode::BAD_REQUEST,
            RegistryError::ReservedId(_) | RegistryError::KindChanged(..) => StatusCode::CONFLICT,
            RegistryError::WrongKind(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RegistryError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RegistryError::Unknown(_) => StatusCode::NOT_FOUND,
            RegistryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = e.to_string();
        let field = message.split(':').next().unwrap_or("").to_owned();
        let field = if status == StatusCode::INTERNAL_SERVER_ERROR {
            String::new()
        } else {
            field
        };
        ApiError::new(
            status,
            if field == "credential" {
                "authorization"
            } else {
                &field
            },
            message,
        )
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

async fn register<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(id): Path<String>,
    bearer: Bearer,
    Body(body): Body<api::Register>,
) -> ApiResult<(StatusCode, Json<api::Registered>)> {
    if !crate::storage::valid_name(&id) {
        return Err(RegistryError::BadId.into());
    }
    blocking(move || {
        let hub = role.hub();
        if !hub.registry.accepts(body.kind) {
            return Err(RegistryError::WrongKind(body.kind).into());
        }
        let info = body
            .channel
            .info()
            .map_err(|field| ApiError::unprocessable(field, "expected 32 bytes in hex"))?;
        // The reader refuses a channel that does not open with hello.
        let mut reader =
            ChannelReader::new(&info).map_err(|e| ApiError::unprocessable("channel.author", e))?;
        match reader.poll(&hub.store) {
            Ok(_) if reader.next_index() > 0 => {}
            Ok(_) => {
                return Err(ApiError::unprocessable(
                    "channel",
                    "no hello at the channel's root in this host's store yet",
                ));
            }
            Err(ReadError::NotOpened) => {
                return Err(ApiError::unprocessable(
                    "channel",
                    "the channel does not open with hello",
                ));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
        let registered =
            hub.registry
                .register(&hub.db, &id, body.kind, info, bearer.0.as_deref())?;
        // Its messages may all be in the store already: read it next round.
        let r = &registered.registration;
        hub.store.touch(Address::of(&r.channel.root, r.read_index));
        let status = if registered.changed {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let key = hub.registry.key().verifying_key().to_bytes();
        Ok((
            status,
            Json(api::Registered::of(
                &registered.registration,
                Some(registered.credential),
                &key,
            )),
        ))
    })
    .await
}

async fn registration<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> ApiResult<Json<api::Registered>> {
    blocking(move || {
        let hub = role.hub();
        let registration = authenticate(hub, &bearer, &id)?;
        let key = hub.registry.key().verifying_key().to_bytes();
        Ok(Json(api::Registered::of(&registration, None, &key)))
    })
    .await
}

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
        Ok(Json(api::Registered::of(&removed, None, &key)))
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

fn stored(result: anyhow::Result<()>) -> ApiResult<()> {
    result.map_err(|e| {
        let message = format!("{e:#}");
        if message.starts_with("address:") {
            ApiError::new(StatusCode::CONFLICT, "address", message)
        } else if message.starts_with("message:") {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "message", message)
        } else {
            ApiError::internal(message)
        }
    })
}

async fn get_channel<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(text): Path<String>,
) -> ApiResult<Json<Messages>> {
    let address = address(&text, "address")?;
    blocking(move || {
        let messages = role.hub().store.get(&address)?;
        Ok(Json(Messages {
            messages: messages.iter().map(hex::encode).collect(),
        }))
    })
    .await
}

/// Anyone may write: messages are signed, readers check them, and an address
/// takes a bounded number of messages.
async fn put_channel<R: HasHub>(
    State(role): State<Arc<R>>,
    Path(text): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let address = address(&text, "address")?;
    if body.is_empty() {
        return Err(ApiError::unprocessable("body", "an empty message"));
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!("a message is 1 to {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    blocking(move || {
        stored(role.hub().store.put(&address, body.to_vec()))?;
        Ok(StatusCode::CREATED)
    })
    .await
}

async fn put_batch<R: HasHub>(
    State(role): State<Arc<R>>,
    Body(batch): Body<Batch>,
) -> ApiResult<StatusCode> {
    if batch.messages.len() > crate::channel::BATCH {
        return Err(ApiError::unprocessable(
            "messages",
            format!("at most {} messages a batch", crate::channel::BATCH),
        ));
    }
    let mut messages = Vec::with_capacity(batch.messages.len());
    for (i, m) in batch.messages.iter().enumerate() {
        let address = address(&m.address, &format!("messages[{i}].address"))?;
        let bytes = hex::decode(&m.message)
            .map_err(|_| ApiError::bad(&format!("messages[{i}].message"), "expected hex"))?;
        messages.push((address, bytes));
    }
    blocking(move || {
        stored(role.hub().store.put_many(&messages))?;
        Ok(StatusCode::CREATED)
    })
    .await
}

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
        let found = role.hub().store.get_many(&addresses)?;
        Ok(Json(ManyMessages {
            messages: found
                .iter()
                .map(|messages| messages.iter().map(hex::encode).collect())
                .collect(),
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
        let (items, next) = documents::list(&hub.db, &id, &context, query.after.as_deref(), limit)?;
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

async fn get_document<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((id, context, key)): Path<(String, String, String)>,
    bearer: Bearer,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        match documents::get(&hub.db, &id, &context, &key)? {
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
        let new = documents::put(&hub.db, &id, &context, &key, &bytes)?;
        Ok(if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        })
    })
    .await
}

async fn delete_document<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((id, context, key)): Path<(String, String, String)>,
    bearer: Bearer,
) -> ApiResult<StatusCode> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        match documents::delete(&hub.db, &id, &context, Some(&key))? {
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

async fn delete_context<R: HasHub>(
    State(role): State<Arc<R>>,
    Path((id, context)): Path<(String, String)>,
    bearer: Bearer,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let hub = role.hub();
        authenticate(hub, &bearer, &id)?;
        let removed = documents::delete(&hub.db, &id, &context, None)?;
        Ok(Json(serde_json::json!({ "removed": removed })))
    })
    .await
}

impl HasHub for Grid {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn status(&self) -> anyhow::Result<serde_json::Value> {
        crate::role::status::grid(self)
    }
}

impl HasHub for Producer {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn status(&self) -> anyhow::Result<serde_json::Value> {
        crate::role::status::producer(self)
    }
}
