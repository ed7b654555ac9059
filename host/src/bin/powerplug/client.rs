//! The operator's side of a running host's HTTP API: one request, the
//! operator token from `POWERPLUG_OPERATOR_TOKEN`, the answer printed.

use anyhow::Context;

/// Which running host, and which kind of strategy there.
#[derive(clap::Args)]
pub struct HostArgs {
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    pub url: String,
    #[arg(long, default_value = "grid")]
    pub kind: String,
}

impl HostArgs {
    /// Sends an operator request; prints the JSON answer, fails on a refusal.
    pub fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<()> {
        self.call_with(method, path, body, None)
    }

    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        signature: Option<&str>,
    ) -> anyhow::Result<()> {
        let token = std::env::var("POWERPLUG_OPERATOR_TOKEN")
            .context("POWERPLUG_OPERATOR_TOKEN: set it to the host's operator token")?;
        // An upload compiles the component before it answers: tens of
        // seconds for an interpreter inside (a Python component is 19 MB).
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(600)))
            .http_status_as_error(false)
            .build()
            .into();
        let uri = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {token}"));
        if let Some(signature) = signature {
            request = request.header("x-powerplug-signature", signature);
        }
        // Hosts read JSON only when it says it is JSON; an upload is the component.
        if body.is_some() {
            let kind = if signature.is_some() || method == "PUT" {
                "application/wasm"
            } else {
                "application/json"
            };
            request = request.header("content-type", kind);
            // A host checks the token before it reads an upload and closes on
            // a refusal: wait for its `100 Continue` so that a refusal arrives
            // as an answer, not as a reset in the middle of sending.
            request = request.header("expect", "100-continue");
        }
        let request = request.body(body.unwrap_or_default())?;
        let mut response = agent
            .run(request)
            .with_context(|| format!("{method} {uri}"))?;
        let status = response.status();
        let text = response.body_mut().read_to_string()?;
        let pretty = serde_json::from_str::<serde_json::Value>(&text)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(text);
        anyhow::ensure!(status.is_success(), "{status}: {pretty}");
        println!("{pretty}");
        Ok(())
    }
}

/// `key=value&…` of the options that are set, percent-encoded.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}
