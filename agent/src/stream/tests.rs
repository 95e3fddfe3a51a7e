//! The sender thread over loopback: a simulated sensor read by its real
//! I/O thread, packets received on 127.0.0.1 and decoded with the
//! protocol crate. Nothing here asserts timing; waits are bounded.

use super::sim::{Checker, SimStream};
use super::*;
use crate::handoff::{self, Event};
use sipsensor_protocol::{
    EventFormat, Payload, ReceiverReport, ReportBlock, RtcpPacket, SrMapping, SrtpContext, SrtpKey,
    SrtpSuite, decode_payload, parse_rtcp_compound, parse_rtp, receiver_report_compound,
};
use std::time::SystemTime;

/// The collector's end: RTP and RTCP sockets on loopback.
struct Collector {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Collector {
    fn new() -> Collector {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&rtp, &rtcp] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        Collector { rtp, rtcp }
    }

    /// RTP datagrams (with their arrival time) until `n` arrived or 5 s.
    fn rtp_packets(&self, n: usize) -> Vec<(Vec<u8>, SystemTime)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.len() < n && Instant::now() < deadline {
            if let Ok(len) = self.rtp.recv(&mut buf) {
                out.push((buf[..len].to_vec(), SystemTime::now()));
            }
        }
        out
    }

    /// Every RTCP compound waiting (bounded).
    fn rtcp_packets(&self) -> Vec<Vec<RtcpPacket>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..100 {
            match self.rtcp.recv(&mut buf) {
                Ok(len) => out.push(parse_rtcp_compound(&buf[..len]).unwrap()),
                Err(_) => break,
            }
        }
        out
    }
}

struct Running {
    streamer: Streamer,
    runner: crate::sensor::runner::Runner,
    collector: Collector,
    /// Where the agent's RTCP socket is (the collector sends RRs there).
    agent_rtcp: SocketAddr,
}

fn start_with(
    sim: SimStream,
    desc: StreamDescription,
    inputs: &[&str],
    events: EventReceiver,
    options: StreamOptions,
) -> Running {
    start_keyed(sim, desc, inputs, events, options, None)
}

fn start_keyed(
    sim: SimStream,
    desc: StreamDescription,
    inputs: &[&str],
    events: EventReceiver,
    options: StreamOptions,
    srtp: Option<SrtpKeys>,
) -> Running {
    start_recovering(
        sim,
        desc,
        events,
        srtp,
        inputs,
        options,
        LiveRecovery::default(),
    )
}

fn start_recovering(
    sim: SimStream,
    desc: StreamDescription,
    events: EventReceiver,
    srtp: Option<SrtpKeys>,
    inputs: &[&str],
    options: StreamOptions,
    recovery: LiveRecovery,
) -> Running {
    let hub = StatusHub::new();
    let (board, runner) = sim.board(&hub).unwrap();
    let collector = Collector::new();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent_rtcp = rtcp.local_addr().unwrap();
    let mut ids = IdGenerator::seeded(11);
    let plan = StreamPlan {
        rtp,
        rtcp,
        remote_rtp: collector.rtp.local_addr().unwrap(),
        remote_rtcp: collector.rtcp.local_addr().unwrap(),
        description: desc,
        sender: RtpSender::new(&mut ids),
        ids,
        cname: "sensor-0001@127.0.0.1".into(),
        channels: sim.channels.clone(),
        inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
        options,
        srtp,
        spool: None,
        recovery,
    };
    let rt = RealtimeConfig {
        priority: 10,
        cpu: None,
    };
    let streamer = Streamer::start(plan, board, events, &rt, hub).unwrap();
    Running {
        streamer,
        runner,
        collector,
        agent_rtcp,
    }
}

/// New keys both ways, as one offer/answer makes them (RFC 4568).
fn fresh_keys(suite: SrtpSuite) -> SrtpKeys {
    SrtpKeys {
        send: SrtpKey::generate(suite),
        receive: SrtpKey::generate(suite),
    }
}

fn quick() -> StreamOptions {
    StreamOptions {
        rtcp_min_interval: Duration::from_millis(100),
        memory_lock: MemoryLock::Off,
        ..StreamOptions::default()
    }
}

