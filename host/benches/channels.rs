//! What a channel message costs, each against the raw baseline in the same run
//! (issue 3). Every message is a restricted-channel (signed + encrypted) JSON
//! usage command of ~80–100 bytes, as a consumer meter publishes once a slice.
//!
//! - `channels/verify_decrypt/memory`: the baseline — `ChannelReader::poll` over
//!   messages already sealed into a `MemoryTransport`: per message, the two
//!   address hashes, the Ed25519 verification and the XChaCha20-Poly1305
//!   decryption, and nothing of storage.
//! - `channels/seal`: `ChannelWriter::prepare` alone (encrypt + sign).
//! - `channels/read/embedded`: `ChannelReader::poll` over messages already stored
//!   in redb (`EmbeddedTransport`): the baseline plus one read transaction per
//!   address.
//! - `channels/ingest/batched_256`: the full path — seal, store durably with
//!   `EmbeddedTransport::put_many` in batches of 256 (one transaction, one disk
//!   sync, per batch, as the outbox drain does), read back through the chain.
//! - `channels/ingest/put_each`: the same with one `put` (one transaction, one
//!   disk sync) per message.
//!
//! Throughput is in messages, so criterion prints messages/s;
//! `python3 host/benches/report.py --channels` turns the estimates into the
//! tables and the chart of BENCHMARKS.md.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use powerplug::channel::{
    ChannelInfo, ChannelReader, ChannelWriter, EmbeddedTransport, MemoryTransport, Message, Sealed,
    Transport,
};
use powerplug::inbox::Command;

/// Messages per iteration of the in-memory and read benchmarks.
const N: usize = 1_000;
/// Messages per iteration of the batched ingest (4 batches).
const N_BATCHED: usize = 1_024;
/// Messages per iteration with one disk sync each.
const N_EACH: usize = 64;
/// As the outbox drain and `POST /channels` send them.
const BATCH: usize = 256;

/// The usage command of slice `i`, as a consumer meter encodes it.
fn payload(i: u64) -> Vec<u8> {
    let start_ms = 1_795_000_000_000 + i * 30_000;
    Command::Usage {
        start_ms: powerplug::domain::UnixMs(start_ms),
        end_ms: powerplug::domain::UnixMs(start_ms + 30_000),
        wh: powerplug::domain::Wh(100 + i % 900),
        read: None,
    }
    .encode()
}

fn writer() -> ChannelWriter {
    ChannelWriter::new(SigningKey::from_bytes(&[7; 32]), true).unwrap()
}

/// A restricted channel's hello and `n` usage commands, sealed.
fn sealed(n: usize) -> (ChannelInfo, Vec<Sealed>) {
    let mut w = writer();
    let mut messages = vec![w.prepare(Message::Hello).unwrap()];
    for i in 0..n as u64 {
        messages.push(w.prepare(Message::Data(payload(i))).unwrap());
    }
    (w.info(), messages)
}

/// Reads the whole channel from its start and checks that all `n` came back.
fn read_all(info: &ChannelInfo, transport: &dyn Transport, n: usize) {
    let poll = ChannelReader::new(info).unwrap().poll(transport).unwrap();
    assert_eq!((poll.data.len(), poll.dropped), (n, 0));
}

/// Fresh redb store in a temporary directory on the same disk as the roles' data.
fn store() -> (tempfile::TempDir, EmbeddedTransport) {
    let dir = tempfile::tempdir().unwrap();
    let transport = EmbeddedTransport::open(&dir.path().join("channels.redb")).unwrap();
    (dir, transport)
}

fn channels(c: &mut Criterion) {
    let bytes = payload(0).len();
    assert!((70..=110).contains(&bytes), "payload is {bytes} bytes");
    eprintln!(
        "payload: {bytes} bytes; sealed message: {} bytes",
        sealed(1).1[1].bytes.len()
    );

    let mut group = c.benchmark_group("channels");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);

    // Baseline: verify + decrypt, nothing stored.
    let (info, messages) = sealed(N);
    let memory = MemoryTransport::default();
    memory.put_many(&messages).unwrap();
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function(BenchmarkId::new("verify_decrypt", "memory"), |b| {
        b.iter(|| read_all(&info, &memory, N))
    });

    // Breakdown: sealing alone.
    group.bench_function("seal", |b| {
        b.iter_batched(
            writer,
            |mut w| {
                w.prepare(Message::Hello).unwrap();
                for i in 0..N as u64 {
                    std::hint::black_box(w.prepare(Message::Data(payload(i))).unwrap());
                }
            },
            BatchSize::SmallInput,
        )
    });

    // Breakdown: reading back from redb alone.
    let (_dir, embedded) = store();
    for batch in messages.chunks(BATCH) {
        embedded.put_many(batch).unwrap();
    }
    group.bench_function(BenchmarkId::new("read", "embedded"), |b| {
        b.iter(|| read_all(&info, &embedded, N))
    });

    // The full path, batched: seal, store 256 at a time, read back.
    group.throughput(Throughput::Elements(N_BATCHED as u64));
    group.bench_function(
        BenchmarkId::new("ingest", format!("batched_{BATCH}")),
        |b| {
            b.iter_batched(
                || (store(), writer()),
                |((dir, embedded), mut w)| {
                    let mut messages = vec![w.prepare(Message::Hello).unwrap()];
                    for i in 0..N_BATCHED as u64 {
                        messages.push(w.prepare(Message::Data(payload(i))).unwrap());
                    }
                    for batch in messages.chunks(BATCH) {
                        embedded.put_many(batch).unwrap();
                    }
                    read_all(&w.info(), &embedded, N_BATCHED);
                    // Dropped (closing the database, removing the files) untimed.
                    (dir, embedded)
                },
                BatchSize::PerIteration,
            )
        },
    );

    // The full path, one put (one transaction, one sync) per message.
    group.throughput(Throughput::Elements(N_EACH as u64));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("ingest", "put_each"), |b| {
        b.iter_batched(
            || (store(), writer()),
            |((dir, embedded), mut w)| {
                w.hello(&embedded).unwrap();
                for i in 0..N_EACH as u64 {
                    w.publish(&embedded, payload(i)).unwrap();
                }
                read_all(&w.info(), &embedded, N_EACH);
                (dir, embedded)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, channels);
criterion_main!(benches);
