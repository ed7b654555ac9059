//! Each role as its own `powerplug` process, configured by TOML files, killed
//! hard (SIGKILL) mid-run and started again on the same data directory, or
//! the grid restored from a backup taken mid-run. In the end no reading,
//! payment request, payment or payout is lost or repeated: every total is
//! compared with what the other side recorded.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use powerplug::channel::{ChannelReader, EmbeddedTransport};
use powerplug::inbox::Command as ChannelCommand;
use powerplug::role::member::MemberState;
use powerplug::storage::{Db, RedbStore, StorageConfig, Store};
use powerplug::{storage, tick_log, wallet};
use serde_json::{Value, json};
use support::{Role, free_port, root};

const TOKEN: &str = "crash-test-operator";
/// How long the grid keeps what consumers read: the books are checked
/// against every payment request on the return channels at the end.
const DAY_MS: u64 = 86_400_000;
const CONSUMERS: u32 = 3;
const SOURCES: u32 = 2;

/// Runs `powerplug` with the operator's token to completion; it must succeed.
fn cli(args: &[&std::ffi::OsStr]) {
    let out = Command::new(env!("CARGO_BIN_EXE_powerplug"))
        .args(args)
        .env("POWERPLUG_OPERATOR_TOKEN", TOKEN)
        .env("CARGO_TARGET_DIR", root().join("target/guests"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "powerplug {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get(agent: &ureq::Agent, url: &str) -> Option<Value> {
    let mut response = agent.get(url).call().ok()?;
    response.body_mut().read_json().ok()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            // The roles' logs say why.
            let logs: String = LOGS.with(|dir| {
                let dir = dir.borrow();
                [
                    "grid",
                    "grid-b",
                    "producer",
                    "producer-b",
                    "source",
                    "consumer",
                ]
                .iter()
                .map(|n| {
                    format!(
                        "--- {n}\n{}",
                        std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default()
                    )
                })
                .collect()
            });
            panic!("timed out waiting until {what}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

thread_local! {
    static LOGS: std::cell::RefCell<PathBuf> = const { std::cell::RefCell::new(PathBuf::new()) };
}

fn counter(status: &Option<Value>, name: &str) -> u64 {
    status
        .as_ref()
        .and_then(|s| s["totals"][name].as_u64())
        .unwrap_or(0)
}

fn members(db: &dyn Store, prefix: &str, count: u32) -> Vec<MemberState> {
    (0..count)
        .map(|i| {
            MemberState::load(db, &format!("{prefix}-{i}"))
                .unwrap()
                .unwrap()
        })
        .collect()
}

/// Where the roles keep their stores: redb files in their data
/// directories, or namespaces `<prefix>_<id>` of the test's PostgreSQL server
/// (`POWERPLUG_TEST_POSTGRES`, by default the local one).
#[derive(Clone)]
enum Stores {
    Redb,
    Postgres { url: String, prefix: String },
}

impl Stores {
    fn postgres() -> Self {
        let url = std::env::var("POWERPLUG_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!("t_crash_{}_{nanos}", std::process::id());
        Stores::Postgres { url, prefix }
    }

    fn config(&self, id: &str) -> StorageConfig {
        match self {
            Stores::Redb => StorageConfig::default(),
            Stores::Postgres { url, prefix } => StorageConfig::Postgres {
                url: url.clone(),
                namespace: format!("{prefix}_{id}"),
            },
        }
    }

    /// The role's `storage` line of its TOML.
    fn toml(&self, id: &str) -> String {
        match self.config(id) {
            StorageConfig::Postgres { url, namespace } => {
                format!(
                    "storage = {{ type = \"postgres\", url = \"{url}\", namespace = \"{namespace}\" }}\n"
                )
            }
            StorageConfig::Redb { .. } => String::new(),
        }
    }

    /// The store of role `id` (stopped), as the role opens it.
    fn open(&self, dir: &Path, id: &str) -> Db {
        storage::open(&self.config(id), &dir.join(id)).unwrap()
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        for id in ["grid", "producer-0", "source", "consumer"] {
            if let StorageConfig::Postgres { url, namespace } = self.config(id)
                && let Ok(store) = storage::PgStore::connect(&url, &namespace)
            {
                let _ = store.drop_namespace();
            }
        }
    }
}

/// The four roles on one data directory, running; with a standby grid
/// (`grid-b`) on the grid's store if asked for.
struct Cluster {
    dir: PathBuf,
    stores: Stores,
    roles: Vec<Role>,
    /// The grid's: where the meters and the producer send.
    grid_url: String,
    /// Every grid host's (the standby's after the grid's).
    grid_urls: Vec<String>,
    /// Every producer host's, likewise.
    producer_urls: Vec<String>,
    consumer_url: String,
    agent: ureq::Agent,
}

impl Cluster {
    /// The grid's status from any grid host that answers: they share a store.
    fn status(&self) -> Option<Value> {
        self.grid_urls
            .iter()
            .find_map(|url| get(&self.agent, &format!("{url}/status")))
    }

    /// The grid host that leads, once exactly one does.
    fn leader(&self) -> String {
        self.leading(&self.grid_urls, ["grid", "grid-b"])
    }

    /// Of the hosts at `urls`, the one that leads, once exactly one does.
    fn leading(&self, urls: &[String], labels: [&str; 2]) -> String {
        let mut leader = None;
        wait_for(&format!("one of {labels:?} leads"), || {
            let leading: Vec<usize> = (0..urls.len())
                .filter(|&i| {
                    get(&self.agent, &format!("{}/status", urls[i]))
                        .is_some_and(|s| s["lease"]["leading"] == true)
                })
                .collect();
            leader = (leading.len() == 1).then(|| leading[0]);
            leader.is_some()
        });
        labels[leader.unwrap()].to_owned()
    }

    /// The producer's totals from any of its hosts.
    fn producer_ticks(&self) -> u64 {
        let status = self
            .producer_urls
            .iter()
            .find_map(|url| get(&self.agent, &format!("{url}/status")));
        counter(&status, "ticks")
    }

    fn ticks(&self) -> u64 {
        counter(&self.status(), "ticks")
    }

    fn run_ticks(&self, n: u64) {
        let from = self.ticks();
        wait_for(&format!("{n} more grid ticks"), || self.ticks() >= from + n);
    }

    fn role(&mut self, label: &str) -> &mut Role {
        self.roles.iter_mut().find(|r| r.label == label).unwrap()
    }
}

fn start(dir: &Path, stores: Stores) -> Cluster {
    start_with(dir, stores, None)
}

/// With `standby`, a second grid host on the grid's store, both with a
/// lease of that many ms.
fn start_with(dir: &Path, stores: Stores, standby: Option<u64>) -> Cluster {
    LOGS.with(|logs| *logs.borrow_mut() = dir.to_path_buf());
    let strategies = dir.join("strategies");
    cli(&[
        "strategy".as_ref(),
        "build".as_ref(),
        root().join("plugins/basic-grid-strategy").as_os_str(),
        root().join("plugins/basic-producer-strategy").as_os_str(),
        "--out".as_ref(),
        strategies.as_os_str(),
    ]);

    let (grid_port, producer_port, consumer_port) = (free_port(), free_port(), free_port());
    let grid_url = format!("http://127.0.0.1:{grid_port}");
    let producer_url = format!("http://127.0.0.1:{producer_port}");
    let epoch = powerplug::role::unix_ms();
    // Simulated time ×120: a 30 s slice every 250 ms, a grid tick every 125 ms.
    let common = |id: &str, port: u16| {
        format!(
            "id = \"{id}\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npoll_ms = 20\nclock = {{ epoch_ms = {epoch}, scale = 120 }}\n{}",
            dir.join(id).display(),
            stores.toml(id)
        )
    };
    let cache = dir.join("cache");
    let lease = standby.map_or(String::new(), |ms| format!("lease_ms = {ms}\n"));
    let producer = |common: String| {
        format!(
            "{common}{lease}grid_url = \"{grid_url}\"\n[strategy]\ncomponent = \"{}\"\ntick_ms = 60000\ntick_log_keep = 100000\ncache_dir = \"{}\"\n[admission]\nsource = \"open\"\n",
            strategies.join("basic_producer_strategy.wasm").display(),
            cache.display()
        )
    };
    let grid = |common: String| {
        format!(
            "{common}{lease}operator_token = \"{TOKEN}\"\n[strategy]\ncomponent = \"{}\"\ntick_ms = 15000\ntick_log_keep = 100000\ncache_dir = \"{}\"\n[admission]\nproducer = \"open\"\n[retention]\nmessages_ms = {DAY_MS}\n",
            strategies.join("basic_grid_strategy.wasm").display(),
            cache.display()
        )
    };
    let standby_port = free_port();
    let mut files = vec![
        ("grid", "grid", grid(common("grid", grid_port))),
        (
            "producer",
            "producer",
            producer(common("producer-0", producer_port)),
        ),
        (
            "source",
            "source",
            format!(
                "{}upstream_url = \"{producer_url}\"\ncount = {SOURCES}\nslice_ms = 30000\npayment_step = 25\n[meter.fixed]\nwh = 4000\n",
                common("source", free_port())
            ),
        ),
        (
            "consumer",
            "consumer",
            format!(
                "{}upstream_url = \"{grid_url}\"\ncount = {CONSUMERS}\nslice_ms = 30000\npayment_step = 25\n[meter.fixed]\nwh = 1000\n",
                common("consumer", consumer_port)
            ),
        ),
    ];
    let producer_standby_port = free_port();
    if standby.is_some() {
        // Each its own data directory and port; the store and id of the
        // host it stands by for.
        let shared = |id: &str, of: &str, port: u16| {
            common(id, port)
                .replace(&stores.toml(id), &stores.toml(of))
                .replace(&format!("id = \"{id}\""), &format!("id = \"{of}\""))
        };
        files.push((
            "grid",
            "grid-b",
            grid(shared("grid-b", "grid", standby_port)),
        ));
        files.push((
            "producer",
            "producer-b",
            producer(shared("producer-b", "producer-0", producer_standby_port)),
        ));
    }
    let mut roles: Vec<Role> = files
        .iter()
        .map(|(name, label, text)| {
            let config = dir.join(format!("{label}.toml"));
            std::fs::write(&config, text).unwrap();
            Role {
                name,
                label: label.to_string(),
                config,
                child: None,
                log: dir.join(format!("{label}.log")),
            }
        })
        .collect();
    let [grid, producer, sources, consumers, standbys @ ..] = roles.as_mut_slice() else {
        unreachable!()
    };
    grid.start();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A paused host takes the connection and never answers.
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    wait_for("the grid answers", || {
        get(&agent, &format!("{grid_url}/status")).is_some()
    });
    for i in 0..CONSUMERS {
        let mut response = agent
            .post(&format!("{grid_url}/wallet/issue"))
            .header("authorization", &format!("Bearer {TOKEN}"))
            .send_json(json!({ "to": format!("consumer-{i}"), "amount": 100_000, "key": format!("fund-{i}"), "unregistered": true }))
            .unwrap();
        assert_eq!(
            response.status(),
            201,
            "{}",
            response.body_mut().read_to_string().unwrap()
        );
    }
    for standby in standbys {
        standby.start();
    }
    producer.start();
    sources.start();
    consumers.start();
    let mut grid_urls = vec![grid_url.clone()];
    grid_urls.extend(standby.map(|_| format!("http://127.0.0.1:{standby_port}")));
    let mut producer_urls = vec![producer_url.clone()];
    producer_urls.extend(standby.map(|_| format!("http://127.0.0.1:{producer_standby_port}")));
    let cluster = Cluster {
        dir: dir.to_path_buf(),
        stores,
        roles,
        grid_urls,
        producer_urls,
        grid_url,
        consumer_url: format!("http://127.0.0.1:{consumer_port}"),
        agent,
    };
    cluster.run_ticks(12);
    wait_for("a consumer paid and a producer reported", || {
        let s = cluster.status();
        counter(&s, "income") > 0 && counter(&s, "output-wh") > 0
    });
    cluster
}

#[test]
fn killing_any_role_mid_run_loses_and_repeats_nothing() {
    kill_each_role_and_keep_the_books(Stores::Redb);
}

/// The same with every role's store a namespace of one PostgreSQL database:
/// a role killed mid-transaction leaves nothing of it on the server.
#[test]
fn killing_any_role_mid_run_on_postgres_loses_and_repeats_nothing() {
    kill_each_role_and_keep_the_books(Stores::postgres());
}

fn kill_each_role_and_keep_the_books(stores: Stores) {
    let work = tempfile::tempdir().unwrap();
    let mut c = start(work.path(), stores);
    // Kill each role hard in turn, and start it again on the same data.
    for victim in ["grid", "consumer", "producer", "source", "grid"] {
        c.role(victim).kill();
        std::thread::sleep(Duration::from_millis(300));
        c.role(victim).start();
        if victim == "grid" {
            wait_for("the grid answers again", || c.status().is_some());
        }
        c.run_ticks(8);
    }
    wait_for("payouts happened", || counter(&c.status(), "paid-out") > 0);
    let summary = settle(c);
    println!("after 5 hard kills: {summary}");
}

/// How long the grid's lease lasts in the failover test.
const LEASE_MS: u64 = 1_000;

/// Two grid hosts on one PostgreSQL namespace, two producer hosts on
/// another, meters running: the grid host that leads is killed hard 20
/// times at random moments (and started again, as the standby), the
/// producer host that leads 5 times; then the leading grid host is paused
/// past its lease and let go on. The other takes over each time, nothing the paused one
/// decided commits, each tick number is committed once, and the books
/// hold exactly.
#[test]
fn standby_grids_and_producers_take_over_from_a_killed_or_paused_leader() {
    let work = tempfile::tempdir().unwrap();
    let mut c = start_with(work.path(), Stores::postgres(), Some(LEASE_MS));
    let mut seed = powerplug::role::unix_ms();
    println!("seed {seed}");
    let mut random_ms = |below: u64| {
        // xorshift: the moments differ from run to run; the seed is printed.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for kill in 0..20 {
        let leader = c.leader();
        let ticks = c.ticks();
        std::thread::sleep(Duration::from_millis(random_ms(2 * LEASE_MS)));
        c.role(&leader).kill();
        c.role(&leader).start();
        let from = ticks.max(c.ticks());
        wait_for(&format!("a tick after kill {kill} of {leader}"), || {
            c.ticks() > from
        });
    }

    // The producer likewise, 5 times.
    let producers = c.producer_urls.clone();
    for kill in 0..5 {
        let leader = c.leading(&producers, ["producer", "producer-b"]);
        std::thread::sleep(Duration::from_millis(random_ms(2 * LEASE_MS)));
        c.role(&leader).kill();
        c.role(&leader).start();
        let from = c.producer_ticks();
        wait_for(
            &format!("a producer tick after kill {kill} of {leader}"),
            || c.producer_ticks() > from,
        );
    }

    // Paused in the middle of a write transaction (holding the namespace's
    // writer lock) and past its lease: the other ends its sessions, takes
    // over and ticks; woken up, the paused one commits nothing of what it
    // began and stands by.
    let paused = c.leader();
    let paused_at = pause_mid_transaction(&mut c, &paused);
    let ticks = c.ticks();
    wait_for("the standby took over and ticked", || {
        c.ticks() >= ticks + 4
    });
    let taken_over = c.leader();
    assert_ne!(taken_over, paused);
    c.role(&paused).signal("-CONT");
    let woken = c.role(&paused).log.clone();
    wait_for("the woken host sees it lost the lease", || {
        std::fs::read_to_string(&woken).is_ok_and(|log| log.contains("lost the lease"))
    });
    c.run_ticks(4);
    assert_eq!(c.leader(), taken_over, "the woken host stands by");
    let after_pause = std::fs::read_to_string(&woken).unwrap()[paused_at..].to_owned();
    let refused = after_pause.matches("commit refused").count();
    let cut_off = after_pause.matches("round failed").count();
    let summary = settle(c);
    println!(
        "20 kills and a pause of the leading grid, 5 kills of the leading producer: {summary}; after the pause: {cut_off} rounds failed, {refused} commits refused"
    );
}

/// Stops the grid host `label` (SIGSTOP) while one of its write
/// transactions holds the namespace's writer lock, as PostgreSQL shows
/// it; returns how long its log was then.
fn pause_mid_transaction(c: &mut Cluster, label: &str) -> usize {
    let Stores::Postgres { url, .. } = &c.stores else {
        panic!("a standby needs PostgreSQL")
    };
    let standby = &c.grid_urls[usize::from(label == "grid")];
    let status = get(&c.agent, &format!("{standby}/status")).unwrap();
    let holder = status["lease"]["seen"]["holder"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let mut writing = || {
        admin
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                 WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE $1",
                &[&format!("powerplug {holder} %")],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "{label} never seen writing");
        if writing() {
            let log_len = c.role(label).log_text().len();
            c.role(label).signal("-STOP");
            if writing() {
                return log_len;
            }
            c.role(label).signal("-CONT");
        }
    }
}

#[test]
fn a_grid_restored_from_a_backup_taken_mid_run_keeps_the_books() {
    let work = tempfile::tempdir().unwrap();
    let mut c = start(work.path(), Stores::Redb);
    let backup = c.dir.join("grid-backup.redb");
    cli(&[
        "backup".as_ref(),
        "--url".as_ref(),
        c.grid_url.as_ref(),
        backup.as_os_str(),
    ]);
    let at_backup = c.status();

    // Readings, reports, requests and payments go on after the backup.
    let moved_on = |s: &Option<Value>| {
        ["usage-wh", "output-wh", "payment-requests", "income"]
            .iter()
            .all(|name| counter(s, name) > counter(&at_backup, name))
    };
    wait_for("the grid moved on after the backup", || {
        moved_on(&c.status())
    });
    c.run_ticks(4);
    c.role("grid").kill();
    let before_restore = {
        let db = RedbStore::open(&c.dir.join("grid/powerplug.redb")).unwrap();
        storage::counters(&db).unwrap()
    };
    let grid_dir = c.dir.join("grid");
    cli(&[
        "restore".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        grid_dir.as_os_str(),
        "--force".as_ref(),
    ]);
    c.role("grid").start();
    wait_for("the restored grid answers", || c.status().is_some());
    let restored = c.status();
    assert!(
        counter(&restored, "income") < before_restore["income"],
        "the grid went back to the backup: {restored:?}"
    );

    // The meters and the producer see the new timeline and catch up.
    let consumers = || get(&c.agent, &format!("{}/status", c.consumer_url));
    wait_for("the consumers caught up", || {
        consumers().is_some_and(|s| !s["caught_up"].is_null())
    });
    let caught = consumers().unwrap()["caught_up"].clone();
    for what in ["resent", "requests_void", "payments_lost"] {
        assert!(caught[what].as_u64() > Some(0), "{what}: {caught}");
    }
    assert_eq!(caught["not_kept"], 0, "{caught}");
    c.run_ticks(12);
    wait_for("the grid is past where it was", || {
        let s = c.status();
        counter(&s, "income") > before_restore["income"]
            && counter(&s, "usage-wh") > before_restore["usage-wh"]
    });
    let meters = consumers().unwrap()["meters"].clone();
    assert_eq!(
        meters["refused_payments"], 0,
        "no payment to an address the restored ledger does not know: {meters}"
    );
    let summary = settle(c);
    println!("restored from a backup mid-run: {summary}; consumers caught up: {caught}");
}

/// Winds the roles down in order, each side taking in what the other sent,
/// and checks the books: every total against what the other side recorded.
fn settle(mut c: Cluster) -> String {
    let dir = c.dir.clone();
    let stores = c.stores.clone();
    let (agent, grid_url, producer_urls) =
        (c.agent.clone(), c.grid_url.clone(), c.producer_urls.clone());
    let status = || get(&agent, &format!("{grid_url}/status"));
    let producer_status = || {
        producer_urls
            .iter()
            .find_map(|url| get(&agent, &format!("{url}/status")))
    };
    let run_ticks = |n: u64| {
        let from = counter(&status(), "ticks");
        wait_for(&format!("{n} more grid ticks"), || {
            counter(&status(), "ticks") >= from + n
        });
    };
    let [grid, producer, sources, consumers, standbys @ ..] = c.roles.as_mut_slice() else {
        unreachable!()
    };
    sources.stop();
    let source_db = stores.open(&dir, "source");
    let sent_by_sources: u64 = members(&*source_db, "source", SOURCES)
        .iter()
        .map(|m| m.published_wh)
        .sum();
    drop(source_db);
    wait_for("the producer took every source reading", || {
        counter(&producer_status(), "source-wh") == sent_by_sources
    });
    producer.stop();
    for standby in standbys.iter_mut().filter(|r| r.name == "producer") {
        standby.stop();
    }
    let producer_db = stores.open(&dir, "producer-0");
    let producer_state = MemberState::load(&*producer_db, "producer-0")
        .unwrap()
        .unwrap();
    let producer_counters = storage::counters(&*producer_db).unwrap();
    drop(producer_db);
    wait_for("the grid took every producer report", || {
        counter(&status(), "output-wh") == producer_state.published_wh
    });
    consumers.stop();
    let consumer_db = stores.open(&dir, "consumer");
    let consumer_states = members(&*consumer_db, "consumer", CONSUMERS);
    drop(consumer_db);
    let used: u64 = consumer_states.iter().map(|m| m.published_wh).sum();
    let paid: u64 = consumer_states.iter().map(|m| m.paid).sum();
    wait_for(
        "the grid billed every reading and saw every payment",
        || {
            let s = status();
            counter(&s, "usage-wh") == used && counter(&s, "income") == paid
        },
    );
    run_ticks(2);
    for standby in standbys.iter_mut().filter(|r| r.name == "grid") {
        standby.stop();
    }
    grid.stop();

    let db = stores.open(&dir, "grid");
    let c = storage::counters(&*db).unwrap();
    let n = |name: &str| c.get(name).copied().unwrap_or(0);
    assert_eq!(
        producer_counters.get("source-wh").copied().unwrap_or(0),
        sent_by_sources,
        "source readings once"
    );
    assert_eq!(
        n("output-wh"),
        producer_state.published_wh,
        "producer reports once"
    );
    assert_eq!(n("usage-wh"), used, "consumer readings once");
    assert_eq!(n("billed-wh"), used, "1 kWh a slice: everything billed");
    assert_eq!(n("requested"), used / 1000 * 5);
    assert_eq!(n("ticks-failed"), 0);
    // Each tick number committed once, in order of time.
    let log = tick_log::grid_ticks(&*db, "grid", 0, usize::MAX).unwrap();
    assert_eq!(log.len() as u64, n("ticks"), "a record per tick");
    for (i, pair) in log.windows(2).enumerate() {
        assert_eq!(pair[0].tick, i as u64 + 1);
        assert!(pair[1].tick == pair[0].tick + 1, "tick numbers in a row");
        assert!(
            pair[1].input.now_ms >= pair[0].input.now_ms,
            "tick {} ran before tick {}",
            pair[1].tick,
            pair[0].tick
        );
    }

    // The return channels in the grid's store hold each request once.
    let store = EmbeddedTransport::new(db);
    let (mut requests, mut asked) = (0, 0);
    for m in &consumer_states {
        let mut reader = ChannelReader::new(m.return_channel.as_ref().unwrap()).unwrap();
        for data in reader.poll(&store).unwrap().data {
            let Some(ChannelCommand::PaymentRequest { owed, .. }) = ChannelCommand::decode(&data)
            else {
                panic!("not a payment request")
            };
            requests += 1;
            asked += owed.get();
        }
        assert!(
            m.requests <= requests,
            "a consumer never reads more than was sent"
        );
        assert!(m.pending.is_none(), "{}: a payment left pending", m.id);
    }
    assert_eq!((requests, asked), (n("payment-requests"), n("requested")));
    drop(store);

    // Each payment in the ledger once: as many transfers as the consumer made payments.
    let db = stores.open(&dir, "grid");
    let db = &*db;
    for m in &consumer_states {
        let out: Vec<_> = wallet::transfers_since(db, &m.id, 0)
            .unwrap()
            .into_iter()
            .filter(|t| t.from.as_str() == m.id)
            .collect();
        assert_eq!(
            out.len() as u64,
            m.payments,
            "{}: transfers vs payments",
            m.id
        );
        assert_eq!(
            out.iter().map(|t| t.amount.get()).sum::<u64>(),
            m.paid,
            "{}",
            m.id
        );
        assert!(
            m.paid + m.outstanding == m.requested,
            "{}: paid + outstanding = asked",
            m.id
        );
    }
    let income = n("income");
    assert_eq!(income, paid);
    let grid_balance = wallet::balance(db, "grid").unwrap().get();
    let producer_balance = wallet::balance(db, "producer-0").unwrap().get();
    assert_eq!(producer_balance, n("paid-out"), "payouts once");
    assert_eq!(grid_balance, income - n("paid-out"));
    assert_eq!(
        wallet::issued(db).unwrap().get(),
        wallet::total_balances(db).unwrap().get()
    );
    let metrics: Vec<(String, i64)> = storage::meta(db, "grid/metrics").unwrap().unwrap();
    let metric = |name: &str| {
        metrics
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| *v as u64)
    };
    assert_eq!(
        income,
        metric("running-costs-received") + n("paid-out") + metric("available"),
        "paid by consumers = running costs + payouts + undistributed"
    );
    for role in std::iter::once(&*grid).chain(standbys.iter()) {
        let log = role.log_text();
        assert!(!log.contains("panicked"), "{log}");
    }
    format!(
        "{used} Wh used and billed, {requests} requests asking {asked}, {} payments of {paid}, {} paid out",
        consumer_states.iter().map(|m| m.payments).sum::<u64>(),
        n("paid-out")
    )
}
