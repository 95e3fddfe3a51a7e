//! The `sipsensor-collector` binary: check-config, run until SIGTERM, a
//! damaged database at start, and export as CSV and JSON.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sipsensor_collector::storage::sqlite::{SqliteOptions, SqliteStore};
use sipsensor_collector::storage::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sipsensor-collector");

fn collector(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The collector process, killed by PID when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

fn write_config(dir: &Path, db: &Path) -> PathBuf {
    let path = dir.join("collector.yaml");
    std::fs::write(
        &path,
        format!(
            "storage:\n  url: sqlite://{}\nhttp:\n  bind: 127.0.0.1:0\nretention:\n  days: 30\n",
            db.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_config_accepts_the_example_and_explains_errors() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/collector.yaml");
    let dir = tempfile::tempdir().unwrap();
    // The example names the appliance's files; here they are in `dir`.
    let creds = dir.path().join("credentials.yaml");
    let local = std::fs::read_to_string(example)
        .unwrap()
        .replace("/etc/sipsensor/credentials.yaml", creds.to_str().unwrap())
        .replace("/run/sipsensor/", &format!("{}/", dir.path().display()))
        .replace("/var/lib/sipsensor/", &format!("{}/", dir.path().display()))
        .replace("/etc/sipsensor/tls/", &format!("{}/", dir.path().display()));
    // ...and its TLS files, check-config reads them too.
    let ca = sipsensor_testkit::pki::TestCa::new("example CA");
    let leaf = ca.issue(&["collector.example.net"]);
    for (name, pem) in [
        ("collector.crt", leaf.certificate),
        ("collector.key", leaf.private_key),
        ("site-ca.crt", ca.certificate_pem()),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let local_path = dir.path().join("collector.yaml");
    std::fs::write(&local_path, local).unwrap();
    // check-config reads the credentials file the config names.
    let out = collector(&["check-config", local_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read credentials file"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&creds, "users:\n  sensor-0001: \"a long password\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = collector(&["check-config", local_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": ok"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "storage:\n  url: sqlite:///x.db\n  colour: red\n").unwrap();
    let out = collector(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("config file {}", bad.display())),
        "{err}"
    );
    assert!(err.contains("unknown field `colour`"), "{err}");
    assert!(err.contains("line 3 column 3"), "{err}");
}

#[test]
fn check_config_reads_the_tls_files_and_refuses_a_key_that_is_not_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = sipsensor_testkit::pki::TestCa::new("site CA");
    let issued = ca.issue(&["collector.example.net"]);
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (cert, ca_file) = (
        file("c.crt", &issued.certificate),
        file("ca.crt", &ca.certificate_pem()),
    );
    let config = |key: &str| {
        file(
            "collector.yaml",
            &format!(
                "storage:\n  url: sqlite:///tmp/unused.db\nsip:\n  tls:\n    \
                 certificate: {cert}\n    private_key: {key}\n    ca_file: {ca_file}\n"
            ),
        )
    };
    let good = config(&file("c.key", &issued.private_key));
    let out = collector(&["check-config", &good]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let foreign = config(&file("other.key", &ca.issue(&["x"]).private_key));
    let out = collector(&["check-config", &foreign]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("sip.tls:"),
        "{}",
        text(&out.stderr)
    );
    let missing = config(&dir.path().join("none.key").display().to_string());
    let out = collector(&["check-config", &missing]);
    assert!(
        text(&out.stderr).contains("none.key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_serves_http_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    let config = write_config(dir.path(), &db);
    let mut child = Running(
        Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The log line names the bound port.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no HTTP address logged:\n{}", log.join("\n")));
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.trim_end_matches('/').parse().unwrap();
        }
        log.push(line);
    };
    assert!(addr.ip().is_loopback());
    assert_eq!(http_get(addr, "/healthz"), (200, "ok\n".to_string()));
    let (status, body) = http_get(addr, "/api/sensors");
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE sipsensor_collector_samples_stored counter"));

    let t = Instant::now();
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).unwrap();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = rx.try_iter().collect();
    let all = rest.join("\n");
    assert!(all.contains("SIGTERM received"), "{all}");
    assert!(all.contains("storage writer stopped"), "{all}");
    // The WAL was checkpointed into the file on the way out.
    let wal = dir.path().join("collector.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

#[test]
fn a_damaged_database_stops_the_start_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    std::fs::write(&db, b"not a database at all, really not".repeat(100)).unwrap();
    let before = std::fs::read(&db).unwrap();
    let config = write_config(dir.path(), &db);
    let out = collector(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{} is damaged", db.display())),
        "{err}"
    );
    assert!(err.contains("restore the file from a backup"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

/// A database with two sensors' samples, made through the library.
fn export_fixture(db: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = SqliteStore::open(db.to_path_buf(), SqliteOptions::default())
            .await
            .unwrap();
        let (sensor, session) = sensor_with_session(&s, "sip:s@example.net", "c1", T0).await;
        let (_, other) = sensor_with_session(&s, "sip:other@example.net", "c2", T0).await;
        // 25 000 packets: the export pages through 10 000-row queries.
        let mut all = samples(&session, 0..25_000, T0);
        all.extend(samples(&other, 0..10, T0));
        s.write_batch(&Batch {
            readings: all,
            // After the last instant: a gap never covers a stored one.
            gaps: vec![Gap {
                sensor: sensor.id,
                session: Some(session.id),
                from_ns: T0 + 24_999 * PERIOD,
                to_ns: T0 + 25_003 * PERIOD,
                samples: 3,
                cause: GapCause::Loss,
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
        s.close().await.unwrap();
    });
}

#[test]
fn export_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    export_fixture(&db);
    let url = format!("sqlite://{}", db.display());

    // CSV of one minute: 600 instants x 2 channels.
    let out = collector(&[
        "export",
        "--storage",
        &url,
        "--sensor",
        "sip:s@example.net",
        "--from",
        "2025-11-25T12:00:00Z",
        "--to",
        "2025-11-25T13:01:00+01:00",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "time,ts_ns,sensor,session,channel,name,unit,seq,index,raw,value,source"
    );
    assert_eq!(lines.len(), 1 + 1200);
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first[0], "2025-11-25T12:00:00Z");
    assert_eq!(first[2], "sip:s@example.net");
    assert_eq!(first[5], "temperature");
    assert_eq!(first[6], "Cel");
    assert_eq!(first[9], raw_of(0, 0).to_string());
    assert_eq!(
        first[10].parse::<f64>().unwrap(),
        raw_of(0, 0) as f64 / 100.0
    );
    assert_eq!(first[11], "live");
    let last: Vec<&str> = lines[1200].split(',').collect();
    assert_eq!(last[0], "2025-11-25T12:00:59.9Z");
    assert_eq!(last[5], "humidity");

    // JSON of everything, by sensor id, into a file.
    let file = dir.path().join("all.json");
    let out = collector(&[
        "export",
        "--storage",
        &url,
        "--sensor",
        "1",
        "--format",
        "json",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("50000 rows written"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 50_000);
    for (i, r) in rows.iter().enumerate() {
        let seq = i as i64 / 2;
        let ch = (i % 2) as u16;
        assert_eq!(r["seq"], seq, "row {i}");
        assert_eq!(r["channel"], ch);
        assert_eq!(r["raw"], raw_of(seq, ch));
        assert_eq!(r["ts_ns"], T0 + seq * PERIOD);
    }

    // Gaps, through a config file.
    let config = write_config(dir.path(), &db);
    let out = collector(&[
        "export",
        "--config",
        config.to_str().unwrap(),
        "--sensor",
        "sip:s@example.net",
        "--kind",
        "gaps",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["samples"], 3);
    assert_eq!(v[0]["from"], "2025-11-25T12:41:39.9Z");
    assert_eq!(v[0]["cause"], "loss");

    // Coverage: the live range, then the gap after it.
    let out = collector(&[
        "export",
        "--storage",
        &url,
        "--sensor",
        "sip:s@example.net",
        "--kind",
        "coverage",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "sensor,kind,from,to,from_ns,to_ns,instants,resent,cause",
            &format!(
                "sip:s@example.net,live,2025-11-25T12:00:00Z,2025-11-25T12:41:39.9Z,{},{},25000,0,",
                T0,
                T0 + 24_999 * PERIOD
            ),
            &format!(
                "sip:s@example.net,missing,2025-11-25T12:41:39.9Z,2025-11-25T12:41:40.3Z,{},{},3,0,loss",
                T0 + 24_999 * PERIOD,
                T0 + 25_003 * PERIOD
            ),
        ]
    );

    // An empty range is an empty document, not an error.
    let out = collector(&[
        "export",
        "--storage",
        &url,
        "--sensor",
        "2",
        "--from",
        "2030-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "[]\n");
}

#[test]
fn export_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    export_fixture(&db);
    let url = format!("sqlite://{}", db.display());
    let out = collector(&[
        "export",
        "--storage",
        &url,
        "--sensor",
        "sip:nobody@example.net",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no sensor \"sip:nobody@example.net\""));
    let out = collector(&[
        "export",
        "--storage",
        &url,
        "--sensor",
        "1",
        "--from",
        "last tuesday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not an RFC 3339 time"));
    let out = collector(&[
        "export",
        "--storage",
        &url,
        "--sensor",
        "1",
        "--from",
        "2026-01-02T00:00:00Z",
        "--to",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--from must not be after --to"));
    let out = collector(&["export", "--storage", "mysql://x", "--sensor", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected sqlite:///"));
}
