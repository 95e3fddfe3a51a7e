//! Storage throughput: how many sensor streams (10 packets/s, 3 channels,
//! one sample per channel per packet) each backend keeps up with.
//!
//! Rows go through the real batching writer, one submission per packet as
//! the RTP receiver makes them, as fast as the store takes them. Prints
//! rows/s, the equivalent number of streams, CPU time and peak RSS.
//! `make bench-collector-storage`; PostgreSQL is skipped (with a message)
//! when its server binaries are not installed.

// Benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Benchmarks never fail for a missing tool: they say so (used by `pg`).
fn skip_or_fail(what: &str) {
    eprintln!("SKIPPED: {what}");
}

#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use nix::sys::resource::{UsageWho, getrusage};
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::stats::StreamsRegistry;
use sipsensor_collector::storage::writer::{StorageWriter, WriterConfig};
use sipsensor_collector::storage::*;
use std::time::{Duration, Instant};

const STREAMS: usize = 1_000;
const SECONDS: i64 = 30; // simulated
const RATE: i64 = 10; // packets per second per stream
const CHANNELS: u16 = 3;
const T0: i64 = 1_764_072_000_000_000_000;

fn cpu_seconds() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

fn max_rss_mb() -> f64 {
    getrusage(UsageWho::RUSAGE_SELF).unwrap().max_rss() as f64 / 1024.0
}

async fn run(name: &str, url: StorageUrl) {
    let store = open(&url, OpenOptions::default()).await.unwrap();
    let spec = StreamSpec {
        rate_hz: RATE as f64,
        samples_per_packet: 1,
        channels: (0..CHANNELS)
            .map(|c| ChannelSpec {
                name: format!("c{c}"),
                unit: "Cel".into(),
                scale: 0.01,
            })
            .collect(),
    };
    let mut sessions = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let sensor = store
            .upsert_sensor(&format!("sip:sensor-{i:05}@example.net"), None)
            .await
            .unwrap();
        sessions.push(
            store
                .open_session(&NewSession {
                    sensor: sensor.id,
                    call_id: format!("call-{i}"),
                    ssrc: i as u32,
                    stream: spec.clone(),
                    started_ns: T0,
                })
                .await
                .unwrap(),
        );
    }
    let metrics = Metrics::new(StreamsRegistry::new());
    let writer = StorageWriter::spawn(store.clone(), WriterConfig::default(), metrics.clone());
    let h = writer.handle();
    let packets = STREAMS as i64 * SECONDS * RATE;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    // Packets in arrival order: every stream's packet k, then k + 1, ...
    for k in 0..SECONDS * RATE {
        for s in &sessions {
            let ts = T0 + k * (1_000_000_000 / RATE);
            let rows = (0..CHANNELS)
                .map(|c| Sample {
                    session: s.id,
                    sensor: s.sensor,
                    channel: c,
                    seq: k,
                    index: 0,
                    ts_ns: ts,
                    raw: 2000 + (k % 100) + i64::from(c),
                })
                .collect();
            h.samples(rows).await.unwrap();
        }
    }
    h.flush().await.unwrap();
    let wall = t0.elapsed();
    let cpu = cpu_seconds() - cpu0;
    let summary = writer.shutdown().await;
    assert_eq!(
        summary.written.samples_inserted,
        packets as u64 * u64::from(CHANNELS)
    );
    let rows = summary.written.samples_inserted as f64;
    let rows_per_s = rows / wall.as_secs_f64();
    let per_stream = (RATE * i64::from(CHANNELS)) as f64;
    println!(
        "{name:<10} {:>9} rows in {:>6.2} s = {:>9.0} rows/s = {:>6.0} streams \
         (10 pkt/s x 3 ch); CPU {:>5.2} s ({:.2} us/row, {:.0}% of a core); \
         {} batches; peak RSS {:.0} MB",
        rows as u64,
        wall.as_secs_f64(),
        rows_per_s,
        rows_per_s / per_stream,
        cpu,
        cpu / rows * 1e6,
        cpu / wall.as_secs_f64() * 100.0,
        summary.batches,
        max_rss_mb()
    );
    store.close().await.unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "storage throughput: {STREAMS} streams x {SECONDS} s x {RATE} packets/s x {CHANNELS} \
         channels through the batching writer"
    );
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(run(
        "sqlite",
        StorageUrl::Sqlite(dir.path().join("bench.db")),
    ));
    if let Ok(db) = std::fs::metadata(dir.path().join("bench.db")) {
        println!(
            "sqlite     file size {:.1} MB ({:.0} bytes/row)",
            db.len() as f64 / 1e6,
            db.len() as f64 / (STREAMS as f64 * (SECONDS * RATE) as f64 * f64::from(CHANNELS))
        );
    }
    match pg::PgServer::start() {
        Some(server) => {
            let url = rt.block_on(server.create_db("bench"));
            rt.block_on(run("postgresql", url.parse().unwrap()));
            // Give the server a moment to settle before it is stopped.
            std::thread::sleep(Duration::from_millis(100));
        }
        None => println!("postgresql skipped (server binaries not found)"),
    }
}
