//! Meters that exist: Tasmota-style devices publish cumulative counters to
//! the machine's Mosquitto (`POWERPLUG_TEST_MQTT`, by default
//! mqtt://127.0.0.1:1883); a consumer host subscribes, and the grid bills
//! exactly the energy the counters describe — through a counter reset, a
//! refused glitch, a payload of junk, and the consumer host killed (SIGKILL)
//! and started again while its devices went on publishing.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use support::{Role, free_port, powerplug, root};

const TOKEN: &str = "feed-test-operator";

fn broker() -> (String, u16) {
    let url = std::env::var("POWERPLUG_TEST_MQTT").unwrap_or("mqtt://127.0.0.1:1883".into());
    let rest = url.trim_start_matches("mqtt://");
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    (host.to_owned(), port.parse().unwrap())
}

/// The devices: one MQTT client publishing each meter's counter, QoS 1.
struct Devices {
    client: Client,
    topic: String,
    published: u64,
    acknowledged: Arc<AtomicU64>,
}

impl Devices {
    fn connect(id: &str, topic: &str) -> Self {
        let (host, port) = broker();
        let mut options = MqttOptions::new(id, host, port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(options, 64);
        let acknowledged = Arc::new(AtomicU64::new(0));
        let acks = acknowledged.clone();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::Disconnect)) => return,
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        Self {
            client,
            topic: topic.to_owned(),
            published: 0,
            acknowledged,
        }
    }

    /// Meter `id`'s device says its counter is at `wh` (a Tasmota
    /// `tele/…/SENSOR`, in kWh with three decimals).
    fn publish(&mut self, id: &str, wh: u64) {
        let payload = format!(
            r#"{{"Time":"2026-12-05T12:00:00","ENERGY":{{"TotalStartTime":"2026-01-01T00:00:00","Total":{}.{:03},"Power":812}}}}"#,
            wh / 1_000,
            wh % 1_000
        );
        self.publish_raw(id, payload.into_bytes());
    }

    fn publish_raw(&mut self, id: &str, payload: Vec<u8>) {
        let topic = self.topic.replace("{id}", id);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .unwrap();
        self.published += 1;
    }

    /// Until the broker has every message published so far.
    fn flush(&self) {
        wait_for("the broker took every message", || {
            self.acknowledged.load(Ordering::Relaxed) >= self.published
        });
    }
}

