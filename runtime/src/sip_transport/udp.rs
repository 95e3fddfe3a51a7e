//! One UDP socket: datagrams in, datagrams out.

use super::{Counters, Incoming, NetConfig, NetError, bump, canonical, in_family_of};
use crate::socket_buffer;
use sipsensor_protocol::{FrameError, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Pause after a receive error so a persistent one cannot spin a core.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A bound UDP socket whose receive loop feeds the channel. Dropping it
/// stops the loop and closes the socket.
#[derive(Debug)]
pub struct UdpEndpoint {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    max_message: usize,
    task: JoinHandle<()>,
}

impl Drop for UdpEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpEndpoint {
    pub(crate) async fn bind(
        addr: SocketAddr,
        config: &NetConfig,
        tx: mpsc::Sender<Incoming>,
        counters: Arc<Counters>,
    ) -> Result<Self, NetError> {
        let bind_err = |source| NetError::Bind {
            transport: Transport::Udp,
            addr,
            source,
        };
        let max_message = config.max_message_size;
        let socket = Arc::new(UdpSocket::bind(addr).await.map_err(bind_err)?);
        if let Some(bytes) = config.udp_receive_buffer {
            socket_buffer::set_receive_buffer(&*socket, bytes);
        }
        let local = socket.local_addr().map_err(bind_err)?;
        let task = tokio::spawn(receive_loop(socket.clone(), max_message, tx, counters));
        Ok(Self {
            socket,
            local,
            max_message,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The receive buffer the kernel granted (it doubles the request).
    pub fn receive_buffer(&self) -> usize {
        socket_buffer::receive_buffer(&*self.socket)
    }

    /// Send one datagram.
    pub async fn send(&self, data: &[u8], dest: SocketAddr) -> Result<(), NetError> {
        if data.len() > self.max_message {
            return Err(NetError::TooLarge {
                len: data.len(),
                max: self.max_message,
            });
        }
        let send_err = |source| NetError::Send {
            transport: Transport::Udp,
            dest,
            source,
        };
        let sent = self
            .socket
            .send_to(data, in_family_of(self.local, dest))
            .await
            .map_err(send_err)?;
        if sent != data.len() {
            return Err(send_err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", data.len()),
            )));
        }
        Ok(())
    }
}

async fn receive_loop(
    socket: Arc<UdpSocket>,
    max_message: usize,
    tx: mpsc::Sender<Incoming>,
    counters: Arc<Counters>,
) {
    // One byte more than allowed tells an oversized datagram from a full one.
    let mut buf = vec![0u8; max_message + 1];
    loop {
        let (len, source) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(_) => {
                // e.g. ICMP errors surfacing on Linux; the socket stays usable.
                bump(&counters.udp_recv_errors);
                tokio::time::sleep(RECV_ERROR_PAUSE).await;
                continue;
            }
        };
        let source = canonical(source);
        let data = &buf[..len];
        let incoming = if len > max_message {
            bump(&counters.udp_too_large);
            Incoming::Rejected {
                source,
                transport: Transport::Udp,
                error: FrameError::TooLarge {
                    size: len,
                    max: max_message,
                },
            }
        } else if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            // CRLF (or empty) datagrams keep NAT bindings open; no message.
            bump(&counters.udp_keepalives);
            continue;
        } else {
            bump(&counters.udp_datagrams);
            Incoming::Message {
                data: data.to_vec(),
                source,
                transport: Transport::Udp,
            }
        };
        if tx.send(incoming).await.is_err() {
            return; // nobody listens any more
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);

    async fn endpoint(
        addr: &str,
        max: usize,
    ) -> (UdpEndpoint, mpsc::Receiver<Incoming>, Arc<Counters>) {
        let (tx, rx) = mpsc::channel(8);
        let counters = Arc::new(Counters::default());
        let config = NetConfig {
            max_message_size: max,
            ..NetConfig::default()
        };
        let ep = UdpEndpoint::bind(addr.parse().unwrap(), &config, tx, counters.clone())
            .await
            .unwrap();
        (ep, rx, counters)
    }

    #[tokio::test]
    async fn the_receive_buffer_is_asked_for() {
        let (tx, _rx) = mpsc::channel(8);
        let config = NetConfig {
            udp_receive_buffer: Some(1 << 20),
            ..NetConfig::default()
        };
        let counters = Arc::new(Counters::default());
        let ep = UdpEndpoint::bind("127.0.0.1:0".parse().unwrap(), &config, tx, counters)
            .await
            .unwrap();
        let (plain, _rx2, _) = endpoint("127.0.0.1:0", 1500).await;
        let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0);
        // The kernel doubles the request: all of it with CAP_NET_ADMIN
        // (SO_RCVBUFFORCE), else capped at rmem_max first.
        let granted = ep.receive_buffer();
        assert!(
            granted == 2 << 20 || granted == 2 * max.min(1 << 20),
            "granted {granted}, rmem_max {max}"
        );
        assert!(plain.receive_buffer() <= ep.receive_buffer());
    }

    #[tokio::test]
    async fn delivers_datagrams_with_source_v4_and_v6() {
        for host in ["127.0.0.1:0", "[::1]:0"] {
            let (a, _a_rx, _) = endpoint(host, 1500).await;
            let (b, mut b_rx, counters) = endpoint(host, 1500).await;
            a.send(b"hello", b.local_addr()).await.unwrap();
            let got = timeout(WAIT, b_rx.recv()).await.unwrap().unwrap();
            assert_eq!(
                got,
                Incoming::Message {
                    data: b"hello".to_vec(),
                    source: a.local_addr(),
                    transport: Transport::Udp
                }
            );
            assert_eq!(counters.snapshot().udp_datagrams, 1);
        }
    }

    #[tokio::test]
    async fn oversized_is_rejected_and_keepalives_counted() {
        let (a, _a_rx, _) = endpoint("127.0.0.1:0", 2000).await;
        let (b, mut b_rx, counters) = endpoint("127.0.0.1:0", 100).await;
        assert!(matches!(
            b.send(&[b'x'; 101], a.local_addr()).await,
            Err(NetError::TooLarge { len: 101, max: 100 })
        ));
        a.send(b"\r\n\r\n", b.local_addr()).await.unwrap();
        a.send(&[b'x'; 150], b.local_addr()).await.unwrap();
        a.send(b"after", b.local_addr()).await.unwrap();
        let got = timeout(WAIT, b_rx.recv()).await.unwrap().unwrap();
        assert_eq!(
            got,
            Incoming::Rejected {
                source: a.local_addr(),
                transport: Transport::Udp,
                error: FrameError::TooLarge {
                    size: 101,
                    max: 100
                }
            }
        );
        let got = timeout(WAIT, b_rx.recv()).await.unwrap().unwrap();
        assert!(matches!(got, Incoming::Message { data, .. } if data == b"after"));
        let stats = counters.snapshot();
        assert_eq!((stats.udp_keepalives, stats.udp_too_large), (1, 1));
    }

    #[tokio::test]
    async fn dual_stack_socket_reports_ipv4_peers_as_ipv4() {
        // Linux's default (bindv6only=0): a [::] socket also takes IPv4,
        // whose sources then arrive as ::ffff:a.b.c.d.
        let (b, mut rx, _) = endpoint("[::]:0", 1500).await;
        let (a, mut a_rx, _) = endpoint("127.0.0.1:0", 1500).await;
        let to: SocketAddr = format!("127.0.0.1:{}", b.local_addr().port())
            .parse()
            .unwrap();
        a.send(b"ping", to).await.unwrap();
        let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(got.source(), a.local_addr());
        // And the v6 socket answers the v4 peer.
        b.send(b"pong", a.local_addr()).await.unwrap();
        let back = timeout(WAIT, a_rx.recv()).await.unwrap().unwrap();
        assert!(matches!(back, Incoming::Message { data, .. } if data == b"pong"));
    }
}