#[test]
fn a_short_stream_decodes_to_exactly_the_simulated_values() {
    let sim = SimStream::new(42, 2, 100, true);
    let desc = sim.full_description(2);
    let (_tx, events) = handoff::events(0, 1);
    let r = start_with(sim.clone(), desc.clone(), &[], events, quick());
    let pkts = r.collector.rtp_packets(40);
    let stats = r.streamer.stats();
    let stopped = r.streamer.stop().unwrap();
    assert!(r.runner.stop(Duration::from_secs(1)));
    assert_eq!(pkts.len(), 40, "40 packets of 20 ms within 5 s");
    let mut checker = Checker::new(sim, desc);
    for (p, _) in &pkts {
        checker.packet(p).unwrap();
    }
    let rep = &checker.report;
    // Every instant is either the waveform (the silent channel MISSING)
    // or, before the sensor's first reading, all missing.
    assert_eq!(rep.instants_matched + rep.instants_missing, 80);
    // A loaded machine can starve the sensor thread for a while: those
    // instants are MISSING, never wrong; most are the waveform's.
    assert!(rep.instants_matched >= 40, "{rep:?}");
    assert_eq!(rep.marker_jumps, 0);
    assert!(
        stats.samples_missing >= 40,
        "the silent channel, every instant"
    );
    assert_eq!(stopped.stats.send_errors, 0);
    assert_eq!(stopped.board.channels(), 3, "the board comes back");
    // SRs: the first at once, then at the (shortened) interval, and the
    // final SR + SDES + BYE.
    let rtcp = r.collector.rtcp_packets();
    let srs: Vec<_> = rtcp
        .iter()
        .filter_map(|c| match c.first() {
            Some(RtcpPacket::SenderReport(sr)) => Some(sr.clone()),
            _ => None,
        })
        .collect();
    assert!(srs.len() >= 2, "{} SRs", srs.len());
    assert!(matches!(
        rtcp.last().unwrap().last(),
        Some(RtcpPacket::Bye(_))
    ));
    let ssrc = parse_rtp(&pkts[0].0).unwrap().ssrc;
    assert!(srs.iter().all(|s| s.ssrc == ssrc));
    // Every SR gives the same NTP/RTP line: tick t is at epoch + t/100 s.
    let m0 = SrMapping {
        ntp: srs[0].ntp,
        rtp_timestamp: srs[0].rtp_timestamp,
        clock_rate: 100,
    };
    for s in &srs[1..] {
        let predicted = m0.system_time_of(s.rtp_timestamp).unwrap();
        let actual = s.ntp.to_system_time();
        let d = predicted
            .duration_since(actual)
            .unwrap_or_else(|e| e.duration());
        // One NTP fraction step and a nanosecond of rounding per SR; more
        // would mean the ticks and the wall clock were paired loosely.
        assert!(d < Duration::from_micros(1), "SR mapping off by {d:?}");
    }
    // A packet never leaves before the wall-clock time of its instants.
    for (p, arrived) in &pkts {
        let p = parse_rtp(p).unwrap();
        let first_instant = m0.system_time_of(p.timestamp).unwrap();
        assert!(first_instant <= *arrived);
    }
}

#[test]
fn a_reconfiguration_keeps_ssrc_sequence_and_timestamps_continuous() {
    let sim = SimStream::new(5, 3, 100, false);
    let first = sim.full_description(2);
    let (_tx, events) = handoff::events(0, 1);
    let mut r = start_with(sim.clone(), first.clone(), &[], events, quick());
    let mut got = r.collector.rtp_packets(10);
    // Half the rate, one channel fewer, 3 instants per packet; cfg 2.
    let second = sim
        .description(1, 2, 3, &["sim.c2", "sim.c0"])
        .next_config_after(&first);
    assert_eq!(second.config, 2);
    r.streamer.reconfigure(second.clone()).unwrap();
    let mut wrong_clock = second.clone();
    wrong_clock.clock_rate = 1000;
    assert!(matches!(
        r.streamer.reconfigure(wrong_clock),
        Err(StreamError::ClockChanged {
            current: 100,
            new: 1000
        })
    ));
    let mut unknown = second.clone();
    if let Some(s) = unknown.samples.as_mut() {
        s.channels[0].name = "nope".into();
    }
    assert!(matches!(
        r.streamer.reconfigure(unknown),
        Err(StreamError::UnknownChannel(_))
    ));
    // Packets of cfg 1 may still be queued on a busy machine: read until a
    // few of cfg 2 have arrived (bounded).
    for _ in 0..20 {
        got.extend(r.collector.rtp_packets(5));
        let new = got
            .iter()
            .filter_map(|(p, _)| parse_rtp(p).ok())
            .filter(|p| decode_payload(p.payload).is_ok_and(|d| d.config() == 2))
            .count();
        if new >= 3 {
            break;
        }
    }
    r.streamer.stop().unwrap();
    r.runner.stop(Duration::from_secs(1));
    let mut checker = Checker::new(sim, first);
    checker.expect(second);
    for (p, _) in &got {
        checker.packet(p).unwrap();
    }
    assert_eq!(checker.report.configs, [1, 2]);
    assert_eq!(checker.report.marker_jumps, 0, "timestamps continue");
    // The first cfg 2 packet has the marker bit.
    let first_new = got
        .iter()
        .map(|(p, _)| parse_rtp(p).unwrap())
        .find(|p| decode_payload(p.payload).unwrap().config() == 2)
        .unwrap();
    assert!(first_new.marker);
}

