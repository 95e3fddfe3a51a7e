//! SIP over byte streams, TCP and TLS alike: a listener, an outbound
//! connector, and one connection per remote address, reused in both
//! directions (RFC 3261 18.2.2 answers on the request's connection; 18.1.1
//! lets a client reuse one; RFC 5923 for TLS). TLS adds a handshake
//! ([`super::tls`]) before the same framing (RFC 3261 18.3).
//!
//! Hardening against a peer that opens connections and says nothing: an
//! overall and a per-source cap on open connections (handshakes included,
//! see [`admission`]), a handshake timeout, and an idle timeout that only
//! a complete message, a keep-alive or our own writes reset. Refusals and
//! closes are counted and logged, at most once per interval each.

mod admission;
mod reader;

use super::halves::{Reader, Writer};
use super::tls::Handshaker;
use super::{Incoming, NetConfig, NetError, StreamCounters, bump, canonical};
pub(crate) use admission::OpenCount;
use admission::{Admission, RateLimitedLog, Refusal, Slot};
use reader::read_loop;
use sipsensor_protocol::{KEEPALIVE_PING, Transport};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

/// One warning per kind of refusal or close in this interval, at most.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// An established connection: its halves and our end's address.
type Halves = (Reader, Writer, Option<SocketAddr>);

/// One open connection.
struct Conn {
    id: u64,
    /// Our end of it (RFC 5923: what a Via sent over it may name).
    local: Option<SocketAddr>,
    writer: tokio::sync::Mutex<Writer>,
    /// Last complete message or keep-alive received, or write of ours.
    last_activity: Mutex<Instant>,
    /// Set by `ping`; the reader then treats the next lone CRLF as a pong.
    pong_expected: AtomicBool,
    task: Mutex<Option<AbortHandle>>,
    /// Held while the connection is open: its place under the caps.
    _slot: Slot,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("id", &self.id).finish()
    }
}

impl Conn {
    fn touch(&self) {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            + idle
    }

