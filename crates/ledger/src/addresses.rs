//! Receive addresses: a payment request names one, and a payment to it lands
//! in the account that handed it out (the original basic wallet's "new
//! address per transfer").
//!
//! Every address has a number, from 1 in the order handed out, and the
//! address log says whose each is. This ledger's own addresses
//! ([`Enciphered`]) carry their number, so a tick that hands out a quarter
//! of a million logs them in one row, `first..first + count` → account.
//! Addresses of another format (Bech32 on the Tangle, `pp1…` from before)
//! are logged one row each, with their text, and recorded under that text
//! too. Retention lets the oldest go ([`prune_addresses`]).

use powerplug_storage::{Order, ReadTx, Store, WriteTx, key};

use super::prune::{floor, set_floor};
use super::{WalletError, check_account, number};

/// Address number → what it names: see [`Logged`].
pub(super) const ADDRESS_LOG: &str = "wallet_address_log";
/// The text of an address that does not carry its number → its account.
pub(super) const ADDRESSES: &str = "wallet_addresses";
/// Account → how many receive addresses it has handed out.
const ADDRESS_INDEX: &str = "wallet_address_index";
/// The floors' name for addresses: numbered below it, they no longer resolve.
const FLOOR: &str = "addresses";
/// Rows of the log deleted per write transaction.
const CHUNK: usize = 1_000;

/// How receive addresses are written: by default [`Enciphered`] (`pp2…`,
/// this ledger's own); a host that pays out on the IOTA Tangle derives
/// Bech32 addresses from the wallet seed instead (`powerplug-iota`).
pub trait Addresses: Sync {
    /// The addresses of `account` with the account's own indices
    /// `index..index + count`, numbered `number..number + count` in the
    /// address log.
    fn derive(
        &self,
        account: &str,
        index: u64,
        number: u64,
        count: u64,
    ) -> Result<Vec<String>, WalletError>;

    /// Whether an address carries its number (see [`Enciphered`]); if not,
    /// each is logged on its own and recorded under its text.
    fn resolves_itself(&self) -> bool {
        false
    }
}

/// `pp2` and 20 bytes: the address's number in the address log, enciphered
/// under the wallet seed. Only the seed's holder can write one that
/// resolves, and two addresses say nothing of each other, nor how many were
/// handed out between them; [`resolve`] reads the number back.
///
/// A four-round Feistel network over two 10-byte halves with SHA-256 as its
/// round function (Luby–Rackoff: a pseudorandom permutation).
pub struct Enciphered {
    /// SHA-256 with the domain and the seed hashed in (one block), so that
    /// a round costs one compression more.
    keyed: sha2::Sha256,
}

/// The plaintext's bytes after the number: zero, so that an address nobody
/// enciphered deciphers to a number only once in 2^96 tries.
const CHECK: std::ops::Range<usize> = 8..20;
const ROUNDS: u8 = 4;

impl Enciphered {
    pub fn new(seed: &[u8; 32]) -> Self {
        use sha2::Digest;
        let mut block = [0u8; 64];
        let domain = b"powerplug/wallet/address/v2";
        block[..domain.len()].copy_from_slice(domain);
        block[32..].copy_from_slice(seed);
        Self {
            keyed: sha2::Sha256::new().chain_update(block),
        }
    }

    fn round(&self, i: u8, half: &[u8; 10]) -> [u8; 10] {
        use sha2::Digest;
        let digest = (self.keyed.clone())
            .chain_update([i])
            .chain_update(half)
            .finalize();
        let mut out = [0u8; 10];
        out.copy_from_slice(&digest[..10]);
        out
    }

    pub(super) fn encipher(&self, number: u64) -> String {
        let mut block = [0u8; 20];
        block[..8].copy_from_slice(&number.to_be_bytes());
        let (mut l, mut r) = halves(&block);
        for i in 0..ROUNDS {
            (l, r) = (r, xor(l, self.round(i, &r)));
        }
        format!("pp2{}{}", hex::encode(l), hex::encode(r))
    }

    /// The number `address` carries, if it is one of this seed's.
    pub fn number(&self, address: &str) -> Option<u64> {
        let mut block = [0u8; 20];
        hex::decode_to_slice(address.strip_prefix("pp2")?, &mut block).ok()?;
        let (mut l, mut r) = halves(&block);
        for i in (0..ROUNDS).rev() {
            (l, r) = (xor(r, self.round(i, &l)), l);
        }
        block[..10].copy_from_slice(&l);
        block[10..].copy_from_slice(&r);
        if block[CHECK].iter().any(|b| *b != 0) {
            return None;
        }
        let mut number = [0u8; 8];
        number.copy_from_slice(&block[..8]);
        Some(u64::from_be_bytes(number))
    }
}

