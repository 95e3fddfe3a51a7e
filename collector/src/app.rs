//! `sipsensor-collector run`: opens the store, starts the writer, retention
//! and HTTP, and on shutdown (SIGTERM, SIGINT) commits every received row
//! before it exits.

pub mod check;

use crate::config::Config;
use crate::http::{self, AppState, BindError};
use crate::metrics::Metrics;
use crate::stats::StreamsRegistry;
use crate::storage::writer::{StorageWriter, WriterHandle, WriterSummary};
use crate::storage::{self, Storage, StorageError};
use crate::timefmt::now_ns;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    HttpAccess(#[from] crate::http::AccessError),
    #[error("the HTTP server stopped: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Sip(#[from] crate::sip::SipError),
    #[error(transparent)]
    Update(#[from] crate::update::StartError),
}

/// What a running collector is made of; the SIP side takes its handles
/// from here.
#[derive(Debug)]
pub struct Services {
    pub storage: Arc<dyn Storage>,
    pub writer: WriterHandle,
    pub streams: Arc<StreamsRegistry>,
    pub metrics: Arc<Metrics>,
    pub http_addr: SocketAddr,
    /// SIP (UDP and TCP) and RTP addresses, when SIP runs.
    pub sip_addr: Option<SocketAddr>,
    pub rtp_addr: Option<SocketAddr>,
    /// Every sensor's reported software (docs/protocol.md 12.3).
    pub fleet: Arc<crate::update::fleet::FleetView>,
    /// The HTTPS bundle server's address, when `update.listen` is set.
    pub bundle_addr: Option<SocketAddr>,
}

/// Runs until `shutdown` resolves. `on_ready` gets the services once the
/// store is open and HTTP listens (tests use it to learn the port).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
    on_ready: impl FnOnce(&Services),
) -> Result<WriterSummary, RunError> {
    // Polled once now: a signal future installs its handlers when first
    // polled, so a SIGTERM during start-up is then caught and acted on
    // once started, instead of killing the process before it commits.
    let mut shutdown = std::pin::pin!(shutdown);
    let stopped_early =
        std::future::poll_fn(|cx| std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_ready()))
            .await;
    // Before anything opens: a server beyond loopback without a token
    // must not start.
    let (access, warnings) = http::Access::from_config(&config.http)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let doors = http::Doors {
        access: Arc::new(access),
        limits: http::Limits::from_config(&config.http),
    };
    let storage = storage::open(&config.storage.url, config.storage.open_options()?).await?;
    tracing::info!(
        "storage {} (schema version {})",
        storage.describe(),
        storage.schema_version().await?
    );
    let closed =
        storage::close_sessions_left_open(storage.as_ref(), &config.storage.url, now_ns()).await?;
    if closed > 0 {
        tracing::info!(
            sessions = closed,
            "closed the sessions a previous run left open"
        );
    }
    let listener = http::bind(config.http.bind).await?;
    let http_addr = listener.local_addr().map_err(RunError::Http)?;

    let streams = StreamsRegistry::new();
    let metrics = Metrics::new(streams.clone());
    let writer = StorageWriter::spawn(
        storage.clone(),
        config.storage.writer_config(),
        metrics.clone(),
    );
    let retention = config.retention.days.map(|days| {
        crate::retention::spawn(
            storage.clone(),
            days,
            Duration::from_secs(u64::from(config.retention.interval_s.get())),
            metrics.clone(),
        )
    });

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut update_stop = stop_rx.clone();
    let mut updates = crate::update::start(&config, &storage, &metrics, async move {
        let _ = update_stop.wait_for(|stop| *stop).await;
    })
    .await?;
    let state = AppState {
        storage: storage.clone(),
        streams: streams.clone(),
        metrics: metrics.clone(),
        fleet: Some(updates.fleet.clone()),
    };
    let mut http_task = tokio::spawn(http::serve(listener, state, doors, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    tracing::info!("web page, API and metrics on http://{http_addr}/");

    let sip = if config.sip.enabled {
        let link = updates.sip.take();
        let parts = crate::sip::Parts {
            storage: storage.clone(),
            writer: writer.handle(),
            streams: streams.clone(),
            metrics: metrics.clone(),
            rollouts: Some(updates.rollouts.clone()),
            fleet: link.as_ref().map(|l| l.handle.clone()),
        };
        match crate::sip::start(&config, parts, link.map(|l| l.commands)).await {
            Ok(s) => {
                warn_clear_text(&config);
                Some(s)
            }
            Err(e) => {
                let _ = stop_tx.send(true);
                http_task.abort();
                let _ = writer.shutdown().await;
                storage.close().await?;
                return Err(e.into());
            }
        }
    } else {
        tracing::info!("no sip section: storage, HTTP and export only");
        None
    };
    let services = Services {
        storage: storage.clone(),
        writer: writer.handle(),
        streams,
        metrics,
        http_addr,
        sip_addr: sip.as_ref().map(|s| s.sip_addr()),
        rtp_addr: sip.as_ref().map(|s| s.rtp_addr()),
        fleet: updates.fleet.clone(),
        bundle_addr: updates.server.as_ref().map(|(addr, _)| *addr),
    };
    on_ready(&services);
    drop(services);

    let mut failure = None;
    let shutdown = async {
        if !stopped_early {
            shutdown.await;
        }
    };
    tokio::select! {
        () = shutdown => tracing::info!("shutting down: committing received rows"),
        r = &mut http_task => {
            let e = match r {
                Ok(Ok(())) => std::io::Error::other("ended without being asked to"),
                Ok(Err(e)) => e,
                Err(e) => std::io::Error::other(e.to_string()),
            };
            tracing::error!("HTTP server failed: {e}; shutting down");
            failure = Some(RunError::Http(e));
        }
    }

    if let Some(sip) = sip {
        // BYE to every sensor; their last rows go to the writer.
        sip.shutdown().await;
    }
    let _ = stop_tx.send(true);
    if !http_task.is_finished()
        && tokio::time::timeout(Duration::from_secs(5), &mut http_task)
            .await
            .is_err()
    {
        http_task.abort();
    }
    if let Some(r) = retention {
        r.abort();
    }
    let summary = writer.shutdown().await;
    tracing::info!(
        samples = summary.written.samples_inserted,
        duplicates = summary.written.samples_duplicate,
        batches = summary.batches,
        lost = summary.lost_at_shutdown,
        "storage writer stopped"
    );
    storage.close().await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Why sensors' SIP or samples reach this collector in clear text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClearText {
    /// No `sip.tls`: SIP over UDP/TCP only, so no SDES keys either.
    NoTlsListener,
    /// `media.srtp: off`: plain RTP even from sensors on TLS.
    SrtpOff,
}

fn clear_text(config: &Config) -> Option<ClearText> {
    if !config.sip.enabled {
        return None;
    }
    if config.sip.tls.is_none() {
        Some(ClearText::NoTlsListener)
    } else if config.media.srtp == Some(crate::sip::config::SrtpMode::Off) {
        Some(ClearText::SrtpOff)
    } else {
        None
    }
}

/// One line at start when sensors can only reach us in clear text: TLS and
/// SRTP are what the examples set up, so this was asked for, but whoever
/// reads the log should know (issue #14, docs/security.md).
fn warn_clear_text(config: &Config) {
    match clear_text(config) {
        None => {}
        Some(ClearText::NoTlsListener) => tracing::warn!(
            "clear text: no `sip.tls` listener, so sensors' SIP and samples travel unencrypted and \
             unauthenticated; add `sip.tls` (certificate, private_key) so that sensors use TLS and \
             SRTP (docs/security.md)"
        ),
        Some(ClearText::SrtpOff) => tracing::warn!(
            "clear text: `media.srtp: off` takes every stream as plain RTP, unencrypted and \
             unauthenticated, even from sensors on TLS; remove the key (docs/security.md)"
        ),
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot install signal handlers ({e}); stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let yaml = format!("storage:\n  url: sqlite:///tmp/unused.db\n{extra}");
        Config::parse(&yaml, std::path::Path::new("c.yaml")).unwrap_or_else(|e| panic!("{e}"))
    }

    const TLS: &str = "sip:\n  tls:\n    certificate: /c.pem\n    private_key: /k.pem\n";

    #[test]
    fn clear_text_without_a_tls_listener_or_with_srtp_off() {
        assert_eq!(clear_text(&config("")), None, "no SIP, nothing to say");
        assert_eq!(
            clear_text(&config("sip:\n  bind: 127.0.0.1:0\n")),
            Some(ClearText::NoTlsListener)
        );
        assert_eq!(clear_text(&config(TLS)), None);
        assert_eq!(
            clear_text(&config(&format!("{TLS}media:\n  srtp: required\n"))),
            None
        );
        assert_eq!(
            clear_text(&config(&format!("{TLS}media:\n  srtp: off\n"))),
            Some(ClearText::SrtpOff)
        );
    }
}
