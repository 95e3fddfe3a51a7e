//! The measured sender: the agent's sensor I/O thread reading a
//! simulated sensor, and a `Streamer`, for a fixed time.

use crate::Args;
use sipsensor_agent::config::RealtimeConfig;
use sipsensor_agent::handoff;
use sipsensor_agent::handoff::Event;
use sipsensor_agent::status::StatusHub;
use sipsensor_agent::stream::sim::SimStream;
use sipsensor_agent::stream::{MemoryLock, StreamOptions, StreamPlan, Streamer};
use sipsensor_protocol::{
    CryptoAttribute, EventFormat, IdGenerator, RtpSender, SrtpKey, SrtpKeys, StreamDescription,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The stream every role agrees on (the bench and the checker pass the
/// same flags to `send`).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub seed: u64,
    pub channels: usize,
    pub rate: u32,
    pub spp: u8,
}

impl Shape {
    pub fn from_args(a: &Args) -> Result<Shape, String> {
        Ok(Shape {
            seed: a.get("seed", 42)?,
            channels: a.get("channels", 3)?,
            rate: a.get("rate", 100)?,
            spp: a.get("spp", 2)?,
        })
    }

    pub fn args(&self) -> Vec<String> {
        [
            ("--seed", self.seed.to_string()),
            ("--channels", self.channels.to_string()),
            ("--rate", self.rate.to_string()),
            ("--spp", self.spp.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }

    pub fn sim(&self) -> SimStream {
        SimStream::new(self.seed, self.channels, self.rate, false)
    }

    /// The description sent: every simulated channel, and with `edges` a
    /// GPIO input `door`.
    pub fn description(&self, edges: bool) -> StreamDescription {
        let mut d = self.sim().full_description(self.spp);
        if edges {
            d.events = Some(EventFormat {
                payload_type: 97,
                inputs: vec![DOOR.into()],
            });
        }
        d
    }
}

/// The GPIO input of `--edges-ms`.
const DOOR: &str = "door";

pub fn mlock_mode(text: &str) -> Result<MemoryLock, String> {
    match text {
        "onfault" => Ok(MemoryLock::OnFault),
        "all" => Ok(MemoryLock::All),
        "off" => Ok(MemoryLock::Off),
        _ => Err(format!("--mlock {text:?}: onfault, all or off")),
    }
}

/// CPU time of the whole process (every thread), nanoseconds.
fn process_cpu_ns() -> u128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID).map_or(0, |t| {
        t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128
    })
}

/// CPU time (ns) of this process's threads: (thread id, name, ns on
/// CPU) from /proc/self/task/*/{comm,schedstat}.
fn thread_cpu_ns() -> Vec<(String, String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in dir.flatten() {
        let p = t.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        out.push((
            t.file_name().to_string_lossy().into_owned(),
            name.trim().to_owned(),
            ns,
        ));
    }
    out
}

/// A `VmHWM`/`VmRSS` line of /proc/self/status, in kB.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `--srtp-crypto VALUE` (an `a=crypto` value, RFC 4568 9.1): protect
/// what is sent with its key, as the agent does after an SDES answer.
fn srtp_keys(a: &Args) -> Result<Option<SrtpKeys>, String> {
    let Some(value) = a.text("srtp-crypto") else {
        return Ok(None);
    };
    let send = CryptoAttribute::parse(value)
        .map_err(|e| format!("--srtp-crypto: {e}"))?
        .key;
    Ok(Some(SrtpKeys {
        receive: SrtpKey::generate(send.suite()),
        send,
    }))
}

pub fn run(a: &Args) -> Result<(), String> {
    let shape = Shape::from_args(a)?;
    let to: SocketAddr = a
        .text("to")
        .ok_or("--to ADDR is required")?
        .parse()
        .map_err(|e| format!("--to: {e}"))?;
    let rtcp_to: SocketAddr = match a.text("rtcp-to") {
        Some(t) => t.parse().map_err(|e| format!("--rtcp-to: {e}"))?,
        None => SocketAddr::new(to.ip(), to.port().wrapping_add(1)),
    };
    let seconds: f64 = a.get("seconds", 20.0)?;
    let options = StreamOptions {
        memory_lock: mlock_mode(a.text("mlock").unwrap_or("onfault"))?,
        ..StreamOptions::default()
    };
    let rt = RealtimeConfig {
        priority: a.get("priority", 50)?,
        cpu: a
            .text("cpu")
            .map(str::parse)
            .transpose()
            .map_err(|_| "--cpu: a number")?,
    };
    let sim = shape.sim();
    let hub = StatusHub::new();
    let (board, runner) = sim.board(&hub).map_err(|e| format!("sensor thread: {e}"))?;
    // With --edges-ms N, a thread toggles the door every N ms, as a GPIO
    // task would after debouncing.
    let edges_ms: u64 = a.get("edges-ms", 0)?;
    let (mut inputs, events) = handoff::events(usize::from(edges_ms > 0), 16);
    let any = SocketAddr::new(to.ip(), 0);
    let rtp = UdpSocket::bind(any).map_err(|e| format!("bind: {e}"))?;
    let rtcp = UdpSocket::bind(any).map_err(|e| format!("bind: {e}"))?;
    let mut ids = IdGenerator::from_entropy();
    let plan = StreamPlan {
        rtp,
        rtcp,
        remote_rtp: to,
        remote_rtcp: rtcp_to,
        description: shape.description(edges_ms > 0),
        sender: RtpSender::new(&mut ids),
        ids,
        cname: format!("bench@{}", to.ip()),
        channels: sim.channels.clone(),
        inputs: if edges_ms > 0 {
            vec![DOOR.into()]
        } else {
            Vec::new()
        },
        options,
        srtp: srtp_keys(a)?,
        spool: None,
        recovery: Default::default(),
    };
    let cpu0 = process_cpu_ns();
    let t0 = Instant::now();
    let streamer =
        Streamer::start(plan, board, events, &rt, hub).map_err(|f| f.error.to_string())?;
    let stop_edges = Arc::new(AtomicBool::new(false));
    let edger = inputs.pop().map(|mut door| {
        let stop = stop_edges.clone();
        std::thread::spawn(move || {
            let mut level = false;
            // Bounded by the run's length.
            let end = Instant::now() + Duration::from_secs_f64(seconds);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(edges_ms));
                level = !level;
                door.push(Event {
                    input: 0,
                    level,
                    at: Instant::now(),
                });
            }
        })
    });
    // Settle, then measure the threads over the steady part of the run.
    let settle = Duration::from_secs_f64((seconds * 0.1).min(1.0));
    std::thread::sleep(settle);
    let threads0 = thread_cpu_ns();
    std::thread::sleep(Duration::from_secs_f64(seconds) - settle);
    let threads1 = thread_cpu_ns();
    let steady = Duration::from_secs_f64(seconds) - settle;
    let mid = streamer.stats();
    stop_edges.store(true, Ordering::Relaxed);
    if let Some(t) = edger {
        let _ = t.join();
    }
    let stopped = streamer.stop().map_err(|e| e.to_string())?;
    let cpu = process_cpu_ns() - cpu0;
    let wall = t0.elapsed();
    runner.stop(Duration::from_secs(1));
    let s = stopped.stats;
    println!(
        "RESULT cpu_pct={:.4} rss_peak_kb={} rss_kb={} packets={} samples={} missing={} \
         skipped={} send_errors={} max_late_us={} edges={} realtime={} locked={}",
        cpu as f64 / wall.as_nanos() as f64 * 100.0,
        status_kb("VmHWM:"),
        status_kb("VmRSS:"),
        s.packets,
        s.samples,
        s.samples_missing,
        s.instants_skipped,
        s.send_errors,
        s.max_lateness_ns / 1000,
        s.edges_sent,
        u8::from(mid.realtime),
        u8::from(mid.memory_locked),
    );
    // Per thread over the steady part: the sender and the sensor I/O
    // (threads that were there at both readings).
    for (tid, name, ns1) in &threads1 {
        if let Some((_, _, ns0)) = threads0.iter().find(|(t, _, _)| t == tid) {
            println!(
                "THREAD {name} cpu_pct={:.4}",
                ns1.saturating_sub(*ns0) as f64 / steady.as_nanos() as f64 * 100.0
            );
        }
    }
    Ok(())
}
