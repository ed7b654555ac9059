//! Keys that sort as their parts do: integers big-endian, strings followed by
//! a zero byte (names never contain one), fixed-size byte arrays as they are.
//! A range over a prefix is then a range over the bytes.

/// One part of a key.
pub trait Part {
    fn put(&self, out: &mut Vec<u8>);
}

impl Part for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl Part for u32 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl Part for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Part for str {
    fn put(&self, out: &mut Vec<u8>) {
        // A zero inside would end the part early; ids, names and keys are
        // checked before they get here, so strip rather than fail.
        out.extend(self.bytes().filter(|&b| b != 0));
        out.push(0);
    }
}

impl Part for String {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_str().put(out);
    }
}

impl Part for [u8; 32] {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

/// As its hex digits: the keys versions were first stored under.
impl Part for powerplug_domain::Sha256 {
    fn put(&self, out: &mut Vec<u8>) {
        self.hex().put(out);
    }
}

impl Part for powerplug_domain::StrategyKind {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_str().put(out);
    }
}

impl<T: Part + ?Sized> Part for &T {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out);
    }
}

/// The key of these parts, in order.
pub fn of(parts: &[&dyn Part]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    for part in parts {
        part.put(&mut out);
    }
    out
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub fn after_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Reads a key back part by part.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take<const N: usize>(&mut self) -> anyhow::Result<[u8; N]> {
        anyhow::ensure!(self.bytes.len() >= N, "key: {N} bytes expected");
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        Ok(head.try_into()?)
    }

    pub fn u64(&mut self) -> anyhow::Result<u64> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    pub fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    pub fn bool(&mut self) -> anyhow::Result<bool> {
        Ok(self.take::<1>()?[0] != 0)
    }

    pub fn bytes32(&mut self) -> anyhow::Result<[u8; 32]> {
        self.take()
    }

    pub fn str(&mut self) -> anyhow::Result<&'a str> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| anyhow::anyhow!("key: unterminated text"))?;
        let (text, rest) = self.bytes.split_at(end);
        self.bytes = &rest[1..];
        Ok(std::str::from_utf8(text)?)
    }
}

/// A u64 value as stored.
pub fn u64_value(bytes: &[u8]) -> anyhow::Result<u64> {
    Ok(u64::from_be_bytes(bytes.try_into()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_their_parts_and_read_back() {
        let mut keys = [
            of(&[&"b", &1u64]),
            of(&[&"a", &u64::MAX]),
            of(&[&"ab", &0u64]),
            of(&[&"a", &2u64]),
        ];
        keys.sort();
        let read: Vec<(String, u64)> = keys
            .iter()
            .map(|k| {
                let mut r = Reader::new(k);
                (r.str().unwrap().to_owned(), r.u64().unwrap())
            })
            .collect();
        assert_eq!(
            read,
            [
                ("a".into(), 2),
                ("a".into(), u64::MAX),
                ("ab".into(), 0),
                ("b".into(), 1)
            ]
        );
        let prefix = of(&[&"a"]);
        let end = after_prefix(&prefix).unwrap();
        assert!(keys.iter().filter(|k| **k >= prefix && **k < end).count() == 2);
        assert_eq!(after_prefix(&[1, 255]), Some(vec![2]));
        assert_eq!(after_prefix(&[255, 255]), None);
    }
}
