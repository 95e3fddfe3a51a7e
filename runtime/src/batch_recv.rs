//! Batched UDP receive: up to a batch of datagrams per `recvmmsg(2)`
//! instead of one system call each, which is what lets one thread take in
//! tens of thousands of packets a second (docs/benchmarks.md, "collector:
//! receive path").

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// One received datagram's metadata.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub len: usize,
    pub from: Option<SocketAddr>,
    /// Longer than the buffer: the tail was cut off (MSG_TRUNC).
    pub truncated: bool,
}

/// Buffers for `recvmmsg`, reused for every call.
pub struct BatchRx {
    headers: MultiHeaders<SockaddrStorage>,
    /// `batch` buffers of `max_datagram` bytes, back to back.
    bufs: Vec<u8>,
    batch: usize,
    max_datagram: usize,
    meta: Vec<Meta>,
}

impl std::fmt::Debug for BatchRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRx")
            .field("batch", &self.batch())
            .field("max_datagram", &self.max_datagram)
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
    /// Room for `batch` datagrams per call (at least one), each up to
    /// `max_datagram` bytes (at least one); longer ones arrive cut and
    /// flagged [`Meta::truncated`].
    pub fn new(batch: usize, max_datagram: usize) -> Self {
        let batch = batch.max(1);
        let max_datagram = max_datagram.max(1);
        BatchRx {
            headers: MultiHeaders::preallocate(batch, None),
            bufs: vec![0u8; batch * max_datagram],
            batch,
            max_datagram,
            meta: Vec::with_capacity(batch),
        }
    }

    /// Datagrams taken per call at most.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Takes up to [`batch`](Self::batch) datagrams without blocking;
    /// `Ok(0)` when none are waiting.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.meta.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .chunks_exact_mut(self.max_datagram)
            .map(|b| [IoSliceMut::new(b)])
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
                        len: r.bytes.min(self.max_datagram),
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
        let start = i * self.max_datagram;
        Some((self.bufs.get(start..start + m.len)?, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Receives until `want` datagrams came or 5 s passed; each with
    /// whether it was cut.
    fn receive(rx: &mut BatchRx, sock: &UdpSocket, want: usize) -> Vec<(Vec<u8>, Meta)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < want && Instant::now() < deadline {
            let n = rx.recv(sock).unwrap();
            assert!(n <= rx.batch(), "{n} in a batch of {}", rx.batch());
            for i in 0..n {
                let (data, m) = rx.get(i).unwrap();
                got.push((data.to_vec(), m));
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        got
    }

    #[test]
    fn batches_arrive_with_their_source_and_oversized_ones_are_flagged() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sock.local_addr().unwrap();
        for i in 0..10u8 {
            tx.send_to(&[i; 20], to).unwrap();
        }
        tx.send_to(&[7u8; 3000], to).unwrap();
        let mut rx = BatchRx::new(64, 2048);
        let got = receive(&mut rx, &sock, 11);
        assert_eq!(got.len(), 11);
        assert!(
            got.iter()
                .all(|(_, m)| m.from == Some(tx.local_addr().unwrap()))
        );
        assert_eq!(got[3].0, vec![3u8; 20]);
        assert!(!got[3].1.truncated);
        assert_eq!(got[10].0.len(), 2048);
        assert!(got[10].1.truncated, "an oversized datagram is flagged");
        assert_eq!(rx.recv(&sock).unwrap(), 0);
        assert!(rx.get(0).is_none(), "nothing left of the last batch");
    }

    #[test]
    fn a_batch_takes_no_more_than_its_size_and_v6_sources_read_back() {
        let sock = UdpSocket::bind("[::1]:0").unwrap();
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 4], sock.local_addr().unwrap()).unwrap();
        }
        let mut rx = BatchRx::new(2, 16);
        let got = receive(&mut rx, &sock, 5);
        let payloads: Vec<u8> = got.iter().map(|(data, _)| data[0]).collect();
        assert_eq!(payloads, [0, 1, 2, 3, 4], "all of them, in order");
        assert_eq!(got[4].1.from, Some(tx.local_addr().unwrap()));
    }
}
