//! The operator's side of a running host's HTTP API: the shared typed client
//! ([`powerplug_client`]) with the operator token from
//! `POWERPLUG_OPERATOR_TOKEN`; each command prints the host's JSON answer.

use anyhow::Context;
use powerplug_client::{Answer, Body, Client, StrategyKind};

/// Which running host, and which kind of strategy there.
#[derive(clap::Args)]
pub struct HostArgs {
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    pub url: String,
    #[arg(long, default_value = "grid")]
    pub kind: StrategyKind,
}

impl HostArgs {
    pub fn client(&self) -> anyhow::Result<Client> {
        operator(&self.url)
    }

    /// Sends an operator request with an optional JSON body; prints the answer.
    pub fn call(&self, method: &str, path: &str, json: Option<Vec<u8>>) -> anyhow::Result<()> {
        let body = json.as_deref().map_or(Body::Empty, Body::Json);
        print(self.client()?.send(method, path, body))
    }
}

/// A client of the host at `url`, as its operator.
pub fn operator(url: &str) -> anyhow::Result<Client> {
    let token = std::env::var("POWERPLUG_OPERATOR_TOKEN")
        .context("POWERPLUG_OPERATOR_TOKEN: set it to the host's operator token")?;
    Ok(Client::new(url).with_token(token))
}

/// Prints a host's answer, pretty; a refusal is an error that quotes it.
pub fn print(answer: anyhow::Result<Answer>) -> anyhow::Result<()> {
    let body = answer?.ok()?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}
