//! Crash and shutdown: a collector killed with SIGKILL loses at most the last
//! second of samples and its database opens intact; one stopped with SIGTERM
//! commits every sample it accepted.
//!
//! Each test re-runs this test binary as a child process (an ignored test
//! selected with --exact) and kills it by PID.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sipsensor_collector::storage::sqlite::{SqliteOptions, SqliteStore};
use sipsensor_collector::storage::writer::StorageWriter;
use sipsensor_collector::storage::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DIR_ENV: &str = "SIPSENSOR_CRASH_DIR";

/// A child test process, killed by PID when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `test` of this binary in a child; its stdout lines arrive with
/// their arrival time.
fn spawn_child(test: &str, dir: &Path) -> (ChildGuard, mpsc::Receiver<(Instant, String)>) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (ChildGuard(child), rx)
}

fn number_after(line: &str, tag: &str) -> Option<i64> {
    line.strip_prefix(tag)?.trim().parse().ok()
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

#[test]
fn kill_9_loses_at_most_the_last_second() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = spawn_child("crash_child", dir.path());
    // (arrival time, packets submitted so far)
    let mut progress: Vec<(Instant, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok((at, line)) = lines.recv_timeout(Duration::from_secs(10)) else {
            panic!("the child stopped reporting");
        };
        if let Some(n) = number_after(&line, "SUBMITTED ") {
            progress.push((at, n));
        }
        if progress
            .first()
            .is_some_and(|(t0, _)| at.duration_since(*t0) > Duration::from_millis(2500))
        {
            break;
        }
    }
    let killed_at = Instant::now();
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    let required = progress
        .iter()
        .filter(|(t, _)| killed_at.duration_since(*t) >= Duration::from_secs(1))
        .map(|(_, n)| *n)
        .max()
        .expect("progress older than one second");
    let last = progress.last().unwrap().1;

    // The next start finds the database intact (full integrity check).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored = rt.block_on(async {
        let s = SqliteStore::open(
            dir.path().join("collector.db"),
            SqliteOptions {
                integrity_check: sipsensor_collector::storage::sqlite::IntegrityCheck::Full,
                ..SqliteOptions::default()
            },
        )
        .await
        .expect("database intact after SIGKILL");
        let sensor = s.sensor_by_aor("sip:s@example.net").await.unwrap().unwrap();
        let rows = all_samples(&s, sensor.id).await;
        s.close().await.unwrap();
        rows
    });
    // Stored: exactly packets 0..k, two channels each, nothing twice.
    let k = stored.len() as i64 / 2;
    assert_eq!(stored.len() as i64, 2 * k);
    for (i, s) in stored.iter().enumerate() {
        assert_eq!(s.seq, i as i64 / 2, "hole or duplicate at row {i}");
    }
    eprintln!(
        "SIGKILL: {last} packets submitted, {required} of them more than 1 s before the kill, \
         {k} stored"
    );
    assert!(
        k >= required,
        "lost packets older than one second: stored {k}, required {required}"
    );
    assert!(k <= last, "stored more than was submitted");
}

/// Streams samples into a store through the writer until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of kill_9_loses_at_most_the_last_second"]
async fn crash_child() {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).unwrap());
    let store = Arc::new(
        SqliteStore::open(dir.join("collector.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let (_, session) = sensor_with_session(store.as_ref(), "sip:s@example.net", "c1", T0).await;
    let metrics = sipsensor_collector::metrics::Metrics::new(
        sipsensor_collector::stats::StreamsRegistry::new(),
    );
    // Default configuration: commits every 100 ms.
    let writer = StorageWriter::spawn(store, Default::default(), metrics);
    let h = writer.handle();
    let started = Instant::now();
    let mut seq = 0i64;
    while started.elapsed() < Duration::from_secs(20) {
        h.readings(samples(&session, seq..=seq, T0)).await.unwrap();
        seq += 1;
        if seq % 20 == 0 {
            say(format!("SUBMITTED {seq}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("not killed within 20 s");
}

#[test]
fn sigterm_commits_every_accepted_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = spawn_child("sigterm_child", dir.path());
    let mut submitted = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while submitted < 500 && Instant::now() < deadline {
        let (_, line) = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the child stopped reporting");
        if let Some(n) = number_after(&line, "SUBMITTED ") {
            submitted = n;
        }
    }
    assert!(submitted >= 500, "child too slow");
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).unwrap();
    let mut accepted = None;
    let mut written = None;
    while let Ok((_, line)) = lines.recv_timeout(Duration::from_secs(15)) {
        if let Some(n) = number_after(&line, "ACCEPTED ") {
            accepted = Some(n);
        }
        if let Some(n) = number_after(&line, "WRITTEN ") {
            written = Some(n);
        }
    }
    let status = child.0.wait().unwrap();
    assert!(status.success(), "child exited with {status}");
    let accepted = accepted.expect("child reported what it accepted");
    assert!(accepted >= submitted);
    assert_eq!(written, Some(2 * accepted), "rows committed by the writer");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored = rt.block_on(async {
        let s = SqliteStore::open(dir.path().join("collector.db"), SqliteOptions::default())
            .await
            .unwrap();
        let sensor = s.sensor_by_aor("sip:s@example.net").await.unwrap().unwrap();
        let n = all_samples(&s, sensor.id).await.len() as i64;
        s.close().await.unwrap();
        n
    });
    eprintln!("SIGTERM: {accepted} packets accepted, {stored} rows stored");
    assert_eq!(stored, 2 * accepted);
}

/// Runs the collector (`app::run` with the real signal handler) with a long
/// flush interval, and a producer feeding its writer, until SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of sigterm_commits_every_accepted_sample"]
async fn sigterm_child() {
    use sipsensor_collector::app;
    use sipsensor_collector::config::Config;
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).unwrap());
    let yaml = format!(
        "storage:\n  url: sqlite://{}\n  flush_interval_ms: 1000\n  batch_rows: 1000000\n\
         http:\n  bind: 127.0.0.1:0\n",
        dir.join("collector.db").display()
    );
    let config = Config::parse(&yaml, Path::new("test.yaml")).unwrap();
    let producer = Arc::new(Mutex::new(None));
    let p = producer.clone();
    let summary = app::run(config, app::shutdown_signal(), move |svc| {
        let storage = svc.storage.clone();
        let h = svc.writer.clone();
        *p.lock().unwrap() = Some(tokio::spawn(async move {
            let (_, session) =
                sensor_with_session(storage.as_ref(), "sip:s@example.net", "c1", T0).await;
            let mut accepted = 0i64;
            loop {
                if h.readings(samples(&session, accepted..=accepted, T0))
                    .await
                    .is_err()
                {
                    return accepted;
                }
                accepted += 1;
                if accepted % 50 == 0 {
                    say(format!("SUBMITTED {accepted}"));
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }));
    })
    .await
    .unwrap();
    let task = producer.lock().unwrap().take().unwrap();
    let accepted = task.await.unwrap();
    say(format!("ACCEPTED {accepted}"));
    say(format!("WRITTEN {}", summary.written.samples_inserted));
    assert_eq!(summary.lost_at_shutdown, 0);
}
