//! PostgreSQL backend against a real server (Debian postgresql-15) that the
//! harness starts on a Unix socket and stops: the conformance suite, plus
//! what is specific to a server.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conformance;

use common::pg::PgServer;
use common::*;
use sipsensor_collector::storage::*;

struct PgBackend<'a> {
    server: &'a PgServer,
}

#[async_trait::async_trait]
impl conformance::Backend for PgBackend<'_> {
    async fn create(&self, name: &str) -> StorageUrl {
        self.server.create_db(name).await.parse().unwrap()
    }
}

/// One server for the whole file: starting one takes seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(server) = PgServer::start() else {
        return;
    };
    conformance::run_all(&PgBackend { server: &server }).await;
    schema_newer_than_the_collector_is_refused(&server).await;
    concurrent_first_starts_migrate_once(&server).await;
    version_one_samples_become_readings(&server).await;
    version_two_keeps_one_reading_per_instant(&server).await;
    unreachable_server_is_a_clear_error(&server).await;
    server_restart_is_survived(&server).await;
}

async fn schema_newer_than_the_collector_is_refused(server: &PgServer) {
    let url: StorageUrl = server.create_db("newer").await.parse().unwrap();
    let s = open(&url, OpenOptions::default()).await.unwrap();
    assert_eq!(
        s.schema_version().await.unwrap(),
        sipsensor_collector::storage::postgres::schema::latest_version()
    );
    s.close().await.unwrap();
    server
        .execute(
            "newer",
            "INSERT INTO sipsensor_schema (version) VALUES (99)",
        )
        .await;
    let e = open(&url, OpenOptions::default()).await.unwrap_err();
    assert!(
        matches!(e, StorageError::SchemaTooNew { found: 99, .. }),
        "{e}"
    );
}

async fn concurrent_first_starts_migrate_once(server: &PgServer) {
    let url: StorageUrl = server.create_db("race").await.parse().unwrap();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { open(&url, OpenOptions::default()).await })
        })
        .collect();
    for o in opens {
        let s = o.await.unwrap().unwrap();
        assert_eq!(
            s.schema_version().await.unwrap(),
            sipsensor_collector::storage::postgres::schema::latest_version()
        );
        s.close().await.unwrap();
    }
}

/// A database of schema version 1 (a row per channel value) is migrated to
/// readings on open, nothing lost, a missing channel as NULL.
async fn version_one_samples_become_readings(server: &PgServer) {
    let url: StorageUrl = server.create_db("v1").await.parse().unwrap();
    let v1 = include_str!("../src/storage/postgres/migrations/0001_initial.sql");
    server.execute("v1", v1).await;
    server
        .execute(
            "v1",
            "CREATE TABLE sipsensor_schema (
                 version BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
             INSERT INTO sipsensor_schema (version) VALUES (1);
             INSERT INTO sensors (id, aor) VALUES (1, 'sip:s@example.net');
             INSERT INTO sessions (id, sensor_id, call_id, ssrc, rate_hz, samples_per_packet,
                                   started_ns)
               VALUES (5, 1, 'c', 1, 10, 1, 0);
             INSERT INTO session_channels VALUES (5, 0, 'temperature', 'Cel', 0.01),
                                                 (5, 1, 'humidity', '%RH', 0.1);
             INSERT INTO samples (session_id, channel, seq, idx, sensor_id, ts_ns, raw) VALUES
               (5, 0, 1, 0, 1, 100, 2508), (5, 1, 1, 0, 1, 100, -9223372036854775808),
               (5, 1, 2, 0, 1, 200, 455);",
        )
        .await;
    let s = open(&url, OpenOptions::default()).await.unwrap();
    assert_eq!(
        s.schema_version().await.unwrap(),
        sipsensor_collector::storage::postgres::schema::latest_version()
    );
    let got: Vec<_> = all_samples(s.as_ref(), SensorId(1))
        .await
        .into_iter()
        .map(|x| (x.seq, x.channel, x.ts_ns, x.raw, x.name))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 0, 100, 2508, "temperature".to_string()),
            (1, 1, 100, i64::MIN, "humidity".to_string()),
            (2, 1, 200, 455, "humidity".to_string()),
        ]
    );
    let r = s.delete_before(250).await.unwrap();
    assert_eq!(r.samples, 3, "the NULL of packet 2 is not a sample");
    s.close().await.unwrap();
}

