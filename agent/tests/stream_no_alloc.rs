//! The real-time sender allocates nothing while it streams: a counting
//! global allocator sees no allocation (and no free) in the whole process
//! during a window in which the sender sends samples packets, event
//! packets with their repeats, sender reports, and switches to a new
//! description; plain, and under each SRTP suite (RFC 3711, RFC 7714),
//! whose protection writes into a reused buffer. One test in this binary,
//! so no other test's thread allocates meanwhile; the sensor is fed by
//! this thread from a reading built before the window (publishing copies
//! into a pre-allocated slot).
//! The spool feed is wired in, its ring left undrained (the writer thread
//! allocates, being off the real-time path, and would count here).

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use sipsensor_agent::config::RealtimeConfig;
use sipsensor_agent::handoff::{self, Board, Event};
use sipsensor_agent::sensor::Reading;
use sipsensor_agent::spool;
use sipsensor_agent::status::StatusHub;
use sipsensor_agent::stream::{MemoryLock, StreamOptions, StreamPlan, Streamer};
use sipsensor_protocol::{
    ChannelSpec, EventFormat, IdGenerator, RtpSender, SampleFormat, SrtpKey, SrtpKeys, SrtpSuite,
    StreamDescription, Unit,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sixteen channels: enough bandwidth for an SR interval (RFC 3550 6.2)
/// of about a second, so the window sees reports.
const CHANNELS: usize = 16;

fn names() -> Vec<String> {
    (0..CHANNELS).map(|c| format!("c{c}")).collect()
}

fn description(cfg: u8, spp: u8) -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: cfg,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 1,
            samples_per_packet: spp,
            channels: names()
                .into_iter()
                .map(|name| ChannelSpec {
                    name,
                    unit: Unit::from_symbol("Cel").expect("a SenML unit"),
                    scale: -2,
                })
                .collect(),
        }),
        events: Some(EventFormat {
            payload_type: 97,
            inputs: vec!["door".into()],
        }),
    }
}

#[test]
fn the_sender_allocates_nothing_while_streaming_plain_or_under_srtp() {
    let keys = |suite| SrtpKeys {
        send: SrtpKey::generate(suite),
        receive: SrtpKey::generate(suite),
    };
    stream_and_count("plain RTP", None);
    for suite in SrtpSuite::ALL {
        stream_and_count(suite.name(), Some(keys(suite)));
    }
}

/// Streams one window with `srtp` and asserts it saw every kind of work
/// and no allocation.
fn stream_and_count(label: &str, srtp: Option<SrtpKeys>) {
    let (mut writer, reader) = handoff::samples(CHANNELS, Duration::from_secs(60));
    let map = (0..CHANNELS).map(|c| (0, c)).collect();
    let board = Board::new(vec![reader], &[CHANNELS], map);
    let (mut inputs, events) = handoff::events(1, 8);
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut ids = IdGenerator::seeded(5);
    let (feed, _spooled) = spool::feed(spool::FEED_BYTES);
    let plan = StreamPlan {
        rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
        rtcp: UdpSocket::bind("127.0.0.1:0").unwrap(),
        remote_rtp: collector.local_addr().unwrap(),
        remote_rtcp: collector.local_addr().unwrap(),
        description: description(1, 2),
        sender: RtpSender::new(&mut ids),
        ids,
        cname: "s@127.0.0.1".into(),
        channels: names(),
        inputs: vec!["door".into()],
        options: StreamOptions {
            rtcp_min_interval: Duration::from_millis(100),
            memory_lock: MemoryLock::Off,
            ..StreamOptions::default()
        },
        srtp,
        spool: Some(feed),
    };
    let rt = RealtimeConfig {
        priority: 10,
        cpu: None,
    };
    let reading = Reading {
        at: Instant::now(),
        values: (0..CHANNELS).map(|c| Some(c as f64)).collect(),
    };
    let mut streamer = Streamer::start(plan, board, events, &rt, StatusHub::new()).unwrap();
    // Warm up: the first packets, the first SR, lazily initialised state.
    std::thread::sleep(Duration::from_millis(300));
    streamer.reconfigure(description(2, 4)).unwrap();
    let edge = Event {
        input: 0,
        level: true,
        at: Instant::now(),
    };
    let before = streamer.stats();
    let (a0, f0) = (ALLOCS.load(Ordering::SeqCst), FREES.load(Ordering::SeqCst));
    for k in 0..250 {
        // Within `stale_after` (60 s) of its time: a fresh value each tick.
        writer.publish(&reading);
        if k == 50 {
            inputs[0].push(Event {
                at: Instant::now(),
                ..edge
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (a1, f1) = (ALLOCS.load(Ordering::SeqCst), FREES.load(Ordering::SeqCst));
    let after = streamer.stats();
    let stopped = streamer.stop().unwrap();
    assert_eq!(after.spool_dropped, 0, "the ring had room");
    assert!(stopped.spool.is_some(), "the feed comes back");
    // The window saw every kind of work...
    assert!(
        after.sample_packets > before.sample_packets + 50,
        "{label}: {after:?}"
    );
    assert!(
        after.sender_reports > before.sender_reports,
        "{label}: {after:?}"
    );
    assert_eq!(after.edges_sent, before.edges_sent + 1, "{label}");
    assert!(
        after.event_packets >= before.event_packets + 3,
        "{label}: edge and repeats"
    );
    assert_eq!(
        (before.config, after.config),
        (1, 2),
        "{label}: switched inside the window"
    );
    // ... and no allocation or free anywhere in the process.
    assert_eq!(
        (a1 - a0, f1 - f0),
        (0, 0),
        "{label}: allocations, frees in the window"
    );
}
