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
//! Packets carry the sample instant and are kept for RTX (docs/protocol.md
//! 11.2, 11.5); a NACK sent just before the window (its parse on the RTCP
//! thread allocates) asks for more than the RTX rate sends at once, so the
//! window also sees RTX packets going out.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use sipsensor_agent::config::RealtimeConfig;
use sipsensor_agent::handoff::{self, Board, Event};
use sipsensor_agent::sensor::Reading;
use sipsensor_agent::spool;
use sipsensor_agent::status::StatusHub;
use sipsensor_agent::stream::{
    LiveRecovery, MemoryLock, RtxPlan, StreamOptions, StreamPlan, Streamer,
};
use sipsensor_protocol::{
    ChannelSpec, CompoundWriter, EventFormat, IdGenerator, Nack, ReceiverReport, RtpSender,
    SampleFormat, SrtpContext, SrtpKey, SrtpKeys, SrtpSuite, StreamDescription, Unit, parse_rtp,
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
        srtp: srtp.clone(),
        spool: Some(feed),
        recovery: LiveRecovery {
            instant_id: Some(1),
            rtx: Some(RtxPlan {
                ssrc: 0x5e1f_0001,
                payload_types: vec![(96, 98), (97, 99)],
                rtx_time: Duration::from_secs(3),
            }),
        },
    };
    let agent_rtcp = plan.rtcp.local_addr().unwrap();
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
    std::thread::sleep(Duration::from_millis(1500));
    // NACK every live packet so far: more than the RTX rate sends at once.
    collector.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 2048];
    let mut lost = Vec::new();
    while let Ok(n) = collector.recv(&mut buf) {
        if srtp.is_none()
            && let Ok(p) = parse_rtp(&buf[..n])
        {
            assert!(p.extension.is_some(), "{label}: stamped");
        }
        // The sequence number is in the clear under SRTP too.
        lost.push(u16::from_be_bytes([buf[2], buf[3]]));
    }
    let nack = Nack::for_lost(0x0bad_cafe, streamer.ssrc(), &lost);
    let mut compound = vec![0u8; 4096];
    let mut w = CompoundWriter::new(&mut compound);
    w.receiver_report(&ReceiverReport {
        ssrc: 0x0bad_cafe,
        reports: vec![],
    })
    .unwrap();
    w.sdes(0x0bad_cafe, "collector@127.0.0.1", &[]).unwrap();
    w.nack(&nack).unwrap();
    let n = w.finish().unwrap();
    let mut sealed = Vec::new();
    let datagram = match &srtp {
        Some(keys) => {
            let mut c = SrtpContext::outbound(&keys.receive).unwrap();
            c.protect_rtcp(&compound[..n], &mut sealed).unwrap();
            &sealed[..]
        }
        None => &compound[..n],
    };
    collector.send_to(datagram, agent_rtcp).unwrap();
    // The RTCP thread parses it (allocating) before the window opens.
    for _ in 0..500 {
        if streamer.stats().nacks_received > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(20));
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
    assert_eq!(after.nacks_received, 1, "{label}: {after:?}");
    assert!(
        after.rtx_sent > before.rtx_sent,
        "{label}: RTX inside the window: {before:?} {after:?}"
    );
    // ... and no allocation or free anywhere in the process.
    assert_eq!(
        (a1 - a0, f1 - f0),
        (0, 0),
        "{label}: allocations, frees in the window"
    );
}
