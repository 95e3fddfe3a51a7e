//! Thin tokio shells around UDP, TCP and TLS sockets for SIP.
//!
//! They move bytes and nothing more: a UDP datagram or a TCP or TLS
//! message framed by [`StreamFramer`](sipsensor_protocol::StreamFramer)
//! arrives on a channel as [`Incoming`], and [`Network::send`] writes bytes
//! to `(SocketAddr, Transport)`. Parsing, Via stamping and response routing
//! belong to the caller (protocol's transport rules, such as
//! [`response_route`](sipsensor_protocol::response_route)), so every SIP
//! rule stays sans-I/O.

mod halves;
mod stream;
pub mod tls;
mod udp;

use stream::OpenCount;
pub use stream::StreamTransport;
pub use tls::TlsConfig;
pub use udp::UdpEndpoint;

use sipsensor_protocol::{DEFAULT_MAX_MESSAGE_SIZE, FrameError, Transport};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the sockets deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// One datagram, or one message framed from a stream.
    Message {
        data: Vec<u8>,
        source: SocketAddr,
        transport: Transport,
    },
    /// Bytes from `source` that cannot be delivered as a message: a datagram
    /// over the size limit, or a stream that broke framing (its connection
    /// has been closed; `error` may carry the head for a 400).
    Rejected {
        source: SocketAddr,
        transport: Transport,
        error: FrameError,
    },
}

impl Incoming {
    pub fn source(&self) -> SocketAddr {
        match self {
            Incoming::Message { source, .. } | Incoming::Rejected { source, .. } => *source,
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Incoming::Message { transport, .. } | Incoming::Rejected { transport, .. } => {
                *transport
            }
        }
    }
}

/// Socket failures, each naming the address involved.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot bind {transport} to {addr}: {source}")]
    Bind {
        transport: Transport,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("sending to {dest} over {transport}: {source}")]
    Send {
        transport: Transport,
        dest: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {dest}: {source}")]
    Connect {
        dest: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {dest} timed out after {timeout:?}")]
    ConnectTimeout { dest: SocketAddr, timeout: Duration },
    #[error("TLS handshake with {peer}: {source}")]
    Handshake {
        peer: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS handshake with {peer} took longer than {timeout:?}")]
    HandshakeTimeout { peer: SocketAddr, timeout: Duration },
    #[error("no TLS client configuration (CA file) to connect with")]
    NoTlsClient,
    #[error("no TLS certificate and key to listen with")]
    NoTlsServer,
    #[error("{0:?} is not a server name for TLS")]
    BadServerName(String),
    #[error("{len}-byte message exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("no {0} socket configured")]
    NoTransport(Transport),
    /// RFC 3261 18.2.2: a response must use the request's connection; it is gone.
    #[error("no open {0} connection to {1}")]
    NoConnection(Transport, SocketAddr),
    #[error("connection limit of {0} reached")]
    TooManyConnections(usize),
}

/// Settings for [`Network::bind`]; the defaults bind nothing.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// UDP socket address (port 0 picks a free one); `None`: no UDP.
    pub udp: Option<SocketAddr>,
    /// TCP listening address (port 0 picks a free one); `None`: no TCP.
    pub tcp: Option<SocketAddr>,
    /// Accept incoming TCP connections. Off: outgoing connections only
    /// (a UA reached over the flows it opens, RFC 5626), nothing listens.
    pub tcp_accept: bool,
    /// SIP over TLS; `None`: none.
    pub tls: Option<TlsConfig>,
    /// Largest message sent or received on any transport.
    pub max_message_size: usize,
    /// A TCP or TLS connection that brought no complete message or
    /// keep-alive, and that we wrote nothing on, for this long is closed.
    pub tcp_idle_timeout: Duration,
    pub tcp_connect_timeout: Duration,
    /// A TLS handshake that takes longer fails and closes its connection.
    pub tls_handshake_timeout: Duration,
    /// Open connections per stream transport (TCP; TLS), both directions
    /// and TLS handshakes in progress together.
    pub max_connections: usize,
    /// Of those, the most accepted from one IP address.
    pub max_connections_per_source: usize,
    /// Messages queued for the consumer before the sockets wait for it.
    pub channel_capacity: usize,
    /// Kernel receive buffer of the UDP socket, in bytes; `None` keeps the
    /// system default (net.core.rmem_default, 208 KiB on Debian: about 90
    /// datagrams on loopback, less than a burst of sensors registering
    /// together after a power cut). Past net.core.rmem_max only with
    /// CAP_NET_ADMIN (SO_RCVBUFFORCE).
    pub udp_receive_buffer: Option<usize>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            tcp_accept: true,
            tls: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            // RFC 5626 4.4.1 suggests keep-alives every 95-120 s on TCP;
            // a connection quiet for longer than that is dead or unused.
            tcp_idle_timeout: Duration::from_secs(300),
            // 64*T1 (RFC 3261 17.1.1.2): a transaction gives up by then anyway.
            tcp_connect_timeout: Duration::from_secs(32),
            // A handshake is a few round trips; 10 s allows for slow links
            // and keeps a silent peer from holding a place for long.
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
            // Room for a proxy or a NAT with many sensors behind it, while
            // one host alone cannot fill the table.
            max_connections_per_source: 64,
            channel_capacity: 256,
            udp_receive_buffer: None,
        }
    }
}

