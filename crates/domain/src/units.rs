//! Quantities: energy, money, time. Each wraps a `u64`.

use std::fmt;
use std::iter::Sum;

use serde::{Deserialize, Serialize};

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $unit:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            pub const ZERO: Self = Self(0);

            pub const fn get(self) -> u64 {
                self.0
            }

            /// `None` on overflow: a sum of money or energy never wraps.
            pub fn checked_add(self, other: Self) -> Option<Self> {
                self.0.checked_add(other.0).map(Self)
            }

            /// `None` below zero.
            pub fn checked_sub(self, other: Self) -> Option<Self> {
                self.0.checked_sub(other.0).map(Self)
            }

            pub fn saturating_sub(self, other: Self) -> Self {
                Self(self.0.saturating_sub(other.0))
            }
        }

        impl From<u64> for $name {
            fn from(value: u64) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u64 {
            fn from(value: $name) -> u64 {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.0, $unit)
            }
        }

        /// Sums that cannot overflow in practice (a tick's totals); a sum
        /// that does saturates instead of wrapping, and the ledger's checked
        /// arithmetic refuses it.
        impl Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                Self(iter.fold(0u64, |a, b| a.saturating_add(b.0)))
            }
        }
    };
}

quantity!(
    /// Energy in whole watt-hours.
    Wh,
    "Wh"
);
quantity!(
    /// Money in the smallest unit (a token; the IOTA of the original).
    Tokens,
    "tokens"
);
quantity!(
    /// A moment: milliseconds since the Unix epoch (on the host's clock, which
    /// a demo may speed up).
    UnixMs,
    "ms"
);

impl UnixMs {
    /// The real time now; 0 on a clock set before 1970.
    pub fn now() -> Self {
        Self(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        )
    }

    /// Milliseconds from `earlier` to `self`; 0 if `earlier` is later.
    pub fn since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `2026-01-01 18:30:00 UTC (Thu)`: the calendar time, for people (a
    /// strategy's hour-of-day rules read the same UTC clock).
    pub fn utc(self) -> String {
        let (days, secs) = (self.0 / 86_400_000, self.0 / 1000 % 86_400);
        // Howard Hinnant's civil_from_days, for days since 1970-01-01.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // 1970-01-01 was a Thursday.
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
        format!(
            "{year}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC ({weekday})",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_bare_numbers_in_json() {
        assert_eq!(serde_json::to_string(&Tokens(5)).unwrap(), "5");
        assert_eq!(serde_json::from_str::<Wh>("1200").unwrap(), Wh(1200));
        assert!(serde_json::from_str::<Wh>("-1").is_err());
        assert!(serde_json::from_str::<Tokens>("1.5").is_err());
    }

    #[test]
    fn sums_never_wrap() {
        assert_eq!(Tokens(u64::MAX).checked_add(Tokens(1)), None);
        assert_eq!(Wh(1).checked_sub(Wh(2)), None);
        assert_eq!([Wh(u64::MAX), Wh(1)].into_iter().sum::<Wh>(), Wh(u64::MAX));
        assert_eq!(Tokens(3).to_string(), "3 tokens");
        assert_eq!(UnixMs(10).since(UnixMs(4)), 6);
        assert_eq!(UnixMs(4).since(UnixMs(10)), 0);
    }

    #[test]
    fn a_moment_reads_as_a_utc_calendar_time() {
        assert_eq!(UnixMs(0).utc(), "1970-01-01 00:00:00 UTC (Thu)");
        assert_eq!(
            UnixMs(1_767_292_200_000).utc(),
            "2026-01-01 18:30:00 UTC (Thu)"
        );
        // A leap day, and the day after a century that is not a leap year.
        assert_eq!(
            UnixMs(1_709_251_199_000).utc(),
            "2024-02-29 23:59:59 UTC (Thu)"
        );
        assert_eq!(
            UnixMs(4_107_542_400_000).utc(),
            "2100-03-01 00:00:00 UTC (Mon)"
        );
    }
}