    async fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let mut writer = self.writer.lock().await;
        writer.write_all(data).await?;
        writer.flush().await?;
        self.touch();
        Ok(())
    }

    fn abort(&self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// The warnings a flood would repeat.
#[derive(Debug)]
struct Logs {
    refused: RateLimitedLog,
    idle: RateLimitedLog,
    handshake: RateLimitedLog,
}

#[derive(Debug)]
struct Shared {
    transport: Transport,
    conns: Mutex<HashMap<SocketAddr, Arc<Conn>>>,
    tx: mpsc::Sender<Incoming>,
    counters: Arc<StreamCounters>,
    admission: Admission,
    /// TLS: the handshakes; `None` for plain TCP.
    tls: Option<Handshaker>,
    logs: Logs,
    next_id: AtomicU64,
    /// The listener's address; `None` for a TLS transport that only connects out.
    local: Option<SocketAddr>,
    max_message: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, peer: SocketAddr) -> Option<Arc<Conn>> {
        self.conns().get(&peer).cloned()
    }

    /// Forget `peer`'s connection if it is still connection `id`.
    fn remove(&self, peer: SocketAddr, id: u64) {
        let mut conns = self.conns();
        if conns.get(&peer).is_some_and(|c| c.id == id) {
            conns.remove(&peer);
        }
    }

    /// A place for a connection with `peer`, or a counted, logged refusal.
    fn admit(&self, peer: SocketAddr, inbound: bool) -> Result<Slot, NetError> {
        let refusal = match self.admission.reserve(peer.ip(), inbound) {
            Ok(slot) => return Ok(slot),
            Err(refusal) => refusal,
        };
        let transport = self.transport;
        match refusal {
            Refusal::Full(_) => bump(&self.counters.refused_over_limit),
            Refusal::SourceFull(_) => bump(&self.counters.refused_per_source),
        }
        self.logs.refused.say(std::time::Instant::now(), |unsaid| {
            let why = match refusal {
                Refusal::Full(max) => format!("{max} connections are open"),
                Refusal::SourceFull(max) => format!("{max} are open from {}", peer.ip()),
            };
            tracing::warn!(
                "SIP/{transport}: refused a connection with {peer}: {why} \
                 ({unsaid} more refusals not logged)"
            );
        });
        Err(match refusal {
            Refusal::Full(max) | Refusal::SourceFull(max) => NetError::TooManyConnections(max),
        })
    }

    /// Register an established stream and start its reader. Returns the
    /// connection now registered for `peer`: ours, or one that won a race.
    fn adopt(
        self: &Arc<Self>,
        (reader, writer, local): Halves,
        peer: SocketAddr,
        slot: Slot,
    ) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            local,
            writer: tokio::sync::Mutex::new(writer),
            last_activity: Mutex::new(Instant::now()),
            pong_expected: AtomicBool::new(false),
            task: Mutex::new(None),
            _slot: slot,
        });
        {
            let mut conns = self.conns();
            if let Some(existing) = conns.get(&peer) {
                return existing.clone(); // ours is dropped and closes
            }
            conns.insert(peer, conn.clone());
        }
        let task = tokio::spawn(read_loop(self.clone(), conn.clone(), reader, peer));
        *conn.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
        conn
    }

    /// The halves of `tcp`, after the TLS handshake where there is one.
    async fn secure(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        inbound: bool,
    ) -> Result<Halves, NetError> {
        // Small messages, latency matters: no Nagle. Failure only costs latency.
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().ok().map(canonical);
        let Some(tls) = &self.tls else {
            let (reader, writer) = tcp.into_split();
            return Ok((Box::new(reader), Box::new(writer), local));
        };
        let done = if inbound {
            tls.accept(tcp, peer).await
        } else {
            tls.connect(tcp, peer).await
        };
        if let Err(e) = &done {
            bump(&self.counters.handshakes_failed);
            let transport = self.transport;
            self.logs
                .handshake
                .say(std::time::Instant::now(), |unsaid| {
                    tracing::warn!(
                        "SIP/{transport}: {e} ({unsaid} more failed handshakes not logged)"
                    );
                });
        }
        done.map(|(reader, writer)| (reader, writer, local))
    }

    /// An accepted stream: handshake (bounded), then adopt.
    async fn establish_inbound(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, slot: Slot) {
        if let Ok(halves) = self.secure(tcp, peer, true).await {
            self.adopt(halves, peer, slot);
        }
    }

    async fn connect(self: &Arc<Self>, dest: SocketAddr) -> Result<Arc<Conn>, NetError> {
        let slot = self.admit(dest, false)?;
        let connect_err = |source| NetError::Connect { dest, source };
        let socket = if dest.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(connect_err)?;
        // Leave from the listener's address when it is a specific one of the
        // same family, so the peer sees the IP our Via names.
        if let Some(local) = self.local
            && !local.ip().is_unspecified()
            && local.is_ipv4() == dest.is_ipv4()
        {
            socket
                .bind(SocketAddr::new(local.ip(), 0))
                .map_err(connect_err)?;
        }
        let stream = tokio::time::timeout(self.connect_timeout, socket.connect(dest))
            .await
            .map_err(|_| NetError::ConnectTimeout {
                dest,
                timeout: self.connect_timeout,
            })?
            .map_err(connect_err)?;
        let halves = self.secure(stream, dest, false).await?;
        bump(&self.counters.connected);
        Ok(self.adopt(halves, dest, slot))
    }

    /// Write on `conn`; a failed connection is closed and forgotten.
    async fn write(&self, conn: &Conn, data: &[u8], peer: SocketAddr) -> Result<(), NetError> {
        if let Err(source) = conn.write(data).await {
            self.remove(peer, conn.id);
            conn.abort();
            return Err(NetError::Send {
                transport: self.transport,
                dest: peer,
                source,
            });
        }
        Ok(())
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                bump(&shared.counters.accepted);
                let peer = canonical(peer);
                // Refused: the stream is dropped, which closes it.
                if let Ok(slot) = shared.admit(peer, true) {
                    tokio::spawn(shared.clone().establish_inbound(stream, peer, slot));
                }
            }
            // EMFILE and friends: wait instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A stream transport (TCP, or TLS over it): a listener plus connector.
/// Dropping it stops the listener and closes every connection.
#[derive(Debug)]
pub struct StreamTransport {
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

impl Drop for StreamTransport {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
        let conns: Vec<Arc<Conn>> = self.shared.conns().drain().map(|(_, c)| c).collect();
        for conn in conns {
            conn.abort();
        }
    }
}

