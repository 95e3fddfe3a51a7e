//! Storage benchmark: can each backend keep up with N sensor streams of 10
//! packets/s, 3 channels, one sample per channel per packet?
//!
//! Rows go through the real batching writer, one submission per packet as
//! the RTP receiver makes them.
//! - paced: N streams in real time for a while (100, 1,000, 10,000); prints
//!   whether the writer kept up (rows waiting at the end, largest backlog),
//!   batch count and CPU (the collector process, plus the PostgreSQL server
//!   processes for PostgreSQL).
//! - flood: as fast as the store takes rows; prints samples/s.
//!
//! `make bench-collector-storage`. Knobs: SIPSENSOR_BENCH_STREAMS (comma
//! list), SIPSENSOR_BENCH_SECONDS, SIPSENSOR_BENCH_BACKENDS (sqlite,postgres).
//! PostgreSQL is skipped, with a message, without its server binaries.

// Benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use nix::sys::resource::{UsageWho, getrusage};
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::stats::StreamsRegistry;
use sipsensor_collector::storage::writer::{StorageWriter, WriterConfig};
use sipsensor_collector::storage::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: i64 = 10; // packets per second per stream
const CHANNELS: u16 = 3;
const T0: i64 = 1_764_072_000_000_000_000;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn own_cpu_seconds() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds of a process and its children, from /proc (for the
/// PostgreSQL server: the postmaster and its backends).
fn tree_cpu_seconds(root: i32) -> f64 {
    let ticks = clock_ticks();
    let mut total = 0.0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces).
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let pid: i32 = e.file_name().to_string_lossy().parse().unwrap_or(-1);
        let ppid: i32 = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(-1);
        if pid == root || ppid == root {
            // utime, stime, cutime, cstime: fields 14-17 (index 11-14 here).
            let sum: f64 = f[11..15].iter().filter_map(|v| v.parse::<f64>().ok()).sum();
            total += sum / ticks;
        }
    }
    total
}

struct Setup {
    store: Arc<dyn Storage>,
    sessions: Vec<Session>,
}

