//! Write Powerplug strategies in Rust.
//!
//! A strategy implements [`grid::GridStrategy`] or [`producer::ProducerStrategy`] on
//! plain Rust types and exports itself with [`export_grid_strategy!`] or
//! [`export_producer_strategy!`]. Built for `wasm32-unknown-unknown` and wrapped
//! (`powerplug strategy build`), it becomes a component whose only import is
//! Powerplug's `log`. The same code runs natively through [`grid::run`] and
//! [`producer::run`], which is how strategies are unit-tested without WASM.
//!
//! The types are the ones the WIT contract defines (`wit/strategy.wit`), generated
//! by wit-bindgen, so what a test builds is exactly what the host sends.

// The derive names `::powerplug_sdk`; this lets the SDK's own tests use it.
extern crate self as powerplug_sdk;

#[doc(hidden)]
pub mod bindings;
pub mod cell;
mod cells;
mod config;
pub mod grid;
pub mod log;
pub mod payout;
pub mod producer;
pub mod state;
pub mod testing;
pub mod time;

pub use bindings::grid::powerplug::strategy::types::{
    CellBatch, Entity, EntityKind, Metric, Setting, Transfer,
};
pub use cell::{Cell, CellField};
pub use cells::{Cells, Words};
pub use config::Config;
/// `#[derive(Cell)]`: see [`cell`].
pub use powerplug_sdk_derive::Cell;

/// What a strategy returns when it refuses a tick; the host applies nothing.
pub type Error = String;

/// Declares the format of the strategy's books — what its state and its four
/// cell words mean — as `name@version`:
///
/// ```
/// powerplug_sdk::books_format!("basic-grid@1");
/// ```
///
/// The host hands a new version the live state and cells only if it declares
/// the same format; otherwise it starts on empty books (or the books it had
/// when it was last active). Change the version whenever you change what a
/// word or the state means. The declaration is a `powerplug:books` custom
/// section in the component.
#[macro_export]
macro_rules! books_format {
    ($format:literal) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            const FORMAT: &str = $format;
            #[unsafe(link_section = "powerplug:books")]
            #[used]
            static BOOKS: [u8; FORMAT.len()] = $crate::__bytes::<{ FORMAT.len() }>(FORMAT);
        };
    };
}

/// `text`'s bytes as an array, for [`books_format!`].
#[doc(hidden)]
pub const fn __bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}
