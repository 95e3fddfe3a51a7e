//! The HTTPS bundle server (docs/protocol.md 12.5): `GET` and `HEAD
//! /bundles/<sha256>.raucb` of published bundles with single byte ranges
//! (RFC 9110 14), nothing else. Bundles are signed, so it asks no
//! credentials; it has the HTTP server's connection caps and idle timeout
//! (`http::connections::serve_tls`).

pub mod range;

use super::bundle::{file_name, is_sha256};
use crate::http::Limits;
use crate::http::connections;
use crate::metrics::Metrics;
use crate::storage::updates::UpdateStore;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use range::Selection;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// What the handler needs.
#[derive(Debug, Clone)]
pub struct Bundles {
    pub store: Arc<dyn UpdateStore>,
    pub dir: PathBuf,
}

/// The server's only route; `get` answers `HEAD` too, without the body.
pub fn router(bundles: Bundles) -> Router {
    Router::new()
        .route("/bundles/{name}", get(bundle))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(bundles)
}

/// Serves over TLS until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    bundles: Bundles,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve_tls(listener, router(bundles), tls, limits, metrics, shutdown).await
}

const CHUNK: u64 = 64 * 1024;

/// `len` bytes of `file` from where it stands, read as the client takes
/// them.
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    let chunks = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(left.min(CHUNK)).unwrap_or(64 * 1024)];
        match file.read(&mut buf).await {
            // Shorter than published: end the body early so the client
            // sees a short answer, never bytes of another length.
            Ok(0) => Some((
                Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Body::from_stream(chunks)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"))
}

async fn bundle(
    State(bundles): State<Bundles>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(sha256) = name.strip_suffix(".raucb").filter(|s| is_sha256(s)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let record = match bundles.store.bundle(sha256).await {
        Ok(Some(r)) => r,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!("bundle {sha256}: {e}");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let path = bundles.dir.join(file_name(sha256));
    let opened = match tokio::fs::File::open(&path).await {
        Ok(f) => f.metadata().await.map(|m| (f, m.len())),
        Err(e) => Err(e),
    };
    let (mut file, size) = match opened {
        Ok((f, size)) if size == record.size => (f, size),
        Ok((_, size)) => {
            tracing::warn!(
                "bundle {} is {size} bytes, published as {}: not served",
                path.display(),
                record.size
            );
            return StatusCode::NOT_FOUND.into_response();
        }
        Err(e) => {
            tracing::warn!("published bundle {} cannot be read: {e}", path.display());
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    // The content's hash is a strong validator (RFC 9110 8.8.3).
    let etag = format!("\"{sha256}\"");
    // If-Range (RFC 9110 13.1.5): a range of another representation is
    // no range of this one, so the whole file.
    let if_range_matches = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let range = headers
        .get(header::RANGE)
        .filter(|_| if_range_matches)
        .and_then(|v| v.to_str().ok());
    let selection = range::select(range, size);
    let mut response = match selection {
        Selection::Unsatisfiable => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}")),
            );
            return r;
        }
        Selection::Whole => {
            let mut r = Response::new(file_body(file, size));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            r
        }
        Selection::Part { first, last } => {
            if let Err(e) = file.seek(std::io::SeekFrom::Start(first)).await {
                tracing::warn!("published bundle {}: {e}", path.display());
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let len = last - first + 1;
            let mut r = Response::new(file_body(file, len));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = r.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            h.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {first}-{last}/{size}")),
            );
            r
        }
    };
    let h = response.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, header_value(&etag));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

#[cfg(test)]
mod tests;
