//! The collector's doors tried as an attacker would, on loopback: a flood
//! of idle HTTP connections, requests without the token or naming a
//! rebound Host, a `control_socket` that names a file, and the modes of a
//! new database.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sipsensor_collector::app;
use sipsensor_collector::config::Config;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sipsensor-collector");
const TOKEN: &str = "5f0c2a9e81d34b7a9c6e2f1d0b8a7c6e";

/// A collector running in this process until the returned sender is used.
struct Collector {
    http: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(yaml: &str) -> Collector {
    let config = Config::parse(yaml, Path::new("doors.yaml")).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        app::run(
            config,
            async move {
                let _ = stopped.await;
            },
            move |s| {
                let _ = ready_tx.send(s.http_addr);
            },
        )
        .await
        .unwrap();
    });
    let http = tokio::time::timeout(Duration::from_secs(20), ready_rx)
        .await
        .unwrap()
        .unwrap();
    Collector {
        http,
        stop: Some(stop),
        task,
    }
}

impl Collector {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the collector did not stop")
            .unwrap();
    }
}

/// One HTTP/1.1 request from `source`; the status code and the answer.
async fn request(
    source: &str,
    to: SocketAddr,
    host: &str,
    path: &str,
    auth: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(to).await.unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

fn config(dir: &Path, http: &str) -> String {
    format!(
        "storage:\n  url: sqlite://{}\nhttp:\n  bind: 127.0.0.1:0\n{http}",
        dir.join("c.db").display()
    )
}

/// A config whose HTTP side needs [`TOKEN`] (written into `dir`).
fn config_with_token(dir: &Path, more_http: &str) -> String {
    let token = dir.join("http-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    config(
        dir,
        &format!("  token_file: {}\n{more_http}", token.display()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_flood_from_one_source_leaves_healthz_to_others() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(
        dir.path(),
        "  idle_timeout_s: 1\n  max_connections: 256\n  max_connections_per_source: 16\n",
    ))
    .await;
    let addr = c.http;
    // 2,000 connections that never send a byte, from 127.0.0.1.
    let flood = tokio::task::spawn_blocking(move || {
        (0..2000)
            .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for source in ["127.0.0.2", "127.0.0.3"] {
        let t = Instant::now();
        let (status, _) = request(source, addr, &addr.to_string(), "/healthz", None).await;
        assert_eq!(status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "/healthz took {:?} under the flood",
            t.elapsed()
        );
    }
    // Every flooding connection is closed: the refused ones at once, the
    // admitted ones when their idle time is up.
    let closed = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        flood
            .into_iter()
            .filter(|mut s| {
                let left = deadline.saturating_duration_since(Instant::now());
                s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .unwrap();
                match s.read_to_end(&mut Vec::new()) {
                    Ok(_) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                }
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 2000, "connections the collector kept open");
    let (_, metrics) = request("127.0.0.2", addr, "127.0.0.1", "/metrics", None).await;
    let refused = metrics
        .lines()
        .find(|l| l.contains("reason=\"http_source_connections_full\""))
        .unwrap_or_else(|| panic!("refusals not counted:\n{metrics}"));
    let n: u64 = refused.rsplit(' ').next().unwrap().parse().unwrap();
    // 16 get in; the rest are refused (a few more get in if the flood
    // outlasts an idle timeout).
    assert!((1500..=1984).contains(&n), "{refused}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_or_with_a_rebound_host_a_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config_with_token(
        dir.path(),
        "  hosts: [collector.example.net]\n",
    ))
    .await;
    let addr = c.http;
    let host = addr.to_string();
    let (status, answer) = request("127.0.0.1", addr, &host, "/api/sensors", None).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains("WWW-Authenticate: Basic") || answer.contains("www-authenticate: Basic")
    );
    let wrong = format!("Bearer {}", TOKEN.replace('5', "6"));
    assert_eq!(
        request("127.0.0.1", addr, &host, "/metrics", Some(&wrong))
            .await
            .0,
        401
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        request("127.0.0.1", addr, &host, "/api/sensors", Some(&bearer))
            .await
            .0,
        200
    );
    // A browser after the log-in prompt: basic auth, the token as password.
    let basic = {
        use base64::Engine;
        let pair = format!("technician:{TOKEN}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    assert_eq!(
        request(
            "127.0.0.1",
            addr,
            "collector.example.net",
            "/",
            Some(&basic)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        request("127.0.0.1", addr, &host, "/healthz", None).await.0,
        200
    );
    // DNS rebinding: the attacker's name now resolves to us.
    let (status, answer) = request(
        "127.0.0.1",
        addr,
        "rebind.attacker.example:8080",
        "/api/sensors",
        Some(&bearer),
    )
    .await;
    assert_eq!(status, 421, "{answer}");
    c.stop().await;
}

#[test]
fn a_control_socket_path_naming_a_file_is_refused_and_the_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("important.db");
    std::fs::write(&victim, b"SQLite format 3\0 the only copy").unwrap();
    let cfg = dir.path().join("collector.yaml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  url: sqlite://{}\nhttp:\n  bind: 127.0.0.1:0\nsip:\n  bind: 127.0.0.1:0\n  \
             control_socket: {}\nmedia:\n  rtp_bind: 127.0.0.1:0\n  receive_priority: 0\n",
            dir.path().join("c.db").display(),
            victim.display()
        ),
    )
    .unwrap();
    let check = Command::new(BIN)
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{err}");
    assert!(
        err.contains("a regular file is there, not a socket"),
        "{err}"
    );
    let run = Command::new(BIN)
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"SQLite format 3\0 the only copy"
    );
}

#[test]
fn check_config_reads_the_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials.yaml");
    let cfg = dir.path().join("collector.yaml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  url: sqlite://{}\nsip:\n  credentials_file: {}\n  control_socket: {}\n",
            dir.path().join("c.db").display(),
            creds.display(),
            dir.path().join("c.sock").display()
        ),
    )
    .unwrap();
    let check = || {
        let out = Command::new(BIN)
            .args(["check-config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check();
    assert_eq!(code, Some(1), "a missing file: {err}");
    assert!(err.contains("cannot read credentials file"), "{err}");
    std::fs::write(&creds, "users: [not, a, mapping]\n").unwrap();
    let (code, err) = check();
    assert_eq!(code, Some(1), "a malformed file: {err}");
    assert!(err.contains("line 1"), "{err}");
    std::fs::write(&creds, "users:\n  sensor-0001: \"a long password\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = check();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: credentials file") && err.contains("mode 644"),
        "{err}"
    );
}

#[tokio::test]
async fn a_new_database_and_its_wal_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(dir.path(), "")).await;
    let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().mode() & 0o777;
    assert_eq!(mode("c.db"), 0o600);
    assert_eq!(mode("c.db-wal"), 0o600);
    assert_eq!(mode("c.db-shm"), 0o600);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_an_idle_keep_alive_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(dir.path(), "  idle_timeout_s: 1\n")).await;
    let addr = c.http;

    // Slowloris: a byte every 200 ms keeps the socket busy, never finishes
    // the head.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let head = b"GET /api/sensors HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for b in head.iter() {
        if slow.write_all(&[*b]).await.is_err() {
            closed_after = Some(t.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(t.elapsed());
                break;
            }
            // hyper may answer 408 before it closes.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("a head sent a byte at a time stayed open");
    assert!(
        closed_after < Duration::from_secs(3),
        "closed only after {closed_after:?}"
    );

    // Keep-alive: one answered request, then silence.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let t = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut answer))
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(end.is_ok());
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "closed before its idle time"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_behind_the_token_works_after_the_browsers_log_in_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config_with_token(dir.path(), "")).await;
    let url = format!("http://{}/", c.http);
    let polled = "window.sipsensor && window.sipsensor.polls >= 2 && \
                  window.sipsensor.lastError === null";
    let outcome = tokio::task::spawn_blocking(move || {
        let credentials = format!("technician:{TOKEN}");
        let mut browser = common::browser::Browser::start_with_credentials(Some(&credentials))?;
        browser.goto(&url);
        let with_token = browser.wait(polled, 15_000);
        // The same request without the browser's stored log-in.
        let without =
            browser.eval("fetch('/api/sensors', {credentials: 'omit'}).then((r) => r.status)");
        Some((with_token, without))
    })
    .await
    .unwrap();
    if let Some((with_token, without)) = outcome {
        with_token.expect("the page did not load its data with the token");
        assert_eq!(without, 401);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ASKED: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(dir.path(), "  idle_timeout_s: 1\n")).await;
    let stream = tokio::net::TcpStream::connect(c.http).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    // 1,000 pipelined requests for 50 kB each, far more than the socket
    // buffers hold; then nothing is read for a while.
    let asking = tokio::spawn(async move {
        let one = b"GET /vendor/uPlot.iife.min.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        for _ in 0..ASKED {
            if tx.write_all(one).await.is_err() {
                break;
            }
        }
        tx
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut answers = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), rx.read_to_end(&mut answers)).await;
    assert!(read.is_ok(), "the connection stayed open");
    let served = answers
        .windows(15)
        .filter(|w| w == b"HTTP/1.1 200 OK")
        .count();
    assert!(
        served < ASKED / 2,
        "{served} of {ASKED} answers: the stalled connection was not closed"
    );
    asking.abort();
    c.stop().await;
}
