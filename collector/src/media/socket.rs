//! The RTP/RTCP port pair and the size of its batched receive.

use sipsensor_runtime::batch_recv::BatchRx;
use sipsensor_runtime::socket_buffer;
use std::io;
use std::net::{SocketAddr, UdpSocket};

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
        socket_buffer::set_receive_buffer(s, usize::try_from(rcvbuf).unwrap_or(usize::MAX));
    }
    Ok(pair)
}

/// Buffers for a batch of [`BATCH`] datagrams of up to [`MAX_DATAGRAM`].
pub fn batch_rx() -> BatchRx {
    BatchRx::new(BATCH, MAX_DATAGRAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_is_even_and_adjacent_and_cuts_oversized_datagrams() {
        let (rtp, rtcp) = bind_pair("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let p = rtp.local_addr().unwrap().port();
        assert_eq!(p % 2, 0);
        assert_eq!(rtcp.local_addr().unwrap().port(), p + 1);
        assert!(socket_buffer::receive_buffer(&rtp) >= 1 << 16);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[7u8; 3000], rtp.local_addr().unwrap()).unwrap();
        let mut rx = batch_rx();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while rx.recv(&rtp).unwrap() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (data, m) = rx.get(0).unwrap();
        assert_eq!(m.from, Some(tx.local_addr().unwrap()));
        assert_eq!(data.len(), MAX_DATAGRAM);
        assert!(m.truncated, "an oversized datagram is flagged");
        assert_eq!(rx.recv(&rtp).unwrap(), 0);
    }
}
