//! A socket's kernel receive buffer, which neither std nor tokio set: the
//! room datagrams wait in while the receiving thread is busy. Too small, a
//! burst (sensors registering together after a power cut, a collector
//! thread preempted for a moment) is lost in the kernel.

use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use std::os::fd::AsFd;

/// Asks for `bytes` of receive buffer: SO_RCVBUFFORCE where privileged
/// (CAP_NET_ADMIN, past net.core.rmem_max), else SO_RCVBUF (capped at
/// rmem_max). Best effort: the socket works either way, and
/// [`receive_buffer`] tells what the kernel granted.
pub fn set_receive_buffer<S: AsFd>(socket: &S, bytes: usize) {
    if setsockopt(socket, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &bytes);
    }
}

/// The receive buffer the kernel granted (it doubles the request for its
/// bookkeeping); 0 when it cannot be read.
pub fn receive_buffer<S: AsFd>(socket: &S) -> usize {
    getsockopt(socket, sockopt::RcvBuf).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn rmem_max() -> usize {
        std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn the_kernel_grants_the_request_or_what_rmem_max_allows() {
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        let asked = UdpSocket::bind("127.0.0.1:0").unwrap();
        let want = 3 << 20;
        set_receive_buffer(&asked, want);
        // Doubled: all of it with CAP_NET_ADMIN, else capped at rmem_max.
        let granted = receive_buffer(&asked);
        assert!(
            granted == 2 * want || granted == 2 * rmem_max().min(want),
            "granted {granted}, rmem_max {}",
            rmem_max()
        );
        assert!(receive_buffer(&plain) > 0);
        assert!(receive_buffer(&plain) <= granted);
    }
}
