//! A grid whose disk fills up, on a real tmpfs: ticks fail whole (nothing
//! half-written), the grid keeps answering and says why in `/status` and
//! `/metrics`, and once there is room again it ticks on by itself and bills
//! exactly what its consumer reported, once.

use std::time::Duration;

use powerplug::channel::{ChannelWriter, HttpTransport};
use powerplug::domain::{EntityKind, UnixMs, Wh};
use powerplug::inbox::Command;
use powerplug_tests::{Client, OPERATOR, Tmpfs, eventually, grid_config, runtime, strategy_files};

fn usage(slice: u64) -> Vec<u8> {
    Command::Usage {
        start_ms: UnixMs(slice * 30_000),
        end_ms: UnixMs((slice + 1) * 30_000),
        wh: Wh(1_000),
        read: None,
    }
    .encode()
}

#[test]
fn a_full_disk_fails_ticks_whole_and_the_grid_recovers_when_room_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let disk = Tmpfs::mount("8m");
    let mut config = grid_config(disk.path(), grid_wasm, 50);
    config.retention.every_ms = 0;
    let rt = runtime();
    let grid = rt.block_on(powerplug::http::run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let store = HttpTransport::new(&grid.url);

    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut writer = ChannelWriter::new(key, true).unwrap();
    let body = powerplug::api::Register::open(EntityKind::Consumer, &mut writer, None).unwrap();
    let (status, answer) = client.put(
        "/registrations/c",
        None,
        &serde_json::to_value(body).unwrap(),
    );
    assert_eq!(status, 201, "{answer}");
    let index = answer["index"].as_u64().unwrap() as u32;
    let energy = || {
        let db = &grid.role.hub.db;
        let tx = db.read().ok()?;
        powerplug::role::grid::invariants::energy(&*tx, index).ok()
    };
    for slice in 0..3 {
        writer.publish(&store, usage(slice)).unwrap();
    }
    eventually("3 kWh reported and billed", || {
        energy() == Some((3_000, 3_000))
    });

    // Fill the disk to the last byte with a file of ours.
    let filler = disk.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
    }
    // Ticks write their log: the next round that ticks fails, and says why
    // (rounds that only read go on).
    let failed_before = grid.role.hub.scheduler.rounds_failed();
    eventually("the grid's rounds fail", || {
        grid.role.hub.scheduler.rounds_failed() > failed_before
    });
    let (code, status) = client.get("/status", Some(OPERATOR));
    assert_eq!(code, 200, "{status}");
    let why = status["scheduler"]["last_failure"]["why"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("No space left on device"), "{status}");
    let metrics = powerplug_tests::Metrics::of(&grid.url);
    assert!(metrics.get("powerplug_scheduler_rounds_failed_total") > 0);
    // A reading sent now is refused or taken; either way it is not lost:
    // the meter sends it again until it is taken.
    let sent_while_full = writer.publish(&store, usage(3)).is_ok();
    std::thread::sleep(Duration::from_millis(300));
    // After a failed write the store is opened again once no transaction
    // holds it, and a read meanwhile is refused ("try again"): wait for one.
    let mut read = None;
    eventually("the store reads while the disk is full", || {
        read = energy();
        read.is_some()
    });
    assert_eq!(read, Some((3_000, 3_000)), "nothing billed while full");

    // Room again: the grid ticks on by itself (the billing below shows it).
    std::fs::remove_file(&filler).unwrap();
    if !sent_while_full {
        writer.publish(&store, usage(3)).unwrap();
    }
    writer.publish(&store, usage(4)).unwrap();
    eventually("5 kWh reported and billed, each once", || {
        energy() == Some((5_000, 5_000))
    });
    rt.block_on(grid.stop()).unwrap();
}
