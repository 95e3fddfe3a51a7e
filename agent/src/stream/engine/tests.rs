//! The core on a fake clock: every instant is an `Instant` computed from a
//! base, every datagram lands in a vector and is decoded with the protocol
//! crate.

use super::*;
use crate::handoff::{self, Event, EventSender, SampleWriter};
use crate::sensor::Reading;
use crate::stream::StreamError;
use sipsensor_protocol::{
    ChannelSpec, EventFormat, Payload, RtcpPacket, RtpPacket, SampleFormat, Samples, Unit,
    decode_payload, parse_rtcp_compound, parse_rtp,
};

const BASE_TS: u32 = 0xffff_fff0;
const FIRST_SEQ: u16 = 0xfffe;
const SSRC: u32 = 0x1a2b_3c4d;

fn desc(cfg: u8, period: u32, spp: u8, channels: &[&str], inputs: &[&str]) -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: cfg,
        samples: (!channels.is_empty()).then(|| SampleFormat {
            payload_type: 96,
            period,
            samples_per_packet: spp,
            channels: channels
                .iter()
                .map(|n| ChannelSpec {
                    name: (*n).into(),
                    unit: Unit::from_symbol("Cel").unwrap(),
                    scale: -2,
                })
                .collect(),
        }),
        events: (!inputs.is_empty()).then(|| EventFormat {
            payload_type: 97,
            inputs: inputs.iter().map(|n| (*n).into()).collect(),
        }),
    }
}

#[derive(Default)]
struct Capture {
    rtp: Vec<Vec<u8>>,
    rtcp: Vec<Vec<u8>>,
    rtx: Vec<Vec<u8>>,
    refuse: bool,
}

impl Sink for Capture {
    fn rtp(&mut self, p: &[u8]) -> bool {
        self.rtp.push(p.to_vec());
        !self.refuse
    }
    fn rtcp(&mut self, p: &[u8]) -> bool {
        self.rtcp.push(p.to_vec());
        !self.refuse
    }
    fn rtx(&mut self, p: &[u8]) -> bool {
        self.rtx.push(p.to_vec());
        !self.refuse
    }
}

/// A board with sensor 0 (channels a, b: published by the test) and
/// sensor 1 (channel c: never publishes), inputs door and motion.
struct Rig {
    core: Core,
    board: Board,
    events: EventReceiver,
    writer: SampleWriter,
    inputs: Vec<EventSender>,
    sink: Capture,
    t0: Instant,
    wall0: SystemTime,
    stats: Arc<Shared>,
    counters: Arc<Counters>,
}

const CHANNELS: [&str; 3] = ["a", "b", "c"];
const INPUTS: [&str; 2] = ["door", "motion"];

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| (*s).to_owned()).collect()
}

fn rig_with(
    d: StreamDescription,
    options: CoreOptions,
    pre: impl FnOnce(&mut [EventSender]),
) -> Rig {
    let (writer, r0) = handoff::samples(2, Duration::from_secs(3600));
    let (_w1, r1) = handoff::samples(1, Duration::from_secs(3600));
    let board = Board::new(vec![r0, r1], &[2, 1], vec![(0, 0), (0, 1), (1, 0)]);
    let (mut inputs, mut events) = handoff::events(2, 8);
    pre(&mut inputs);
    let layout = Box::new(Layout::new(d, &names(&CHANNELS), &names(&INPUTS)).unwrap());
    let stats = Arc::new(Shared::default());
    let counters = Arc::new(Counters::default());
    let t0 = Instant::now();
    let parts = CoreParts {
        rtp: RtpSender::with_start(SSRC, FIRST_SEQ, BASE_TS),
        ids: IdGenerator::seeded(7),
        cname: "s1@198.51.100.10".into(),
        options,
        board_channels: 3,
        levels: 0b10,
        stats: stats.clone(),
        counters: counters.clone(),
        spool: None,
        instant_id: None,
        history: None,
        attached: true,
    };
    let core = Core::new(layout, parts, t0, &mut events);
    Rig {
        core,
        board,
        events,
        writer,
        inputs,
        sink: Capture::default(),
        t0,
        // 2026-01-01T00:00:00.5Z, as in docs/protocol.md 8.
        wall0: UNIX_EPOCH + Duration::from_millis(1_767_225_600_500),
        stats,
        counters,
    }
}

fn options() -> CoreOptions {
    CoreOptions {
        outbox: OutboxConfig::default(),
        rtcp_min_interval: Duration::from_secs(5),
        late_limit: None,
    }
}

