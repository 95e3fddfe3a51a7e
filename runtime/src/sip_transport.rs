//! Thin tokio shells around UDP and TCP sockets for SIP.
//!
//! They move bytes and nothing more: a UDP datagram or a TCP message framed
//! by [`StreamFramer`](sipsensor_protocol::StreamFramer) arrives on a
//! channel as [`Incoming`], and [`Network::send`] writes bytes to
//! `(SocketAddr, Transport)`. Parsing, Via stamping and response routing
//! belong to the caller (protocol's transport rules, such as
//! [`response_route`](sipsensor_protocol::response_route)), so every SIP
//! rule stays sans-I/O.

mod tcp;
mod udp;

pub use tcp::TcpTransport;
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
    #[error("{len}-byte message exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("no {0} socket configured")]
    NoTransport(Transport),
    /// RFC 3261 18.2.2: a response must use the request's connection; it is gone.
    #[error("no open TCP connection to {0}")]
    NoConnection(SocketAddr),
    #[error("connection limit of {0} reached")]
    TooManyConnections(usize),
}

/// Settings for [`Network::bind`]; the defaults bind nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// UDP socket address (port 0 picks a free one); `None`: no UDP.
    pub udp: Option<SocketAddr>,
    /// TCP listening address (port 0 picks a free one); `None`: no TCP.
    pub tcp: Option<SocketAddr>,
    /// Accept incoming TCP connections. Off: outgoing connections only
    /// (a UA reached over the flows it opens, RFC 5626), nothing listens.
    pub tcp_accept: bool,
    /// Largest message sent or received on either transport.
    pub max_message_size: usize,
    /// A TCP connection with no traffic either way for this long is closed.
    pub tcp_idle_timeout: Duration,
    pub tcp_connect_timeout: Duration,
    /// Open TCP connections, both directions together.
    pub max_connections: usize,
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
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            // RFC 5626 4.4.1 suggests keep-alives every 95-120 s on TCP;
            // a connection quiet for longer than that is dead or unused.
            tcp_idle_timeout: Duration::from_secs(300),
            // 64*T1 (RFC 3261 17.1.1.2): a transaction gives up by then anyway.
            tcp_connect_timeout: Duration::from_secs(32),
            max_connections: 1024,
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
    pub tcp_accepted: u64,
    pub tcp_connected: u64,
    pub tcp_refused_over_limit: u64,
    pub tcp_closed_idle: u64,
    pub tcp_stream_errors: u64,
    pub tcp_pings_answered: u64,
    pub tcp_pongs: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    udp_datagrams: AtomicU64,
    udp_keepalives: AtomicU64,
    udp_too_large: AtomicU64,
    udp_recv_errors: AtomicU64,
    tcp_accepted: AtomicU64,
    tcp_connected: AtomicU64,
    tcp_refused_over_limit: AtomicU64,
    tcp_closed_idle: AtomicU64,
    tcp_stream_errors: AtomicU64,
    tcp_pings_answered: AtomicU64,
    tcp_pongs: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> NetStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStats {
            udp_datagrams: get(&self.udp_datagrams),
            udp_keepalives: get(&self.udp_keepalives),
            udp_too_large: get(&self.udp_too_large),
            udp_recv_errors: get(&self.udp_recv_errors),
            tcp_accepted: get(&self.tcp_accepted),
            tcp_connected: get(&self.tcp_connected),
            tcp_refused_over_limit: get(&self.tcp_refused_over_limit),
            tcp_closed_idle: get(&self.tcp_closed_idle),
            tcp_stream_errors: get(&self.tcp_stream_errors),
            tcp_pings_answered: get(&self.tcp_pings_answered),
            tcp_pongs: get(&self.tcp_pongs),
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

/// UDP and TCP together, feeding one channel.
#[derive(Debug)]
pub struct Network {
    udp: Option<UdpEndpoint>,
    tcp: Option<TcpTransport>,
    counters: Arc<Counters>,
}

impl Network {
    /// Bind what `config` asks for and start receiving.
    pub async fn bind(config: NetConfig) -> Result<(Self, mpsc::Receiver<Incoming>), NetError> {
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let udp = match config.udp {
            Some(addr) => {
                Some(UdpEndpoint::bind(addr, &config, tx.clone(), counters.clone()).await?)
            }
            None => None,
        };
        let tcp = match config.tcp {
            Some(addr) => Some(TcpTransport::bind(addr, &config, tx, counters.clone()).await?),
            None => None,
        };
        Ok((Self { udp, tcp, counters }, rx))
    }

    /// The bound address of a transport (with the port picked for port 0).
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => self.udp.as_ref().map(UdpEndpoint::local_addr),
            Transport::Tcp => self.tcp.as_ref().map(TcpTransport::local_addr),
        }
    }

    /// Send `data` to `dest`: one datagram, or on the TCP connection to
    /// `dest`, opening one if none is open.
    pub async fn send(
        &self,
        data: &[u8],
        dest: SocketAddr,
        transport: Transport,
    ) -> Result<(), NetError> {
        match transport {
            Transport::Udp => self.udp()?.send(data, dest).await,
            Transport::Tcp => self.tcp()?.send(data, dest).await,
        }
    }

    /// Send only on an already open TCP connection (responses, RFC 3261
    /// 18.2.2); fails with [`NetError::NoConnection`] when it has closed.
    pub async fn send_on_connection(&self, data: &[u8], peer: SocketAddr) -> Result<(), NetError> {
        self.tcp()?.send_existing(data, peer).await
    }

    /// Send a CRLF keep-alive ping on the connection to `peer` (RFC 5626 3.5.1).
    pub async fn ping(&self, peer: SocketAddr) -> Result<(), NetError> {
        self.tcp()?.ping(peer).await
    }

    pub fn stats(&self) -> NetStats {
        self.counters.snapshot()
    }

    pub fn udp(&self) -> Result<&UdpEndpoint, NetError> {
        self.udp
            .as_ref()
            .ok_or(NetError::NoTransport(Transport::Udp))
    }

    pub fn tcp(&self) -> Result<&TcpTransport, NetError> {
        self.tcp
            .as_ref()
            .ok_or(NetError::NoTransport(Transport::Tcp))
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
            assert_eq!(a.stats().tcp_connected, 1);
            assert_eq!(b.stats().tcp_accepted, 1);
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