impl NetConfig {
    /// UDP and TCP both on `addr` (the usual SIP set-up: same port twice).
    pub fn udp_and_tcp(addr: SocketAddr) -> Self {
        Self {
            udp: Some(addr),
            tcp: Some(addr),
            ..Self::default()
        }
    }
}

/// Counters of what the sockets did besides delivering messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub udp_datagrams: u64,
    /// Datagrams of only CR/LF: NAT keep-alives, not messages.
    pub udp_keepalives: u64,
    pub udp_too_large: u64,
    pub udp_recv_errors: u64,
    pub tcp: StreamStats,
    pub tls: StreamStats,
}

/// What one stream transport (TCP or TLS) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Connections open now, TLS handshakes in progress included.
    pub open: u64,
    pub accepted: u64,
    pub connected: u64,
    /// Refused because `max_connections` were open.
    pub refused_over_limit: u64,
    /// Refused because `max_connections_per_source` were open from the peer.
    pub refused_per_source: u64,
    pub closed_idle: u64,
    pub stream_errors: u64,
    /// TLS handshakes that failed or timed out, either direction.
    pub handshakes_failed: u64,
    pub pings_answered: u64,
    pub pongs: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    udp_datagrams: AtomicU64,
    udp_keepalives: AtomicU64,
    udp_too_large: AtomicU64,
    udp_recv_errors: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct StreamCounters {
    accepted: AtomicU64,
    connected: AtomicU64,
    refused_over_limit: AtomicU64,
    refused_per_source: AtomicU64,
    closed_idle: AtomicU64,
    stream_errors: AtomicU64,
    handshakes_failed: AtomicU64,
    pings_answered: AtomicU64,
    pongs: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    /// The UDP part of [`NetStats`].
    fn snapshot(&self) -> NetStats {
        NetStats {
            udp_datagrams: get(&self.udp_datagrams),
            udp_keepalives: get(&self.udp_keepalives),
            udp_too_large: get(&self.udp_too_large),
            udp_recv_errors: get(&self.udp_recv_errors),
            ..NetStats::default()
        }
    }
}

impl StreamCounters {
    /// The counters; `open` is left to [`NetStatsHandle::stats`].
    fn snapshot(&self) -> StreamStats {
        StreamStats {
            open: 0,
            accepted: get(&self.accepted),
            connected: get(&self.connected),
            refused_over_limit: get(&self.refused_over_limit),
            refused_per_source: get(&self.refused_per_source),
            closed_idle: get(&self.closed_idle),
            stream_errors: get(&self.stream_errors),
            handshakes_failed: get(&self.handshakes_failed),
            pings_answered: get(&self.pings_answered),
            pongs: get(&self.pongs),
        }
    }
}

/// An IPv4 peer seen through a dual-stack IPv6 socket appears as
/// `::ffff:a.b.c.d`; report it as the IPv4 address it is, so Via stamping
/// and connection lookup see one form.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The destination in the family of `local`: an IPv6 socket reaches an
/// IPv4 peer through its v4-mapped form.
fn in_family_of(local: SocketAddr, dest: SocketAddr) -> SocketAddr {
    match (local.ip(), dest.ip()) {
        (IpAddr::V6(_), IpAddr::V4(v4)) => SocketAddr::new(v4.to_ipv6_mapped().into(), dest.port()),
        _ => dest,
    }
}

/// What [`Network::stats`] reads, detached from the [`Network`].
#[derive(Debug, Clone)]
pub struct NetStatsHandle {
    counters: Arc<Counters>,
    tcp_counters: Arc<StreamCounters>,
    tls_counters: Arc<StreamCounters>,
    tcp_open: Option<OpenCount>,
    tls_open: Option<OpenCount>,
}

