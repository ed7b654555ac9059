//! Receive addresses in IOTA's format: the original's basic wallet gave each
//! transfer a new address, the next index of the wallet's seed. Address `n`
//! is the Ed25519 address of the key at BIP-44 path
//! `m/44'/coin'/(n >> 31)'/0'/(n mod 2^31)'` (hardened indices stop at 2^31,
//! so the account carries the high bits), Bech32 with the network's prefix:
//! the same address `iota-client` derives from the same seed, so the wallet
//! that holds the seed can spend what is paid to it.

use iota_client::Seed;
use iota_client::block::address::{Address, Ed25519Address};
use iota_client::crypto::hashes::{Digest, blake2b::Blake2b256};
use iota_client::crypto::keys::slip10::{Chain, Curve};

const HARDENED: u64 = 1 << 31;

/// Derives receive addresses from a wallet seed.
pub struct Bech32Wallet {
    seed: Seed,
    hrp: String,
    coin_type: u32,
}

impl Bech32Wallet {
    /// `hrp`: `smr` (Shimmer), `rms` (its testnet), `iota`, `atoi`.
    pub fn new(seed: &[u8; 32], hrp: &str, coin_type: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !hrp.is_empty()
                && hrp
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "hrp: `{hrp}` is no Bech32 prefix (lowercase letters and digits)"
        );
        Ok(Bech32Wallet {
            seed: Seed::from_bytes(seed),
            hrp: hrp.to_owned(),
            coin_type,
        })
    }

    /// The address for transfer index `n`.
    pub fn address(&self, n: u64) -> anyhow::Result<String> {
        let account = u32::try_from(n / HARDENED)?;
        let index = (n % HARDENED) as u32;
        let chain = Chain::from_u32_hardened(vec![44, self.coin_type, account, 0, index]);
        let public = self
            .seed
            .derive(Curve::Ed25519, &chain)?
            .secret_key()
            .public_key()
            .to_bytes();
        let hash: [u8; 32] = Blake2b256::digest(public).into();
        Ok(Address::Ed25519(Ed25519Address::new(hash)).to_bech32(&self.hrp))
    }
}