fn halves(block: &[u8; 20]) -> ([u8; 10], [u8; 10]) {
    let mut l = [0u8; 10];
    let mut r = [0u8; 10];
    l.copy_from_slice(&block[..10]);
    r.copy_from_slice(&block[10..]);
    (l, r)
}

fn xor(mut a: [u8; 10], b: [u8; 10]) -> [u8; 10] {
    a.iter_mut().zip(b).for_each(|(a, b)| *a ^= b);
    a
}

impl Addresses for Enciphered {
    /// On every core: four compressions each, a quarter of a million a tick.
    fn derive(
        &self,
        _account: &str,
        _index: u64,
        number: u64,
        count: u64,
    ) -> Result<Vec<String>, WalletError> {
        use rayon::prelude::*;
        Ok((number..number + count)
            .into_par_iter()
            .map(|n| self.encipher(n))
            .collect())
    }

    fn resolves_itself(&self) -> bool {
        true
    }
}

/// A fresh receive address for `account`. Inside the caller's transaction,
/// so an address is handed out only if the tick that names it commits.
pub fn receive_address(
    tx: &dyn WriteTx,
    seed: &[u8; 32],
    account: &str,
) -> Result<String, WalletError> {
    let mut addresses = receive_addresses(tx, &Enciphered::new(seed), account, 1)?;
    addresses
        .pop()
        .ok_or_else(|| WalletError::Storage("no address handed out".into()))
}

/// `count` fresh receive addresses of `account` at once: a tick that bills a
/// quarter of a million consumers asks for that many, and the counters are
/// read and written once, not once each.
pub fn receive_addresses(
    tx: &dyn WriteTx,
    format: &dyn Addresses,
    account: &str,
    count: u64,
) -> Result<Vec<String>, WalletError> {
    let reserved = reserve_addresses(tx, format, account, count)?;
    record_addresses(tx, &reserved)?;
    Ok(reserved.addresses)
}

/// Receive addresses numbered and derived, not yet recorded: see
/// [`reserve_addresses`].
#[derive(Debug)]
pub struct Reserved {
    account: String,
    /// The first one's number in the address log.
    first_number: u64,
    /// Whether each is logged on its own and recorded under its text
    /// ([`Addresses::resolves_itself`]).
    by_text: bool,
    pub addresses: Vec<String>,
}

/// [`receive_addresses`] in two steps, so that a caller can use the
/// addresses (a grid tick seals them into its payment requests, on every
/// core) while the same transaction records them. Nothing else may hand out
/// addresses in the transaction before [`record_addresses`].
pub fn reserve_addresses(
    tx: &dyn WriteTx,
    format: &dyn Addresses,
    account: &str,
    count: u64,
) -> Result<Reserved, WalletError> {
    check_account(account)?;
    let k = key::of(&[&account]);
    let index = number(tx, ADDRESS_INDEX, &k)?;
    tx.put(ADDRESS_INDEX, &k, &(index + count).to_be_bytes())?;
    let first_number = next_address(tx)?;
    let addresses = format.derive(account, index, first_number, count)?;
    if addresses.len() as u64 != count {
        return Err(WalletError::Storage(format!(
            "{} addresses derived, {count} asked for",
            addresses.len()
        )));
    }
    Ok(Reserved {
        account: account.to_owned(),
        first_number,
        by_text: !format.resolves_itself(),
        addresses,
    })
}

