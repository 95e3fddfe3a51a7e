//! The RTP/RTCP port pair and batched receive (`recvmmsg(2)` through nix).

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};

/// Datagrams taken per system call.
pub const BATCH: usize = 64;
/// Receive buffer per datagram: a sensor packet is at most 12 + 1200
/// bytes plus CSRCs and extensions; anything longer is truncated and
/// refused as oversized (MSG_TRUNC).
pub const MAX_DATAGRAM: usize = 2048;

/// Binds RTP on `addr` and RTCP on the next port (RFC 3550 11: an even
/// RTP port and the odd one above). Port 0 picks a free even pair.
pub fn bind_pair(addr: SocketAddr, rcvbuf: u32) -> io::Result<(UdpSocket, UdpSocket)> {
    let pair = if addr.port() != 0 {
        let rtp = UdpSocket::bind(addr)?;
        let rtcp = UdpSocket::bind(SocketAddr::new(addr.ip(), addr.port().wrapping_add(1)))?;
        (rtp, rtcp)
    } else {
        let mut found = None;
        let mut last = None;
        for _ in 0..64 {
            let rtp = UdpSocket::bind(addr)?;
            let port = rtp.local_addr()?.port();
            if port % 2 != 0 || port == u16::MAX {
                continue;
            }
            match UdpSocket::bind(SocketAddr::new(addr.ip(), port + 1)) {
                Ok(rtcp) => {
                    found = Some((rtp, rtcp));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        found.ok_or_else(|| last.unwrap_or_else(|| io::Error::other("no free even port pair")))?
    };
    for s in [&pair.0, &pair.1] {
        s.set_nonblocking(true)?;
        set_rcvbuf(s, rcvbuf);
    }
    Ok(pair)
}

/// SO_RCVBUFFORCE when privileged (past net.core.rmem_max), else SO_RCVBUF.
fn set_rcvbuf(s: &UdpSocket, bytes: u32) {
    let want = usize::try_from(bytes).unwrap_or(usize::MAX);
    if setsockopt(s, sockopt::RcvBufForce, &want).is_err() {
        let _ = setsockopt(s, sockopt::RcvBuf, &want);
    }
}

/// The receive buffer the kernel granted (it doubles the request).
pub fn rcvbuf(s: &UdpSocket) -> usize {
    nix::sys::socket::getsockopt(&s.as_fd(), sockopt::RcvBuf).unwrap_or(0)
}

/// One received datagram's metadata.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub len: usize,
    pub from: Option<SocketAddr>,
    pub truncated: bool,
}

/// Buffers for `recvmmsg`, reused for every call.
pub struct BatchRx {
    headers: MultiHeaders<SockaddrStorage>,
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    meta: Vec<Meta>,
}

impl std::fmt::Debug for BatchRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRx")
            .field("batch", &self.bufs.len())
            .finish()
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

impl BatchRx {
    pub fn new() -> Self {
        BatchRx {
            headers: MultiHeaders::preallocate(BATCH, None),
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
            meta: Vec::with_capacity(BATCH),
        }
    }

    /// Takes up to [`BATCH`] datagrams without blocking; `Ok(0)` when none
    /// are waiting.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.meta.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(&mut b[..])])
            .collect();
        let result = recvmmsg(
            sock.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        );
        match result {
            Ok(results) => {
                for r in results {
                    self.meta.push(Meta {
                        len: r.bytes.min(MAX_DATAGRAM),
                        from: r.address.as_ref().and_then(to_std),
                        truncated: r.flags.contains(MsgFlags::MSG_TRUNC),
                    });
                }
                Ok(self.meta.len())
            }
            Err(nix::errno::Errno::EAGAIN) => Ok(0),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    /// Datagram `i` of the last batch.
    pub fn get(&self, i: usize) -> Option<(&[u8], Meta)> {
        let m = *self.meta.get(i)?;
        Some((&self.bufs.get(i)?[..m.len], m))
    }
}

impl Default for BatchRx {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_is_even_and_adjacent_and_batches_arrive() {
        let (rtp, rtcp) = bind_pair("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let p = rtp.local_addr().unwrap().port();
        assert_eq!(p % 2, 0);
        assert_eq!(rtcp.local_addr().unwrap().port(), p + 1);
        assert!(rcvbuf(&rtp) >= 1 << 16);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rtp.local_addr().unwrap();
        for i in 0..10u8 {
            tx.send_to(&[i; 20], to).unwrap();
        }
        tx.send_to(&[7u8; 3000], to).unwrap();
        let mut rx = BatchRx::new();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 11 && std::time::Instant::now() < deadline {
            let n = rx.recv(&rtp).unwrap();
            for i in 0..n {
                let (data, m) = rx.get(i).unwrap();
                assert_eq!(m.from, Some(tx.local_addr().unwrap()));
                got.push((data.to_vec(), m.truncated));
            }
            if n == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        assert_eq!(got.len(), 11);
        assert_eq!(got[3].0, vec![3u8; 20]);
        assert!(!got[3].1);
        assert_eq!(got[10].0.len(), MAX_DATAGRAM);
        assert!(got[10].1, "an oversized datagram is flagged");
        assert_eq!(rx.recv(&rtp).unwrap(), 0);
    }
}
