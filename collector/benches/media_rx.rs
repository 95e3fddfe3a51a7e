//! Receive-path benchmark: what it costs to take N streams of 10 packets/s
//! off the network, three ways (docs/benchmarks.md, "collector: receive
//! path"):
//!
//! - `shared recvmmsg`: one socket for every stream, one thread, batches of
//!   up to 64 datagrams per `recvmmsg(2)` with a 2 ms nap after each
//!   wake-up (what `media::engine` does);
//! - `shared recvfrom`: one socket, one thread, a blocking `recv_from` per
//!   datagram;
//! - `per-session tokio`: a socket per stream, each read by its own task on
//!   a tokio current-thread runtime (epoll), the usual async design.
//!
//! Prints the receiving thread's CPU (% of one core) and the packets it got
//! of those sent. Only the receive loop is measured: no RTP processing, no
//! storage. `make bench-collector-rx`; SIPSENSOR_BENCH_STREAMS (comma list,
//! default 1000,10000), SIPSENSOR_BENCH_SECONDS (default 5).

// Benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nix::sys::resource::{UsageWho, getrusage};
use sipsensor_runtime::batch_recv::BatchRx;
use sipsensor_runtime::{open_files, socket_buffer};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const RATE: u64 = 10;
const PACKET: [u8; 28] = [0x80; 28]; // 12-byte header + 3 channels + payload header

fn thread_cpu() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_THREAD).unwrap();
    let d = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    d(u.user_time()) + d(u.system_time())
}

/// Sends `streams` x RATE packets/s, spread evenly, to `dests` in turn.
fn sender(dests: Vec<SocketAddr>, streams: u64, seconds: u64, sent: Arc<AtomicU64>) {
    let socks: Vec<UdpSocket> = (0..16)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let per_ms = streams * RATE / 1000;
    let start = Instant::now();
    let mut i = 0usize;
    for ms in 0..seconds * 1000 {
        let due = start + Duration::from_millis(ms);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for _ in 0..per_ms {
            let to = dests[i % dests.len()];
            if socks[i % socks.len()].send_to(&PACKET, to).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            i += 1;
        }
    }
}

struct Result {
    cpu_percent: f64,
    received: u64,
}

fn shared(batched: bool, streams: u64, seconds: u64) -> (Result, u64) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket_buffer::set_receive_buffer(&sock, 16 << 20);
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let rx = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let mut received = 0u64;
        let mut batch = BatchRx::new(64, 2048);
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            if batched {
                // Blocking wait for the first, then drain without blocking.
                let mut poll = [nix::poll::PollFd::new(
                    std::os::fd::AsFd::as_fd(&sock),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut poll, 50u16);
                loop {
                    let n = batch.recv(&sock).unwrap_or(0);
                    received += n as u64;
                    if n < 64 {
                        if n > 0 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        break;
                    }
                }
            } else if sock.recv_from(&mut buf).is_ok() {
                received += 1;
            }
        }
        let wall = t0.elapsed();
        let cpu = thread_cpu() - cpu0;
        Result {
            cpu_percent: cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
            received,
        }
    });
    let sent = Arc::new(AtomicU64::new(0));
    sender(vec![addr], streams, seconds, sent.clone());
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    (rx.join().unwrap(), sent.load(Ordering::Relaxed))
}

fn per_session(streams: u64, seconds: u64) -> (Result, u64) {
    let socks: Vec<UdpSocket> = (0..streams)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let dests: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let rx = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let received = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for s in socks {
                s.set_nonblocking(true).unwrap();
                let s = tokio::net::UdpSocket::from_std(s).unwrap();
                let received = received.clone();
                tasks.push(tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    while s.recv_from(&mut buf).await.is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            let cpu0 = thread_cpu();
            let t0 = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let wall = t0.elapsed();
            let cpu = thread_cpu() - cpu0;
            for t in tasks {
                t.abort();
            }
            Result {
                cpu_percent: cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
                received: received.load(Ordering::Relaxed),
            }
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = Arc::new(AtomicU64::new(0));
    sender(dests, streams, seconds, sent.clone());
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    (rx.join().unwrap(), sent.load(Ordering::Relaxed))
}

fn main() {
    let _ = open_files::raise_to_hard_limit();
    let streams: Vec<u64> = std::env::var("SIPSENSOR_BENCH_STREAMS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seconds: u64 = std::env::var("SIPSENSOR_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "| receive path | streams | packets/s | receiving thread CPU (% of a core) | received / sent |"
    );
    println!("|---|---:|---:|---:|---:|");
    for &n in &streams {
        for mode in ["shared recvmmsg", "shared recvfrom", "per-session tokio"] {
            let (r, sent) = match mode {
                "shared recvmmsg" => shared(true, n, seconds),
                "shared recvfrom" => shared(false, n, seconds),
                _ => per_session(n, seconds),
            };
            println!(
                "| {mode} | {n} | {} | {:.1} % | {} / {sent} |",
                n * RATE,
                r.cpu_percent,
                r.received
            );
        }
    }
}