fn rig(d: StreamDescription) -> Rig {
    rig_with(d, options(), |_| ())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Rig {
    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// Run the core at `now`, as the thread would after waking.
    fn run(&mut self, now: Instant) {
        let wall = self.wall0 + (now - self.t0);
        self.core
            .handle(now, wall, &mut self.board, &mut self.events, &mut self.sink);
    }

    /// Wake at every deadline the core asks for, up to `until`.
    fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            let next = self.core.poll_timeout();
            if next > until {
                return;
            }
            self.run(next);
        }
        panic!("core kept asking for wake-ups");
    }

    fn publish(&mut self, now: Instant, a: f64, b: f64) {
        self.writer.publish(&Reading {
            at: now,
            values: vec![Some(a), Some(b)],
        });
    }

    fn packets(&self) -> Vec<RtpPacket<'_>> {
        self.sink
            .rtp
            .iter()
            .map(|p| parse_rtp(p).unwrap())
            .collect()
    }
}

fn samples_of<'a>(p: &RtpPacket<'a>) -> Samples<'a> {
    match decode_payload(p.payload).unwrap() {
        Payload::Samples(s) => s,
        Payload::Events(_) => panic!("events packet where samples were expected"),
    }
}

#[test]
fn each_instant_samples_the_board_and_packets_leave_at_their_last_instant() {
    // 100 Hz, 2 instants per packet, channels c (never published) and a.
    let mut r = rig(desc(1, 1, 2, &["c", "a"], &[]));
    // Instant k happens at k × 10 ms; the board holds value k then.
    for k in 0..6u64 {
        let now = r.at(ms(10 * k));
        assert_eq!(r.core.poll_timeout(), now, "deadline of instant {k}");
        r.publish(now, 20.0 + k as f64 / 100.0, 0.0);
        r.run(now);
        // A packet leaves exactly when its second instant was sampled.
        assert_eq!(r.sink.rtp.len() as u64, k.div_ceil(2), "after instant {k}");
    }
    let pkts = r.packets();
    for (n, p) in pkts.iter().enumerate() {
        assert_eq!(p.ssrc, SSRC);
        assert_eq!(p.payload_type, 96);
        assert_eq!(
            p.sequence,
            FIRST_SEQ.wrapping_add(n as u16),
            "continuity across the wrap"
        );
        assert_eq!(p.timestamp, BASE_TS.wrapping_add(2 * n as u32));
        assert_eq!(p.marker, n == 0, "marker on the first packet only");
        let s = samples_of(p);
        assert_eq!((s.config, s.channels, s.count), (1, 2, 2));
        for i in 0..2 {
            let k = 2 * n + i;
            assert_eq!(
                s.raw(i, 0),
                Some(MISSING_SAMPLE),
                "channel c never published"
            );
            assert_eq!(s.raw(i, 1), Some(2000 + k as i32), "instant {k}");
        }
    }
    let st = r.stats.snapshot();
    assert_eq!((st.samples, st.samples_missing), (6, 6));
    assert_eq!((st.packets, st.sample_packets), (3, 3));
    assert_eq!(r.counters.samples_sent.load(Ordering::Relaxed), 6);
    assert_eq!(r.counters.packets_sent.load(Ordering::Relaxed), 3);
}

#[test]
fn deadlines_come_from_the_tick_number_so_nothing_drifts() {
    // 3 instants a second on a 1000 Hz clock: 333.33 ms apart, which no
    // whole number of nanoseconds represents.
    let mut d = desc(1, 1000, 1, &["a"], &[]);
    d.clock_rate = 3000;
    let r = rig(d);
    assert_eq!(
        r.core.instant_of(3_000 * 3600),
        r.at(Duration::from_secs(3600))
    );
    assert_eq!(r.core.instant_of(1), r.at(Duration::from_nanos(333_334)));
    assert_eq!(r.core.tick_at(r.core.instant_of(1)), 1);
    assert_eq!(r.core.tick_at(r.at(Duration::from_nanos(333_333))), 0);
}

