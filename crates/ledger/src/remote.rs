//! The wallet as an entity without a ledger of its own sees it: the ledger of
//! the grid it registered with, over HTTP, under its credential. Only its own
//! account can be read or debited.

use serde::{Deserialize, Serialize};

use super::{Tokens, Transfer};

/// An entity's view of its account.
pub trait Ledger: Send + Sync {
    /// Pays `amount` from the entity's account to a receive address or account.
    /// The same `key` again returns the first transfer and moves nothing.
    fn pay(&self, to: &str, amount: Tokens, key: &str) -> Result<Transfer, PayError>;
    /// The account's transfers after ledger position `since`.
    fn transfers_since(&self, since: u64) -> anyhow::Result<Vec<Transfer>>;
    fn balance(&self) -> anyhow::Result<Tokens>;
}

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The ledger said no (insufficient funds, unknown address): retrying the
    /// same payment will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// The ledger could not be reached or failed: retry with the same key.
    #[error("unavailable: {0:#}")]
    Unavailable(anyhow::Error),
}

/// Body of `POST /wallet/transfers`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    pub to: String,
    pub amount: Tokens,
    pub key: String,
}

/// One payment of `POST /wallet/transfers/batch`, under its payer's credential.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchPayment {
    pub credential: String,
    pub to: String,
    pub amount: Tokens,
    pub key: String,
}

/// `POST /wallet/transfers/batch`: many payers' payments in one ledger write.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentBatch)]
pub struct Batch {
    pub payments: Vec<BatchPayment>,
}

/// Per payment, in order: the transfer, or why it was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Paid(Transfer),
    Refused { error: String, field: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BatchAnswer {
    pub outcomes: Vec<Outcome>,
}

/// Payments per batch request.
pub const PAY_BATCH: usize = 256;

/// Sends payments of many payers in batches; a payment is `Err(Refused)` if
/// the ledger said no, and the whole call fails if the ledger cannot be reached
/// (then every payment of the failed batch is retried with its key).
pub fn pay_batch(
    agent: &ureq::Agent,
    base: &str,
    payments: &[BatchPayment],
) -> Result<Vec<Result<Transfer, PayError>>, PayError> {
    let base = base.trim_end_matches('/');
    let mut out = Vec::with_capacity(payments.len());
    for chunk in payments.chunks(PAY_BATCH) {
        let body = Batch {
            payments: chunk.to_vec(),
        };
        let mut response = agent
            .post(&format!("{base}/wallet/transfers/batch"))
            .send_json(&body)
            .map_err(|e| PayError::Unavailable(e.into()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(PayError::Unavailable(anyhow::anyhow!("{status} {text}")));
        }
        let answer: BatchAnswer = response
            .body_mut()
            .read_json()
            .map_err(|e| PayError::Unavailable(e.into()))?;
        if answer.outcomes.len() != chunk.len() {
            return Err(PayError::Unavailable(anyhow::anyhow!("batch: wrong count")));
        }
        out.extend(answer.outcomes.into_iter().map(|o| match o {
            Outcome::Paid(t) => Ok(t),
            Outcome::Refused { error, field } => {
                Err(PayError::Refused(format!("{field}: {error}")))
            }
        }));
    }
    Ok(out)
}

/// Body of `GET /wallet` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Account {
    pub account: String,
    pub balance: Tokens,
    pub transfers: Vec<Transfer>,
    /// Where the whole ledger is (its newest transfer's `seq`): a ledger
    /// restored from a backup may be behind a cursor kept before.
    #[serde(default)]
    pub last_seq: u64,
    /// Transfers before this `seq` are no longer held (retention), but for
    /// each payer's latest payment: a reader further behind has missed some.
    #[serde(default)]
    pub pruned_below: u64,
}

pub struct RemoteLedger {
    agent: ureq::Agent,
    base: String,
    credential: String,
}

impl RemoteLedger {
    pub fn new(base: &str, credential: &str) -> Self {
        Self::with_agent(powerplug_channel::agent(), base, credential)
    }

    /// Shares an HTTP client (and its connections) with other callers.
    pub fn with_agent(agent: ureq::Agent, base: &str, credential: &str) -> Self {
        Self {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            credential: credential.to_owned(),
        }
    }

    /// Where the whole ledger is (see [`Account::last_seq`]).
    pub fn last_seq(&self) -> anyhow::Result<u64> {
        Ok(self.account(u64::MAX)?.last_seq)
    }

    /// The payment this entity made under `key`, if the ledger holds it.
    pub fn paid_under(&self, key: &str) -> anyhow::Result<Option<Transfer>> {
        Ok(self.get(&format!("key={key}"))?.transfers.pop())
    }

    fn account(&self, since: u64) -> anyhow::Result<Account> {
        self.get(&format!("since={since}"))
    }

    fn get(&self, query: &str) -> anyhow::Result<Account> {
        let mut response = self
            .agent
            .get(&format!("{}/wallet?{query}", self.base))
            .header("authorization", &format!("Bearer {}", self.credential))
            .call()?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "GET /wallet: {status} {}",
            response.body_mut().read_to_string().unwrap_or_default()
        );
        Ok(response.body_mut().read_json()?)
    }
}

impl Ledger for RemoteLedger {
    fn pay(&self, to: &str, amount: Tokens, key: &str) -> Result<Transfer, PayError> {
        let body = PayRequest {
            to: to.to_owned(),
            amount,
            key: key.to_owned(),
        };
        let mut response = self
            .agent
            .post(&format!("{}/wallet/transfers", self.base))
            .header("authorization", &format!("Bearer {}", self.credential))
            .send_json(&body)
            .map_err(|e| PayError::Unavailable(e.into()))?;
        let status = response.status();
        if status.is_success() {
            return response
                .body_mut()
                .read_json()
                .map_err(|e| PayError::Unavailable(e.into()));
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        // Too many requests, or meant for a timeline the grid left (it was
        // restored): the same payment may go through later.
        let again = status.as_u16() == 429 || text.contains(r#""field":"timeline""#);
        if status.is_client_error() && !again {
            Err(PayError::Refused(format!("{status} {text}")))
        } else {
            Err(PayError::Unavailable(anyhow::anyhow!("{status} {text}")))
        }
    }

    fn transfers_since(&self, since: u64) -> anyhow::Result<Vec<Transfer>> {
        Ok(self.account(since)?.transfers)
    }

    fn balance(&self) -> anyhow::Result<Tokens> {
        Ok(self.account(u64::MAX)?.balance)
    }
}
