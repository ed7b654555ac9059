//! The embedded wallet: a double-entry ledger in the host's redb database.
//!
//! Every change is a transfer between two accounts; money enters only through
//! [`issue`], which debits the issuer's running total, so the balances always add
//! up to what was issued. A transfer carries an idempotency key: repeating it
//! (after a crash, a retry) returns the first transfer instead of moving money
//! twice. Writes take the caller's transaction, so a tick's transfers commit
//! together with the rest of its effects, or not at all.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::storage::existing;

const BALANCES: TableDefinition<&str, u64> = TableDefinition::new("wallet_balances");
const TRANSFERS: TableDefinition<u64, &[u8]> = TableDefinition::new("wallet_transfers");
const BY_KEY: TableDefinition<&str, u64> = TableDefinition::new("wallet_idempotency_keys");
/// (account, transfer number) for every transfer an account took part in.
const BY_ACCOUNT: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("wallet_account_transfers");
const ISSUED: TableDefinition<&str, u64> = TableDefinition::new("wallet_issued");
/// Receive address → the account it pays into.
const ADDRESSES: TableDefinition<&str, &str> = TableDefinition::new("wallet_addresses");
/// Account → how many receive addresses it has handed out.
const ADDRESS_INDEX: TableDefinition<&str, u64> = TableDefinition::new("wallet_address_index");

/// The account money is issued from; it has no balance, only a total issued.
pub const ISSUER: &str = "$issuer";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Position in the ledger, from 1: "transfers since N" is `seq > N`.
    pub seq: u64,
    pub from: String,
    pub to: String,
    pub amount: u64,
    /// Who the payment is for (the payer's id, as in the original).
    pub reference: String,
    pub key: String,
    pub at_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("account: `{0}` is reserved (names starting with `$`)")]
    Reserved(String),
    #[error("amount: must be at least 1")]
    ZeroAmount,
    #[error("to: a transfer needs two different accounts")]
    SameAccount,
    #[error("amount: {account} holds {balance}, cannot pay {amount}")]
    InsufficientFunds {
        account: String,
        balance: u64,
        amount: u64,
    },
    #[error("key: `{key}` was already used for a different transfer")]
    KeyReused { key: String },
    #[error("storage: {0}")]
    Storage(String),
}

impl From<redb::Error> for WalletError {
    fn from(e: redb::Error) -> Self {
        WalletError::Storage(e.to_string())
    }
}

macro_rules! storage {
    ($($e:ty),*) => {$(
        impl From<$e> for WalletError {
            fn from(e: $e) -> Self {
                WalletError::Storage(e.to_string())
            }
        }
    )*};
}
storage!(
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    postcard::Error
);

/// Moves `amount` from `from` to `to` inside `tx`. Repeating a transfer with the
/// same key and the same content returns the first one and moves nothing.
///
/// A refused transfer writes nothing, so the caller may go on with `tx`; after a
/// `Storage` error it must drop `tx` uncommitted.
pub fn transfer(
    tx: &WriteTransaction,
    from: &str,
    to: &str,
    amount: u64,
    reference: &str,
    key: &str,
    at_ms: u64,
) -> Result<Transfer, WalletError> {
    if let Some(reserved) = [from, to].into_iter().find(|a| a.starts_with('$')) {
        return Err(WalletError::Reserved(reserved.to_owned()));
    }
    post(tx, from, to, amount, reference, key, at_ms)
}

/// Issues new money to `to`.
pub fn issue(
    tx: &WriteTransaction,
    to: &str,
    amount: u64,
    key: &str,
    at_ms: u64,
) -> Result<Transfer, WalletError> {
    if to.starts_with('$') {
        return Err(WalletError::Reserved(to.to_owned()));
    }
    post(tx, ISSUER, to, amount, "issue", key, at_ms)
}

