//! The bundle download over HTTPS (docs/protocol.md 12.5): one GET with
//! `Range: bytes=N-` (RFC 9110 14.2) into `<sha256>.raucb.part`, the
//! server verified against `sip.ca_file`, the file made durable every
//! [`SYNC_EVERY`] bytes; then the size and SHA-256 check.

use super::DownloadEnd;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{CONTENT_RANGE, HOST, RANGE, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A power cut loses at most this much of a download.
pub const SYNC_EVERY: u64 = 1 << 20;
/// Connecting (TCP and TLS) and each wait for data give up after this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One download: where from, how much, into which file.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub url: String,
    pub size: u64,
    /// `<dir>/<sha256>.raucb.part`.
    pub part: PathBuf,
    /// Bytes of the part file to keep (the updater's count).
    pub offset: u64,
}

/// The part file and the verified bundle of `sha256` in `dir`.
pub fn part_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(format!("{sha256}.raucb.part"))
}

pub fn bundle_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(format!("{sha256}.raucb"))
}

/// Download `fetch` with `tls` (the site CA's client configuration),
/// calling `progress` with the bytes in the file as they grow.
pub async fn fetch(
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
    job: &Fetch,
    mut progress: impl FnMut(u64),
) -> DownloadEnd {
    match fetch_inner(tls, job, &mut progress).await {
        Ok(end) => end,
        Err(e) => DownloadEnd::Interrupted(e),
    }
}