#[test]
fn a_reconfiguration_takes_effect_at_the_next_packet_boundary() {
    let mut r = rig(desc(1, 1, 2, &["a", "b"], &[]));
    r.publish(r.t0, 1.0, 2.0);
    r.run_until(r.at(ms(10)));
    assert_eq!(r.sink.rtp.len(), 1);
    // Mid-packet: instant 2 sampled, instant 3 not yet.
    r.run_until(r.at(ms(25)));
    let staged = Layout::new(
        desc(2, 3, 3, &["b"], &[]),
        &names(&CHANNELS),
        &names(&INPUTS),
    );
    assert!(r.core.stage(Box::new(staged.unwrap())).is_none());
    r.run_until(r.at(ms(400)));
    let retired = r.core.take_retired().expect("the old layout comes back");
    assert_eq!(retired.desc.config, 1);
    let pkts = r.packets();
    // Packet 1 still cfg 1 (instants 2, 3); then cfg 2 from tick 4 on, 3
    // instants 3 ticks apart per packet.
    let cfgs: Vec<u8> = pkts.iter().map(|p| samples_of(p).config).collect();
    assert_eq!(&cfgs[..3], &[1, 1, 2]);
    let ts: Vec<u32> = pkts
        .iter()
        .map(|p| p.timestamp.wrapping_sub(BASE_TS))
        .collect();
    assert_eq!(&ts[..5], &[0, 2, 4, 13, 22]);
    let seqs: Vec<u16> = pkts.iter().map(|p| p.sequence).collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1));
    }
    let markers: Vec<bool> = pkts.iter().map(|p| p.marker).collect();
    assert_eq!(&markers[..4], &[true, false, true, false]);
    let s = samples_of(&pkts[2]);
    assert_eq!((s.channels, s.count), (1, 3));
    assert_eq!(s.raw(0, 0), Some(200));
    assert_eq!(r.stats.snapshot().config, 2);
    // The packet with cfg 2 left when its third instant (tick 10) was due.
    assert_eq!(r.core.instant_of(10), r.at(ms(100)));
}

#[test]
fn a_late_wake_catches_up_and_a_very_late_one_skips_with_the_marker() {
    let mut r = rig(desc(1, 1, 2, &["a"], &[]));
    r.publish(r.t0, 5.0, 0.0);
    r.run(r.t0);
    // 30 ms late: instants 1-3 are sampled at once (within the limit).
    r.run(r.at(ms(30)));
    assert_eq!(r.sink.rtp.len(), 2);
    assert_eq!(r.stats.snapshot().max_lateness_ns, 20_000_000);
    // Then a stall of a second (limit: 100 ms): instant 4 is sampled...
    r.run(r.at(ms(40)));
    r.publish(r.at(ms(1045)), 6.0, 0.0);
    r.run(r.at(ms(1045)));
    let pkts = r.packets();
    // ... sent alone, and sampling resumes at tick 104 with the marker.
    let last = samples_of(&pkts[2]);
    assert_eq!(last.count, 1);
    assert_eq!(pkts[2].timestamp.wrapping_sub(BASE_TS), 4);
    assert!(!pkts[2].marker);
    r.run(r.at(ms(1050)));
    let pkts = r.packets();
    assert_eq!(pkts[3].timestamp.wrapping_sub(BASE_TS), 104);
    assert!(pkts[3].marker);
    assert_eq!(samples_of(&pkts[3]).raw(1, 0), Some(600));
    assert_eq!(r.stats.snapshot().instants_skipped, 99);
}

#[test]
fn an_edge_goes_out_at_once_with_its_exact_time_and_is_repeated() {
    let mut r = rig_with(desc(1, 1, 5, &[], &["motion", "door"]), options(), |tx| {
        // Queued before the stream started: folded into the levels.
        tx[0].push(Event {
            input: 0,
            level: true,
            at: Instant::now(),
        });
    });
    r.run(r.t0);
    // The state packet at the start: GPIO levels 0b11 (door from the
    // queued edge, motion from the hub), in the description's order.
    let p = r.packets()[0];
    let Payload::Events(e) = decode_payload(p.payload).unwrap() else {
        panic!("state packet")
    };
    assert!(e.is_empty() && !p.marker);
    assert_eq!((e.state(0), e.state(1)), (Some(true), Some(true)));
    // Its two repetitions (40 and 240 ms).
    r.run_until(r.at(ms(300)));
    assert_eq!(r.sink.rtp.len(), 3);
    // The door closes at tick 99.75; the thread is woken 1 ms later.
    let edge = r.at(Duration::from_micros(997_500));
    r.inputs[0].push(Event {
        input: 0,
        level: false,
        at: edge,
    });
    r.run(r.at(ms(1000)));
    let pkts = r.packets();
    let p = pkts.last().unwrap();
    assert!(p.marker);
    assert_eq!(p.payload_type, 97);
    assert_eq!(p.timestamp.wrapping_sub(BASE_TS), 100);
    let Payload::Events(e) = decode_payload(p.payload).unwrap() else {
        panic!("events packet")
    };
    let rec: Vec<_> = e.records().collect();
    assert_eq!(rec.len(), 1);
    assert_eq!((rec[0].input, rec[0].state), (1, false), "door is input 1");
    assert_eq!(
        rec[0].offset,
        -(1i64 << 30),
        "edge 0.25 tick before the packet"
    );
    assert_eq!(e.state(1), Some(false));
    // Two repeats, 40 ms and 200 ms after the first, with the same serial.
    let before = r.sink.rtp.len();
    r.run_until(r.at(ms(1300)));
    let repeats: Vec<_> = r.packets()[before..]
        .iter()
        .map(|p| match decode_payload(p.payload).unwrap() {
            Payload::Events(e) => (p.marker, e.records().next().map(|x| x.serial)),
            Payload::Samples(_) => panic!("no samples in this stream"),
        })
        .collect();
    assert_eq!(repeats, [(false, Some(rec[0].serial)); 2]);
    let st = r.stats.snapshot();
    assert_eq!((st.edges_sent, st.event_packets), (1, 6));
}

