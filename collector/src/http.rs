//! HTTP: the live page, the JSON API and Prometheus metrics (axum).
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the page (sensors, streams, live charts) |
//! | `GET /app.js`, `/app.css`, `/vendor/...` | its embedded assets |
//! | `GET /api/sensors` | all sensors |
//! | `GET /api/sensors/{id}` | one sensor (`id` or URL-encoded AOR) |
//! | `GET /api/sensors/{id}/sessions?from&to` | its session records |
//! | `GET /api/sensors/{id}/samples?from&to&limit&order` | its samples |
//! | `GET /api/sensors/{id}/gaps?from&to` | its gaps |
//! | `GET /api/sensors/{id}/events?from&to` | its events |
//! | `GET /api/sensors/{id}/coverage?from&to&limit` | its live, resent, backfilled and missing ranges |
//! | `GET /api/streams` | per-stream statistics |
//! | `GET /api/fleet` | sensors per image version; each sensor's version, slot and update state |
//! | `GET /api/fleet/bundles` | the published bundles |
//! | `GET /metrics` | OpenMetrics text |
//! | `GET /healthz` | 200 when the store answers, else 503 |
//!
//! `from`/`to` take RFC 3339 or ns since the epoch; the range is
//! `from <= t < to`, unbounded by default.
//!
//! Every request passes [`access`] first (Host, and a token beyond
//! loopback); [`connections`] caps open connections and closes idle ones.

pub mod access;
mod api;
mod assets;
pub mod connections;
mod coverage;
mod fleet;

pub use access::{Access, AccessError};
pub use connections::Limits;

use crate::metrics::Metrics;
use crate::stats::StreamsRegistry;
use crate::storage::{Storage, StorageError};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub streams: Arc<StreamsRegistry>,
    pub metrics: Arc<Metrics>,
    /// The fleet view (`/api/fleet`, the page's fleet section); `None` in
    /// tests of a store without it.
    pub fleet: Option<Arc<crate::update::fleet::FleetView>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/app.css", get(assets::app_css))
        .route("/vendor/uPlot.iife.min.js", get(assets::uplot_js))
        .route("/vendor/uPlot.min.css", get(assets::uplot_css))
        .route("/vendor/uPlot.LICENSE", get(assets::uplot_license))
        .route("/api/sensors", get(api::sensors))
        .route("/api/sensors/{id}", get(api::sensor))
        .route("/api/sensors/{id}/sessions", get(api::sessions))
        .route("/api/sensors/{id}/samples", get(api::samples))
        .route("/api/sensors/{id}/gaps", get(api::gaps))
        .route("/api/sensors/{id}/events", get(api::events))
        .route("/api/sensors/{id}/coverage", get(coverage::coverage))
        .route("/api/streams", get(api::streams))
        .route("/api/fleet", get(fleet::fleet))
        .route("/api/fleet/bundles", get(fleet::bundles))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(api::healthz))
        .fallback(api::not_found)
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen for HTTP on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Queue of connections the kernel completes before they are accepted:
/// a burst (a flood, or every browser reconnecting) would otherwise wait
/// for SYN retransmissions once the default 128 are queued.
const LISTEN_BACKLOG: u32 = 1024;

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let err = |source| BindError { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    // As std and tokio do: a restart binds while old connections linger.
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
}

/// The routes behind the access check.
pub fn guarded(state: AppState, access: Arc<Access>) -> Router {
    let guard = access::Guard::new(access, state.metrics.clone());
    router(state).layer(axum::middleware::from_fn_with_state(guard, access::guard))
}

/// Who gets in and how many at once.
#[derive(Debug, Clone)]
pub struct Doors {
    pub access: Arc<Access>,
    pub limits: Limits,
}

impl Doors {
    /// No token, the default limits: for a server on loopback.
    pub fn loopback() -> Self {
        Doors {
            access: Arc::new(Access::open()),
            limits: Limits::default(),
        }
    }
}

/// Serves until `shutdown` resolves, then finishes open requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    doors: Doors,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = state.metrics.clone();
    let app = guarded(state, doors.access);
    connections::serve(listener, app, doors.limits, metrics, shutdown).await
}

/// A JSON error answer: `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let status = match &e {
            StorageError::NotFound(_) => StatusCode::NOT_FOUND,
            StorageError::DiskFull { .. } | StorageError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

#[cfg(test)]
mod tests;
