//! A recorded load profile replayed: a CSV file of consecutive intervals
//! (`interval_ms` each, the first starting at a multiple of the profile's
//! length since the Unix epoch, so a day of 96 quarter hours starts at
//! midnight UTC), replayed in a loop.
//!
//! ```csv
//! time,house-0,house-1
//! 00:00,120,80
//! 00:15,95,82
//! ```
//!
//! A column per meter id, or one column `wh` that every meter without its
//! own reads; other columns (a time for people, other hosts' meters) are
//! skipped. Values are whole Wh per
//! interval. A slice reads the energy of the time it covers, an interval
//! shared between slices by time (integer, so the slices of a loop add up
//! to the profile's total exactly). Stateless: a restarted host reads the
//! same values again.

use std::collections::HashMap;
use std::path::PathBuf;

use powerplug_storage::WriteTx;
use serde::{Deserialize, Serialize};

use crate::Meter;

/// The largest profile file read.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub path: PathBuf,
    /// How long one row covers, in ms.
    pub interval_ms: u64,
}

/// One column: the energy before each row (one more than rows).
struct Series {
    before: Vec<u64>,
}

pub struct Profile {
    interval_ms: u64,
    series: Vec<Series>,
    /// Meter id → its series.
    column: HashMap<String, usize>,
}

impl Profile {
    pub fn open(config: &ProfileConfig, ids: &[String]) -> anyhow::Result<Self> {
        let path = config.path.display();
        anyhow::ensure!(config.interval_ms > 0, "meter.csv.interval_ms: at least 1");
        let size = std::fs::metadata(&config.path)
            .map_err(|e| anyhow::anyhow!("meter.csv.path: {path}: {e}"))?
            .len();
        anyhow::ensure!(
            size <= MAX_FILE_BYTES,
            "meter.csv.path: {path} has {size} bytes, at most {MAX_FILE_BYTES}"
        );
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(&config.path)
            .map_err(|e| anyhow::anyhow!("meter.csv.path: {path}: {e}"))?;
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| anyhow::anyhow!("meter.csv.path: {path}: {e}"))?
            .iter()
            .map(str::to_owned)
            .collect();
        let shared = headers.iter().position(|h| h == "wh");
        let mut column = HashMap::new();
        let mut missing = Vec::new();
        for id in ids {
            match headers.iter().position(|h| h == id).or(shared) {
                Some(i) => {
                    column.insert(id.clone(), i);
                }
                None => missing.push(id.as_str()),
            }
        }
        anyhow::ensure!(
            missing.is_empty(),
            "meter.csv.path: {path} has no column for {} (nor one named `wh`)",
            missing.join(", ")
        );
        // Only the columns read are kept, each once.
        let mut used: Vec<usize> = column.values().copied().collect();
        used.sort_unstable();
        used.dedup();
        let mut series: Vec<Series> = used.iter().map(|_| Series { before: vec![0] }).collect();
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| anyhow::anyhow!("meter.csv.path: {path}: {e}"))?;
            for (s, &i) in series.iter_mut().zip(&used) {
                let cell = record.get(i).unwrap_or("");
                let wh: u64 = cell.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "meter.csv.path: {path}, row {}, column `{}`: `{cell}` is not a whole number of Wh",
                        row + 2,
                        headers[i]
                    )
                })?;
                let total = s.before.last().copied().unwrap_or(0);
                s.before.push(total.checked_add(wh).ok_or_else(|| {
                    anyhow::anyhow!(
                        "meter.csv.path: {path}: column `{}` adds up past 2^64 Wh",
                        headers[i]
                    )
                })?);
            }
        }
        anyhow::ensure!(
            series.first().is_some_and(|s| s.before.len() > 1),
            "meter.csv.path: {path} has no rows"
        );
        let column = column
            .into_iter()
            .filter_map(|(id, i)| Some((id, used.iter().position(|&u| u == i)?)))
            .collect();
        Ok(Self {
            interval_ms: config.interval_ms,
            series,
            column,
        })
    }

    /// The energy of `series` from the epoch to `at_ms`.
    fn energy_until(&self, series: &Series, at_ms: u64) -> u128 {
        let rows = (series.before.len() - 1) as u64;
        let period = u128::from(rows) * u128::from(self.interval_ms);
        let total = u128::from(series.before[rows as usize]);
        let at = u128::from(at_ms);
        let (loops, within) = (at / period, at % period);
        let row = (within / u128::from(self.interval_ms)) as usize;
        let into = within % u128::from(self.interval_ms);
        let this_row = u128::from(series.before[row + 1] - series.before[row]);
        loops * total
            + u128::from(series.before[row])
            + this_row * into / u128::from(self.interval_ms)
    }
}

impl Meter for Profile {
    fn take(
        &self,
        _: &dyn WriteTx,
        entity: &str,
        slice: u64,
        slice_ms: u64,
    ) -> anyhow::Result<u64> {
        let series = self
            .column
            .get(entity)
            .and_then(|&i| self.series.get(i))
            .ok_or_else(|| anyhow::anyhow!("no profile column for {entity}"))?;
        let start = slice.saturating_mul(slice_ms);
        let end = start.saturating_add(slice_ms);
        let wh = self.energy_until(series, end) - self.energy_until(series, start);
        Ok(u64::try_from(wh).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_storage::{RedbStore, Store};

    fn profile(text: &str, interval_ms: u64, ids: &[&str]) -> anyhow::Result<Profile> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("profile.csv");
        std::fs::write(&path, text)?;
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        Profile::open(&ProfileConfig { path, interval_ms }, &ids)
    }

    fn read(p: &Profile, id: &str, slices: std::ops::Range<u64>, slice_ms: u64) -> Vec<u64> {
        let db = RedbStore::in_memory().unwrap();
        let tx = db.write().unwrap();
        slices
            .map(|s| p.take(&*tx, id, s, slice_ms).unwrap())
            .collect()
    }

    #[test]
    fn each_meter_reads_its_column_and_slices_share_intervals_by_time() {
        let p = profile(
            "time,a,b,other\n00:00,120,10,5\n00:15,90,20,5\n",
            900_000,
            &["a", "b"],
        )
        .unwrap();
        // Slices of a quarter hour read the rows; the profile loops.
        assert_eq!(read(&p, "a", 0..4, 900_000), [120, 90, 120, 90]);
        assert_eq!(read(&p, "b", 0..2, 900_000), [10, 20]);
        // Slices of 10 minutes: shared by time, the loop's total exact.
        let tenths = read(&p, "a", 0..3, 600_000);
        assert_eq!(tenths, [80, 70, 60]);
        assert_eq!(tenths.iter().sum::<u64>(), 210);
    }

    #[test]
    fn a_shared_column_serves_every_meter_without_its_own() {
        let p = profile("wh,a\n7,1\n", 1_000, &["a", "b", "c"]).unwrap();
        assert_eq!(read(&p, "a", 0..1, 1_000), [1]);
        assert_eq!(read(&p, "c", 0..2, 1_000), [7, 7]);
    }

    #[test]
    fn a_bad_profile_is_refused_naming_what_is_wrong() {
        let err = |text: &str, ids: &[&str]| profile(text, 1_000, ids).err().unwrap().to_string();
        assert!(err("a\n1\n", &["a", "b"]).contains("no column for b"));
        assert!(err("a\n1\n-2\n", &["a"]).contains("row 3, column `a`"));
        assert!(err("a\n", &["a"]).contains("no rows"));
        assert!(profile("a\n1\n", 0, &["a"]).is_err());
    }
}
