//! Batched RTCP sends: the compounds of one timer pass go out with one
//! `sendmmsg(2)` per [`BATCH`] instead of one `sendto` each. Acknowledged
//! streams get a compound every second (docs/protocol.md 11.4): 10,000 of
//! them are 10,000 compounds a second, which as single system calls would
//! cost the receive thread more than building them.

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Compounds per system call.
pub const BATCH: usize = 64;
/// Room per compound: RR with one block, SDES CNAME, APP, BYE; SRTCP's
/// trailer included.
pub const SLOT: usize = 256;

/// Compounds waiting to go out, with their destinations.
pub struct BatchTx {
    bufs: Vec<u8>,
    lens: Vec<usize>,
    dests: Vec<Option<SockaddrStorage>>,
    headers: MultiHeaders<SockaddrStorage>,
}

impl std::fmt::Debug for BatchTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchTx")
            .field("queued", &self.lens.len())
            .finish()
    }
}

impl Default for BatchTx {
    fn default() -> Self {
        BatchTx {
            bufs: vec![0; BATCH * SLOT],
            lens: Vec::with_capacity(BATCH),
            dests: Vec::with_capacity(BATCH),
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

impl BatchTx {
    /// Queues `data` for `dest`, sending the queue first when it is full.
    /// A compound longer than a slot is dropped (none is: see [`SLOT`]).
    /// Returns how many compounds went out.
    pub fn push(&mut self, sock: &UdpSocket, data: &[u8], dest: SocketAddr) -> usize {
        if data.len() > SLOT {
            return 0;
        }
        let sent = if self.lens.len() >= BATCH {
            self.flush(sock)
        } else {
            0
        };
        let i = self.lens.len();
        self.bufs[i * SLOT..i * SLOT + data.len()].copy_from_slice(data);
        self.lens.push(data.len());
        self.dests.push(Some(SockaddrStorage::from(dest)));
        sent
    }

    /// Sends everything queued; how many went out. RTCP is lossy: what the
    /// socket does not take now (a full buffer) is dropped, not retried.
    pub fn flush(&mut self, sock: &UdpSocket) -> usize {
        let n = self.lens.len();
        let mut sent = 0;
        while sent < n {
            let BatchTx {
                bufs,
                lens,
                dests,
                headers,
            } = self;
            let slices: Vec<[IoSlice<'_>; 1]> = (sent..n)
                .map(|i| [IoSlice::new(&bufs[i * SLOT..i * SLOT + lens[i]])])
                .collect();
            let result = sendmmsg(
                sock.as_raw_fd(),
                headers,
                &slices,
                &dests[sent..n],
                [],
                MsgFlags::MSG_DONTWAIT,
            );
            match result.map(|r| r.count()) {
                Ok(0) | Err(_) => break,
                Ok(k) => sent += k,
            }
        }
        self.lens.clear();
        self.dests.clear();
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_queued_compound_arrives_whole_at_its_destination() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx: Vec<UdpSocket> = (0..2)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect();
        let mut b = BatchTx::default();
        let mut sent = 0;
        // More than a batch: the first batch goes out when the queue fills.
        for i in 0..BATCH + 3 {
            let data = vec![i as u8; 20 + i % 7];
            sent += b.push(&tx, &data, rx[i % 2].local_addr().unwrap());
        }
        assert_eq!(sent, BATCH);
        assert_eq!(b.flush(&tx), 3);
        assert_eq!(b.flush(&tx), 0);
        let mut buf = [0u8; SLOT];
        for i in 0..BATCH + 3 {
            let n = rx[i % 2].recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &vec![i as u8; 20 + i % 7][..]);
        }
        assert_eq!(b.push(&tx, &[0; SLOT + 1], tx.local_addr().unwrap()), 0);
        assert_eq!(b.flush(&tx), 0, "an oversized compound is not queued");
    }
}