#[test]
fn edges_on_inputs_outside_the_description_are_counted_not_sent() {
    let mut r = rig(desc(1, 1, 2, &["a"], &["motion"]));
    r.run(r.t0);
    let n = r.sink.rtp.len();
    let at = r.at(ms(3));
    r.inputs[0].push(Event {
        input: 0,
        level: true,
        at,
    });
    r.run(r.at(ms(4)));
    assert_eq!(r.sink.rtp.len(), n, "door is not in the stream");
    assert_eq!(r.stats.snapshot().events_filtered, 1);
    // Overflowing the ring is counted as dropped.
    let at = r.at(ms(5));
    for k in 0..10 {
        r.inputs[1].push(Event {
            input: 1,
            level: k % 2 == 0,
            at,
        });
    }
    r.run(r.at(ms(6)));
    let st = r.stats.snapshot();
    assert_eq!((st.edges_sent, st.events_dropped), (8, 2));
    assert_eq!(r.counters.events_dropped.load(Ordering::Relaxed), 2);
}

#[test]
fn sender_reports_pin_the_wall_clock_to_a_tick() {
    let mut r = rig(desc(1, 1, 2, &["a"], &[]));
    r.run(r.t0);
    assert_eq!(r.sink.rtcp.len(), 1, "the first SR goes out at once");
    let sr = |bytes: &[u8]| match &parse_rtcp_compound(bytes).unwrap()[..] {
        [
            RtcpPacket::SenderReport(sr),
            RtcpPacket::SourceDescription(sdes),
            ..,
        ] => {
            assert_eq!(sdes[0].cname(), Some("s1@198.51.100.10"));
            sr.clone()
        }
        other => panic!("not SR + SDES: {other:?}"),
    };
    let first = sr(&r.sink.rtcp[0]);
    assert_eq!(first.rtp_timestamp, BASE_TS);
    assert_eq!(first.ntp, NtpTime::from_system_time(r.wall0));
    // The next one is due within 2.5-7.5 s (half the 5 s minimum,
    // randomised): run 10 s and check every SR's pair.
    r.run_until(r.at(Duration::from_secs(10)));
    assert!(r.sink.rtcp.len() >= 2);
    for bytes in &r.sink.rtcp {
        let s = sr(bytes);
        let ticks = s.rtp_timestamp.wrapping_sub(BASE_TS);
        let expect = r.wall0 + Duration::from_millis(10 * u64::from(ticks));
        assert_eq!(s.ntp, NtpTime::from_system_time(expect), "tick {ticks}");
    }
    // A wall-clock step of 2 s: the wake that confirms it (the second to
    // see it) sends an SR with the new pair.
    let n = r.sink.rtcp.len();
    let seen = r
        .core
        .poll_timeout()
        .min(r.at(Duration::from_millis(10_010)));
    r.wall0 += Duration::from_secs(2);
    r.run(seen);
    assert_eq!(r.sink.rtcp.len(), n, "one reading is not a step");
    let now = r.core.poll_timeout().min(seen + ms(10));
    let tick = r.core.tick_at(now);
    r.run(now);
    assert_eq!(r.sink.rtcp.len(), n + 1, "an SR right after the step");
    let s = sr(&r.sink.rtcp[n]);
    assert_eq!(s.rtp_timestamp.wrapping_sub(BASE_TS), tick as u32);
    let expect = r.wall0 + Duration::from_millis(10 * tick);
    assert_eq!(s.ntp, NtpTime::from_system_time(expect));
    assert!(r.stats.snapshot().sender_reports >= 3);
    // An SR sent on a wake whose wall reading came 3 ms late (the thread
    // preempted between the two clocks) still carries the pinned pair.
    let now = now + ms(10);
    r.core.rtcp.send_soon(now);
    let late = r.wall0 + (now - r.t0) + ms(3);
    r.core
        .handle(now, late, &mut r.board, &mut r.events, &mut r.sink);
    let s = sr(r.sink.rtcp.last().unwrap());
    let tick = u64::from(s.rtp_timestamp.wrapping_sub(BASE_TS));
    let expect = r.wall0 + Duration::from_millis(10 * tick);
    assert_eq!(s.ntp, NtpTime::from_system_time(expect), "late reading");
}

