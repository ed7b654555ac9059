use crate::Setting;

/// A strategy's settings, as the operator wrote them in the host's config.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    settings: &'a [Setting],
}

impl<'a> Config<'a> {
    pub fn new(settings: &'a [Setting]) -> Self {
        Self { settings }
    }

    /// The raw value of `key`, if set (the last entry wins).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.settings
            .iter()
            .rev()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// `key` as an unsigned integer, or `default` when it is not set.
    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, crate::Error> {
        self.parsed_or(key, default, "an unsigned integer")
    }

    /// `key` as a signed integer (an offset in hours, a correction in Wh), or
    /// `default` when it is not set.
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64, crate::Error> {
        self.parsed_or(key, default, "an integer")
    }

    /// `key` as `true` or `false`, or `default` when it is not set.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, crate::Error> {
        self.parsed_or(key, default, "true or false")
    }

    fn parsed_or<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
        expected: &str,
    ) -> Result<T, crate::Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("config `{key}`: expected {expected}, got {v:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &str) -> Setting {
        Setting {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn the_last_entry_wins_and_bad_numbers_name_their_key() {
        let settings = [
            setting("price", "5"),
            setting("price", " 7 "),
            setting("quantum", "-1"),
        ];
        let config = Config::new(&settings);
        assert_eq!(config.u64_or("price", 1), Ok(7));
        assert_eq!(config.u64_or("missing", 3), Ok(3));
        let err = config.u64_or("quantum", 40).unwrap_err();
        assert!(err.contains("`quantum`") && err.contains("\"-1\""), "{err}");
    }

    #[test]
    fn signed_integers_and_booleans_have_getters_that_name_their_key() {
        let settings = [
            setting("utc-offset-hours", " -5 "),
            setting("weekend-discount", "true"),
            setting("peak", "yes"),
        ];
        let config = Config::new(&settings);
        assert_eq!(config.i64_or("utc-offset-hours", 0), Ok(-5));
        assert_eq!(config.i64_or("missing", 2), Ok(2));
        assert_eq!(config.bool_or("weekend-discount", false), Ok(true));
        assert_eq!(config.bool_or("missing", true), Ok(true));
        let err = config.bool_or("peak", false).unwrap_err();
        assert!(
            err.contains("`peak`") && err.contains("true or false"),
            "{err}"
        );
        let err = config.i64_or("weekend-discount", 0).unwrap_err();
        assert!(err.contains("expected an integer"), "{err}");
    }
}