async fn fetch_inner(
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
    job: &Fetch,
    progress: &mut impl FnMut(u64),
) -> Result<DownloadEnd, String> {
    let uri: Uri = job
        .url
        .parse()
        .map_err(|e| format!("url `{}`: {e}", job.url))?;
    let (Some("https"), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Ok(DownloadEnd::Refused(format!(
            "url `{}` is not https://host/...",
            job.url
        )));
    };
    let port = uri.port_u16().unwrap_or(443);
    // An IPv6 literal comes bracketed in the URI; the name check wants it bare.
    let name_text = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let server_name = ServerName::try_from(name_text.clone())
        .map_err(|e| format!("server name `{name_text}`: {e}"))?;

    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(false)
        .write(true)
        .truncate(false)
        .open(&job.part)
        .await
        .map_err(|e| format!("{}: {e}", job.part.display()))?;
    let on_disk = file
        .metadata()
        .await
        .map_err(|e| format!("{}: {e}", job.part.display()))?
        .len();
    let mut have = job.offset.min(on_disk).min(job.size);
    set_len(&mut file, have, &job.part).await?;
    if have == job.size {
        return Ok(DownloadEnd::Complete);
    }

    let tcp = tokio::time::timeout(
        IO_TIMEOUT,
        tokio::net::TcpStream::connect((name_text.as_str(), port)),
    )
    .await
    .map_err(|_| format!("connecting to {host}:{port} timed out"))?
    .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let stream = tokio::time::timeout(
        IO_TIMEOUT,
        tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp),
    )
    .await
    .map_err(|_| format!("TLS with {host}:{port} timed out"))?
    .map_err(|e| {
        format!("TLS with {host}:{port}: {e} (is its certificate signed by sip.ca_file's CA?)")
    })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP with {host}:{port}: {e}"))?;
    let driver = tokio::spawn(connection);

    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::get(path)
        .header(HOST, uri.authority().map_or(host, |a| a.as_str()))
        .header(
            USER_AGENT,
            concat!("sipsensor-agent/", env!("CARGO_PKG_VERSION")),
        );
    if have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = tokio::time::timeout(IO_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| "no answer from the server".to_owned())?
        .map_err(|e| format!("request: {e}"))?;

    let status = response.status();
    match status {
        StatusCode::PARTIAL_CONTENT if have > 0 => {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(range_start);
            if start != Some(have) {
                set_len(&mut file, 0, &job.part).await?;
                driver.abort();
                return Ok(DownloadEnd::Interrupted(format!(
                    "the server's 206 does not start at byte {have}; starting over"
                )));
            }
        }
        // A server that ignores the range sends it all: the file restarts.
        StatusCode::OK => {
            have = 0;
            set_len(&mut file, 0, &job.part).await?;
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            set_len(&mut file, 0, &job.part).await?;
            driver.abort();
            return Ok(DownloadEnd::Interrupted(format!(
                "the server has no byte {have} (416); starting over"
            )));
        }
        s if s.is_client_error() => {
            driver.abort();
            return Ok(DownloadEnd::Refused(format!("HTTP {s}")));
        }
        s => {
            driver.abort();
            return Ok(DownloadEnd::Interrupted(format!("HTTP {s}")));
        }
    }
    progress(have);

    let mut body = response.into_body();
    let mut unsynced = 0u64;
    let end = loop {
        let frame = match tokio::time::timeout(IO_TIMEOUT, body.frame()).await {
            Err(_) => break Err(format!("no data for {} s", IO_TIMEOUT.as_secs())),
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(format!("reading the bundle: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        // Never more than the bundle's size: what follows is not it.
        let room = usize::try_from(job.size - have).unwrap_or(usize::MAX);
        let data = &data[..data.len().min(room)];
        if let Err(e) = file.write_all(data).await {
            break Err(format!("{}: {e}", job.part.display()));
        }
        have += data.len() as u64;
        unsynced += data.len() as u64;
        if unsynced >= SYNC_EVERY {
            unsynced = 0;
            if let Err(e) = file.sync_data().await {
                break Err(format!("{}: {e}", job.part.display()));
            }
        }
        progress(have);
        if have == job.size {
            break Ok(());
        }
    };
    driver.abort();
    // What was written stays for the next attempt.
    file.sync_data()
        .await
        .map_err(|e| format!("{}: {e}", job.part.display()))?;
    end?;
    if have == job.size {
        Ok(DownloadEnd::Complete)
    } else {
        Ok(DownloadEnd::Interrupted(format!(
            "the connection ended at byte {have} of {}",
            job.size
        )))
    }
}

async fn set_len(file: &mut tokio::fs::File, len: u64, path: &Path) -> Result<(), String> {
    use tokio::io::AsyncSeekExt;
    file.set_len(len)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.seek(std::io::SeekFrom::Start(len))
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// The first byte of `Content-Range: bytes FIRST-LAST/LENGTH`.
fn range_start(value: &str) -> Option<u64> {
    let spec = value.trim().strip_prefix("bytes ")?;
    spec.split_once('-')?.0.trim().parse().ok()
}

/// Check the part file of `sha256` in `dir` (12.5): `size` bytes whose
/// SHA-256 is `sha256`. Renamed to the bundle if so, deleted if not.
/// Blocking: run it off the async threads.
pub fn verify(dir: &Path, sha256: &str, size: u64) -> Result<PathBuf, String> {
    let part = part_path(dir, sha256);
    let result = hash_file(&part).and_then(|(len, digest)| {
        if len != size {
            Err(format!(
                "the download has {len} bytes, the bundle {size}; deleted"
            ))
        } else if digest != sha256 {
            Err(format!(
                "the download's SHA-256 is {digest}, not {sha256}; deleted"
            ))
        } else {
            Ok(())
        }
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    let bundle = bundle_path(dir, sha256);
    std::fs::rename(&part, &bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    // The rename itself survives a power cut once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(bundle)
}

fn hash_file(path: &Path) -> Result<(u64, String), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    let digest = hasher.finalize();
    Ok((len, digest.iter().map(|b| format!("{b:02x}")).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start() {
        assert_eq!(range_start("bytes 100-999/1000"), Some(100));
        assert_eq!(range_start("bytes */1000"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }

    #[test]
    fn verify_renames_a_good_file_and_deletes_a_bad_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = b"a bundle";
        let sha = "b0ea4f2b7d1f5a96baad3a2f3f0f5e77f0e1e4a8de2a7cd9c8e96c3d0d6e1d6c";
        // The real digest of `data`, so the test does not hard-code it.
        let good = {
            let d = Sha256::digest(data);
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        std::fs::write(part_path(dir.path(), &good), data).expect("write");
        let bundle = verify(dir.path(), &good, data.len() as u64).expect("verified");
        assert_eq!(bundle, bundle_path(dir.path(), &good));
        assert!(bundle.exists());

        std::fs::write(part_path(dir.path(), sha), data).expect("write");
        let e = verify(dir.path(), sha, data.len() as u64).expect_err("wrong digest");
        assert!(e.contains("SHA-256"), "{e}");
        assert!(!part_path(dir.path(), sha).exists(), "deleted");

        std::fs::write(part_path(dir.path(), &good), &data[..3]).expect("write");
        let e = verify(dir.path(), &good, data.len() as u64).expect_err("short");
        assert!(e.contains("has 3 bytes"), "{e}");
    }
}