#[test]
fn the_end_sends_the_partial_packet_then_sr_sdes_bye() {
    let mut r = rig(desc(1, 1, 5, &["a"], &[]));
    r.publish(r.t0, 1.0, 0.0);
    r.run_until(r.at(ms(20)));
    assert!(r.sink.rtp.is_empty());
    let n_rtcp = r.sink.rtcp.len();
    r.core.finish(r.at(ms(25)), r.wall0, &mut r.sink);
    let p = r.packets()[0];
    assert_eq!(samples_of(&p).count, 3);
    let pkts = parse_rtcp_compound(&r.sink.rtcp[n_rtcp]).unwrap();
    assert!(matches!(
        &pkts[..],
        [RtcpPacket::SenderReport(sr), RtcpPacket::SourceDescription(_), RtcpPacket::Bye(b)]
            if sr.packet_count == 1 && b.sources == [SSRC]
    ));
}

#[test]
fn refused_datagrams_are_counted() {
    let mut r = rig(desc(1, 1, 1, &["a"], &[]));
    r.sink.refuse = true;
    r.run_until(r.at(ms(20)));
    let st = r.stats.snapshot();
    // 3 samples packets and the first SR.
    assert_eq!((st.send_errors, st.packets, st.sender_reports), (4, 0, 0));
}

#[test]
fn names_resolve_case_insensitively_and_unknown_ones_are_errors() {
    let ch = names(&CHANNELS);
    let inp = names(&INPUTS);
    let l = Layout::new(desc(1, 1, 1, &["B", "a"], &["MOTION"]), &ch, &inp).unwrap();
    assert_eq!(l.select, [1, 0]);
    assert_eq!(l.inputs, [None, Some(0)]);
    assert_eq!(l.remap(0b10), 0b1);
    assert_eq!(l.values.len(), 2);
    assert!(matches!(
        Layout::new(desc(1, 1, 1, &["x"], &[]), &ch, &inp),
        Err(StreamError::UnknownChannel(n)) if n == "x"
    ));
    assert!(matches!(
        Layout::new(desc(1, 1, 1, &["a"], &["window"]), &ch, &inp),
        Err(StreamError::UnknownInput(n)) if n == "window"
    ));
    assert!(matches!(
        Layout::new(desc(1, 0, 1, &["a"], &[]), &ch, &inp),
        Err(StreamError::Description(_))
    ));
}

#[test]
fn events_only_streams_switch_to_samples_at_the_next_tick() {
    let mut r = rig(desc(1, 1, 1, &[], &["door"]));
    r.run_until(r.at(ms(95)));
    assert!(r.packets().iter().all(|p| p.payload_type == 97));
    let l = Layout::new(
        desc(2, 2, 1, &["a"], &["door"]),
        &names(&CHANNELS),
        &names(&INPUTS),
    );
    r.core.stage(Box::new(l.unwrap()));
    r.run(r.at(ms(97)));
    r.run_until(r.at(ms(130)));
    let samples: Vec<u32> = r
        .packets()
        .iter()
        .filter(|p| p.payload_type == 96)
        .map(|p| p.timestamp.wrapping_sub(BASE_TS))
        .collect();
    assert_eq!(samples, [10, 12]);
    // The cfg change re-announces the input states (3 state packets).
    let states_cfg2 = r
        .packets()
        .iter()
        .filter(|p| p.payload_type == 97 && decode_payload(p.payload).unwrap().config() == 2)
        .count();
    assert_eq!(
        states_cfg2, 1,
        "the first of three; the others at +40 and +240 ms"
    );
}

mod spooling;

mod recovery;

mod attach;
