//! Real meters over MQTT: each meter's device publishes its cumulative
//! counter on its own topic; every message goes into the meter's [`Track`]
//! in the host's store, and each reading takes what the tracks hold for its
//! slice.
//!
//! The client keeps a persistent session (a client id of its own, clean
//! session off, QoS 1), so the broker keeps what arrives while the host is
//! down. Nothing depends on it: the counters are cumulative, so the first
//! message after a restart carries the energy of the time the host missed,
//! and a message the broker delivers twice adds nothing. Messages go to a
//! writer thread through a bounded queue (the client stops reading the
//! socket when it is full) and are committed in batches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use powerplug_storage::{Db, ReadTx, WriteTx, key};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use serde::{Deserialize, Serialize};

use crate::payload::{self, Format};
use crate::track::{Outcome, Track};
use crate::{Context, Meter};

/// entity id → its [`Track`].
const TRACKS: &str = "meter_tracks";

/// Messages waiting for the writer, at most.
const QUEUE: usize = 4_096;
/// Messages one transaction takes, at most.
const BATCH: usize = 1_000;
/// Topics one subscribe request names.
const SUBSCRIBE_CHUNK: usize = 100;
/// The largest packet the client reads. A bigger one drops the connection
/// (MQTT 3.1.1 cannot tell the broker), and a broker keeping it for this
/// session delivers it again: the broker's own limit must be at most this
/// (mosquitto: `message_size_limit 1048576`, see docs/meters.md).
pub const MAX_PACKET: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The broker: `mqtt://host[:port]` (port 1883 by default).
    pub url: String,
    /// The topic each meter's device publishes on; `{id}` stands for the
    /// meter's id (needed when the host has more than one meter), e.g.
    /// `tele/{id}/SENSOR` or `{id}/status/switch:0`.
    pub topic: String,
    pub format: Format,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// A meter silent this long has its slices read without it; what it
    /// reports later goes to later slices. Also what counts as a gap.
    #[serde(default = "max_delay_ms")]
    pub max_delay_ms: u64,
    /// The most power a device may use or give, in W: a counter that grew
    /// faster is refused. By default the host above's limit for a reading
    /// (`max_reading_wh` over `max_reading_ms`).
    #[serde(default)]
    pub max_w: Option<u64>,
}

fn max_delay_ms() -> u64 {
    300_000
}

