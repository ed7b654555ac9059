//! A typed client of a running host's HTTP API: the one the `powerplug`
//! command, the demo and the tests use, so that a path, a query or a body is
//! written once, next to the types it carries ([`api`]).
//!
//! Calls are blocking (ureq): the CLI and the tests are synchronous, and the
//! demo calls from `spawn_blocking`. Every call answers an [`Answer`] — the
//! status and the JSON body — whatever the status; the typed calls turn a
//! refusal into an error that quotes the host's answer.

pub mod api;

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use powerplug_domain::{EntityKind, Sha256, StrategyKind};

/// The header an upload's signature travels in.
pub const SIGNATURE: &str = "x-powerplug-signature";

/// A host's answer: its status and its body (JSON, or the text as a string).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    /// The body of a success; a refusal as an error that names the status.
    pub fn ok(self) -> anyhow::Result<serde_json::Value> {
        anyhow::ensure!(
            (200..300).contains(&self.status),
            "{}: {}",
            self.status,
            serde_json::to_string_pretty(&self.body).unwrap_or_default()
        );
        Ok(self.body)
    }

    /// The body of a success, as `T`.
    pub fn json<T: DeserializeOwned>(self) -> anyhow::Result<T> {
        Ok(serde_json::from_value(self.ok()?)?)
    }
}

/// What a request carries.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Empty,
    /// Bytes sent as `application/json` (the tests send malformed ones too).
    Json(&'a [u8]),
    /// A component, with its signature where the host needs one.
    Wasm {
        bytes: &'a [u8],
        signature: Option<&'a str>,
    },
}

/// How an upload or an activation goes (the query of `PUT /strategies/{kind}`
/// and `POST /strategies/{kind}/activate/{version}`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Swap {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Start on empty books instead of the live ones.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fresh: bool,
    /// Activate although the dry run over recent ticks is refused.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// `Some(false)`: check and keep the upload, do not activate it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activate: Option<bool>,
}