fn post(
    tx: &WriteTransaction,
    from: &str,
    to: &str,
    amount: u64,
    reference: &str,
    key: &str,
    at_ms: u64,
) -> Result<Transfer, WalletError> {
    if amount == 0 {
        return Err(WalletError::ZeroAmount);
    }
    if from == to {
        return Err(WalletError::SameAccount);
    }
    let mut transfers = tx.open_table(TRANSFERS)?;
    let mut by_key = tx.open_table(BY_KEY)?;
    if let Some(seq) = by_key.get(key)?.map(|v| v.value()) {
        let first: Transfer = match transfers.get(seq)? {
            Some(bytes) => postcard::from_bytes(bytes.value())?,
            None => {
                return Err(WalletError::Storage(format!(
                    "transfer {seq} of key {key} is missing"
                )));
            }
        };
        let same = first.from == from
            && first.to == to
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

    let mut balances = tx.open_table(BALANCES)?;
    if from == ISSUER {
        let mut issued = tx.open_table(ISSUED)?;
        let total = issued.get(ISSUER)?.map(|v| v.value()).unwrap_or(0);
        let total = total
            .checked_add(amount)
            .ok_or_else(|| WalletError::Storage("issued total overflows".into()))?;
        issued.insert(ISSUER, total)?;
    } else {
        let balance = balances.get(from)?.map(|v| v.value()).unwrap_or(0);
        if balance < amount {
            return Err(WalletError::InsufficientFunds {
                account: from.to_owned(),
                balance,
                amount,
            });
        }
        balances.insert(from, balance - amount)?;
    }
    let to_balance = balances.get(to)?.map(|v| v.value()).unwrap_or(0);
    // Cannot overflow: every balance is at most the issued total, a u64.
    balances.insert(to, to_balance + amount)?;

    let seq = transfers.last()?.map(|(k, _)| k.value()).unwrap_or(0) + 1;
    let record = Transfer {
        seq,
        from: from.to_owned(),
        to: to.to_owned(),
        amount,
        reference: reference.to_owned(),
        key: key.to_owned(),
        at_ms,
    };
    transfers.insert(seq, postcard::to_allocvec(&record)?.as_slice())?;
    by_key.insert(key, seq)?;
    let mut by_account = tx.open_table(BY_ACCOUNT)?;
    by_account.insert((from, seq), ())?;
    by_account.insert((to, seq), ())?;
    Ok(record)
}

/// A fresh receive address for `account`, derived from the wallet seed and the
/// account's address index (the original basic wallet's "new address per
/// transfer"); a payment to it lands in `account`. Inside the caller's
/// transaction, so an address is handed out only if the tick that names it commits.
pub fn receive_address(
    tx: &WriteTransaction,
    seed: &[u8; 32],
    account: &str,
) -> Result<String, WalletError> {
    use sha2::{Digest, Sha256};
    let mut index_table = tx.open_table(ADDRESS_INDEX)?;
    let index = index_table.get(account)?.map(|v| v.value()).unwrap_or(0);
    index_table.insert(account, index + 1)?;
    let digest = Sha256::new()
        .chain_update(b"powerplug/wallet/address/v1")
        .chain_update(seed)
        .chain_update((account.len() as u64).to_be_bytes())
        .chain_update(account)
        .chain_update(index.to_be_bytes())
        .finalize();
    let address = format!("pp1{}", hex::encode(&digest[..20]));
    tx.open_table(ADDRESSES)?.insert(address.as_str(), account)?;
    Ok(address)
}

/// The account a receive address pays into.
pub fn resolve(db: &Database, address: &str) -> Result<Option<String>, WalletError> {
    let tx = db.begin_read()?;
    let Some(table) = existing(&tx, ADDRESSES)? else {
        return Ok(None);
    };
    Ok(table.get(address)?.map(|v| v.value().to_owned()))
}

pub fn balance(db: &Database, account: &str) -> Result<u64, WalletError> {
    let tx = db.begin_read()?;
    let Some(table) = existing(&tx, BALANCES)? else {
        return Ok(0);
    };
    Ok(table.get(account)?.map(|v| v.value()).unwrap_or(0))
}

/// Everything issued so far; the balances add up to it.
pub fn issued(db: &Database) -> Result<u64, WalletError> {
    let tx = db.begin_read()?;
    let Some(table) = existing(&tx, ISSUED)? else {
        return Ok(0);
    };
    Ok(table.get(ISSUER)?.map(|v| v.value()).unwrap_or(0))
}

/// The transfers `account` took part in (incoming and outgoing) after `since`,
/// in ledger order; pass the last `seq` seen to get only new ones.
pub fn transfers_since(
    db: &Database,
    account: &str,
    since: u64,
) -> Result<Vec<Transfer>, WalletError> {
    let tx = db.begin_read()?;
    let (Some(by_account), Some(transfers)) =
        (existing(&tx, BY_ACCOUNT)?, existing(&tx, TRANSFERS)?)
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in by_account.range((account, since.saturating_add(1))..=(account, u64::MAX))? {
        let seq = entry?.0.value().1;
        if let Some(bytes) = transfers.get(seq)? {
            out.push(postcard::from_bytes(bytes.value())?);
        }
    }
    Ok(out)
}

/// Sum of all balances: equals [`issued`] in a consistent ledger.
pub fn total_balances(db: &Database) -> Result<u64, WalletError> {
    let tx = db.begin_read()?;
    let Some(table) = existing(&tx, BALANCES)? else {
        return Ok(0);
    };
    let mut sum = 0u64;
    for entry in table.iter()? {
        sum += entry?.1.value();
    }
    Ok(sum)
}

mod remote;
pub use remote::{Account, Ledger, PayError, PayRequest, RemoteLedger};

#[cfg(test)]
mod tests;
