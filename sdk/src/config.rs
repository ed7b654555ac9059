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
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("config `{key}`: expected an unsigned integer, got {v:?}")),
        }
    }
}
