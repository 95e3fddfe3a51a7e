//! TCP: a listener, an outbound connector, and one connection per remote
//! address, reused in both directions (RFC 3261 18.2.2 answers on the
//! request's connection; 18.1.1 lets a client reuse one).

use super::{Counters, Incoming, NetConfig, NetError, bump, canonical};
use sipsensor_protocol::{
    FrameError, KEEPALIVE_PING, KEEPALIVE_PONG, StreamFrame, StreamFramer, Transport,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

/// Read size per syscall; the framer holds at most two messages' worth.
const READ_CHUNK: usize = 16 * 1024;

/// One open connection.
#[derive(Debug)]
struct Conn {
    id: u64,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    last_activity: Mutex<Instant>,
    /// Set by `ping`; the reader then treats the next lone CRLF as a pong.
    pong_expected: AtomicBool,
    task: Mutex<Option<AbortHandle>>,
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

#[derive(Debug)]
struct Shared {
    conns: Mutex<HashMap<SocketAddr, Arc<Conn>>>,
    tx: mpsc::Sender<Incoming>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
    local: SocketAddr,
    max_message: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    max_connections: usize,
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

    /// Register a new stream and start its reader. Returns the connection
    /// now registered for `peer`: ours, or one that won a race to it.
    fn adopt(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Option<Arc<Conn>> {
        // Small messages, latency matters: no Nagle. Failure only costs latency.
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            writer: tokio::sync::Mutex::new(writer),
            last_activity: Mutex::new(Instant::now()),
            pong_expected: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        {
            let mut conns = self.conns();
            if let Some(existing) = conns.get(&peer) {
                return Some(existing.clone()); // ours is dropped and closes
            }
            if conns.len() >= self.max_connections {
                bump(&self.counters.tcp_refused_over_limit);
                return None;
            }
            conns.insert(peer, conn.clone());
        }
        let task = tokio::spawn(read_loop(self.clone(), conn.clone(), reader, peer));
        *conn.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
        Some(conn)
    }

    async fn connect(self: &Arc<Self>, dest: SocketAddr) -> Result<Arc<Conn>, NetError> {
        if self.conns().len() >= self.max_connections {
            return Err(NetError::TooManyConnections(self.max_connections));
        }
        let connect_err = |source| NetError::Connect { dest, source };
        let socket = if dest.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(connect_err)?;
        // Leave from the listener's address when it is a specific one of the
        // same family, so the peer sees the IP our Via names.
        if !self.local.ip().is_unspecified() && self.local.is_ipv4() == dest.is_ipv4() {
            socket
                .bind(SocketAddr::new(self.local.ip(), 0))
                .map_err(connect_err)?;
        }
        let stream = tokio::time::timeout(self.connect_timeout, socket.connect(dest))
            .await
            .map_err(|_| NetError::ConnectTimeout {
                dest,
                timeout: self.connect_timeout,
            })?
            .map_err(connect_err)?;
        bump(&self.counters.tcp_connected);
        self.adopt(stream, dest)
            .ok_or(NetError::TooManyConnections(self.max_connections))
    }

    /// Write on `conn`; a failed connection is closed and forgotten.
    async fn write(&self, conn: &Conn, data: &[u8], peer: SocketAddr) -> Result<(), NetError> {
        if let Err(source) = conn.write(data).await {
            self.remove(peer, conn.id);
            conn.abort();
            return Err(NetError::Send {
                transport: Transport::Tcp,
                dest: peer,
                source,
            });
        }
        Ok(())
    }
}

/// Why a connection's reader stopped.
enum Closed {
    Eof,
    Idle,
    Failed,
    ConsumerGone,
}

async fn read_loop(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut reader: OwnedReadHalf,
    peer: SocketAddr,
) {
    let mut framer = StreamFramer::new(shared.max_message);
    let mut buf = vec![0u8; READ_CHUNK];
    let closed = loop {
        let deadline = conn.idle_deadline(shared.idle_timeout);
        let n = match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            // Writes count as activity too: look again before closing.
            Err(_) if conn.idle_deadline(shared.idle_timeout) <= Instant::now() => {
                break Closed::Idle;
            }
            Err(_) => continue,
            Ok(Ok(0)) => break Closed::Eof,
            Ok(Err(_)) => break Closed::Failed,
            Ok(Ok(n)) => n,
        };
        conn.touch();
        if conn.pong_expected.swap(false, Ordering::Relaxed) {
            framer.expect_pong();
        }
        if let Err(error) = framer.push(&buf[..n]) {
            break reject(&shared, peer, error).await;
        }
        if let Some(closed) = deliver(&shared, &conn, &mut framer, peer).await {
            break closed;
        }
    };
    if matches!(closed, Closed::Idle) {
        bump(&shared.counters.tcp_closed_idle);
    }
    shared.remove(peer, conn.id);
    // Close our side too; the peer may already be gone.
    let _ = conn.writer.lock().await.shutdown().await;
}

/// Hand every complete frame on; `Some` when the connection must close.
async fn deliver(
    shared: &Shared,
    conn: &Conn,
    framer: &mut StreamFramer,
    peer: SocketAddr,
) -> Option<Closed> {
    while let Some(frame) = framer.next_frame() {
        match frame {
            Ok(StreamFrame::Message(data)) => {
                let incoming = Incoming::Message {
                    data,
                    source: peer,
                    transport: Transport::Tcp,
                };
                if shared.tx.send(incoming).await.is_err() {
                    return Some(Closed::ConsumerGone);
                }
            }
            // RFC 5626 3.5.1: answer a double-CRLF ping with one CRLF.
            Ok(StreamFrame::Ping) => {
                if conn.write(KEEPALIVE_PONG).await.is_err() {
                    return Some(Closed::Failed);
                }
                bump(&shared.counters.tcp_pings_answered);
            }
            Ok(StreamFrame::Pong) => bump(&shared.counters.tcp_pongs),
            Err(error) => return Some(reject(shared, peer, error).await),
        }
    }
    None
}

/// Report a framing failure; the connection then closes (RFC 3261 18.3:
/// the stream cannot be resynchronised).
async fn reject(shared: &Shared, peer: SocketAddr, error: FrameError) -> Closed {
    bump(&shared.counters.tcp_stream_errors);
    let incoming = Incoming::Rejected {
        source: peer,
        transport: Transport::Tcp,
        error,
    };
    match shared.tx.send(incoming).await {
        Ok(()) => Closed::Failed,
        Err(_) => Closed::ConsumerGone,
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                bump(&shared.counters.tcp_accepted);
                // Over the limit the stream is dropped, which closes it.
                shared.adopt(stream, canonical(peer));
            }
            // EMFILE and friends: wait instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A TCP listener plus connector. Dropping it stops the listener and
/// closes every connection.
#[derive(Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
    listener: JoinHandle<()>,
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.listener.abort();
        let conns: Vec<Arc<Conn>> = self.shared.conns().drain().map(|(_, c)| c).collect();
        for conn in conns {
            conn.abort();
        }
    }
}

impl TcpTransport {
    pub(crate) async fn bind(
        addr: SocketAddr,
        config: &NetConfig,
        tx: mpsc::Sender<Incoming>,
        counters: Arc<Counters>,
    ) -> Result<Self, NetError> {
        let bind_err = |source| NetError::Bind {
            transport: Transport::Tcp,
            addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let shared = Arc::new(Shared {
            conns: Mutex::new(HashMap::new()),
            tx,
            counters,
            next_id: AtomicU64::new(0),
            local,
            max_message: config.max_message_size,
            idle_timeout: config.tcp_idle_timeout,
            connect_timeout: config.tcp_connect_timeout,
            max_connections: config.max_connections,
        });
        let listener = if config.tcp_accept {
            tokio::spawn(accept_loop(shared.clone(), listener))
        } else {
            // The address was only reserved for our Via: close the port.
            drop(listener);
            tokio::spawn(async {})
        };
        Ok(Self { shared, listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Peers with an open connection.
    pub fn connections(&self) -> Vec<SocketAddr> {
        self.shared.conns().keys().copied().collect()
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

    /// Send only if a connection to `peer` is open (RFC 3261 18.2.2).
    pub async fn send_existing(&self, data: &[u8], peer: SocketAddr) -> Result<(), NetError> {
        self.check_size(data)?;
        let peer = canonical(peer);
        let conn = self.shared.get(peer).ok_or(NetError::NoConnection(peer))?;
        self.shared.write(&conn, data, peer).await
    }

    /// Send a CRLF keep-alive ping on the open connection to `peer`; its
    /// pong is counted in `NetStats::tcp_pongs` (RFC 5626 3.5.1).
    pub async fn ping(&self, peer: SocketAddr) -> Result<(), NetError> {
        let peer = canonical(peer);
        let conn = self.shared.get(peer).ok_or(NetError::NoConnection(peer))?;
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
mod tests {
    use super::*;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);
    const MSG: &[u8] = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";

    async fn transport(
        addr: &str,
        tweak: impl FnOnce(&mut NetConfig),
    ) -> (TcpTransport, mpsc::Receiver<Incoming>, Arc<Counters>) {
        let mut config = NetConfig::default();
        tweak(&mut config);
        let (tx, rx) = mpsc::channel(8);
        let counters = Arc::new(Counters::default());
        let t = TcpTransport::bind(addr.parse().unwrap(), &config, tx, counters.clone())
            .await
            .unwrap();
        (t, rx, counters)
    }

    async fn recv(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
        timeout(WAIT, rx.recv()).await.unwrap().unwrap()
    }

    /// Poll a condition every 20 ms for up to 5 s.
    async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..250 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn reuses_one_connection_both_ways_v4_and_v6() {
        for host in ["127.0.0.1:0", "[::1]:0"] {
            let (a, mut a_rx, a_count) = transport(host, |_| {}).await;
            let (b, mut b_rx, b_count) = transport(host, |_| {}).await;
            a.send(MSG, b.local_addr()).await.unwrap();
            a.send(MSG, b.local_addr()).await.unwrap();
            let first = recv(&mut b_rx).await;
            let second = recv(&mut b_rx).await;
            assert_eq!(first, second);
            let peer = first.source();
            assert_eq!(
                peer.ip(),
                a.local_addr().ip(),
                "left from the listener's IP"
            );
            // b answers on the accepted connection; a sees it from b's listener.
            b.send_existing(MSG, peer).await.unwrap();
            b.send(MSG, peer).await.unwrap();
            assert_eq!(recv(&mut a_rx).await.source(), b.local_addr());
            assert_eq!(recv(&mut a_rx).await.source(), b.local_addr());
            assert_eq!(a_count.snapshot().tcp_connected, 1);
            assert_eq!(b_count.snapshot().tcp_accepted, 1);
            assert_eq!(b_count.snapshot().tcp_connected, 0);
        }
    }

    #[tokio::test]
    async fn frames_a_split_stream_and_answers_pings() {
        let (b, mut b_rx, counters) = transport("127.0.0.1:0", |_| {}).await;
        let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
        raw.write_all(b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\nContent-Le")
            .await
            .unwrap();
        let mut pong = [0u8; 2];
        timeout(WAIT, raw.read_exact(&mut pong))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&pong, KEEPALIVE_PONG);
        raw.write_all(b"ngth: 5\r\n\r\nhel").await.unwrap();
        raw.write_all(b"lo").await.unwrap();
        let Incoming::Message { data, .. } = recv(&mut b_rx).await else {
            panic!("not a message")
        };
        assert_eq!(data, MSG);
        assert_eq!(counters.snapshot().tcp_pings_answered, 1);
    }

    #[tokio::test]
    async fn our_ping_gets_a_pong() {
        let (a, _a_rx, a_count) = transport("[::1]:0", |_| {}).await;
        let (b, mut b_rx, _) = transport("[::1]:0", |_| {}).await;
        a.send(MSG, b.local_addr()).await.unwrap();
        recv(&mut b_rx).await;
        a.ping(b.local_addr()).await.unwrap();
        assert!(eventually(|| a_count.snapshot().tcp_pongs == 1).await);
        assert!(matches!(
            a.ping("[::1]:9".parse().unwrap()).await,
            Err(NetError::NoConnection(_))
        ));
    }

    #[tokio::test]
    async fn missing_content_length_rejects_and_closes() {
        let (b, mut b_rx, counters) = transport("127.0.0.1:0", |_| {}).await;
        let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
        let head = b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";
        raw.write_all(head).await.unwrap();
        let got = recv(&mut b_rx).await;
        assert_eq!(
            got,
            Incoming::Rejected {
                source: raw.local_addr().unwrap(),
                transport: Transport::Tcp,
                error: FrameError::MissingContentLength {
                    head: head.to_vec()
                }
            }
        );
        let mut rest = Vec::new();
        let n = timeout(WAIT, raw.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "closed without a reply");
        assert_eq!(counters.snapshot().tcp_stream_errors, 1);
        assert!(eventually(|| b.connections().is_empty()).await);
    }

    #[tokio::test]
    async fn idle_connections_close_and_reopen_on_demand() {
        let idle = Duration::from_millis(300);
        let (a, _a_rx, a_count) = transport("127.0.0.1:0", |c| c.tcp_idle_timeout = idle).await;
        let (b, mut b_rx, _) = transport("127.0.0.1:0", |_| {}).await;
        a.send(MSG, b.local_addr()).await.unwrap();
        let peer = recv(&mut b_rx).await.source();
        assert_eq!(a.connections(), [b.local_addr()]);
        assert!(eventually(|| a.connections().is_empty()).await);
        assert_eq!(a_count.snapshot().tcp_closed_idle, 1);
        // b saw the close too, so a response can no longer use it.
        assert!(eventually(|| b.connections().is_empty()).await);
        assert!(matches!(
            b.send_existing(MSG, peer).await,
            Err(NetError::NoConnection(_))
        ));
        a.send(MSG, b.local_addr()).await.unwrap();
        recv(&mut b_rx).await;
        assert_eq!(a_count.snapshot().tcp_connected, 2);
    }

    #[tokio::test]
    async fn connection_limit_and_size_limit() {
        let (b, _b_rx, counters) = transport("127.0.0.1:0", |c| {
            c.max_connections = 1;
            c.max_message_size = 64;
        })
        .await;
        let _first = TcpStream::connect(b.local_addr()).await.unwrap();
        assert!(eventually(|| b.connections().len() == 1).await);
        let mut second = TcpStream::connect(b.local_addr()).await.unwrap();
        let mut buf = [0u8; 1];
        let n = timeout(WAIT, second.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "refused connection is closed");
        assert_eq!(counters.snapshot().tcp_refused_over_limit, 1);
        assert!(matches!(
            b.send(&[b'x'; 65], "127.0.0.1:9".parse().unwrap()).await,
            Err(NetError::TooLarge { len: 65, max: 64 })
        ));
    }

    /// A connect-only transport listens nowhere, yet its own connections
    /// carry messages both ways (the flows of RFC 5626).
    #[tokio::test]
    async fn without_accept_nothing_listens_but_own_connections_work() {
        let (quiet, mut quiet_rx, _) = transport("127.0.0.1:0", |c| c.tcp_accept = false).await;
        assert!(TcpStream::connect(quiet.local_addr()).await.is_err());
        let (peer, mut peer_rx, _) = transport("127.0.0.1:0", |_| {}).await;
        let msg = b"OPTIONS sip:p SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        quiet.send(msg, peer.local_addr()).await.unwrap();
        let Incoming::Message { source, .. } = recv(&mut peer_rx).await else {
            panic!("no message")
        };
        peer.send_existing(msg, source).await.unwrap();
        assert_eq!(recv(&mut quiet_rx).await.source(), peer.local_addr());
    }

    #[tokio::test]
    async fn connect_failure_is_typed() {
        // A port nobody listens on: bind a listener, note its port, drop it.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (a, _rx, _) = transport("127.0.0.1:0", |_| {}).await;
        let dest: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(matches!(
            a.send(MSG, dest).await,
            Err(NetError::Connect { .. })
        ));
        assert!(a.connections().is_empty());
    }

    #[tokio::test]
    async fn dropping_closes_connections() {
        let (b, _b_rx, _) = transport("[::1]:0", |_| {}).await;
        let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
        assert!(eventually(|| b.connections().len() == 1).await);
        drop(b);
        let mut rest = Vec::new();
        let n = timeout(WAIT, raw.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
