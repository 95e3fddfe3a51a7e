//! The collector's end of the bench: RTP received on 127.0.0.1 with the
//! kernel's arrival time of each datagram (SO_TIMESTAMPNS, stamped when
//! the packet reaches the socket, so this process's own scheduling does
//! not enter the figures).

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// One RTP datagram and when the kernel received it.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// CLOCK_REALTIME at reception, nanoseconds since the Unix epoch.
    pub at_ns: i128,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct Receiver {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

/// Most datagrams kept (20 s at 50 packets/s is 1000).
const MAX_ARRIVALS: usize = 100_000;

impl Receiver {
    pub fn bind() -> Result<Receiver, String> {
        let bind = || UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"));
        let (rtp, rtcp) = (bind()?, bind()?);
        setsockopt(&rtp, sockopt::ReceiveTimestampns, &true)
            .map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
        rtp.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        rtcp.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Receiver { rtp, rtcp })
    }

    pub fn rtp_addr(&self) -> Result<SocketAddr, String> {
        self.rtp.local_addr().map_err(|e| e.to_string())
    }

    pub fn rtcp_addr(&self) -> Result<SocketAddr, String> {
        self.rtcp.local_addr().map_err(|e| e.to_string())
    }

    /// Receive until `done()` says so or `deadline` passes.
    pub fn collect(&self, deadline: Instant, mut done: impl FnMut() -> bool) -> Vec<Arrival> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        let mut cmsg = nix::cmsg_space!(TimeSpec);
        while Instant::now() < deadline && !done() && out.len() < MAX_ARRIVALS {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<SockaddrStorage>(
                self.rtp.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) else {
                continue; // the read timeout: check the deadline
            };
            let n = msg.bytes;
            let mut at_ns = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        at_ns = Some(
                            i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec()),
                        );
                    }
                }
            }
            if let Some(at_ns) = at_ns {
                out.push(Arrival {
                    at_ns,
                    bytes: buf[..n].to_vec(),
                });
            }
        }
        out
    }

    /// Every RTCP compound waiting now.
    pub fn rtcp(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..1000 {
            match self.rtcp.recv(&mut buf) {
                Ok(n) => out.push(buf[..n].to_vec()),
                Err(_) => break,
            }
        }
        out
    }
}
