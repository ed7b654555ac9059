//! The tick's time as a tariff reads it: hour of day, day of week, day
//! number, at an offset from UTC (the host's clock is UTC milliseconds).
//!
//! ```
//! use powerplug_sdk::time::{Local, Weekday};
//! // 2026-01-02T23:30Z is Saturday 00:30 at UTC+1.
//! let t = Local::at(1_767_396_600_000, 60);
//! assert_eq!((t.weekday, t.hour, t.minute), (Weekday::Sat, 0, 30));
//! assert!(t.weekday.is_weekend());
//! ```

pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
pub const DAY_MS: u64 = 24 * HOUR_MS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub fn is_weekend(self) -> bool {
        matches!(self, Weekday::Sat | Weekday::Sun)
    }
}

/// A moment in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// Local days since 1970-01-01: the same number all day long, so a
    /// change of day is a change of this number (a daily allowance resets).
    pub day: i64,
    pub weekday: Weekday,
    pub hour: u8,
    pub minute: u8,
}

impl Local {
    /// `now_ms` (UTC milliseconds, as in a tick's input) at `offset_minutes`
    /// from UTC (60 for UTC+1, -300 for UTC-5; daylight saving is the
    /// strategy's to model, e.g. with a setting).
    pub fn at(now_ms: u64, offset_minutes: i64) -> Self {
        let local_ms = i128::from(now_ms) + i128::from(offset_minutes) * i128::from(MINUTE_MS);
        let day = local_ms.div_euclid(i128::from(DAY_MS));
        let in_day = local_ms.rem_euclid(i128::from(DAY_MS)) as u64;
        // 1970-01-01 was a Thursday.
        const FROM_THURSDAY: [Weekday; 7] = [
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
        ];
        Self {
            day: day as i64,
            weekday: FROM_THURSDAY[day.rem_euclid(7) as usize],
            hour: (in_day / HOUR_MS) as u8,
            minute: (in_day / MINUTE_MS % 60) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_move_the_hour_and_the_day_across_midnight() {
        // 2026-01-01T00:15Z, a Thursday.
        let t = 1_767_226_500_000;
        let utc = Local::at(t, 0);
        assert_eq!((utc.weekday, utc.hour, utc.minute), (Weekday::Thu, 0, 15));
        let new_york = Local::at(t, -300);
        assert_eq!((new_york.weekday, new_york.hour), (Weekday::Wed, 19));
        assert_eq!(new_york.day, utc.day - 1);
        assert!(!new_york.weekday.is_weekend());
        // Before 1970 locally: the day number goes negative, not wrapping.
        let early = Local::at(0, -60);
        assert_eq!(
            (early.day, early.weekday, early.hour),
            (-1, Weekday::Wed, 23)
        );
    }
}