fn get(agent: &ureq::Agent, url: &str) -> Option<Value> {
    agent.get(url).call().ok()?.body_mut().read_json().ok()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(path: &Path, text: String) -> std::path::PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn devices_over_mqtt_are_billed_exactly_through_a_reset_a_glitch_and_a_hard_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let strategies = dir.join("strategies");
    let plugin = root().join("plugins/basic-grid-strategy");
    let (ok, _, err) = powerplug(
        &[
            "strategy",
            "build",
            plugin.to_str().unwrap(),
            "--out",
            strategies.to_str().unwrap(),
        ],
        dir,
    );
    assert!(ok, "{err}");

    // Unique per run: the broker is shared, and keeps sessions.
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (grid_port, consumer_port) = (free_port(), free_port());
    let grid_url = format!("http://127.0.0.1:{grid_port}");
    let consumer_url = format!("http://127.0.0.1:{consumer_port}");
    // ×120: a 30 s slice every 250 ms, a grid tick every 125 ms.
    let common = |id: &str, port: u16| {
        format!(
            "id = \"{id}\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npoll_ms = 20\nclock = {{ epoch_ms = {}, scale = 120 }}\n",
            dir.join(id).display(),
            powerplug::role::unix_ms()
        )
    };
    let grid_toml = write(
        &dir.join("grid.toml"),
        format!(
            "{}operator_token = \"{TOKEN}\"\n[strategy]\ncomponent = \"{}\"\ntick_ms = 15000\ncache_dir = \"{}\"\n",
            common("grid", grid_port),
            strategies.join("basic_grid_strategy.wasm").display(),
            dir.join("cache").display()
        ),
    );
    let (host, port) = broker();
    let id = format!("house-{run}");
    let topic = format!("powerplug-test/{run}/tele/{{id}}/SENSOR");
    let consumer_toml = write(
        &dir.join("consumer.toml"),
        format!(
            "{}upstream_url = \"{grid_url}\"\ncount = 2\nslice_ms = 30000\npayment_step = 25\n[meter.mqtt]\nurl = \"mqtt://{host}:{port}\"\ntopic = \"{topic}\"\nformat = \"tasmota\"\nmax_delay_ms = 60000\nmax_w = 2000000\n",
            common(&id, consumer_port)
        ),
    );
    let role = |name: &'static str, config: &Path| Role {
        name,
        label: name.into(),
        config: config.to_path_buf(),
        child: None,
        log: dir.join(format!("{name}.log")),
    };
    let (mut grid, mut consumer) = (role("grid", &grid_toml), role("consumer", &consumer_toml));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let feed = |agent: &ureq::Agent| get(agent, &format!("{consumer_url}/status"));
    let subscribed = |agent: &ureq::Agent| {
        wait_for("the consumer host subscribed", || {
            feed(agent).is_some_and(|s| s["feed"]["subscribed"] == true)
        })
    };
    grid.start();
    wait_for("the grid answers", || {
        get(&agent, &format!("{grid_url}/status")).is_some()
    });
    consumer.start();
    subscribed(&agent);

    let mut devices = Devices::connect(&format!("powerplug-test-devices-{run}"), &topic);
    let (a, b) = (format!("{id}-0"), format!("{id}-1"));
    let pause = || std::thread::sleep(Duration::from_millis(150));
    // What each meter's counter says was used since the host knew it.
    let (mut used_a, mut used_b) = (0, 0);
    // Before the host knew them: baselines, not billed.
    devices.publish(&a, 1_250_000);
    devices.publish(&b, 80_500);
    pause();
    for step in 1..=6 {
        devices.publish(&a, 1_250_000 + step * 400);
        devices.publish(&b, 80_500 + step * 90);
        used_a += 400;
        used_b += 90;
        pause();
    }
    // A glitch: 5 MWh in seconds (a gigawatt; the limit is 2 MW, far above
    // what the test's quick clock makes of 400 Wh in 150 ms), refused; the
    // counter goes on from there.
    devices.publish(&b, 5_080_500);
    pause();
    devices.publish(&b, 5_080_560);
    used_b += 60;
    devices.flush();
    wait_for("the consumer host took the messages", || {
        feed(&agent).is_some_and(|s| s["feed"]["counts"]["messages"] == 16)
    });

    // Killed; the devices go on, the broker keeps their messages.
    consumer.kill();
    for step in 7..=9 {
        devices.publish(&a, 1_250_000 + step * 400);
        used_a += 400;
        pause();
    }
    devices.publish(&b, 5_080_700);
    used_b += 140;
    devices.flush();
    consumer.start();
    subscribed(&agent);
    for step in 10..=13 {
        devices.publish(&a, 1_250_000 + step * 400);
        used_a += 400;
        pause();
    }
    // 20 KiB of junk: not a counter, and no harm to the connection.
    devices.publish_raw(&a, vec![b'x'; 20 * 1024]);
    // Rebooted and counting from zero.
    devices.publish(&b, 20);
    devices.publish(&b, 95);
    used_b += 95;
    devices.flush();

    // The basic grid strategy bills whole kWh (5 tokens each) and carries
    // the rest over.
    let expected = used_a + used_b;
    let billed = (used_a / 1_000 + used_b / 1_000) * 1_000;
    let done = |t: &Value| {
        t["usage-wh"] == expected && t["billed-wh"] == billed && t["requested"] == billed / 200
    };

    let totals = |agent: &ureq::Agent| {
        get(agent, &format!("{grid_url}/status")).map(|s| s["totals"].clone())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !totals(&agent).is_some_and(|t| done(&t)) {
        assert!(
            Instant::now() < deadline,
            "the grid did not take {expected} Wh and bill {billed}: {:?}\nconsumer host: {:?}\n{}",
            totals(&agent),
            feed(&agent),
            std::fs::read_to_string(dir.join("consumer.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing more comes: no slice is read twice.
    std::thread::sleep(Duration::from_millis(1_500));
    let t = totals(&agent).unwrap();
    assert!(done(&t), "{t}");
    assert_eq!(t["commands-rejected"].as_u64().unwrap_or(0), 0, "{t}");
    let s = feed(&agent).unwrap();
    assert_eq!(s["meters"]["published_wh"], expected, "{s}");
    let counts = &s["feed"]["counts"];
    assert_eq!(counts["baselines"], 2, "{s}");
    assert_eq!(counts["resets"], 1, "{s}");
    assert_eq!(counts["implausible"], 1, "{s}");
    assert_eq!(counts["unreadable"], 1, "{s}");
    assert_eq!(counts["implausible-wh"], 5_080_500 - 81_040, "{s}");
    assert_eq!(counts["wh"], expected, "{s}");
    // A message the broker hands over again (its acknowledgement lost
    // in the kill) is counted as a message, and adds no energy.
    assert!(
        counts["messages"].as_u64().unwrap() >= devices.published,
        "{s}"
    );
}
