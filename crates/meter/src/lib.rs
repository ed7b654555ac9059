//! Meters: what each consumer used or each source generated in a slice of
//! time. A meter host publishes one reading per meter and slice; where the
//! energy comes from is a [`Meter`]:
//!
//! - simulated, as the original ([`MeterConfig::Fixed`], [`MeterConfig::Random`]);
//! - a recorded load profile replayed from a CSV file ([`profile`]);
//! - real devices publishing cumulative counters over MQTT (Tasmota, Shelly or
//!   a JSON payload of our own: [`mqtt`], [`payload`]), turned into energy
//!   spread over time ([`track`]) and taken by the reading that covers it.

use std::sync::Arc;

use powerplug_storage::{Db, ReadTx, WriteTx};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod mqtt;
pub mod payload;
pub mod profile;
pub mod track;

pub use payload::Format;

/// Where a meter host's readings come from.
pub trait Meter: Send + Sync {
    /// The time (ms, the role's clock) up to which `entity`'s energy is
    /// known: slices that ended by then may be read. A simulation knows
    /// everything at once; a device feed, what its messages covered.
    fn settled(&self, _tx: &dyn ReadTx, _entity: &str, now_ms: u64) -> anyhow::Result<u64> {
        Ok(now_ms)
    }

    /// The energy of `entity` in `slice` (`slice_ms` long), in Wh, taken in
    /// the transaction that publishes it: called once per slice, in order.
    fn take(
        &self,
        tx: &dyn WriteTx,
        entity: &str,
        slice: u64,
        slice_ms: u64,
    ) -> anyhow::Result<u64>;

    /// What `/status` shows of the feed, if it is more than a simulation.
    fn status(&self) -> Option<serde_json::Value> {
        None
    }
}

/// The `meter` of a consumer or source host's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum MeterConfig {
    /// The same energy every slice.
    Fixed { wh: u64 },
    /// Random within a range: a hash of (seed, entity, slice), so a restarted
    /// meter reads the same values again.
    Random { seed: u64, min_wh: u64, max_wh: u64 },
    /// A recorded load profile, replayed in a loop.
    Csv(profile::ProfileConfig),
    /// Devices publishing cumulative energy counters to an MQTT broker.
    Mqtt(mqtt::MqttConfig),
}

impl MeterConfig {
    /// Consumers: random 0–1 kWh a slice, as the original.
    pub const CONSUMER: Self = Self::Random {
        seed: 1,
        min_wh: 0,
        max_wh: 1_000,
    };
    /// Sources: random 2–10 kWh a slice, as the original.
    pub const SOURCE: Self = Self::Random {
        seed: 2,
        min_wh: 2_000,
        max_wh: 10_000,
    };

    /// The meter this configuration describes, for meters `ids` whose state
    /// is in `db`. An MQTT feed starts reading at once (on the current tokio
    /// runtime) and stops when the meter is dropped.
    pub fn open(&self, context: Context) -> anyhow::Result<Box<dyn Meter>> {
        Ok(match self {
            Self::Fixed { wh } => Box::new(Simulated::Fixed(*wh)),
            Self::Random {
                seed,
                min_wh,
                max_wh,
            } => Box::new(Simulated::Random {
                seed: *seed,
                min_wh: *min_wh,
                max_wh: *max_wh,
            }),
            Self::Csv(config) => Box::new(profile::Profile::open(config, &context.ids)?),
            Self::Mqtt(config) => Box::new(mqtt::MqttFeed::start(config, context)?),
        })
    }
}

/// What a meter needs from the host that reads it.
pub struct Context {
    /// The host's id (an MQTT client id derives from it).
    pub host: String,
    /// The meters' entity ids.
    pub ids: Vec<String>,
    pub db: Db,
    /// Now, in ms of the role's clock.
    pub now_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// The most energy one reading may carry and the time it may span (the
    /// host above's plausibility limits): a device's power limit derives
    /// from them where none is configured.
    pub max_reading_wh: u64,
    pub max_reading_ms: u64,
}

/// The original's meters.
enum Simulated {
    Fixed(u64),
    Random { seed: u64, min_wh: u64, max_wh: u64 },
}

impl Meter for Simulated {
    fn take(&self, _: &dyn WriteTx, entity: &str, slice: u64, _: u64) -> anyhow::Result<u64> {
        Ok(match *self {
            Self::Fixed(wh) => wh,
            Self::Random {
                seed,
                min_wh,
                max_wh,
            } => {
                let digest = Sha256::new()
                    .chain_update(seed.to_be_bytes())
                    .chain_update(entity)
                    .chain_update(slice.to_be_bytes())
                    .finalize();
                let mut word = [0; 8];
                word.copy_from_slice(&digest[..8]);
                let span = max_wh.saturating_sub(min_wh).saturating_add(1);
                min_wh + u64::from_be_bytes(word) % span
            }
        })
    }
}