/// The broker's host and port from `mqtt://host[:port]`.
fn broker(url: &str) -> anyhow::Result<(String, u16)> {
    let bad = || anyhow::anyhow!("meter.mqtt.url: `{url}` is not mqtt://host[:port]");
    let rest = url.strip_prefix("mqtt://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains(['/', '@', '?']) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Each meter's topic, checked: topic → meter id.
fn topics(config: &MqttConfig, ids: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let t = &config.topic;
    anyhow::ensure!(
        !t.is_empty() && !t.contains(['+', '#', '\0']),
        "meter.mqtt.topic: a topic without wildcards"
    );
    anyhow::ensure!(
        ids.len() <= 1 || t.contains("{id}"),
        "meter.mqtt.topic: `{{id}}` must stand for the meter's id: this host has {} meters",
        ids.len()
    );
    let map: HashMap<String, String> = ids
        .iter()
        .map(|id| (t.replace("{id}", id), id.clone()))
        .collect();
    Ok(map)
}

/// A message as it arrived: its topic, payload and time (the role's clock).
struct Message {
    topic: String,
    payload: Vec<u8>,
    at_ms: u64,
}

/// What the client last knew of its broker, for `/status`.
#[derive(Default)]
struct Link {
    connected: AtomicBool,
    /// Every meter's topic is subscribed on this connection.
    subscribed: AtomicBool,
    last_error: Mutex<Option<String>>,
}

pub struct MqttFeed {
    db: Db,
    config: MqttConfig,
    started_ms: u64,
    link: Arc<Link>,
    stop: Arc<AtomicBool>,
    client: tokio::task::JoinHandle<()>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl MqttFeed {
    pub fn start(config: &MqttConfig, context: Context) -> anyhow::Result<Self> {
        let (host, port) = broker(&config.url)?;
        let topics = topics(config, &context.ids)?;
        anyhow::ensure!(
            config.max_delay_ms > 0,
            "meter.mqtt.max_delay_ms: at least 1"
        );
        let max_w = match config.max_w {
            Some(w) => w,
            None => {
                (u128::from(context.max_reading_wh) * 3_600_000
                    / u128::from(context.max_reading_ms.max(1))) as u64
            }
        };
        anyhow::ensure!(max_w > 0, "meter.mqtt.max_w: at least 1");
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("an MQTT meter feed runs on a tokio runtime"))?;

        let mut options = MqttOptions::new(format!("powerplug-{}", context.host), host, port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false)
            .set_max_packet_size(MAX_PACKET, 64 * 1024)
            .set_request_channel_capacity(topics.len() / SUBSCRIBE_CHUNK + 16);
        if let Some(user) = &config.username {
            options.set_credentials(user, config.password.clone().unwrap_or_default());
        }
        let link = Arc::new(Link::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (send, receive) = mpsc::sync_channel(QUEUE);
        let now_ms = context.now_ms.clone();
        let names: Vec<String> = topics.keys().cloned().collect();
        let client = runtime.spawn(run_client(options, names, send, now_ms, link.clone()));
        let writer = Writer {
            db: context.db.clone(),
            topics,
            format: config.format,
            max_w,
            gap_ms: config.max_delay_ms,
        };
        let writer_stop = stop.clone();
        let writer_link = link.clone();
        let writer = std::thread::Builder::new()
            .name("meter-feed".into())
            .spawn(move || writer.run(receive, &writer_stop, &writer_link))?;
        Ok(Self {
            db: context.db,
            config: config.clone(),
            started_ms: (context.now_ms)(),
            link,
            stop,
            client,
            writer: Some(writer),
        })
    }
}

impl Drop for MqttFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.client.abort();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Connects (again and again), subscribes every meter's topic at each
/// connection, and hands each message on.
async fn run_client(
    options: MqttOptions,
    topics: Vec<String>,
    send: mpsc::SyncSender<Message>,
    now_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    link: Arc<Link>,
) {
    let (client, mut events) = AsyncClient::new(options, 16);
    let chunks = topics.len().div_ceil(SUBSCRIBE_CHUNK);
    let mut acknowledged = 0;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                acknowledged += 1;
                link.subscribed
                    .store(acknowledged >= chunks, Ordering::Relaxed);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                link.connected.store(true, Ordering::Relaxed);
                link.subscribed.store(false, Ordering::Relaxed);
                acknowledged = 0;
                tracing::info!(topics = topics.len(), "meter feed connected");
                let (client, topics) = (client.clone(), topics.clone());
                // Not awaited here: the requests go out through this loop.
                tokio::spawn(async move {
                    for chunk in topics.chunks(SUBSCRIBE_CHUNK) {
                        let filters = chunk
                            .iter()
                            .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                        if client.subscribe_many(filters).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // What waits is bounded in bytes as well as in messages: a
                // payload too large to be a counter goes on as an empty one
                // (unreadable, counted).
                let payload = if p.payload.len() <= payload::MAX_PAYLOAD {
                    p.payload.to_vec()
                } else {
                    Vec::new()
                };
                let mut message = Message {
                    topic: p.topic,
                    payload,
                    at_ms: now_ms(),
                };
                // Full: wait for the writer (the broker holds the rest).
                loop {
                    match send.try_send(message) {
                        Ok(()) => break,
                        Err(mpsc::TrySendError::Full(m)) => {
                            message = m;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(mpsc::TrySendError::Disconnected(_)) => return,
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                link.connected.store(false, Ordering::Relaxed);
                link.subscribed.store(false, Ordering::Relaxed);
                let why = e.to_string();
                tracing::warn!(why, "meter feed: the broker is not reachable; trying again");
                *link.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Takes messages into the tracks, a batch a transaction.
struct Writer {
    db: Db,
    topics: HashMap<String, String>,
    format: Format,
    max_w: u64,
    gap_ms: u64,
}

impl Writer {
    fn run(self, receive: mpsc::Receiver<Message>, stop: &AtomicBool, link: &Link) {
        while !stop.load(Ordering::Relaxed) {
            let first = match receive.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match receive.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            // A store that fails loses this batch only: the counters are
            // cumulative, so the next messages carry its energy.
            if let Err(e) = self.store(&batch) {
                tracing::warn!(error = %format!("{e:#}"), "meter feed: messages not stored");
                *link.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("store: {e:#}"));
            }
        }
    }

    fn store(&self, batch: &[Message]) -> anyhow::Result<()> {
        let tx = self.db.write()?;
        let mut tracks: HashMap<&str, Track> = HashMap::new();
        let mut counts: HashMap<&'static str, u64> = HashMap::new();
        let mut count = |name: &'static str, by: u64| *counts.entry(name).or_default() += by;
        // One line per batch and kind: a device flooding the broker with
        // junk does not flood the log (the counts have every one).
        let (mut unreadable, mut implausible) = (None, None);
        for m in batch {
            count("feed-messages", 1);
            let Some(id) = self.topics.get(&m.topic) else {
                count("feed-unreadable", 1);
                continue;
            };
            let total = match payload::total_wh(self.format, &m.payload) {
                Ok(total) => total,
                Err(why) => {
                    unreadable.get_or_insert((id, why));
                    count("feed-unreadable", 1);
                    continue;
                }
            };
            let track = match tracks.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(load(&*tx, id)?),
            };
            match track.add(m.at_ms, total, self.max_w, self.gap_ms) {
                Outcome::Baseline => count("feed-baselines", 1),
                Outcome::Counted { wh, reset, gap } => {
                    count("feed-wh", wh);
                    count("feed-resets", u64::from(reset));
                    count("feed-gaps", u64::from(gap));
                }
                Outcome::Implausible { wh } => {
                    implausible.get_or_insert((id, wh));
                    count("feed-implausible", 1);
                    count("feed-implausible-wh", wh);
                }
            }
        }
        if let Some((id, why)) = unreadable {
            tracing::warn!(entity = %id, why, "meter feed: a payload without a counter");
        }
        if let Some((id, wh)) = implausible {
            tracing::warn!(entity = %id, wh, max_w = self.max_w, "meter feed: a counter grew faster than the device can; not counted");
        }
        for (id, track) in &tracks {
            save(&*tx, id, track)?;
        }
        for (name, by) in counts {
            if by > 0 {
                powerplug_storage::count(&*tx, name, by)?;
            }
        }
        tx.commit()
    }
}

fn load(tx: &dyn ReadTx, id: &str) -> anyhow::Result<Track> {
    match tx.get(TRACKS, &key::of(&[&id]))? {
        Some(bytes) => Ok(postcard::from_bytes(&bytes)?),
        None => Ok(Track::default()),
    }
}

fn save(tx: &dyn WriteTx, id: &str, track: &Track) -> anyhow::Result<()> {
    tx.put(TRACKS, &key::of(&[&id]), &postcard::to_allocvec(track)?)
}

impl Meter for MqttFeed {
    fn settled(&self, tx: &dyn ReadTx, entity: &str, now_ms: u64) -> anyhow::Result<u64> {
        let heard = load(tx, entity)?.last.map_or(0, |s| s.at_ms);
        // Slices that ended before the host started wait for a first
        // message as long as later ones do.
        let waited = now_ms.saturating_sub(self.config.max_delay_ms);
        Ok(if waited >= self.started_ms {
            heard.max(waited)
        } else {
            heard
        })
    }

    fn take(
        &self,
        tx: &dyn WriteTx,
        entity: &str,
        slice: u64,
        slice_ms: u64,
    ) -> anyhow::Result<u64> {
        let mut track = load(tx, entity)?;
        let wh = track.take(slice.saturating_add(1).saturating_mul(slice_ms));
        save(tx, entity, &track)?;
        Ok(wh)
    }

    fn status(&self) -> Option<serde_json::Value> {
        let counters = powerplug_storage::counters(&*self.db).unwrap_or_default();
        let feed: serde_json::Map<String, serde_json::Value> = counters
            .into_iter()
            .filter_map(|(name, n)| Some((name.strip_prefix("feed-")?.to_owned(), n.into())))
            .collect();
        Some(serde_json::json!({
            "mqtt": self.config.url,
            "topic": self.config.topic,
            "format": self.config.format,
            "connected": self.link.connected.load(Ordering::Relaxed),
            "subscribed": self.link.subscribed.load(Ordering::Relaxed),
            "last_error": *self.link.last_error.lock().unwrap_or_else(|e| e.into_inner()),
            "counts": feed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(topic: &str) -> MqttConfig {
        MqttConfig {
            url: "mqtt://127.0.0.1".into(),
            topic: topic.into(),
            format: Format::Json,
            username: None,
            password: None,
            max_delay_ms: max_delay_ms(),
            max_w: None,
        }
    }

    #[test]
    fn urls_and_topics_are_checked_naming_the_field() {
        assert_eq!(
            broker("mqtt://10.0.0.2").unwrap(),
            ("10.0.0.2".into(), 1883)
        );
        assert_eq!(
            broker("mqtt://broker:8883/").unwrap(),
            ("broker".into(), 8883)
        );
        for bad in ["http://x", "mqtt://", "mqtt://x:port", "mqtt://u@x"] {
            assert!(
                broker(bad)
                    .unwrap_err()
                    .to_string()
                    .starts_with("meter.mqtt.url")
            );
        }
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let map = topics(&config("tele/{id}/SENSOR"), &ids).unwrap();
        assert_eq!(map["tele/b/SENSOR"], "b");
        for bad in ["tele/+/SENSOR", "tele/#", "one/topic", ""] {
            let e = topics(&config(bad), &ids).unwrap_err().to_string();
            assert!(e.starts_with("meter.mqtt.topic"), "{e}");
        }
        assert!(topics(&config("one/topic"), &ids[..1]).is_ok());
    }
}
