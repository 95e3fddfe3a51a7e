//! The HTTP server's connections: caps on how many are open (in all and
//! per source) and a deadline for each request head, so idle or slow
//! clients cannot use up the collector's descriptors (one source's flood
//! leaves room for everyone else, `/healthz` included).
//!
//! [`Admission`] decides (no I/O); [`serve`] (and [`serve_tls`], the
//! bundle server's) is the accept loop around it, one hyper HTTP/1
//! connection per task, its writes bounded by [`stalled_write`].

mod stalled_write;

use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

/// The connection limits (`http.*` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_total: usize,
    pub max_per_source: usize,
    /// Longest wait for a whole request head, from the connection's start
    /// or from the previous answer (hyper's header read timeout), and for
    /// room to write an answer the client does not read.
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn from_config(c: &crate::config::HttpConfig) -> Self {
        let n = |v: std::num::NonZeroU32| usize::try_from(v.get()).unwrap_or(usize::MAX);
        Limits {
            max_total: n(c.max_connections),
            max_per_source: n(c.max_connections_per_source),
            idle_timeout: Duration::from_secs(u64::from(c.idle_timeout_s.get())),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&crate::config::HttpConfig::default())
    }
}

/// Why a connection is closed as soon as it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    Source,
}

impl Full {
    pub fn reason(self) -> &'static str {
        match self {
            Full::Total => "http_connections_full",
            Full::Source => "http_source_connections_full",
        }
    }
}

/// Counts open connections. A source is an IPv4 address or an IPv6 /64
/// (one subscriber's prefix: a host has the whole of it to pick from).
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Admission {
            limits,
            total: 0,
            per_source: HashMap::new(),
        }
    }

    /// Takes a place for a connection from `ip`, or says which cap is hit.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), Full> {
        if self.total >= self.limits.max_total {
            return Err(Full::Total);
        }
        let n = self.per_source.entry(source_of(ip)).or_insert(0);
        if *n >= self.limits.max_per_source {
            return Err(Full::Source);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// Gives back the place of a closed connection from `ip`.
    pub fn release(&mut self, ip: IpAddr) {
        let key = source_of(ip);
        if let Some(n) = self.per_source.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&key);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    pub fn open(&self) -> usize {
        self.total
    }
}

/// A connection's place, given back when its task ends however it ends.
struct Place {
    admission: Arc<Mutex<Admission>>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut a) = self.admission.lock() {
            a.release(self.ip);
        }
    }
}

/// Accepts until `shutdown` resolves, then lets open requests finish
/// (each connection closes after its current answer).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, None, limits, metrics, shutdown).await
}

/// [`serve`] over TLS: the handshake too must end within the idle
/// timeout, so a client that opens and stalls holds its place no longer
/// than one that stalls its request head.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve_with(listener, app, Some(acceptor), limits, metrics, shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admission = Arc::new(Mutex::new(Admission::new(limits)));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; recv() gives None once all ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut refusals_log = RateLimit::new(super::access::LOG_INTERVAL);
    let mut accept_errors_log = RateLimit::new(super::access::LOG_INTERVAL);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: wait for
                    // connections to close instead of spinning.
                    if let Some(n) = accept_errors_log.allow(tokio::time::Instant::now()) {
                        tracing::warn!("HTTP accept failed: {e} ({n} more not logged)");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = admission
            .lock()
            .map_err(|_| std::io::Error::other("connection table poisoned"))?
            .admit(peer.ip());
        if let Err(full) = admitted {
            drop(stream);
            metrics
                .packets_rejected
                .get_or_create(&[("reason", full.reason())])
                .inc();
            if let Some(n) = refusals_log.allow(tokio::time::Instant::now()) {
                tracing::warn!(
                    "HTTP connection from {peer} closed: {} ({n} more refusals not logged)",
                    match full {
                        Full::Total => "the server has http.max_connections open",
                        Full::Source => "that source has http.max_connections_per_source open",
                    }
                );
            }
            continue;
        }
        let place = Place {
            admission: admission.clone(),
            ip: peer.ip(),
        };
        let app = app.clone();
        let stop = stop_rx.clone();
        let alive = alive_tx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _place = place;
            let _alive = alive;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let stream = stalled_write::StalledWriteLimit::new(stream, limits.idle_timeout);
            match tls {
                None => serve_connection(stream, service, limits, stop).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.idle_timeout, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        serve_connection(stream, service, limits, stop).await;
                    }
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

/// One HTTP/1 connection until it ends or `stop` asks it to finish.
async fn serve_connection<I, S>(io: I, service: S, limits: Limits, mut stop: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let stopped = async move { stop.wait_for(|s| *s).await.is_ok() };
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_source: usize) -> Limits {
        Limits {
            max_total: total,
            max_per_source: per_source,
            idle_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn one_source_cannot_take_every_place() {
        let mut a = Admission::new(limits(5, 2));
        let attacker: IpAddr = "192.0.2.66".parse().unwrap();
        assert_eq!(a.admit(attacker), Ok(()));
        assert_eq!(a.admit(attacker), Ok(()));
        assert_eq!(a.admit(attacker), Err(Full::Source));
        // The same host as an IPv4-mapped IPv6 address is the same source.
        let mapped: IpAddr = "::ffff:192.0.2.66".parse().unwrap();
        assert_eq!(a.admit(mapped), Err(Full::Source));
        for i in 1..=3 {
            assert_eq!(a.admit(IpAddr::from([198, 51, 100, i])), Ok(()));
        }
        assert_eq!(a.open(), 5);
        assert_eq!(a.admit("198.51.100.9".parse().unwrap()), Err(Full::Total));
        a.release(attacker);
        assert_eq!(a.open(), 4);
        assert_eq!(a.admit(attacker), Ok(()));
        // Releasing a source that holds nothing changes nothing.
        a.release("203.0.113.1".parse().unwrap());
        assert_eq!(a.open(), 5);
    }

    #[test]
    fn an_ipv6_prefix_is_one_source() {
        let mut a = Admission::new(limits(100, 2));
        assert_eq!(a.admit("2001:db8:1:2::1".parse().unwrap()), Ok(()));
        assert_eq!(a.admit("2001:db8:1:2::ffff".parse().unwrap()), Ok(()));
        assert_eq!(
            a.admit("2001:db8:1:2:abcd::7".parse().unwrap()),
            Err(Full::Source)
        );
        assert_eq!(a.admit("2001:db8:1:3::1".parse().unwrap()), Ok(()));
    }
}
