//! Powerplug on the IOTA Tangle, **Stardust protocol** (Shimmer and IOTA
//! between 2023 and May 2025), through the design's `iota-client`:
//! - [`IotaTransport`]: a channel transport whose messages are tagged basic
//!   outputs;
//! - [`anchor`]: each grid tick's settlement posted as tagged data, and read
//!   back to verify a recorded tick;
//! - [`Bech32Wallet`]: receive addresses in IOTA's format, one per transfer
//!   index, as the original's wallet made them.
//!
//! Tested against [`emulator`], a loopback node that checks what it is sent
//! with the client's own types. Today's IOTA mainnet runs *Rebased* (a
//! different ledger and API), which this crate does not speak.

mod address;
pub mod anchor;
pub mod emulator;
mod node;
mod transport;

pub use address::Bech32Wallet;
pub use node::{Node, NodeConfig};
pub use transport::{IotaTransport, MAX_AT_ADDRESS};
