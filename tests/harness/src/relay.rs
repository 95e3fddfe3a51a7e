//! A seeded UDP impairment relay: loss, delay, jitter and the reordering
//! jitter causes, between two endpoints on loopback. The kernels of these
//! machines have no `netem`, so the system tests put this in the media
//! path instead; every decision comes from the seed, so a failing run can
//! be replayed exactly.
//!
//! Packets from a peer to the relay go to `forward_to`, impaired; packets
//! from `forward_to` go back to the last peer seen, untouched (the RTCP
//! the collector returns).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{HarnessError, io_err};

#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Where the relay listens (port 0: any free port).
    pub listen: SocketAddr,
    pub forward_to: SocketAddr,
    pub seed: u64,
    /// Probability of dropping a forwarded packet, 0.0 to 1.0.
    pub loss: f64,
    /// Every forwarded packet waits `delay` plus a uniform 0..`jitter`.
    pub delay: Duration,
    pub jitter: Duration,
}

/// What the relay did with the RTP packets it was given (non-RTP
/// datagrams, e.g. RTCP on the same relay, are only counted).
#[derive(Debug, Default, Clone)]
pub struct RelayLog {
    /// In order of arrival: (RTP sequence number, forwarded?).
    pub packets: Vec<(u16, bool)>,
    /// The delay each forwarded RTP packet got, in order of arrival.
    pub delays: Vec<Duration>,
    pub other: u64,
    pub returned: u64,
    /// Datagrams discarded unlogged while paused ([`Relay::pause`]).
    pub paused: u64,
}

impl RelayLog {
    pub fn dropped(&self) -> usize {
        self.packets.iter().filter(|(_, fwd)| !fwd).count()
    }

    /// The drops a receiver can notice: those between the first and the
    /// last packet it was given. RFC 3550 A.3 counts loss from the first
    /// packet received up to the highest one, so drops before or after
    /// are invisible to it.
    pub fn visible_drops(&self) -> usize {
        let first = self.packets.iter().position(|(_, fwd)| *fwd);
        let last = self.packets.iter().rposition(|(_, fwd)| *fwd);
        match (first, last) {
            (Some(a), Some(b)) => self.packets[a..=b].iter().filter(|(_, fwd)| !fwd).count(),
            _ => 0,
        }
    }
}

/// splitmix64: a tiny seeded generator, enough for test impairments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs until dropped.
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    log: Arc<Mutex<RelayLog>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("addr", &self.addr).finish()
    }
}

type Queue = Arc<Mutex<BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    pub fn start(options: RelayOptions) -> Result<Relay, HarnessError> {
        let socket = UdpSocket::bind(options.listen).map_err(io_err("relay bind"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(io_err("relay socket"))?;
        let addr = socket.local_addr().map_err(io_err("relay address"))?;
        let send = socket.try_clone().map_err(io_err("relay socket"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(RelayLog::default()));
        let queue: Queue = Arc::new(Mutex::new(BinaryHeap::new()));
        let peer: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));

        let receiver = {
            let (stop, log, queue, peer) = (stop.clone(), log.clone(), queue.clone(), peer.clone());
            let pause = pause.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(options.seed);
                let mut order = 0u64;
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let data = &buf[..n];
                    if from == options.forward_to {
                        // Back to the peer, untouched.
                        if let Some(p) = *lock(&peer) {
                            let _ = socket.send_to(data, p);
                            lock(&log).returned += 1;
                        }
                        continue;
                    }
                    *lock(&peer) = Some(from);
                    if pause.load(Ordering::Relaxed) {
                        lock(&log).paused += 1;
                        continue;
                    }
                    let rtp = n >= 12 && data[0] >> 6 == 2 && !(200..=204).contains(&data[1]);
                    let drop = rng.unit() < options.loss;
                    let delay = options.delay + options.jitter.mul_f64(rng.unit());
                    {
                        let mut log = lock(&log);
                        if rtp {
                            let seq = u16::from_be_bytes([data[2], data[3]]);
                            log.packets.push((seq, !drop));
                            if !drop {
                                log.delays.push(delay);
                            }
                        } else {
                            log.other += 1;
                        }
                    }
                    if !drop {
                        order += 1;
                        lock(&queue).push(Reverse((Instant::now() + delay, order, data.to_vec())));
                    }
                }
            })
        };
        let sender = {
            let (stop, queue) = (stop.clone(), queue.clone());
            let to = options.forward_to;
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let due = {
                        let mut q = lock(&queue);
                        match q.peek() {
                            Some(Reverse((at, _, _))) if *at <= now => q.pop(),
                            _ => None,
                        }
                    };
                    match due {
                        Some(Reverse((_, _, data))) => {
                            let _ = send.send_to(&data, to);
                        }
                        None => std::thread::sleep(Duration::from_micros(500)),
                    }
                }
            })
        };
        Ok(Relay {
            addr,
            stop,
            pause,
            log,
            threads: vec![receiver, sender],
        })
    }

    /// Where to send what should be impaired.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop taking packets from the peer (they are discarded and only
    /// counted in `paused`); those already queued are still delivered.
    /// The log then stays as it is, so a receiver's view of what it was
    /// given can be compared with it once the queue has drained.
    pub fn pause(&self) {
        self.pause.store(true, Ordering::Relaxed);
    }

    pub fn resume(&self) {
        self.pause.store(false, Ordering::Relaxed);
    }

    pub fn log(&self) -> RelayLog {
        lock(&self.log).clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p
    }

    #[test]
    fn loss_delay_and_reordering_follow_the_seed() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let relay = Relay::start(RelayOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            forward_to: sink.local_addr().unwrap(),
            seed: 42,
            loss: 0.1,
            delay: Duration::from_millis(1),
            jitter: Duration::from_millis(30),
        })
        .unwrap();
        let src = UdpSocket::bind("127.0.0.1:0").unwrap();
        for seq in 0..200u16 {
            src.send_to(&rtp(seq), relay.addr()).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok((n, _)) = sink.recv_from(&mut buf) {
            got.push(u16::from_be_bytes([buf[2], buf[3]]));
            assert_eq!(n, 12);
        }
        let log = relay.log();
        assert_eq!(log.packets.len(), 200);
        assert_eq!(got.len(), 200 - log.dropped());
        assert!(
            (5..=40).contains(&log.dropped()),
            "about 10 %: {}",
            log.dropped()
        );
        let in_order = got.windows(2).all(|w| w[0] < w[1]);
        assert!(!in_order, "30 ms of jitter at 1 ms spacing reorders");
        // Same seed, same decisions.
        let again = Relay::start(RelayOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            forward_to: sink.local_addr().unwrap(),
            seed: 42,
            loss: 0.1,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        })
        .unwrap();
        for seq in 0..200u16 {
            src.send_to(&rtp(seq), again.addr()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        let drops = |l: &RelayLog| {
            l.packets
                .iter()
                .filter(|p| !p.1)
                .map(|p| p.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(drops(&again.log()), drops(&log));
    }

    #[test]
    fn visible_drops_ignore_the_edges() {
        let log = RelayLog {
            packets: vec![(1, false), (2, true), (3, false), (4, true), (5, false)],
            ..RelayLog::default()
        };
        assert_eq!(log.dropped(), 3);
        assert_eq!(log.visible_drops(), 1);
    }
}
