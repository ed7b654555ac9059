//! A transport to another host's channel store over HTTP: an entity on another
//! machine publishes to, and reads from, the store of the grid or producer it
//! registered with (`PUT`/`GET /channels/{address}`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Address, Refused, Sealed, Transport};

/// What `GET /channels/{address}` answers: the messages at the address, hex.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Messages {
    pub messages: Vec<String>,
}

pub struct HttpTransport {
    agent: ureq::Agent,
    base: String,
}

/// `POST /channels`: several messages in one request (one write at the host).
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ChannelBatch)]
pub struct Batch {
    pub messages: Vec<Addressed>,
}

/// Message `index` of the channel of `author` (hex public key); the host works
/// out the address from the channel it has registered for that author.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Addressed {
    pub author: String,
    pub index: u64,
    pub message: String,
}

/// What `POST /channels` answers: the messages not stored, by position.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stored {
    pub refused: Vec<RefusedMessage>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefusedMessage {
    pub position: usize,
    pub error: String,
    /// Worth sending again later.
    pub retry: bool,
}

/// Messages per `POST /channels` request.
pub const BATCH: usize = 256;
/// Message bytes per `POST /channels` request: hex-encoded, well under the
/// host's 1 MiB body limit.
const BATCH_BYTES: usize = 256 * 1024;

/// `POST /channels/read`: the messages at several addresses.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMany {
    pub addresses: Vec<String>,
}

/// Answer to [`ReadMany`]: per address, in order, its messages in hex. An
/// answer is at most [`READ_BYTES`] long, so it may cover only the first
/// addresses asked for: ask again for the rest.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManyMessages {
    pub messages: Vec<Vec<String>>,
}

/// Message bytes one `POST /channels/read` answers at most (hex doubles them).
pub const READ_BYTES: usize = 1 << 20;

/// Addresses per `POST /channels/read` request.
pub const READ_BATCH: usize = 1_024;

impl HttpTransport {
    /// `base` is the host's URL, such as `http://127.0.0.1:4000`.
    pub fn new(base: &str) -> Self {
        Self {
            agent: agent(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }
}

impl HttpTransport {
    /// Through `agent` (one that names a [`Timeline`], say).
    pub fn with_agent(base: &str, agent: ureq::Agent) -> Self {
        Self {
            agent,
            base: base.trim_end_matches('/').to_owned(),
        }
    }
}

/// A blocking client with timeouts, shared by the roles' HTTP clients.
pub fn agent() -> ureq::Agent {
    config().build().into()
}

fn config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
}

/// The header that names the timeline of the host's store a request is for.
pub const TIMELINE_HEADER: &str = "powerplug-timeline";

/// Which history of the host above a client acts on (its `GET /timeline`).
/// Once set, every request of an [`agent_on`] it names it, and a host that
/// was restored from a backup since refuses the request (`409`) instead of
/// taking what was meant for the history it lost.
#[derive(Clone, Default)]
pub struct Timeline(Arc<RwLock<Option<String>>>);

impl Timeline {
    pub fn get(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, timeline: String) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(timeline);
    }
}

/// Like [`agent`], naming `timeline` in every request once it is known.
pub fn agent_on(timeline: &Timeline) -> ureq::Agent {
    let timeline = timeline.clone();
    config()
        .middleware(
            move |mut request: ureq::http::Request<ureq::SendBody>,
                  next: ureq::middleware::MiddlewareNext| {
                if let Some(value) = timeline
                    .get()
                    .and_then(|t| ureq::http::HeaderValue::from_str(&t).ok())
                {
                    request.headers_mut().insert(TIMELINE_HEADER, value);
                }
                next.handle(request)
            },
        )
        .build()
        .into()
}

impl Transport for HttpTransport {
    fn put_many(&self, messages: &[Sealed]) -> anyhow::Result<Vec<Refused>> {
        let mut refused = Vec::new();
        let mut start = 0;
        while start < messages.len() {
            // At most BATCH messages and BATCH_BYTES of them a request, so that
            // a request stays under the host's body limit (hex doubles them).
            let mut end = start;
            let mut bytes = 0;
            while end < messages.len()
                && end - start < BATCH
                && (end == start || bytes + messages[end].bytes.len() <= BATCH_BYTES)
            {
                bytes += messages[end].bytes.len();
                end += 1;
            }
            let batch = Batch {
                messages: messages[start..end]
                    .iter()
                    .map(|m| Addressed {
                        author: hex::encode(m.author),
                        index: m.index,
                        message: hex::encode(&m.bytes),
                    })
                    .collect(),
            };
            let mut response = self
                .agent
                .post(&format!("{}/channels", self.base))
                .send_json(&batch)?;
            let status = response.status();
            anyhow::ensure!(
                status.is_success(),
                "POST /channels: {status} {}",
                response.body_mut().read_to_string().unwrap_or_default()
            );
            let stored: Stored = response.body_mut().read_json()?;
            refused.extend(stored.refused.into_iter().map(|r| Refused {
                position: start + r.position,
                reason: r.error,
                retry: r.retry,
            }));
            start = end;
        }
        Ok(refused)
    }

    fn get_many(&self, addresses: &[Address]) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        let mut out = Vec::with_capacity(addresses.len());
        while out.len() < addresses.len() {
            let rest = &addresses[out.len()..];
            let chunk = &rest[..rest.len().min(READ_BATCH)];
            let body = ReadMany {
                addresses: chunk.iter().map(Address::to_string).collect(),
            };
            let mut response = self
                .agent
                .post(&format!("{}/channels/read", self.base))
                .send_json(&body)?;
            let status = response.status();
            anyhow::ensure!(status.is_success(), "POST /channels/read: {status}");
            let answer: ManyMessages = response.body_mut().read_json()?;
            // A host answers at least one address, at most those asked for.
            anyhow::ensure!(
                !answer.messages.is_empty() && answer.messages.len() <= chunk.len(),
                "POST /channels/read: wrong count"
            );
            for messages in answer.messages {
                out.push(
                    messages
                        .iter()
                        .map(|m| hex::decode(m).map_err(Into::into))
                        .collect::<anyhow::Result<_>>()?,
                );
            }
        }
        Ok(out)
    }

    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut response = self
            .agent
            .get(&format!("{}/channels/{address}", self.base))
            .call()?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "GET /channels/{address}: {status}");
        let body: Messages = response.body_mut().read_json()?;
        body.messages
            .iter()
            .map(|m| hex::decode(m).map_err(Into::into))
            .collect()
    }
}