/// A client of the host at one URL, with or without a bearer token.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for people's tools: it waits up to ten minutes for an
    /// answer, since an upload compiles the component before it answers
    /// (tens of seconds for an interpreter inside: a Python component is 19 MB).
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(600)))
            .http_status_as_error(false)
            .build()
            .into();
        Self::with_agent(agent, base)
    }

    /// A client over `agent`: a role calling the host above it passes its
    /// own, with short timeouts, so an unreachable host never holds a round
    /// for long. The agent must not turn statuses into errors.
    pub fn with_agent(agent: ureq::Agent, base: &str) -> Self {
        Self {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// The same host, as the holder of `token` (an operator's, or an entity's
    /// credential).
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Any request; fails only if the host cannot be reached or answers no HTTP.
    pub fn send(&self, method: &str, path: &str, body: Body) -> anyhow::Result<Answer> {
        let uri = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&uri);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Body::Empty => Vec::new(),
            Body::Json(bytes) => {
                request = request.header("content-type", "application/json");
                bytes.to_vec()
            }
            Body::Wasm { bytes, signature } => {
                request = request.header("content-type", "application/wasm");
                if let Some(signature) = signature {
                    request = request.header(SIGNATURE, signature);
                }
                bytes.to_vec()
            }
        };
        // A host checks the token before it reads a large body and closes on
        // a refusal: waiting for its `100 Continue` makes that refusal arrive
        // as an answer, not as a reset in the middle of sending.
        if bytes.len() > 1 << 10 {
            request = request.header("expect", "100-continue");
        }
        let mut response = self
            .agent
            .run(request.body(bytes)?)
            .with_context(|| format!("{method} {uri}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok(Answer { status, body })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send("GET", path, Body::Empty)
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Answer> {
        self.send("DELETE", path, Body::Empty)
    }

    pub fn post<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> anyhow::Result<Answer> {
        self.send("POST", path, Body::Json(&serde_json::to_vec(body)?))
    }

    pub fn put<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> anyhow::Result<Answer> {
        self.send("PUT", path, Body::Json(&serde_json::to_vec(body)?))
    }

    // The API, one call per route the operator's tools use.

    /// `GET /status`.
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        self.get("/status")?.ok()
    }

    /// `POST /admissions` (operator): a registration token for `uses`
    /// registrations of `kind`, bound to `id` if given.
    pub fn admit(&self, kind: EntityKind, id: Option<&str>, uses: u32) -> anyhow::Result<String> {
        let body = serde_json::json!({ "kind": kind, "id": id, "uses": uses });
        let answer = self.post("/admissions", &body)?.ok()?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("admission at {}: no token in {answer}", self.base))
    }

    /// `POST /wallet/issue` (operator): new money to an account.
    pub fn issue(&self, issue: &api::Issue) -> anyhow::Result<serde_json::Value> {
        self.post("/wallet/issue", issue)?
            .ok()
            .with_context(|| format!("issuing {} to {}", issue.amount, issue.to))
    }

    /// `PUT /strategies/{kind}` (operator): uploads a component.
    pub fn upload(
        &self,
        kind: StrategyKind,
        component: &[u8],
        signature: Option<&str>,
        swap: &Swap,
    ) -> anyhow::Result<Answer> {
        let path = format!("/strategies/{kind}{}", query(swap)?);
        self.send(
            "PUT",
            &path,
            Body::Wasm {
                bytes: component,
                signature,
            },
        )
    }

    /// `POST /strategies/{kind}/activate/{version}` (operator).
    pub fn activate(
        &self,
        kind: StrategyKind,
        version: &str,
        swap: &Swap,
    ) -> anyhow::Result<Answer> {
        let path = format!(
            "/strategies/{kind}/activate/{}{}",
            segment(version),
            query(swap)?
        );
        self.send("POST", &path, Body::Empty)
    }

    /// `PUT /registrations/{id}`: registers, or registers the same channel
    /// again (idempotent); a reset to a new channel needs the current
    /// credential as the token.
    pub fn register(&self, id: &str, body: &api::Register) -> anyhow::Result<Answer> {
        self.put(&format!("/registrations/{}", segment(id)), body)
    }

    /// `GET /registrations/{id}` (the entity's credential): what the host
    /// holds of the registration, with where it reads and writes.
    pub fn registration(&self, id: &str) -> anyhow::Result<Answer> {
        self.get(&format!("/registrations/{}", segment(id)))
    }

    /// `GET /timeline`: which history of its store the host is in.
    pub fn timeline(&self) -> anyhow::Result<String> {
        let answer = self.get("/timeline")?.ok()?;
        answer["timeline"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: no timeline in {answer}", self.base))
    }

    /// `DELETE /registrations/{id}` (the entity's credential).
    pub fn deregister(&self, id: &str) -> anyhow::Result<Answer> {
        self.delete(&format!("/registrations/{}", segment(id)))
    }

    /// `GET /storage/{id}/{context}/{key}` (the entity's credential).
    pub fn document(&self, id: &str, context: &str, key: &str) -> anyhow::Result<Answer> {
        self.get(&document_path(id, context, key))
    }

    /// `PUT /storage/{id}/{context}/{key}` (the entity's credential).
    pub fn put_document<T: Serialize + ?Sized>(
        &self,
        id: &str,
        context: &str,
        key: &str,
        document: &T,
    ) -> anyhow::Result<Answer> {
        self.put(&document_path(id, context, key), document)
    }

    /// `DELETE /strategies/{kind}/{version}` (operator).
    pub fn remove(&self, kind: StrategyKind, version: &str) -> anyhow::Result<Answer> {
        self.delete(&format!("/strategies/{kind}/{}", segment(version)))
    }
}

/// `?key=value&…` of a query's set fields, percent-encoded; empty if none.
pub fn query<T: Serialize>(fields: &T) -> anyhow::Result<String> {
    let value = serde_json::to_value(fields)?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            match v {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) => {
                    q.append_pair(&k, &s);
                }
                other => {
                    q.append_pair(&k, &other.to_string());
                }
            }
        }
    }
    let q = q.finish();
    Ok(if q.is_empty() { q } else { format!("?{q}") })
}

fn document_path(id: &str, context: &str, key: &str) -> String {
    format!(
        "/storage/{}/{}/{}",
        segment(id),
        segment(context),
        segment(key)
    )
}

/// A path segment from user input, percent-encoded so that it stays one
/// (form encoding writes a space as `+`, which a path keeps as a `+`; a `+`
/// of the text itself is already `%2B`).
fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_has_only_the_fields_that_are_set() {
        assert_eq!(query(&Swap::default()).unwrap(), "");
        let swap = Swap {
            name: Some("time of use".into()),
            force: true,
            activate: Some(false),
            ..Swap::default()
        };
        assert_eq!(
            query(&swap).unwrap(),
            "?activate=false&force=true&name=time+of+use"
        );
        assert_eq!(segment("a/b c+d"), "a%2Fb%20c%2Bd");
    }

    #[test]
    fn a_refusal_is_an_error_that_quotes_the_answer() {
        let refused = Answer {
            status: 422,
            body: serde_json::json!({ "field": "kind", "error": "no" }),
        };
        let e = refused.ok().unwrap_err().to_string();
        assert!(
            e.starts_with("422: ") && e.contains("\"field\": \"kind\""),
            "{e}"
        );
        let ok = Answer {
            status: 201,
            body: serde_json::json!({ "token": "t" }),
        };
        assert_eq!(ok.json::<serde_json::Value>().unwrap()["token"], "t");
    }
}