/// A row of the address log, keyed by its first number: a run of addresses
/// that carry their numbers, as a zero byte (no address text starts with
/// one), the count and the account; or one address of another format, as
/// its text.
enum Logged<'a> {
    Run { count: u64, account: &'a [u8] },
    Text(&'a str),
}

impl<'a> Logged<'a> {
    fn of(row: &'a [u8]) -> Result<Self, WalletError> {
        let bad = || WalletError::Storage("a row of the address log is damaged".into());
        match row.split_first() {
            Some((0, run)) => {
                let (count, account) = run.split_first_chunk::<8>().ok_or_else(bad)?;
                Ok(Self::Run {
                    count: u64::from_be_bytes(*count),
                    account,
                })
            }
            _ => Ok(Self::Text(std::str::from_utf8(row).map_err(|_| bad())?)),
        }
    }

    /// How many numbers the row holds.
    fn len(&self) -> u64 {
        match self {
            Self::Run { count, .. } => *count,
            Self::Text(_) => 1,
        }
    }
}

/// Records reserved addresses: a run in one row of the log; any other, a
/// row each and an entry under its text.
pub fn record_addresses(tx: &dyn WriteTx, reserved: &Reserved) -> Result<(), WalletError> {
    let count = reserved.addresses.len() as u64;
    if count == 0 {
        return Ok(());
    }
    let account = reserved.account.as_bytes();
    if !reserved.by_text {
        let mut run = Vec::with_capacity(9 + account.len());
        run.push(0);
        run.extend_from_slice(&count.to_be_bytes());
        run.extend_from_slice(account);
        return Ok(tx.put(ADDRESS_LOG, &key::of(&[&reserved.first_number]), &run)?);
    }
    for (n, address) in (reserved.first_number..).zip(&reserved.addresses) {
        tx.put(ADDRESS_LOG, &key::of(&[&n]), address.as_bytes())?;
    }
    // In key order: addresses are random, and a B-tree takes a batch of
    // keys in order page after page (each page copied and written once)
    // where random order goes back and forth across the whole tree.
    let mut keys: Vec<Vec<u8>> = (reserved.addresses.iter()).map(|a| key::of(&[a])).collect();
    keys.sort_unstable();
    for k in keys {
        tx.put(ADDRESSES, &k, account)?;
    }
    Ok(())
}

/// The row of the log that holds number `n`, if any: the last that starts
/// at or below it (it may end before `n`).
fn row_at(tx: &dyn ReadTx, n: u64) -> Result<Option<(u64, Vec<u8>)>, WalletError> {
    let end = key::of(&[&n.saturating_add(1)]);
    match tx
        .range(ADDRESS_LOG, &[], Some(&end), Order::Descending, 1)?
        .pop()
    {
        Some((k, row)) => Ok(Some((key::Reader::new(&k).u64()?, row))),
        None => Ok(None),
    }
}

/// The account a receive address pays into: for one of `seed`'s own
/// (`pp2…`) the account its number's run was logged for; for any other the
/// one recorded under its text. `None`: no such address, or retention let
/// it go.
pub fn resolve(
    db: &dyn Store,
    seed: &[u8; 32],
    address: &str,
) -> Result<Option<String>, WalletError> {
    let tx = db.read()?;
    let account = match Enciphered::new(seed).number(address) {
        Some(n) if n < floor(&*tx, FLOOR)? => None,
        Some(n) => match row_at(&*tx, n)? {
            Some((first, row)) => match Logged::of(&row)? {
                Logged::Run { count, account } if n - first < count => Some(account.to_vec()),
                // Past the run's end, or another format's number.
                _ => None,
            },
            None => None,
        },
        None => tx.get(ADDRESSES, &key::of(&[&address]))?,
    };
    account
        .map(|bytes| String::from_utf8(bytes).map_err(|e| WalletError::Storage(e.to_string())))
        .transpose()
}

/// Receive addresses numbered below this no longer resolve.
pub fn addresses_floor(db: &dyn Store) -> Result<u64, WalletError> {
    floor(&*db.read()?, FLOOR)
}

/// How many receive addresses were ever handed out.
pub fn addresses_issued(db: &dyn Store) -> Result<u64, WalletError> {
    Ok(next_address(&*db.read()?)? - 1)
}

/// The next address number, inside the transaction that hands it out:
/// after the last logged, and never below the floor (the log may have been
/// pruned empty; a number below it would never be pruned).
fn next_address(tx: &dyn ReadTx) -> Result<u64, WalletError> {
    let after_last = match row_at(tx, u64::MAX - 1)? {
        Some((first, row)) => first + Logged::of(&row)?.len(),
        None => 1,
    };
    Ok(after_last.max(floor(tx, FLOOR)?))
}

/// Raises the addresses' floor to `below`: the receive addresses numbered
/// below it no longer resolve (a payment to one is refused, and says to pay
/// the grid's account instead). A run partly below the floor stays until
/// all of it is. A thousand rows a transaction, so that ticks interleave.
pub fn prune_addresses(db: &dyn Store, below: u64) -> Result<super::Pruned, WalletError> {
    let mut done = super::Pruned::default();
    loop {
        let tx = db.write()?;
        let from = floor(&*tx, FLOOR)?;
        if from >= below {
            return Ok(done);
        }
        let start = match row_at(&*tx, from)? {
            Some((first, _)) => first,
            None => from,
        };
        let (start, end) = (key::of(&[&start]), key::of(&[&below]));
        let rows = tx.range(ADDRESS_LOG, &start, Some(&end), Order::Ascending, CHUNK)?;
        // Every row below `below` seen: the floor goes all the way.
        let mut to = below;
        for (i, (k, row)) in rows.iter().enumerate() {
            let first = key::Reader::new(k).u64()?;
            let logged = Logged::of(row)?;
            let after = first + logged.len();
            if after > below {
                break;
            }
            if let Logged::Text(text) = logged {
                let entry = key::of(&[&text]);
                tx.remove(ADDRESSES, &entry)?;
                done.bytes += entry.len() as u64;
            }
            tx.remove(ADDRESS_LOG, k)?;
            done.deleted += logged.len();
            done.bytes += (k.len() + row.len()) as u64;
            if i + 1 == CHUNK {
                to = after;
            }
        }
        set_floor(&*tx, FLOOR, to.max(from))?;
        tx.commit()?;
    }
}
