//! The server over TLS with a real client (curl; skipped without it) and
//! raw sockets for what no polite client does.

use super::*;
use crate::storage::Storage;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};
use crate::storage::updates::BundleRecord;
use sha2::{Digest, Sha256};
use sipsensor_runtime::sip_transport::tls::{Identity, server_config_from_pem};
use sipsensor_testkit::pki::TestCa;
use std::process::Command;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const SIZE: usize = 300_000;

struct Server {
    dir: tempfile::TempDir,
    port: u16,
    ca: PathBuf,
    sha256: String,
    content: Vec<u8>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn have_curl() -> bool {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    // CI installs it (.ci/apt/collector.txt): a skip there is a failure.
    assert!(
        found || std::env::var("SIPSENSOR_CI").map_or(true, |v| v != "1"),
        "SIPSENSOR_CI=1 but curl is missing"
    );
    found
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn server(idle: Duration, per_source: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
        .await
        .unwrap();
    let store = Arc::new(store).updates().unwrap();
    let content: Vec<u8> = (0..SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let sha256 = hex(&Sha256::digest(&content));
    let bundles = dir.path().join("bundles");
    std::fs::create_dir_all(&bundles).unwrap();
    std::fs::write(bundles.join(file_name(&sha256)), &content).unwrap();
    store
        .record_bundle(&BundleRecord {
            sha256: sha256.clone(),
            version: "2026.12.2".into(),
            compatible: "sipsensor-test".into(),
            size: SIZE as u64,
            published_ns: 1,
        })
        .await
        .unwrap();
    // A file in the directory that was never published.
    std::fs::write(bundles.join(file_name(&"e".repeat(64))), b"not published").unwrap();
    let ca = TestCa::new("bundle server test CA");
    let leaf = ca.issue(&["localhost"]);
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.certificate_pem()).unwrap();
    let tls = server_config_from_pem(
        Identity {
            certificate: leaf.certificate.as_bytes(),
            private_key: leaf.private_key.as_bytes(),
        },
        None,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let limits = Limits {
        max_total: 16,
        max_per_source: per_source,
        idle_timeout: idle,
    };
    let metrics = Metrics::new(crate::stats::StreamsRegistry::new());
    tokio::spawn(serve(
        listener,
        Bundles {
            store,
            dir: bundles,
        },
        tls,
        limits,
        metrics,
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        dir,
        port,
        ca: ca_path,
        sha256,
        content,
        stop: Some(stop),
    }
}

/// curl's answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn bundle_path(&self) -> String {
        format!("/bundles/{}.raucb", self.sha256)
    }

    async fn curl(&self, path: &str, args: &[&str]) -> Answer {
        let headers = self.dir.path().join("headers");
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--path-as-is", "--cacert"])
            .arg(&self.ca)
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", self.port))
            .arg("-D")
            .arg(&headers)
            .args(args)
            .arg(self.url(path));
        let out = cmd.output().await.unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let headers = std::fs::read_to_string(&headers).unwrap().to_lowercase();
        let status = headers
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        Answer {
            status,
            headers,
            body: out.stdout,
        }
    }
}

#[tokio::test]
async fn whole_files_ranges_and_head() {
    if !have_curl() {
        eprintln!("skipped: needs curl");
        return;
    }
    let s = server(Duration::from_secs(5), 8).await;
    let whole = s.curl(&s.bundle_path(), &[]).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body == s.content, "the whole bundle");
    assert!(
        whole.headers.contains("accept-ranges: bytes"),
        "{}",
        whole.headers
    );
    assert!(whole.headers.contains(&format!("etag: \"{}\"", s.sha256)));

    let part = s.curl(&s.bundle_path(), &["-r", "1000-1999"]).await;
    assert_eq!(part.status, 206);
    assert!(part.body == s.content[1000..2000]);
    assert!(
        part.headers
            .contains(&format!("content-range: bytes 1000-1999/{SIZE}")),
        "{}",
        part.headers
    );
    let tail = s.curl(&s.bundle_path(), &["-r", "-10"]).await;
    assert!(tail.status == 206 && tail.body == s.content[SIZE - 10..]);

    let head = s.curl(&s.bundle_path(), &["-I"]).await;
    assert_eq!(head.status, 200);
    assert!(head.headers.contains(&format!("content-length: {SIZE}")));

    // A range of another representation (If-Range, RFC 9110 13.1.5): the
    // whole file.
    let stale = s
        .curl(
            &s.bundle_path(),
            &["-r", "0-9", "-H", "If-Range: \"other\""],
        )
        .await;
    assert!(stale.status == 200 && stale.body == s.content);
    let fresh_if_range = format!("If-Range: \"{}\"", s.sha256);
    let fresh = s
        .curl(&s.bundle_path(), &["-r", "0-9", "-H", &fresh_if_range])
        .await;
    assert!(fresh.status == 206 && fresh.body == s.content[..10]);
}

#[tokio::test]
async fn an_interrupted_download_resumes_where_it_stopped() {
    if !have_curl() {
        eprintln!("skipped: needs curl");
        return;
    }
    let s = server(Duration::from_secs(5), 8).await;
    let out = s.dir.path().join("download.part");
    std::fs::write(&out, &s.content[..123_457]).unwrap();
    let out_arg = out.to_str().unwrap();
    let resumed = s.curl(&s.bundle_path(), &["-C", "-", "-o", out_arg]).await;
    assert_eq!(resumed.status, 206);
    assert!(
        resumed
            .headers
            .contains(&format!("content-range: bytes 123457-{}/{SIZE}", SIZE - 1))
    );
    assert!(std::fs::read(&out).unwrap() == s.content);
    // Everything there already: the next byte is past the end.
    let done = s.curl(&s.bundle_path(), &["-r", &format!("{SIZE}-")]).await;
    assert_eq!(done.status, 416);
    assert!(
        done.headers
            .contains(&format!("content-range: bytes */{SIZE}"))
    );
}

#[tokio::test]
async fn nothing_but_published_bundles_is_served() {
    if !have_curl() {
        eprintln!("skipped: needs curl");
        return;
    }
    let s = server(Duration::from_secs(5), 8).await;
    for path in [
        "/bundles/../c.db".to_string(),
        "/bundles/..%2fc.db".to_string(),
        "/bundles/..%2f..%2fca.pem".to_string(),
        "/c.db".to_string(),
        "/bundles/".to_string(),
        format!("/bundles/{}", s.sha256),
        format!("/bundles/{}.raucb", s.sha256.to_uppercase()),
        // In the directory, never published.
        format!("/bundles/{}.raucb", "e".repeat(64)),
    ] {
        let a = s.curl(&path, &[]).await;
        assert_eq!(a.status, 404, "{path}");
        assert!(a.body.len() < 100, "{path}");
    }
    let post = s.curl(&s.bundle_path(), &["-X", "POST"]).await;
    assert_eq!(post.status, 405);
}

/// Reads until the server closes; when that was (None: not within
/// `within`).
async fn closed_at(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> Option<tokio::time::Instant> {
    let mut buf = [0u8; 512];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return tokio::time::Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn silent_connections_are_closed_and_one_source_cannot_take_every_place() {
    let idle = Duration::from_millis(1500);
    let s = server(idle, 2).await;
    let addr = format!("127.0.0.1:{}", s.port);
    let opened = tokio::time::Instant::now();
    // Two connections that never start their TLS handshake (slowloris).
    let mut a = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // The third from the same source: closed at once.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let refused = closed_at(&mut c, Duration::from_secs(1)).await;
    assert!(refused.is_some_and(|t| t < opened + idle));
    for stream in [&mut a, &mut b] {
        let closed = closed_at(stream, Duration::from_secs(5)).await;
        assert!(
            closed.is_some_and(|t| t >= opened + idle - Duration::from_millis(100)),
            "a silent connection is closed after the idle timeout"
        );
    }
}