impl NetStatsHandle {
    pub fn stats(&self) -> NetStats {
        NetStats {
            tcp: with_open(self.tcp_counters.snapshot(), self.tcp_open.as_ref()),
            tls: with_open(self.tls_counters.snapshot(), self.tls_open.as_ref()),
            ..self.counters.snapshot()
        }
    }
}

fn with_open(stats: StreamStats, open: Option<&OpenCount>) -> StreamStats {
    StreamStats {
        open: open.map_or(0, |o| o.get() as u64),
        ..stats
    }
}

/// UDP, TCP and TLS together, feeding one channel.
#[derive(Debug)]
pub struct Network {
    udp: Option<UdpEndpoint>,
    tcp: Option<StreamTransport>,
    tls: Option<StreamTransport>,
    counters: Arc<Counters>,
    tcp_counters: Arc<StreamCounters>,
    tls_counters: Arc<StreamCounters>,
}

impl Network {
    /// Bind what `config` asks for and start receiving.
    pub async fn bind(config: NetConfig) -> Result<(Self, mpsc::Receiver<Incoming>), NetError> {
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let tcp_counters = Arc::new(StreamCounters::default());
        let tls_counters = Arc::new(StreamCounters::default());
        let udp = match config.udp {
            Some(addr) => {
                Some(UdpEndpoint::bind(addr, &config, tx.clone(), counters.clone()).await?)
            }
            None => None,
        };
        let tcp = match config.tcp {
            Some(addr) => Some(
                StreamTransport::bind(Some(addr), None, &config, tx.clone(), tcp_counters.clone())
                    .await?,
            ),
            None => None,
        };
        let tls = match &config.tls {
            Some(tls) => {
                let handshaker = tls::Handshaker::new(tls, config.tls_handshake_timeout)?;
                Some(
                    StreamTransport::bind(
                        tls.bind,
                        Some(handshaker),
                        &config,
                        tx,
                        tls_counters.clone(),
                    )
                    .await?,
                )
            }
            None => None,
        };
        let network = Self {
            udp,
            tcp,
            tls,
            counters,
            tcp_counters,
            tls_counters,
        };
        Ok((network, rx))
    }

