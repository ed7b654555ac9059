//! The embedded wallet: a double-entry ledger in the host's redb database.
//!
//! Every change is a transfer between two accounts; money enters only through
//! [`issue`], which debits the issuer's running total, so the balances always add
//! up to what was issued. A transfer carries an idempotency key: repeating it
//! (after a crash, a retry) returns the first transfer instead of moving money
//! twice. Writes take the caller's transaction, so a tick's transfers commit
//! together with the rest of its effects, or not at all.
//!
//! Old history goes ([`prune_transfers`], [`prune_addresses`]); balances stay.
//! Receive addresses, and whose each is: [`resolve`], [`Enciphered`].

use serde::{Deserialize, Serialize};

pub use powerplug_domain::{AccountId, Tokens, UnixMs};

use powerplug_storage::{Order, ReadTx, Store, WriteTx, key};

const BALANCES: &str = "wallet_balances";
const TRANSFERS: &str = "wallet_transfers";
const BY_KEY: &str = "wallet_idempotency_keys";
/// (account, transfer number) for every transfer an account took part in.
const BY_ACCOUNT: &str = "wallet_account_transfers";
const ISSUED: &str = "wallet_issued";
/// Payer → the `seq` of its latest payment (kept through pruning).
const LAST_PAID: &str = "wallet_last_paid";

/// The account money is issued from; it has no balance, only a total issued.
pub const ISSUER: &str = "$issuer";

/// An idempotency key of the host's own (a payout, an issue): starts with
/// `$`, which no entity's key (`<id>/<key>`, both valid names) can, so no
/// entity can take a key the host will use.
pub fn host_key(key: &str) -> String {
    format!("${key}")
}

/// Account names are ids (or `$` names of the ledger's own); a zero byte
/// would vanish from the storage key (`"bob\0"` would be `bob`).
fn check_account(account: &str) -> Result<(), WalletError> {
    if account.is_empty() || account.contains('\0') {
        return Err(WalletError::BadAccount(
            account.escape_default().to_string(),
        ));
    }
    Ok(())
}

fn number(tx: &dyn ReadTx, table: &str, k: &[u8]) -> Result<u64, WalletError> {
    match tx.get(table, k)? {
        Some(bytes) => Ok(key::u64_value(&bytes)?),
        None => Ok(0),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Position in the ledger, from 1: "transfers since N" is `seq > N`.
    pub seq: u64,
    pub from: AccountId,
    pub to: AccountId,
    pub amount: Tokens,
    /// Who the payment is for (the payer's id, as in the original).
    pub reference: String,
    pub key: String,
    pub at_ms: UnixMs,
}

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("account: `{0}` is reserved (names starting with `$`)")]
    Reserved(String),
    #[error("account: `{0}` is no valid account name")]
    BadAccount(String),
    #[error("amount: must be at least 1")]
    ZeroAmount,
    #[error("to: a transfer needs two different accounts")]
    SameAccount,
    #[error("amount: {account} holds {balance}, cannot pay {amount}")]
    InsufficientFunds {
        account: String,
        balance: Tokens,
        amount: Tokens,
    },
    #[error("key: `{key}` was already used for a different transfer")]
    KeyReused { key: String },
    #[error("storage: {0}")]
    Storage(String),
}

impl WalletError {
    /// The request field the error is about (`""`: none, a fault of ours).
    pub fn field(&self) -> &'static str {
        match self {
            Self::Reserved(_) | Self::BadAccount(_) => "account",
            Self::ZeroAmount | Self::InsufficientFunds { .. } => "amount",
            Self::SameAccount => "to",
            Self::KeyReused { .. } => "key",
            Self::Storage(_) => "",
        }
    }
}

impl From<anyhow::Error> for WalletError {
    fn from(e: anyhow::Error) -> Self {
        WalletError::Storage(format!("{e:#}"))
    }
}

impl From<postcard::Error> for WalletError {
    fn from(e: postcard::Error) -> Self {
        WalletError::Storage(e.to_string())
    }
}

