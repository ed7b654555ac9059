//! Authenticated, append-only channels: the seed's IOTA MAM, with modern
//! cryptography.
//!
//! A channel belongs to an author key (Ed25519). Its messages are chained: the
//! message at index `i` lives at `address(root, i)` and commits to the address of
//! the next one, so a reader starts at the root, follows the chain and remembers
//! where it stopped. Addresses are hashes of the root, so an observer of the store
//! learns nothing of the root from them. *Restricted* channels encrypt with a side
//! key (XChaCha20-Poly1305, random nonces) and sign; *public* ones only sign. A
//! reader drops whatever at an address fails its signature, chain link or
//! decryption, and keeps the first valid message there: junk written to the same
//! address is ignored, not fatal.
//!
//! `hello` opens a channel, `goodbye` closes it; a reader refuses a channel that
//! does not open with `hello`. Messages travel through a [`Transport`], so nothing
//! here assumes where they are stored: [`EmbeddedTransport`] keeps them in the
//! host's redb database, [`HttpTransport`] another host's store over HTTP,
//! [`MemoryTransport`] memory.

mod embedded;
pub mod envelope;
mod feed;
mod http;
mod reader;
mod transport;
mod writer;

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use embedded::{
    EmbeddedTransport, MAX_MESSAGE_BYTES, Snapshot, forget_in, messages_in, prefetch_in,
    store_after, store_in,
};
pub use feed::note_written;
pub use http::{
    Addressed, BATCH, Batch, HttpTransport, ManyMessages, Messages, READ_BATCH, READ_BYTES,
    ReadMany, RefusedMessage, Stored, TIMELINE_HEADER, Timeline, agent, agent_on,
};
pub use reader::{ChannelReader, MAX_PER_POLL, Poll, ReadError};
pub use transport::{MemoryTransport, Refused, Source, Transport};
pub use writer::ChannelWriter;

/// Where one message of a channel is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address(pub [u8; 32]);

impl Address {
    /// The address of message `index` of the channel with this root.
    pub fn of(root: &[u8; 32], index: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"powerplug/channel/address/v1");
        h.update(root);
        h.update(index.to_be_bytes());
        Address(h.finalize().into())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", &hex::encode(self.0)[..16])
    }
}

/// A sealed message on its way: message `index` of `author`'s channel, to be
/// stored at `address`. A host's store takes an outside message only when it
/// can check it: the author is registered there, the index is where its channel
/// goes on, and the author signed the bytes for that address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub author: [u8; 32],
    pub index: u64,
    pub address: Address,
    pub bytes: Vec<u8>,
}

/// What a reader must be given (at registration) to follow a channel.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub root: [u8; 32],
    /// The author's Ed25519 public key.
    pub author: [u8; 32],
    /// Present for restricted channels.
    pub side_key: Option<[u8; 32]>,
}

impl fmt::Debug for ChannelInfo {
    // Never print the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelInfo")
            .field("author", &hex::encode(self.author))
            .field("restricted", &self.side_key.is_some())
            .finish_non_exhaustive()
    }
}

/// What a channel carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Hello,
    Goodbye,
    Data(Vec<u8>),
}

pub use powerplug_storage::private::random32;

#[cfg(test)]
mod tests;
