//! SQLite backend: the conformance suite, and what only a file can do wrong
//! (damage, a full disk, a newer schema).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conformance;

use common::*;
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::stats::StreamsRegistry;
use sipsensor_collector::storage::sqlite::{IntegrityCheck, SqliteOptions, SqliteStore};
use sipsensor_collector::storage::writer::{StorageWriter, WriterConfig};
use sipsensor_collector::storage::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct SqliteBackend {
    dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl conformance::Backend for SqliteBackend {
    async fn create(&self, name: &str) -> StorageUrl {
        StorageUrl::Sqlite(self.dir.path().join(format!("{name}.db")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_sqlite() {
    let backend = SqliteBackend {
        dir: tempfile::tempdir().unwrap(),
    };
    conformance::run_all(&backend).await;
}

async fn store_at(path: &Path) -> Result<SqliteStore, StorageError> {
    SqliteStore::open(path.to_path_buf(), SqliteOptions::default()).await
}

/// A database with some data in it, closed.
async fn populated(path: &Path, packets: i64) -> SensorId {
    let s = store_at(path).await.unwrap();
    let (sensor, session) = sensor_with_session(&s, "sip:s@example.net", "c1", T0).await;
    for chunk in (0..packets).step_by(1000) {
        s.write_batch(&Batch {
            readings: samples(&session, chunk..(chunk + 1000).min(packets), T0),
            ..Batch::default()
        })
        .await
        .unwrap();
    }
    s.close().await.unwrap();
    sensor.id
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[tokio::test]
async fn wal_and_synchronous_normal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/c.db");
    let s = store_at(&path).await.unwrap();
    assert!(path.exists(), "parent directories are created");
    let (_, session) = sensor_with_session(&s, "sip:s@example.net", "c1", T0).await;
    s.write_batch(&Batch {
        readings: samples(&session, 0..10, T0),
        ..Batch::default()
    })
    .await
    .unwrap();
    let probe = rusqlite::Connection::open(&path).unwrap();
    let mode: String = probe
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(probe);
    // A committed batch is in the WAL file until a checkpoint.
    assert!(dir.path().join("sub/dir/c.db-wal").exists());
    s.close().await.unwrap();
    // Closing checkpoints and truncates the WAL.
    let wal = dir.path().join("sub/dir/c.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

#[tokio::test]
async fn a_foreign_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.db");
    let junk = b"this is a spreadsheet, not a database\n".repeat(200);
    std::fs::write(&path, &junk).unwrap();
    let e = store_at(&path).await.unwrap_err();
    assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("database file {} is damaged", path.display())),
        "{msg}"
    );
    assert!(msg.contains("mv "), "{msg}");
    assert!(msg.contains("backup"), "{msg}");
    assert_eq!(file_bytes(&path), junk, "the file was modified");
    assert!(!dir.path().join("collector.db-wal").exists());
}

#[tokio::test]
async fn damage_inside_a_database_is_found_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.db");
    let sensor = populated(&path, 20_000).await;
    let mut bytes = file_bytes(&path);
    let page = 4096;
    assert!(bytes.len() > 40 * page, "{} bytes", bytes.len());
    // Scribble over pages in the middle of the samples table: three
    // quarters into the file, past the schema's own pages (which grow with
    // each migration) and inside the 20,000 samples' pages.
    let at = bytes.len() / page * 3 / 4;
    for b in &mut bytes[at * page..(at + 4) * page] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = store_at(&path).await.unwrap_err();
    assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert_eq!(file_bytes(&path), bytes, "the damaged file was modified");
    // The header-only check opens it: damage then surfaces on reading.
    let s = SqliteStore::open(
        path.clone(),
        SqliteOptions {
            integrity_check: IntegrityCheck::HeaderOnly,
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    let e = s
        .samples(&SampleQuery {
            sensor,
            from_ns: i64::MIN,
            to_ns: TS_MAX,
            limit: 100_000,
            order: Order::Asc,
            after: None,
        })
        .await
        .expect_err("reading the damaged table fails");
    assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.db");
    populated(&path, 10).await;
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = store_at(&path).await.unwrap_err();
    assert!(
        matches!(e, StorageError::SchemaTooNew { found: 99, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("run a newer sipsensor-collector"));
}

#[tokio::test]
async fn an_unopenable_path_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // The database path is a directory.
    let path = dir.path().join("adir");
    std::fs::create_dir(&path).unwrap();
    let e = store_at(&path).await.unwrap_err();
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

/// A size cap makes SQLite answer SQLITE_FULL like a full disk: the writer
/// keeps the rows, counts the error, the store keeps serving reads, and
/// once space is freed every row is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_keeps_serving_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.db");
    let sensor = populated(&path, 6_000).await;
    let pages = {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_query_value(None, "page_count", |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let store = Arc::new(
        SqliteStore::open(
            path.clone(),
            SqliteOptions {
                max_page_count: Some(pages as u64 + 2),
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    let session = store.sessions(sensor, i64::MIN, TS_MAX).await.unwrap()[0].clone();
    let metrics = Metrics::new(StreamsRegistry::new());
    let writer = StorageWriter::spawn(
        store.clone(),
        WriterConfig {
            retry_interval: Duration::from_millis(100),
            ..WriterConfig::default()
        },
        metrics.clone(),
    );
    let h = writer.handle();
    h.readings(samples(&session, 6_000..8_000, T0))
        .await
        .unwrap();
    let e = h.flush().await.unwrap_err();
    assert!(matches!(e, StorageError::DiskFull { .. }), "{e}");
    assert!(e.to_string().contains("no space left"), "{e}");
    assert!(
        metrics
            .storage_errors
            .get_or_create(&[("kind", "disk_full")])
            .get()
            >= 1
    );
    assert_eq!(metrics.pending_rows.get(), 2_000);
    // Reads still work.
    assert_eq!(all_samples(store.as_ref(), sensor).await.len(), 12_000);
    assert_eq!(store.sensors().await.unwrap().len(), 1);
    // Retention frees pages inside the file; the retry then succeeds.
    let freed = store.delete_before(T0 + 6_000 * PERIOD).await.unwrap();
    assert_eq!(freed.samples, 12_000);
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if metrics.pending_rows.get() == 0 {
            ok = true;
            break;
        }
    }
    assert!(ok, "pending rows were not written after space was freed");
    let summary = writer.shutdown().await;
    assert_eq!(summary.dropped, 0);
    let left = all_samples(store.as_ref(), sensor).await;
    assert_eq!(left.len(), 4_000);
    let seqs: Vec<i64> = left.iter().step_by(2).map(|x| x.seq).collect();
    assert_eq!(seqs, (6_000..8_000).collect::<Vec<_>>());
    store.close().await.unwrap();
}

/// The real thing: a tmpfs that fills up (ENOSPC), in a mount namespace of
/// its own. Needs root (CI runs as root).
#[test]
fn a_full_file_system_keeps_serving_and_recovers() {
    if !nix::unistd::geteuid().is_root() || !Path::new("/usr/bin/unshare").exists() {
        skip_or_fail("a full-disk test needs root and unshare(1) to mount a small tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs '{d}' && exec '{exe}' --ignored --exact full_disk_child --nocapture",
        d = dir.path().display(),
        exe = exe.display()
    );
    let out = std::process::Command::new("/usr/bin/unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("SIPSENSOR_FULL_DISK_DIR", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "child did not run:\n{stdout}");
}

/// Runs inside the mount namespace of the test above (ignored otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_full_file_system_keeps_serving_and_recovers"]
async fn full_disk_child() {
    let dir = PathBuf::from(std::env::var_os("SIPSENSOR_FULL_DISK_DIR").unwrap());
    let path = dir.join("collector.db");
    // Ballast to delete once the disk is full.
    let ballast = dir.join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let store = Arc::new(store_at(&path).await.unwrap());
    let (sensor, session) =
        sensor_with_session(store.as_ref(), "sip:s@example.net", "c1", T0).await;
    let metrics = Metrics::new(StreamsRegistry::new());
    let writer = StorageWriter::spawn(
        store.clone(),
        WriterConfig {
            retry_interval: Duration::from_millis(100),
            ..WriterConfig::default()
        },
        metrics.clone(),
    );
    let h = writer.handle();
    let mut submitted = 0i64;
    let mut full = None;
    for _ in 0..200 {
        h.readings(samples(&session, submitted..submitted + 1000, T0))
            .await
            .unwrap();
        submitted += 1000;
        if let Err(e) = h.flush().await {
            full = Some(e);
            break;
        }
    }
    let e = full.expect("the 2 MB file system never filled up");
    assert!(matches!(e, StorageError::DiskFull { .. }), "{e}");
    assert!(
        metrics
            .storage_errors
            .get_or_create(&[("kind", "disk_full")])
            .get()
            >= 1
    );
    // Still serving reads.
    assert_eq!(store.sensors().await.unwrap().len(), 1);
    std::fs::remove_file(&ballast).unwrap();
    h.flush().await.unwrap();
    let summary = writer.shutdown().await;
    assert_eq!(summary.dropped, 0);
    assert_eq!(summary.lost_at_shutdown, 0);
    let stored = all_samples(store.as_ref(), sensor.id).await;
    assert_eq!(stored.len() as i64, 2 * submitted);
    store.close().await.unwrap();
    // The next start finds the file intact.
    let again = store_at(&path).await.unwrap();
    again.close().await.unwrap();
}