    /// The bound address of a transport (with the port picked for port 0);
    /// `None` also for TLS that only connects out.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => self.udp.as_ref().map(UdpEndpoint::local_addr),
            Transport::Tcp => self.tcp.as_ref().and_then(StreamTransport::local_addr),
            Transport::Tls => self.tls.as_ref().and_then(StreamTransport::local_addr),
        }
    }

    /// Send `data` to `dest`: one datagram, or on the TCP or TLS
    /// connection to `dest`, opening one if none is open (for TLS: the
    /// server's certificate verified against the configured CA, see
    /// [`TlsConfig::server_name`]).
    pub async fn send(
        &self,
        data: &[u8],
        dest: SocketAddr,
        transport: Transport,
    ) -> Result<(), NetError> {
        match transport {
            Transport::Udp => self.udp()?.send(data, dest).await,
            Transport::Tcp | Transport::Tls => self.stream(transport)?.send(data, dest).await,
        }
    }

    /// Send only on an already open connection (responses, RFC 3261
    /// 18.2.2); fails with [`NetError::NoConnection`] when it has closed.
    pub async fn send_on_connection(
        &self,
        data: &[u8],
        peer: SocketAddr,
        transport: Transport,
    ) -> Result<(), NetError> {
        self.stream(transport)?.send_existing(data, peer).await
    }

    /// Send a CRLF keep-alive ping on the connection to `peer` (RFC 5626 3.5.1).
    pub async fn ping(&self, peer: SocketAddr, transport: Transport) -> Result<(), NetError> {
        self.stream(transport)?.ping(peer).await
    }

    /// Our end of the open TCP or TLS connection to `peer`, `None` when
    /// none is open: what a user agent without a listener writes in its
    /// Via and Contact on that flow (RFC 5923, RFC 5626).
    pub fn connection_local_addr(
        &self,
        peer: SocketAddr,
        transport: Transport,
    ) -> Option<SocketAddr> {
        self.stream(transport).ok()?.connection_local_addr(peer)
    }

    /// The name the TLS server at `ip` must prove (RFC 5922 section 7):
    /// the host of the URI that led there, for example a registrar's
    /// domain. Addresses without one use [`TlsConfig::server_name`], else
    /// the IP address itself.
    pub fn set_tls_server_name(&self, ip: IpAddr, name: &str) -> Result<(), NetError> {
        self.stream(Transport::Tls)?
            .handshaker()
            .ok_or(NetError::NoTransport(Transport::Tls))?
            .set_name(ip, name)
    }

    pub fn stats(&self) -> NetStats {
        self.stats_handle().stats()
    }

    /// A handle on the counters that stays valid once the network is
    /// handed to its driver task: /metrics reads it at scrape time.
    pub fn stats_handle(&self) -> NetStatsHandle {
        NetStatsHandle {
            counters: self.counters.clone(),
            tcp_counters: self.tcp_counters.clone(),
            tls_counters: self.tls_counters.clone(),
            tcp_open: self.tcp.as_ref().map(StreamTransport::open_count),
            tls_open: self.tls.as_ref().map(StreamTransport::open_count),
        }
    }

    pub fn udp(&self) -> Result<&UdpEndpoint, NetError> {
        self.udp
            .as_ref()
            .ok_or(NetError::NoTransport(Transport::Udp))
    }

    /// The TCP or the TLS transport.
    pub fn stream(&self, transport: Transport) -> Result<&StreamTransport, NetError> {
        match transport {
            Transport::Tcp => self.tcp.as_ref(),
            Transport::Tls => self.tls.as_ref(),
            Transport::Udp => None,
        }
        .ok_or(NetError::NoTransport(transport))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn one_network_speaks_udp_and_tcp_on_v4_and_v6() {
        for host in ["127.0.0.1", "[::1]"] {
            let any: SocketAddr = format!("{host}:0").parse().unwrap();
            let (a, mut a_rx) = Network::bind(NetConfig::udp_and_tcp(any)).await.unwrap();
            let (b, mut b_rx) = Network::bind(NetConfig::udp_and_tcp(any)).await.unwrap();
            for transport in [Transport::Udp, Transport::Tcp] {
                let to = b.local_addr(transport).unwrap();
                let msg = b"OPTIONS sip:b SIP/2.0\r\nContent-Length: 0\r\n\r\n";
                a.send(msg, to, transport).await.unwrap();
                let got = timeout(WAIT, b_rx.recv()).await.unwrap().unwrap();
                let Incoming::Message {
                    data,
                    source,
                    transport: t,
                } = got
                else {
                    panic!("{got:?}")
                };
                assert_eq!((data.as_slice(), t), (&msg[..], transport));
                assert_eq!(source.ip(), to.ip());
                // The answer goes back to the source the message came from.
                b.send(
                    b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                    source,
                    transport,
                )
                .await
                .unwrap();
                let back = timeout(WAIT, a_rx.recv()).await.unwrap().unwrap();
                assert_eq!(back.source(), to, "{host} {transport}");
            }
            assert_eq!(a.stats().tcp.connected, 1);
            assert_eq!(b.stats().tcp.accepted, 1);
        }
    }

    #[tokio::test]
    async fn missing_transport_is_an_error() {
        let config = NetConfig {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            ..NetConfig::default()
        };
        let (net, _rx) = Network::bind(config).await.unwrap();
        assert!(net.local_addr(Transport::Tcp).is_none());
        let err = net
            .send(b"x", "127.0.0.1:9".parse().unwrap(), Transport::Tcp)
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::NoTransport(Transport::Tcp)));
    }

    #[tokio::test]
    async fn udp_keeps_answering_while_tcp_is_flooded() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let config = NetConfig {
            max_connections: 4,
            max_connections_per_source: 2,
            ..NetConfig::udp_and_tcp(any)
        };
        let (net, mut rx) = Network::bind(config).await.unwrap();
        let tcp = net.local_addr(Transport::Tcp).unwrap();
        let mut flood = Vec::new();
        for _ in 0..50 {
            flood.push(tokio::net::TcpStream::connect(tcp).await.unwrap());
        }
        let udp = tokio::net::UdpSocket::bind(any).await.unwrap();
        udp.send_to(
            b"OPTIONS sip:x SIP/2.0\r\n\r\n",
            net.local_addr(Transport::Udp).unwrap(),
        )
        .await
        .unwrap();
        let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(got.transport(), Transport::Udp);
        let stats = net.stats();
        assert_eq!(stats.tcp.accepted, 50);
        assert_eq!(stats.tcp.refused_per_source, 48);
    }

    #[test]
    fn v4_mapped_addresses() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5060".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1:5060".parse().unwrap());
        let v6_local: SocketAddr = "[::]:5060".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:7".parse().unwrap();
        assert_eq!(
            in_family_of(v6_local, v4),
            "[::ffff:127.0.0.1]:7".parse().unwrap()
        );
        assert_eq!(in_family_of(v4, v4), v4);
    }
}