/// Schema version 2 keyed readings by session and packet; version 3 by
/// sensor and instant (issue 15): two sessions' copies of one instant
/// become one row (the first session's), gaps stay, expired gaps fit.
async fn version_two_keeps_one_reading_per_instant(server: &PgServer) {
    let url: StorageUrl = server.create_db("v2").await.parse().unwrap();
    server
        .execute(
            "v2",
            include_str!("../src/storage/postgres/migrations/0001_initial.sql"),
        )
        .await;
    server
        .execute(
            "v2",
            include_str!("../src/storage/postgres/migrations/0002_readings.sql"),
        )
        .await;
    server
        .execute(
            "v2",
            "CREATE TABLE sipsensor_schema (
                 version BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
             INSERT INTO sipsensor_schema (version) VALUES (1), (2);
             INSERT INTO sensors (id, aor) VALUES (1, 'sip:s@example.net');
             INSERT INTO sessions (id, sensor_id, call_id, ssrc, rate_hz, samples_per_packet,
                                   started_ns)
               VALUES (5, 1, 'a', 1, 10, 1, 0), (6, 1, 'b', 2, 10, 1, 0);
             INSERT INTO samples (session_id, seq, idx, sensor_id, ts_ns, raws) VALUES
               (6, 9, 0, 1, 100, '{7}'), (5, 1, 0, 1, 100, '{1}'), (5, 2, 0, 1, 200, '{2}');
             INSERT INTO gaps VALUES (1, 200, 500, 5, 2, 'loss');",
        )
        .await;
    let s = open(&url, OpenOptions::default()).await.unwrap();
    let got: Vec<_> = all_samples(s.as_ref(), SensorId(1))
        .await
        .into_iter()
        .map(|x| (x.session.0, x.ts_ns, x.raw, x.source))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, 100, 1, ReadingSource::Live),
            (5, 200, 2, ReadingSource::Live)
        ]
    );
    assert_eq!(s.committed_through(SensorId(1)).await.unwrap(), Some(200));
    s.record_expired(SensorId(1), 200, 500).await.unwrap();
    let gaps = s.gaps(SensorId(1), i64::MIN, TS_MAX).await.unwrap();
    assert_eq!(
        gaps.iter().map(|g| g.cause).collect::<Vec<_>>(),
        vec![GapCause::Expired]
    );
    s.close().await.unwrap();
}

async fn unreachable_server_is_a_clear_error(server: &PgServer) {
    let url: StorageUrl = format!(
        "postgresql:///x?user=postgres&host={}/nowhere",
        server.socket_dir().display()
    )
    .parse()
    .unwrap();
    let e = open(&url, OpenOptions::default()).await.unwrap_err();
    assert!(matches!(e, StorageError::Open { .. }), "{e}");
    assert!(
        e.to_string().starts_with("cannot open postgresql:///x"),
        "{e}"
    );
}

/// Connections broken under the pool (as by a server restart) are
/// replaced: a failing call is reported, and the next one works.
async fn server_restart_is_survived(server: &PgServer) {
    let url: StorageUrl = server.create_db("restart").await.parse().unwrap();
    let s = open(&url, OpenOptions::default()).await.unwrap();
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    // Kill every backend of this database, as a restart would.
    server
        .execute(
            "postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = 'restart' AND pid <> pg_backend_pid()",
        )
        .await;
    let mut ok = false;
    for _ in 0..5 {
        match s
            .write_batch(&Batch {
                readings: samples(&session, 0..10, T0),
                ..Batch::default()
            })
            .await
        {
            Ok(_) => {
                ok = true;
                break;
            }
            Err(e) => assert!(e.is_transient(), "{e}"),
        }
    }
    assert!(ok, "the store did not reconnect");
    assert_eq!(all_samples(s.as_ref(), sensor.id).await.len(), 20);
    s.close().await.unwrap();
}
