//! One message on the wire: signed by the author over its own address and the
//! next one, and for restricted channels encrypted with the side key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{Address, Message};

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"powerplug/channel/message/v1";

#[derive(Serialize, Deserialize)]
struct Envelope {
    version: u8,
    next: Address,
    /// Set when the body is encrypted.
    nonce: Option<[u8; 24]>,
    body: Vec<u8>,
    signature: Vec<u8>,
}

fn signed_bytes(
    address: &Address,
    next: &Address,
    nonce: &Option<[u8; 24]>,
    body: &[u8],
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(DOMAIN.len() + 64 + 25 + body.len());
    bytes.extend_from_slice(DOMAIN);
    bytes.extend_from_slice(&address.0);
    bytes.extend_from_slice(&next.0);
    match nonce {
        Some(n) => {
            bytes.push(1);
            bytes.extend_from_slice(n);
        }
        None => bytes.push(0),
    }
    bytes.extend_from_slice(body);
    bytes
}

fn aad(address: &Address, next: &Address) -> [u8; 64] {
    let mut aad = [0; 64];
    aad[..32].copy_from_slice(&address.0);
    aad[32..].copy_from_slice(&next.0);
    aad
}

pub(crate) fn seal(
    author: &SigningKey,
    side_key: Option<&[u8; 32]>,
    address: &Address,
    next: &Address,
    message: &Message,
) -> anyhow::Result<Vec<u8>> {
    let plain = postcard::to_allocvec(message)?;
    let (nonce, body) = match side_key {
        None => (None, plain),
        Some(key) => {
            let mut nonce = [0u8; 24];
            getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let cipher = XChaCha20Poly1305::new(key.into());
            let sealed = cipher
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &plain,
                        aad: &aad(address, next),
                    },
                )
                .map_err(|_| anyhow::anyhow!("encryption failed"))?;
            (Some(nonce), sealed)
        }
    };
    let signature = author
        .sign(&signed_bytes(address, next, &nonce, &body))
        .to_bytes()
        .to_vec();
    Ok(postcard::to_allocvec(&Envelope {
        version: VERSION,
        next: *next,
        nonce,
        body,
        signature,
    })?)
}

/// The envelope in `bytes`, if it is one and links to `expected_next`.
fn linked(expected_next: &Address, bytes: &[u8]) -> Option<Envelope> {
    let envelope: Envelope = postcard::from_bytes(bytes).ok()?;
    (envelope.version == VERSION && envelope.next == *expected_next).then_some(envelope)
}

/// The envelope in `bytes`, if the author signed it for this address and link.
fn signed(
    author: &VerifyingKey,
    address: &Address,
    expected_next: &Address,
    bytes: &[u8],
) -> Option<Envelope> {
    let envelope = linked(expected_next, bytes)?;
    let signature = Signature::from_slice(&envelope.signature).ok()?;
    author
        .verify(
            &signed_bytes(address, &envelope.next, &envelope.nonce, &envelope.body),
            &signature,
        )
        .ok()?;
    Some(envelope)
}

/// Whether `bytes` is a message the author signed for this address and link,
/// without reading it: a store checks this before it keeps anything, so only a
/// channel's author can fill the channel's addresses.
pub fn is_signed(
    author: &VerifyingKey,
    address: &Address,
    expected_next: &Address,
    bytes: &[u8],
) -> bool {
    signed(author, address, expected_next, bytes).is_some()
}

/// One message to check with [`are_signed`].
pub struct Claim<'a> {
    pub author: &'a [u8; 32],
    pub address: Address,
    pub next: Address,
    pub bytes: &'a [u8],
}

/// [`is_signed`] for many messages at once: their signatures are checked
/// together (Ed25519 batch verification, about twice as fast per signature),
/// and one by one only when the batch fails, to find which. Answers per
/// claim.
pub fn are_signed(claims: &[Claim<'_>]) -> Vec<bool> {
    let parsed: Vec<Option<(VerifyingKey, Signature, Vec<u8>)>> = claims
        .iter()
        .map(|c| {
            let author = VerifyingKey::from_bytes(c.author).ok()?;
            let envelope = linked(&c.next, c.bytes)?;
            let signature = Signature::from_slice(&envelope.signature).ok()?;
            let signed = signed_bytes(&c.address, &envelope.next, &envelope.nonce, &envelope.body);
            Some((author, signature, signed))
        })
        .collect();
    let whole: Vec<&(VerifyingKey, Signature, Vec<u8>)> = parsed.iter().flatten().collect();
    let messages: Vec<&[u8]> = whole.iter().map(|(_, _, m)| m.as_slice()).collect();
    let signatures: Vec<Signature> = whole.iter().map(|(_, s, _)| *s).collect();
    let keys: Vec<VerifyingKey> = whole.iter().map(|(k, _, _)| *k).collect();
    let all_good = ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
    parsed
        .iter()
        .map(|p| match p {
            None => false,
            Some(_) if all_good => true,
            Some((author, signature, signed)) => author.verify(signed, signature).is_ok(),
        })
        .collect()
}

/// The message at `address`, if `bytes` is one that the author signed for this
/// address and link, readable with `side_key`. `None` for anything else.
pub fn open(
    author: &VerifyingKey,
    side_key: Option<&[u8; 32]>,
    address: &Address,
    expected_next: &Address,
    bytes: &[u8],
) -> Option<Message> {
    read(
        signed(author, address, expected_next, bytes)?,
        side_key,
        address,
    )
}

/// [`open`] for bytes whose signature [`are_signed`] found good for this
/// address and link: only the link is looked at again, and the body decrypted.
pub fn open_signed(
    side_key: Option<&[u8; 32]>,
    address: &Address,
    expected_next: &Address,
    bytes: &[u8],
) -> Option<Message> {
    read(linked(expected_next, bytes)?, side_key, address)
}

/// The message in an envelope whose signature was checked.
fn read(envelope: Envelope, side_key: Option<&[u8; 32]>, address: &Address) -> Option<Message> {
    let plain = match (side_key, envelope.nonce) {
        (None, None) => envelope.body,
        (Some(key), Some(nonce)) => XChaCha20Poly1305::new(key.into())
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &envelope.body,
                    aad: &aad(address, &envelope.next),
                },
            )
            .ok()?,
        // A restricted reader refuses plaintext and a public reader cannot decrypt.
        _ => return None,
    };
    postcard::from_bytes(&plain).ok()
}