#[test]
fn an_edge_is_sent_at_once_with_the_marker_and_stop_returns_everything() {
    let sim = SimStream::new(1, 1, 10, false);
    let mut desc = sim.full_description(5);
    desc.events = Some(EventFormat {
        payload_type: 97,
        inputs: vec!["door".into()],
    });
    let (mut tx, events) = handoff::events(2, 8);
    let r = start_with(sim, desc, &["motion", "door"], events, quick());
    // The state announcement arrives first.
    let state = r.collector.rtp_packets(1);
    let p = parse_rtp(&state[0].0).unwrap();
    assert_eq!(p.payload_type, 97);
    // Motion (GPIO input 0, not in the stream) and the door (GPIO 1,
    // the stream's input 0) go active.
    tx[0].push(Event {
        input: 0,
        level: true,
        at: Instant::now(),
    });
    tx[1].push(Event {
        input: 1,
        level: true,
        at: Instant::now(),
    });
    // Samples leave every 500 ms; the edge must not wait for them.
    let mut edge = None;
    for (bytes, _) in r.collector.rtp_packets(6) {
        let p = parse_rtp(&bytes).unwrap();
        if let Payload::Events(e) = decode_payload(p.payload).unwrap()
            && p.marker
        {
            edge = Some(e.records().collect::<Vec<_>>());
            assert_eq!(e.state(0), Some(true));
            break;
        }
    }
    let edge = edge.expect("an events packet with the marker");
    assert_eq!(edge.len(), 1);
    assert_eq!((edge[0].input, edge[0].state), (0, true));
    let stopped = r.streamer.stop().unwrap();
    r.runner.stop(Duration::from_secs(1));
    assert_eq!(stopped.stats.edges_sent, 1);
    assert_eq!(stopped.stats.events_filtered, 1);
    // The sockets and the sender state continue a resumed stream.
    let resumed = stopped.resume_sender(Instant::now());
    assert_eq!(resumed.ssrc(), p.ssrc);
    assert_eq!(
        stopped.rtp.local_addr().unwrap().ip().to_string(),
        "127.0.0.1"
    );
}

#[test]
fn receiver_reports_reach_the_stats_and_bad_rtcp_is_counted() {
    let sim = SimStream::new(3, 1, 100, false);
    let desc = sim.full_description(2);
    let (_tx, events) = handoff::events(0, 1);
    let r = start_with(sim, desc, &[], events, quick());
    r.collector.rtp_packets(3);
    // Answer the first SR as the collector would (docs/protocol.md 6).
    let mut sr = None;
    for _ in 0..50 {
        sr = r
            .collector
            .rtcp_packets()
            .into_iter()
            .find_map(|c| match c.first() {
                Some(RtcpPacket::SenderReport(s)) => Some(s.clone()),
                _ => None,
            });
        if sr.is_some() {
            break;
        }
    }
    let sr = sr.expect("an SR");
    let rr = ReceiverReport {
        ssrc: 0x0bad_cafe,
        reports: vec![ReportBlock {
            ssrc: sr.ssrc,
            fraction_lost: 3,
            cumulative_lost: 7,
            extended_highest_seq: 1234,
            jitter: 2,
            last_sr: sr.ntp.middle32(),
            delay_since_last_sr: 0,
        }],
    };
    let mut buf = [0u8; 256];
    let n = receiver_report_compound(&mut buf, &rr, "collector@127.0.0.1").unwrap();
    r.collector.rtcp.send_to(&buf[..n], r.agent_rtcp).unwrap();
    r.collector
        .rtcp
        .send_to(b"\x80\xc9\xff\xff", r.agent_rtcp)
        .unwrap();
    let mut stats = r.streamer.stats();
    for _ in 0..250 {
        if stats.rtcp_received == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(4));
        stats = r.streamer.stats();
    }
    r.streamer.stop().unwrap();
    r.runner.stop(Duration::from_secs(1));
    assert_eq!((stats.rtcp_received, stats.rtcp_malformed), (2, 1));
    let last = stats.last_report.unwrap();
    assert_eq!(
        (last.fraction_lost, last.cumulative_lost, last.jitter),
        (3, 7, 2)
    );
    // LSR names a real SR, so there is a round trip (its size is timing,
    // not asserted).
    assert!(last.round_trip.is_some());
}