/// Moves `amount` from `from` to `to` inside `tx`. Repeating a transfer with the
/// same key and the same content returns the first one and moves nothing.
///
/// A refused transfer writes nothing, so the caller may go on with `tx`; after a
/// `Storage` error it must drop `tx` uncommitted.
pub fn transfer(
    tx: &dyn WriteTx,
    from: &str,
    to: &str,
    amount: Tokens,
    reference: &str,
    key: &str,
    at_ms: UnixMs,
) -> Result<Transfer, WalletError> {
    if let Some(reserved) = [from, to].into_iter().find(|a| a.starts_with('$')) {
        return Err(WalletError::Reserved(reserved.to_owned()));
    }
    post(tx, from, to, amount, reference, key, at_ms)
}

/// Issues new money to `to`.
pub fn issue(
    tx: &dyn WriteTx,
    to: &str,
    amount: Tokens,
    key: &str,
    at_ms: UnixMs,
) -> Result<Transfer, WalletError> {
    if to.starts_with('$') {
        return Err(WalletError::Reserved(to.to_owned()));
    }
    post(tx, ISSUER, to, amount, "issue", key, at_ms)
}

fn post(
    tx: &dyn WriteTx,
    from: &str,
    to: &str,
    amount: Tokens,
    reference: &str,
    key: &str,
    at_ms: UnixMs,
) -> Result<Transfer, WalletError> {
    check_account(from)?;
    check_account(to)?;
    if key.contains('\0') {
        return Err(WalletError::BadAccount(key.escape_default().to_string()));
    }
    if amount == Tokens::ZERO {
        return Err(WalletError::ZeroAmount);
    }
    if from == to {
        return Err(WalletError::SameAccount);
    }
    if let Some(first) = by_key_in(tx, key)? {
        let same = first.from.as_str() == from
            && first.to.as_str() == to
            && first.amount == amount
            && first.reference == reference;
        return if same {
            Ok(first)
        } else {
            Err(WalletError::KeyReused {
                key: key.to_owned(),
            })
        };
    }

    if from == ISSUER {
        let k = key::of(&[&ISSUER]);
        let total = number(tx, ISSUED, &k)?
            .checked_add(amount.get())
            .ok_or_else(|| WalletError::Storage("issued total overflows".into()))?;
        tx.put(ISSUED, &k, &total.to_be_bytes())?;
    } else {
        let k = key::of(&[&from]);
        let balance = number(tx, BALANCES, &k)?;
        let Some(left) = balance.checked_sub(amount.get()) else {
            return Err(WalletError::InsufficientFunds {
                account: from.to_owned(),
                balance: Tokens(balance),
                amount,
            });
        };
        tx.put(BALANCES, &k, &left.to_be_bytes())?;
    }
    let k = key::of(&[&to]);
    // Cannot overflow: every balance is at most the issued total, a u64.
    let to_balance = number(tx, BALANCES, &k)? + amount.get();
    tx.put(BALANCES, &k, &to_balance.to_be_bytes())?;

    let seq = match powerplug_storage::last(tx, TRANSFERS, &[])? {
        Some((k, _)) => key::Reader::new(&k).u64()? + 1,
        None => 1,
    };
    let record = Transfer {
        seq,
        from: from.into(),
        to: to.into(),
        amount,
        reference: reference.to_owned(),
        key: key.to_owned(),
        at_ms,
    };
    tx.put(
        TRANSFERS,
        &key::of(&[&seq]),
        &postcard::to_allocvec(&record)?,
    )?;
    tx.put(BY_KEY, &key::of(&[&key]), &seq.to_be_bytes())?;
    tx.put(BY_ACCOUNT, &key::of(&[&from, &seq]), &[])?;
    tx.put(BY_ACCOUNT, &key::of(&[&to, &seq]), &[])?;
    prune::paid(tx, from, seq)?;
    Ok(record)
}

/// Where the ledger is: the newest transfer's `seq` (0: none yet).
pub fn last_seq(db: &dyn Store) -> Result<u64, WalletError> {
    match powerplug_storage::last(&*db.read()?, TRANSFERS, &[])? {
        Some((k, _)) => Ok(key::Reader::new(&k).u64()?),
        None => Ok(0),
    }
}

/// The transfer made under idempotency key `key`, if there is one.
pub fn by_key(db: &dyn Store, key: &str) -> Result<Option<Transfer>, WalletError> {
    by_key_in(&*db.read()?, key)
}