impl StreamTransport {
    /// Plain TCP listening on `addr`, or TLS (with `tls`) listening on
    /// `addr` when given, else only connecting out.
    pub(crate) async fn bind(
        addr: Option<SocketAddr>,
        tls: Option<Handshaker>,
        config: &NetConfig,
        tx: mpsc::Sender<Incoming>,
        counters: Arc<StreamCounters>,
    ) -> Result<Self, NetError> {
        let transport = if tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let listener = match addr {
            Some(addr) => {
                if tls.as_ref().is_some_and(|t| !t.can_listen()) {
                    return Err(NetError::NoTlsServer);
                }
                let bind_err = |source| NetError::Bind {
                    transport,
                    addr,
                    source,
                };
                let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
                let local = listener.local_addr().map_err(bind_err)?;
                Some((listener, local))
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            transport,
            conns: Mutex::new(HashMap::new()),
            tx,
            counters,
            admission: Admission::new(config.max_connections, config.max_connections_per_source),
            tls,
            logs: Logs {
                refused: RateLimitedLog::new(LOG_INTERVAL),
                idle: RateLimitedLog::new(LOG_INTERVAL),
                handshake: RateLimitedLog::new(LOG_INTERVAL),
            },
            next_id: AtomicU64::new(0),
            local: listener.as_ref().map(|(_, local)| *local),
            max_message: config.max_message_size,
            idle_timeout: config.tcp_idle_timeout,
            connect_timeout: config.tcp_connect_timeout,
        });
        let listener = listener.and_then(|(listener, _)| {
            if transport == Transport::Tcp && !config.tcp_accept {
                // The address was only reserved for our Via: close the port
                // (a UA reached over the flows it opens, RFC 5626).
                drop(listener);
                None
            } else {
                Some(tokio::spawn(accept_loop(shared.clone(), listener)))
            }
        });
        Ok(Self { shared, listener })
    }

    /// The listening address; `None` when this transport only connects out.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local
    }

    pub(crate) fn handshaker(&self) -> Option<&Handshaker> {
        self.shared.tls.as_ref()
    }

    /// Peers with an open connection.
    pub fn connections(&self) -> Vec<SocketAddr> {
        self.shared.conns().keys().copied().collect()
    }

    /// Our end of the open connection to `peer`: the address a Via or
    /// Contact sent over it may name (RFC 5923, RFC 5626 flows).
    pub fn connection_local_addr(&self, peer: SocketAddr) -> Option<SocketAddr> {
        self.shared.get(canonical(peer)).and_then(|c| c.local)
    }

    /// Connections open or in their handshake.
    pub fn open_connections(&self) -> usize {
        self.shared.admission.open()
    }

    pub(crate) fn open_count(&self) -> OpenCount {
        self.shared.admission.open_count()
    }

    fn check_size(&self, data: &[u8]) -> Result<(), NetError> {
        if data.len() > self.shared.max_message {
            return Err(NetError::TooLarge {
                len: data.len(),
                max: self.shared.max_message,
            });
        }
        Ok(())
    }

    /// Send on the connection to `dest`, connecting first if there is none.
    pub async fn send(&self, data: &[u8], dest: SocketAddr) -> Result<(), NetError> {
        self.check_size(data)?;
        let dest = canonical(dest);
        let conn = match self.shared.get(dest) {
            Some(conn) => conn,
            None => self.shared.connect(dest).await?,
        };
        self.shared.write(&conn, data, dest).await
    }

    fn existing(&self, peer: SocketAddr) -> Result<Arc<Conn>, NetError> {
        self.shared
            .get(peer)
            .ok_or(NetError::NoConnection(self.shared.transport, peer))
    }

    /// Send only if a connection to `peer` is open (RFC 3261 18.2.2).
    pub async fn send_existing(&self, data: &[u8], peer: SocketAddr) -> Result<(), NetError> {
        self.check_size(data)?;
        let peer = canonical(peer);
        let conn = self.existing(peer)?;
        self.shared.write(&conn, data, peer).await
    }

    /// Send a CRLF keep-alive ping on the open connection to `peer`; its
    /// pong is counted in [`StreamStats::pongs`](super::StreamStats) (RFC 5626 3.5.1).
    pub async fn ping(&self, peer: SocketAddr) -> Result<(), NetError> {
        let peer = canonical(peer);
        let conn = self.existing(peer)?;
        conn.pong_expected.store(true, Ordering::Relaxed);
        self.shared.write(&conn, KEEPALIVE_PING, peer).await
    }

    /// Close the connection to `peer`, if any.
    pub fn close(&self, peer: SocketAddr) {
        let conn = self.shared.conns().remove(&canonical(peer));
        if let Some(conn) = conn {
            conn.abort();
        }
    }
}

#[cfg(test)]
mod tests;
