//! RTP sockets of the simulated sensors, optionally shared by several (the
//! collector tells streams apart by address and SSRC), and the reader of
//! the receiver reports the collector sends back to them.

use crate::pump::StreamCounters;
use sipsensor_protocol::{
    BackfillMessage, RtcpPacket, SrtpContext, SrtpError, SrtpKeys, parse_rtcp_compound,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::JoinHandle;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One RTP socket (RTCP rides on the same port, `a=rtcp`, RFC 3605).
#[derive(Debug)]
pub struct SharedSocket {
    pub socket: Arc<UdpSocket>,
    pub addr: SocketAddr,
    streams: Arc<Mutex<HashMap<u32, Arc<StreamCounters>>>>,
    /// SRTCP openers of the SRTP streams on this socket, by their SSRC.
    openers: Openers,
    reader: JoinHandle<()>,
}

type Openers = Arc<Mutex<HashMap<u32, SrtpContext>>>;

/// The plain RTCP of an SRTCP packet from the collector: the streams
/// sharing the socket each try their key (a wrong key fails the tag, RFC
/// 3711 3.4; a context that proved the collector's SSRC refuses others
/// before any crypto). `None` when none opens it.
fn open_srtcp(openers: &Openers, packet: &[u8], out: &mut Vec<u8>) -> Option<()> {
    lock(openers)
        .values_mut()
        .any(|c| c.unprotect_rtcp(packet, out).is_ok())
        .then_some(())
}

impl SharedSocket {
    /// Binds on `ip` and starts reading receiver reports (inside tokio).
    pub fn bind(ip: IpAddr) -> std::io::Result<Arc<SharedSocket>> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let addr = socket.local_addr()?;
        let rx = socket.try_clone()?;
        rx.set_nonblocking(true)?;
        let rx = tokio::net::UdpSocket::from_std(rx)?;
        let streams: Arc<Mutex<HashMap<u32, Arc<StreamCounters>>>> = Arc::default();
        let openers: Openers = Arc::default();
        let map = streams.clone();
        let keys = openers.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut opened = Vec::with_capacity(2048);
            while let Ok((n, _)) = rx.recv_from(&mut buf).await {
                // A socket of SRTP streams takes SRTCP only: an RTCP
                // packet in clear would be a forgery's.
                let srtp = !lock(&keys).is_empty();
                let plain = if srtp {
                    if open_srtcp(&keys, &buf[..n], &mut opened).is_none() {
                        continue;
                    }
                    &opened[..]
                } else {
                    &buf[..n]
                };
                let Ok(packets) = parse_rtcp_compound(plain) else {
                    continue;
                };
                for p in packets {
                    let rr = match p {
                        RtcpPacket::ReceiverReport(rr) => rr,
                        // The collector's committed mark (docs/protocol.md
                        // 11.4), for the backfill to go back to.
                        RtcpPacket::App(app) => {
                            if let Ok(Some(BackfillMessage::Committed {
                                media_ssrc,
                                through_ns,
                            })) = BackfillMessage::from_app(&app)
                                && let Some(c) = lock(&map).get(&media_ssrc)
                            {
                                c.committed_mark_ns.fetch_max(through_ns, Ordering::Relaxed);
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    for b in rr.reports {
                        let Some(c) = lock(&map).get(&b.ssrc).cloned() else {
                            continue;
                        };
                        c.rr_count.fetch_add(1, Ordering::Relaxed);
                        c.rr_lost
                            .store(i64::from(b.cumulative_lost), Ordering::Relaxed);
                        c.rr_jitter.store(u64::from(b.jitter), Ordering::Relaxed);
                        c.rr_highest_seq
                            .store(u64::from(b.extended_highest_seq), Ordering::Relaxed);
                    }
                }
            }
        });
        Ok(Arc::new(SharedSocket {
            socket: Arc::new(socket),
            addr,
            streams,
            openers,
            reader,
        }))
    }

    /// Receiver reports about `ssrc` go to `counters`.
    pub fn listen(&self, ssrc: u32, counters: Arc<StreamCounters>) {
        lock(&self.streams).insert(ssrc, counters);
    }

    /// The collector's SRTCP to the stream `ssrc` opens with `keys.receive`
    /// (its key from the SDES answer, RFC 4568 7.1.3).
    pub fn listen_srtcp(&self, ssrc: u32, keys: &SrtpKeys) -> Result<(), SrtpError> {
        let opener = SrtpContext::inbound(&keys.receive)?;
        lock(&self.openers).insert(ssrc, opener);
        Ok(())
    }

    pub fn forget(&self, ssrc: u32) {
        lock(&self.streams).remove(&ssrc);
        lock(&self.openers).remove(&ssrc);
    }
}

impl Drop for SharedSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Hands out RTP sockets: a new one every `per_socket` sensors, on the
/// addresses of `ips` in turn.
#[derive(Debug)]
pub struct RtpSockets {
    ips: Vec<IpAddr>,
    per_socket: usize,
    state: Mutex<(Option<Arc<SharedSocket>>, usize, usize)>,
}

impl RtpSockets {
    pub fn new(ips: Vec<IpAddr>, per_socket: usize) -> RtpSockets {
        RtpSockets {
            ips,
            per_socket: per_socket.max(1),
            state: Mutex::new((None, 0, 0)),
        }
    }

    pub fn take(&self) -> std::io::Result<Arc<SharedSocket>> {
        let mut st = lock(&self.state);
        if let Some(s) = &st.0
            && st.1 < self.per_socket
        {
            let s = s.clone();
            st.1 += 1;
            return Ok(s);
        }
        let ip = self
            .ips
            .get(st.2 % self.ips.len().max(1))
            .copied()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        st.2 += 1;
        let s = SharedSocket::bind(ip)?;
        *st = (Some(s.clone()), 1, st.2);
        Ok(s)
    }
}