/// [`by_key`] inside a transaction.
pub fn by_key_in(tx: &dyn ReadTx, key: &str) -> Result<Option<Transfer>, WalletError> {
    let Some(seq) = tx.get(BY_KEY, &key::of(&[&key]))? else {
        return Ok(None);
    };
    let seq = key::u64_value(&seq)?;
    match tx.get(TRANSFERS, &key::of(&[&seq]))? {
        Some(bytes) => Ok(Some(postcard::from_bytes(&bytes)?)),
        None => Err(WalletError::Storage(format!(
            "transfer {seq} of key {key} is missing"
        ))),
    }
}

pub fn balance(db: &dyn Store, account: &str) -> Result<Tokens, WalletError> {
    Ok(Tokens(number(
        &*db.read()?,
        BALANCES,
        &key::of(&[&account]),
    )?))
}

/// Everything issued so far; the balances add up to it.
pub fn issued(db: &dyn Store) -> Result<Tokens, WalletError> {
    Ok(Tokens(number(&*db.read()?, ISSUED, &key::of(&[&ISSUER]))?))
}

/// The transfers `account` took part in (incoming and outgoing) after `since`,
/// in ledger order; pass the last `seq` seen to get only new ones.
pub fn transfers_since(
    db: &dyn Store,
    account: &str,
    since: u64,
) -> Result<Vec<Transfer>, WalletError> {
    transfers_page(db, account, since, usize::MAX)
}

/// At most `limit` of [`transfers_since`]: only those are read from storage.
pub fn transfers_page(
    db: &dyn Store,
    account: &str,
    since: u64,
    limit: usize,
) -> Result<Vec<Transfer>, WalletError> {
    let tx = db.read()?;
    let start = key::of(&[&account, &since.saturating_add(1)]);
    let end = key::after_prefix(&key::of(&[&account]));
    let mut out = Vec::new();
    for (k, _) in tx.range(BY_ACCOUNT, &start, end.as_deref(), Order::Ascending, limit)? {
        let mut r = key::Reader::new(&k);
        r.str()?;
        let seq = r.u64()?;
        if let Some(bytes) = tx.get(TRANSFERS, &key::of(&[&seq]))? {
            out.push(postcard::from_bytes(&bytes)?);
        }
    }
    Ok(out)
}

/// Sum of all balances: equals [`issued`] in a consistent ledger.
pub fn total_balances(db: &dyn Store) -> Result<Tokens, WalletError> {
    Ok(conservation(db)?.held)
}

/// The sum of every balance beside what was issued, from one snapshot, so
/// that the two compare exactly. It reads every balance: a host takes it
/// now and then (`figures` in the roles), not per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Conservation {
    pub held: Tokens,
    pub issued: Tokens,
}

impl Conservation {
    /// No token was lost or created.
    pub fn holds(&self) -> bool {
        self.held == self.issued
    }
}

pub fn conservation(db: &dyn Store) -> Result<Conservation, WalletError> {
    // In pages: a million accounts' rows are never in memory at once.
    const PAGE: usize = 10_000;
    let tx = db.read()?;
    let (mut sum, mut from) = (0u64, Vec::new());
    loop {
        let page = tx.range(BALANCES, &from, None, Order::Ascending, PAGE)?;
        for (_, v) in &page {
            sum = sum.saturating_add(key::u64_value(v)?);
        }
        match page.last() {
            Some((k, _)) if page.len() == PAGE => from = [k.as_slice(), &[0]].concat(),
            _ => break,
        }
    }
    Ok(Conservation {
        held: Tokens(sum),
        issued: Tokens(number(&*tx, ISSUED, &key::of(&[&ISSUER]))?),
    })
}

mod addresses;
pub use addresses::{
    Addresses, Enciphered, Reserved, addresses_floor, addresses_issued, prune_addresses,
    receive_address, receive_addresses, record_addresses, reserve_addresses, resolve,
};

mod prune;
pub use prune::{Pruned, prune_transfers, transfers_floor};

mod remote;
pub use remote::{
    Account, Batch, BatchAnswer, BatchPayment, Ledger, Outcome, PAY_BATCH, PayError, PayRequest,
    RemoteLedger, pay_batch,
};

#[cfg(test)]
mod tests;
