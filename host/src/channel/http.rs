//! A transport to another host's channel store over HTTP: an entity on another
//! machine publishes to, and reads from, the store of the grid or producer it
//! registered with (`PUT`/`GET /channels/{address}`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Address, Transport};

/// What `GET /channels/{address}` answers: the messages at the address, hex.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Messages {
    pub messages: Vec<String>,
}

pub struct HttpTransport {
    agent: ureq::Agent,
    base: String,
}

/// `POST /channels`: several messages in one request (one write at the host).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub messages: Vec<Addressed>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addressed {
    pub address: String,
    pub message: String,
}

/// Messages per `POST /channels` request; well under the route's body limit.
pub const BATCH: usize = 256;

/// `POST /channels/read`: the messages at several addresses.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadMany {
    pub addresses: Vec<String>,
}

/// Answer to [`ReadMany`]: per address, in order, its messages in hex.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ManyMessages {
    pub messages: Vec<Vec<String>>,
}

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

/// A blocking client with timeouts, shared by the roles' HTTP clients.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

impl Transport for HttpTransport {
    fn put(&self, address: &Address, message: Vec<u8>) -> anyhow::Result<()> {
        let mut response = self
            .agent
            .put(&format!("{}/channels/{address}", self.base))
            .header("content-type", "application/octet-stream")
            .send(&message[..])?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "PUT /channels/{address}: {status} {}",
            response.body_mut().read_to_string().unwrap_or_default()
        );
        Ok(())
    }

    fn put_many(&self, messages: &[(Address, Vec<u8>)]) -> anyhow::Result<()> {
        for chunk in messages.chunks(BATCH) {
            let batch = Batch {
                messages: chunk
                    .iter()
                    .map(|(address, bytes)| Addressed {
                        address: address.to_string(),
                        message: hex::encode(bytes),
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
        }
        Ok(())
    }

    fn get_many(&self, addresses: &[Address]) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        let mut out = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(READ_BATCH) {
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
            anyhow::ensure!(
                answer.messages.len() == chunk.len(),
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