#[test]
fn a_plan_that_does_not_fit_the_board_gives_the_parts_back() {
    let sim = SimStream::new(3, 2, 100, false);
    let hub = StatusHub::new();
    let (board, runner) = sim.board(&hub).unwrap();
    let (_tx, events) = handoff::events(1, 1);
    let mut ids = IdGenerator::seeded(1);
    let plan = |channels: Vec<String>, ids: &mut IdGenerator| StreamPlan {
        rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
        rtcp: UdpSocket::bind("127.0.0.1:0").unwrap(),
        remote_rtp: "127.0.0.1:9".parse().unwrap(),
        remote_rtcp: "127.0.0.1:9".parse().unwrap(),
        description: sim.description(1, 1, 1, &["sim.c9"]),
        sender: RtpSender::new(ids),
        ids: IdGenerator::seeded(2),
        cname: "x@127.0.0.1".into(),
        channels,
        inputs: vec!["door".into()],
        options: quick(),
        srtp: None,
        spool: None,
        recovery: Default::default(),
    };
    let rt = RealtimeConfig {
        priority: 10,
        cpu: None,
    };
    let failed = Streamer::start(
        plan(vec!["a".into()], &mut ids),
        board,
        events,
        &rt,
        hub.clone(),
    )
    .unwrap_err();
    assert!(matches!(
        failed.error,
        StreamError::BoardMismatch { board: 2, named: 1 }
    ));
    let failed = Streamer::start(
        plan(sim.channels.clone(), &mut ids),
        failed.board,
        failed.events,
        &rt,
        hub,
    )
    .unwrap_err();
    assert!(matches!(failed.error, StreamError::UnknownChannel(ref n) if n == "sim.c9"));
    assert_eq!(failed.board.channels(), 2);
    runner.stop(Duration::from_secs(1));
}

#[test]
fn under_srtp_every_packet_is_protected_and_forged_reports_are_dropped() {
    let sim = SimStream::new(42, 2, 100, true);
    let desc = sim.full_description(2);
    let (_tx, events) = handoff::events(0, 1);
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let keys = fresh_keys(suite);
    let r = start_keyed(
        sim.clone(),
        desc.clone(),
        &[],
        events,
        quick(),
        Some(keys.clone()),
    );
    let pkts = r.collector.rtp_packets(10);

    // RTCP to the agent: a plain RR, one under a stranger's key, one
    // under the collector's key; only the last is read.
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 7];
    let forger = UdpSocket::bind("127.0.0.1:0").unwrap();
    forger.send_to(&rr, r.agent_rtcp).unwrap();
    let mut wire = Vec::new();
    let stranger = SrtpKey::generate(suite);
    SrtpContext::outbound(&stranger)
        .unwrap()
        .protect_rtcp(&rr, &mut wire)
        .unwrap();
    forger.send_to(&wire, r.agent_rtcp).unwrap();
    SrtpContext::outbound(&keys.receive)
        .unwrap()
        .protect_rtcp(&rr, &mut wire)
        .unwrap();
    r.collector.rtcp.send_to(&wire, r.agent_rtcp).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.streamer.stats().rtcp_received < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = r.streamer.stats();
    r.streamer.stop().unwrap();
    assert!(r.runner.stop(Duration::from_secs(1)));
    assert_eq!(
        (
            stats.rtcp_received,
            stats.srtcp_rejected,
            stats.rtcp_malformed
        ),
        (3, 2, 0)
    );

    assert_eq!(pkts.len(), 10);
    let mut rx = SrtpContext::inbound(&keys.send).unwrap();
    let mut wrong = SrtpContext::inbound(&keys.receive).unwrap();
    let mut checker = Checker::new(sim, desc);
    let mut plain = Vec::new();
    for (p, _) in &pkts {
        assert!(wrong.unprotect_rtp(p, &mut plain).is_err());
        rx.unprotect_rtp(p, &mut plain).unwrap();
        assert_eq!(p.len(), plain.len() + 10, "the 80-bit tag");
        assert_ne!(p[12..plain.len()], plain[12..], "the payload is encrypted");
        checker.packet(&plain).unwrap();
    }
    let rep = &checker.report;
    assert_eq!(rep.instants_matched + rep.instants_missing, 20);
}

mod repair;

mod detached;
