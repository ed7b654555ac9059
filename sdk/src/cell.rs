//! Typed cells: a struct of integers and booleans packed into a cell's four
//! 64-bit words, with `#[derive(Cell)]`:
//!
//! ```
//! use powerplug_sdk::Cell;
//!
//! #[derive(Cell, Debug, Default, PartialEq)]
//! struct Consumer {
//!     usage_wh: u64,
//!     billed_wh: u64,
//!     owed: u64,
//!     tier: u8,      // narrower fields share a word
//!     loyal: bool,
//!     streak: i32,
//! }
//!
//! let c = Consumer { usage_wh: 1_500, tier: 2, loyal: true, streak: -3, ..Default::default() };
//! assert_eq!(Consumer::from_words(c.to_words()), c);
//! ```
//!
//! Fields are laid out in declaration order; one that does not fit in what is
//! left of a word starts the next, and fields that need more than four words
//! do not compile:
//!
//! ```compile_fail
//! #[derive(powerplug_sdk::Cell)]
//! struct TooBig { a: u64, b: u64, c: u64, d: u64, one_more: bool }
//! ```
//! The layout is the books format: reorder or resize a field
//! and you change what the words mean (a new `books_format!` version).

use crate::Words;

/// A strategy's view of a cell's four words.
pub trait Cell: Sized {
    fn from_words(words: Words) -> Self;
    fn to_words(&self) -> Words;
}

/// The raw words are a cell too.
impl Cell for Words {
    fn from_words(words: Words) -> Self {
        words
    }

    fn to_words(&self) -> Words {
        *self
    }
}

/// A field of a typed cell: a value of `BITS` bits.
pub trait CellField: Copy {
    const BITS: u32;
    /// The value in the low `BITS` bits.
    fn to_bits(self) -> u64;
    /// The value of the low `BITS` bits (the rest are zero).
    fn from_bits(bits: u64) -> Self;
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl CellField for $t {
            const BITS: u32 = <$t>::BITS;
            fn to_bits(self) -> u64 {
                self as u64
            }
            fn from_bits(bits: u64) -> Self {
                bits as $t
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64);

// Two's complement in the field's own width: -1i8 is 0xff, not 64 ones.
macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl CellField for $t {
            const BITS: u32 = <$t>::BITS;
            fn to_bits(self) -> u64 {
                self as $u as u64
            }
            fn from_bits(bits: u64) -> Self {
                bits as $u as $t
            }
        }
    )*};
}
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64);

impl CellField for bool {
    const BITS: u32 = 1;
    fn to_bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> Self {
        bits != 0
    }
}

/// Where each field of the given widths goes: (word, shift). Fields fill a
/// word in order; one that does not fit in the rest of a word starts the next.
pub const fn layout<const N: usize>(bits: [u32; N]) -> [(usize, u32); N] {
    let mut at = [(0usize, 0u32); N];
    let (mut word, mut used) = (0usize, 0u32);
    let mut i = 0;
    while i < N {
        if used + bits[i] > 64 {
            word += 1;
            used = 0;
        }
        at[i] = (word, used);
        used += bits[i];
        i += 1;
    }
    assert!(
        word < 4,
        "#[derive(Cell)]: the fields need more than a cell's four 64-bit words"
    );
    at
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

pub fn read<T: CellField>(words: &Words, (word, shift): (usize, u32)) -> T {
    T::from_bits(words[word] >> shift & mask(T::BITS))
}

pub fn write<T: CellField>(words: &mut Words, (word, shift): (usize, u32), value: T) {
    let mask = mask(T::BITS) << shift;
    words[word] = words[word] & !mask | value.to_bits() << shift & mask;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_fill_words_in_order_and_never_straddle() {
        assert_eq!(layout([64, 64]), [(0, 0), (1, 0)]);
        assert_eq!(
            layout([32, 16, 8, 8, 1]),
            [(0, 0), (0, 32), (0, 48), (0, 56), (1, 0)]
        );
        // 40 + 32 > 64: the second starts word 1.
        assert_eq!(layout([40, 32, 32]), [(0, 0), (1, 0), (1, 32)]);
        assert_eq!(layout([64, 64, 64, 64]), [(0, 0), (1, 0), (2, 0), (3, 0)]);
    }

    #[test]
    fn values_round_trip_at_their_extremes_without_touching_neighbours() {
        let mut words = [0; 4];
        let at = layout([8, 16, 1, 64, 32]);
        write(&mut words, at[0], -128i8);
        write(&mut words, at[1], u16::MAX);
        write(&mut words, at[2], true);
        write(&mut words, at[3], i64::MIN);
        write(&mut words, at[4], -1i32);
        assert_eq!(read::<i8>(&words, at[0]), -128);
        assert_eq!(read::<u16>(&words, at[1]), u16::MAX);
        assert!(read::<bool>(&words, at[2]));
        assert_eq!(read::<i64>(&words, at[3]), i64::MIN);
        assert_eq!(read::<i32>(&words, at[4]), -1);
        // Writing a field again replaces only its bits.
        write(&mut words, at[1], 7u16);
        assert_eq!(read::<i8>(&words, at[0]), -128);
        assert_eq!(read::<u16>(&words, at[1]), 7);
        assert!(read::<bool>(&words, at[2]));
    }

    #[test]
    #[should_panic(expected = "more than a cell's four 64-bit words")]
    fn fields_beyond_four_words_are_refused() {
        layout([64, 64, 64, 64, 1]);
    }
}