async fn setup(url: &StorageUrl, streams: usize) -> Setup {
    let store = open(url, OpenOptions::default()).await.unwrap();
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
    let mut sessions = Vec::with_capacity(streams);
    for i in 0..streams {
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
    Setup { store, sessions }
}

/// A packet's one reading: a value per channel.
fn packet(s: &Session, k: i64) -> Vec<Reading> {
    vec![Reading {
        session: s.id,
        sensor: s.sensor,
        seq: k,
        index: 0,
        ts_ns: T0 + k * (1_000_000_000 / RATE),
        raws: (0..CHANNELS)
            .map(|c| Some(2000 + (k % 100) + i64::from(c)))
            .collect(),
        source: sipsensor_collector::storage::ReadingSource::Live,
    }]
}

/// N streams in real time for `seconds`.
async fn paced(name: &str, url: &StorageUrl, streams: usize, seconds: i64, server: Option<i32>) {
    let Setup { store, sessions } = setup(url, streams).await;
    let metrics = Metrics::new(StreamsRegistry::new());
    let writer = StorageWriter::spawn(store.clone(), WriterConfig::default(), metrics.clone());
    let h = writer.handle();
    let cpu0 = own_cpu_seconds();
    let srv0 = server.map(tree_cpu_seconds).unwrap_or(0.0);
    let start = tokio::time::Instant::now();
    let mut max_pending = 0i64;
    let mut late_ticks = 0;
    // Every 100 ms each stream sends its next packet.
    for k in 0..seconds * RATE {
        let tick = start + Duration::from_millis(k as u64 * 100);
        if tokio::time::Instant::now() > tick + Duration::from_millis(100) {
            late_ticks += 1; // the producer itself fell behind
        }
        tokio::time::sleep_until(tick).await;
        for s in &sessions {
            h.readings(packet(s, k)).await.unwrap();
        }
        max_pending = max_pending.max(metrics.pending_rows.get());
    }
    let produced = start.elapsed();
    let backlog = metrics.pending_rows.get();
    h.flush().await.unwrap();
    let drain = start.elapsed() - produced;
    let wall = start.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds() - cpu0;
    let srv = server.map(tree_cpu_seconds).unwrap_or(0.0) - srv0;
    let summary = writer.shutdown().await;
    let samples = summary.written.samples_inserted;
    let sent = (streams as i64 * seconds * RATE) as u64 * u64::from(CHANNELS);
    // A dropped row is a reading: CHANNELS samples.
    assert_eq!(samples + summary.dropped * u64::from(CHANNELS), sent);
    let dropped = if summary.dropped > 0 {
        format!(
            ", DROPPED {} readings (backlog over max_pending_rows: the store did not keep up)",
            summary.dropped
        )
    } else {
        String::new()
    };
    let server_part = match server {
        Some(_) => format!(", server {:.0}%", srv / wall * 100.0),
        None => String::new(),
    };
    println!(
        "{name:<10} paced {streams:>6} streams: {:>7.0} samples/s for {seconds} s, {} batches, \
         largest backlog {max_pending} readings, {backlog} waiting at the end (drained in {:.2} s), \
         CPU collector {:.0}%{server_part} of one core{dropped}{}",
        samples as f64 / produced.as_secs_f64(),
        summary.batches,
        drain.as_secs_f64(),
        cpu / wall * 100.0,
        if late_ticks > 0 {
            format!(", producer late {late_ticks} times")
        } else {
            String::new()
        }
    );
    store.close().await.unwrap();
}

/// As fast as the store takes rows.
async fn flood(name: &str, url: &StorageUrl, streams: usize, seconds: i64, server: Option<i32>) {
    let Setup { store, sessions } = setup(url, streams).await;
    let metrics = Metrics::new(StreamsRegistry::new());
    let writer = StorageWriter::spawn(store.clone(), WriterConfig::default(), metrics.clone());
    let h = writer.handle();
    let cpu0 = own_cpu_seconds();
    let srv0 = server.map(tree_cpu_seconds).unwrap_or(0.0);
    let t0 = Instant::now();
    for k in 0..seconds * RATE {
        // Keep the backlog under the memory bound: a flood is not dropped.
        while metrics.pending_rows.get() > 1_000_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for s in &sessions {
            h.readings(packet(s, k)).await.unwrap();
        }
    }
    h.flush().await.unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds() - cpu0 + server.map(tree_cpu_seconds).unwrap_or(0.0) - srv0;
    let summary = writer.shutdown().await;
    assert_eq!(summary.dropped, 0);
    let samples = summary.written.samples_inserted as f64;
    println!(
        "{name:<10} flood {streams:>6} streams: {samples:>8} samples in {wall:>5.1} s = {:>7.0} \
         samples/s (= {:>5.0} streams), {:.2} us CPU per sample{}",
        samples / wall,
        samples / wall / (RATE * i64::from(CHANNELS)) as f64,
        cpu / samples * 1e6,
        if server.is_some() {
            " (collector + server)"
        } else {
            ""
        }
    );
    store.close().await.unwrap();
}

async fn run_all(
    name: &str,
    fresh: &mut dyn FnMut(&str) -> StorageUrl,
    counts: &[usize],
    seconds: i64,
    server: Option<i32>,
) {
    for &n in counts {
        let url = fresh(&format!("paced{n}"));
        paced(name, &url, n, seconds, server).await;
    }
    let n = counts.iter().copied().max().unwrap_or(1000);
    let url = fresh("flood");
    flood(name, &url, n, seconds.min(10), server).await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let counts: Vec<usize> = env_or("SIPSENSOR_BENCH_STREAMS", "100,1000,10000")
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let seconds: i64 = env_or("SIPSENSOR_BENCH_SECONDS", "20")
        .parse()
        .unwrap_or(20);
    let backends = env_or("SIPSENSOR_BENCH_BACKENDS", "sqlite,postgres");
    println!(
        "storage: streams of {RATE} packets/s x {CHANNELS} channels through the batching \
         writer (defaults: commit after 100 ms, stretched up to 1 s under load)"
    );
    let dir = tempfile::tempdir().unwrap();
    if backends.contains("sqlite") {
        let mut fresh = |n: &str| StorageUrl::Sqlite(dir.path().join(format!("{n}.db")));
        rt.block_on(run_all("sqlite", &mut fresh, &counts, seconds, None));
    }
    if backends.contains("postgres") {
        match pg::PgServer::start_with(true) {
            Some(server) => {
                let pid = server.postmaster_pid();
                let fresh =
                    |n: &str| -> StorageUrl { rt.block_on(server.create_db(n)).parse().unwrap() };
                let urls: Vec<(String, StorageUrl)> = counts
                    .iter()
                    .map(|n| format!("paced{n}"))
                    .chain(std::iter::once("flood".to_string()))
                    .map(|n| {
                        let u = fresh(&n);
                        (n, u)
                    })
                    .collect();
                let mut by_name = |n: &str| urls.iter().find(|(k, _)| k == n).unwrap().1.clone();
                rt.block_on(run_all("postgresql", &mut by_name, &counts, seconds, pid));
            }
            None => println!("postgresql skipped (server binaries not found)"),
        }
    }
}
