use super::*;
use crate::media::fixtures::{SSRC, T0_NS, agreed, desc, limits, setup};
use crate::stats::StreamsRegistry;
use sipsensor_protocol::{EventRecord, NtpTime, RtpSender, encode_events, parse_rtp};
use std::sync::Arc;

mod recovery;

struct Rig {
    rx: StreamRx,
    tx: RtpSender,
    sink: Sink,
    now: Instant,
    _registry: Arc<StreamsRegistry>,
}

fn rig(previous_sample_ns: Option<i64>, hold: usize) -> Rig {
    rig_with(previous_sample_ns, hold, Some(SessionId(7)))
}

fn rig_with(previous_sample_ns: Option<i64>, hold: usize, session: Option<SessionId>) -> Rig {
    let registry = StreamsRegistry::new();
    let now = Instant::now();
    let mut ids = IdGenerator::seeded(1);
    let setup = setup(&registry, agreed(desc(1, 10)), session, previous_sample_ns);
    let rx = StreamRx::new(setup, limits(hold), now, &mut ids);
    Rig {
        rx,
        tx: RtpSender::with_start(SSRC, 0xfffe, 0x1000),
        sink: Sink::default(),
        now,
        _registry: registry,
    }
}

/// The raw value of a channel at a tick, so stored rows can be checked.
fn raw(tick: u64, ch: usize) -> i32 {
    (tick as i32) * 3 + ch as i32 * 1000
}

impl Rig {
    /// Builds the samples packet starting at `tick` under `d`.
    fn samples(&mut self, d: &StreamDescription, tick: u64) -> Vec<u8> {
        let period = u64::from(d.samples.as_ref().unwrap().period);
        let values: Vec<i32> = (0..5)
            .flat_map(|k| (0..2).map(move |ch| raw(tick + k * period, ch)))
            .collect();
        let mut buf = [0u8; 128];
        let n = self
            .tx
            .write_samples(&mut buf, d, tick, &values, false)
            .unwrap();
        buf[..n].to_vec()
    }

    fn feed(&mut self, bytes: &[u8]) -> Outcome {
        let pkt = parse_rtp(bytes).unwrap();
        self.rx.on_rtp(&pkt, self.now, T0_NS, &mut self.sink)
    }

    /// An SR pinning tick 0 to T0.
    fn sender_report(&mut self) {
        assert_eq!(self.report(0, T0_NS, T0_NS), Ok(()));
    }

    /// An SR pinning `tick` to `ns`, received at `now_ns`.
    fn report(&mut self, tick: u64, ns: i64, now_ns: i64) -> Result<(), SrRefusal> {
        let sr = self
            .tx
            .sender_report(tick, NtpTime::from_unix(Duration::from_nanos(ns as u64)));
        let from = "127.0.0.1:40001".parse().unwrap();
        self.rx
            .on_sender_report(&sr, from, 52, self.now, now_ns, &mut self.sink)
    }

    fn sample_rows(&self) -> Vec<(i64, u32, u16, i64, i64)> {
        let mut v: Vec<_> = self
            .flat()
            .iter()
            .map(|s| (s.seq, s.index, s.channel, s.ts_ns, s.raw))
            .collect();
        v.sort();
        v
    }

    /// The batch's readings, one entry per channel value.
    fn flat(&self) -> Vec<Flat> {
        self.sink
            .batch
            .readings
            .iter()
            .flat_map(|r| {
                r.samples().map(|(channel, raw)| Flat {
                    session: r.session,
                    seq: r.seq,
                    index: r.index,
                    channel,
                    ts_ns: r.ts_ns,
                    raw,
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct Flat {
    session: SessionId,
    seq: i64,
    index: u32,
    channel: u16,
    ts_ns: i64,
    raw: i64,
}

#[test]
fn samples_wait_for_the_first_sender_report_then_get_exact_times() {
    let mut r = rig(None, 100);
    let d = desc(1, 10);
    let p0 = r.samples(&d, 0);
    let p1 = r.samples(&d, 50);
    assert_eq!(r.feed(&p0), Outcome::Held);
    assert_eq!(r.feed(&p1), Outcome::Held);
    assert!(r.flat().is_empty());
    r.sender_report();
    let rows = r.sample_rows();
    assert_eq!(rows.len(), 20, "2 packets x 5 instants x 2 channels");
    for (seq, index, ch, ts, value) in &rows {
        let tick = (*seq - 0xfffe) as u64 * 50 + u64::from(*index) * 10;
        assert_eq!(*ts, T0_NS + tick as i64 * 10_000_000, "100 Hz clock");
        assert_eq!(*value, i64::from(raw(tick, usize::from(*ch))));
    }
    // The sequence wraps at 0xffff: extended numbers keep increasing.
    assert_eq!(rows[0].0, 0xfffe);
    assert_eq!(rows[19].0, 0xffff);
    let p2 = r.samples(&d, 100);
    assert_eq!(r.feed(&p2), Outcome::Stored);
    assert_eq!(r.flat().last().unwrap().seq, 0x1_0000);
    assert_eq!(r.rx.totals.samples, 30);
}

#[test]
fn a_refused_sender_report_times_nothing_and_a_good_one_still_can() {
    let mut r = rig(None, 100);
    let d = desc(1, 10);
    let p0 = r.samples(&d, 0);
    assert_eq!(r.feed(&p0), Outcome::Held);
    // A board that booted in 1970 and has no NTP yet.
    assert!(matches!(
        r.report(0, 1_000_000_000, T0_NS),
        Err(SrRefusal::Clock(ClockRefusal::FarFromOurs { .. }))
    ));
    // Another SSRC than the signalled one.
    let foreign = RtpSender::with_start(0x99, 0, 0)
        .sender_report(0, NtpTime::from_unix(Duration::from_nanos(T0_NS as u64)));
    let from = "127.0.0.1:40001".parse().unwrap();
    assert_eq!(
        r.rx.on_sender_report(&foreign, from, 52, r.now, T0_NS, &mut r.sink),
        Err(SrRefusal::ForeignSsrc(0x99))
    );
    assert!(r.flat().is_empty(), "still held");
    r.sender_report();
    assert_eq!(r.flat()[0].ts_ns, T0_NS);
}

#[test]
fn packets_given_up_for_want_of_a_usable_report_say_reports_were_refused() {
    let mut r = rig(None, 1);
    let d = desc(1, 10);
    let p0 = r.samples(&d, 0);
    assert_eq!(r.feed(&p0), Outcome::Held);
    assert!(r.report(0, T0_NS + 3_600_000_000_000, T0_NS).is_err());
    let p1 = r.samples(&d, 50);
    assert_eq!(r.feed(&p1), Outcome::Held);
    assert_eq!(
        r.sink.rejects,
        vec![(
            Reject::NoSenderReport,
            "sip:s1@example.net: no usable RTCP sender report after 1 packets (1 refused for \
             their clock: see clock_offset, clock_jump)"
                .to_string()
        )]
    );
}

#[test]
fn duplicates_are_stored_once_and_counted() {
    let mut r = rig(None, 100);
    r.sender_report();
    let d = desc(1, 10);
    let p = r.samples(&d, 0);
    assert_eq!(r.feed(&p), Outcome::Stored);
    assert_eq!(r.feed(&p), Outcome::Dropped(Reject::Duplicate));
    assert_eq!(r.flat().len(), 10);
    assert_eq!(r.rx.totals.duplicates, 1);
}

#[test]
fn a_sequence_gap_is_stored_as_a_loss_gap_of_its_length() {
    let mut r = rig(None, 100);
    r.sender_report();
    let d = desc(1, 10);
    let p0 = r.samples(&d, 0);
    let _lost1 = r.samples(&d, 50);
    let _lost2 = r.samples(&d, 100);
    let p3 = r.samples(&d, 150);
    r.feed(&p0);
    r.feed(&p3);
    r.rx.tick(r.now + Duration::from_millis(500), &mut r.sink);
    assert!(r.sink.batch.gaps.is_empty(), "waits for late packets");
    r.rx.tick(r.now + GAP_GRACE, &mut r.sink);
    let g = r.sink.batch.gaps.clone();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].cause, GapCause::Loss);
    assert_eq!(g[0].samples, 10, "two packets of five instants");
    assert_eq!(g[0].from_ns, T0_NS + 400_000_000);
    assert_eq!(g[0].to_ns, T0_NS + 1_500_000_000);
    assert_eq!(g[0].session, Some(SessionId(7)));
    // Nothing is interpolated.
    assert_eq!(r.flat().len(), 20);
}

#[test]
fn missing_values_are_not_stored() {
    let mut r = rig(None, 100);
    r.sender_report();
    let d = desc(1, 10);
    let mut values = vec![1i32; 10];
    values[3] = MISSING_SAMPLE;
    // Instant 2 has no reading at all (docs/protocol.md 5.3: no data at
    // the source): no row, a source gap between its neighbours.
    values[4] = MISSING_SAMPLE;
    values[5] = MISSING_SAMPLE;
    let mut buf = [0u8; 128];
    let n = r.tx.write_samples(&mut buf, &d, 0, &values, true).unwrap();
    r.feed(&buf[..n]);
    assert_eq!(r.flat().len(), 7);
    assert!(!r.flat().iter().any(|s| s.index == 1 && s.channel == 1));
    assert!(!r.flat().iter().any(|s| s.index == 2));
    let gaps: Vec<_> = r
        .sink
        .batch
        .gaps
        .iter()
        .map(|g| (g.from_ns - T0_NS, g.to_ns - T0_NS, g.samples, g.cause))
        .collect();
    assert_eq!(
        gaps,
        vec![(100_000_000, 300_000_000, 1, GapCause::Source)],
        "timed by the sender report's mapping"
    );
}

#[test]
fn packets_of_a_new_cfg_wait_for_the_re_invite_and_are_stored_under_it() {
    let mut r = rig(None, 100);
    r.sender_report();
    let old = desc(1, 10);
    let new = desc(2, 20);
    let p0 = r.samples(&old, 0);
    // Sent before the switch, delivered after it.
    let late_old = r.samples(&old, 50);
    r.feed(&p0);
    // Without a re-INVITE under way, an unknown cfg is dropped.
    let stray = r.samples(&new, 100);
    assert_eq!(r.feed(&stray), Outcome::Dropped(Reject::UnknownConfig));
    r.rx.expect_new_config(r.now + Duration::from_secs(5));
    let p1 = r.samples(&new, 200);
    assert_eq!(r.feed(&p1), Outcome::Parked);
    // A late packet of the old cfg is still decoded by it.
    assert_eq!(r.feed(&late_old), Outcome::Stored);
    let now = r.now;
    r.rx.update(
        agreed(new.clone()),
        &AgreedRecovery::default(),
        SessionId(8),
        now,
        &mut r.sink,
    );
    let by_session = |s: i64| {
        r.flat()
            .iter()
            .filter(|x| x.session == SessionId(s))
            .count()
    };
    assert_eq!(by_session(7), 20);
    assert_eq!(by_session(8), 10);
    let p2 = r.samples(&new, 260);
    assert_eq!(r.feed(&p2), Outcome::Stored);
    // Still decodable: the previous description is kept.
    let p3 = r.samples(&old, 400);
    assert_eq!(r.feed(&p3), Outcome::Stored);
}

#[test]
fn events_are_deduplicated_by_serial_and_stored_after_the_channels() {
    let mut r = rig(None, 100);
    r.sender_report();
    let record = EventRecord {
        serial: 7,
        input: 1,
        state: true,
        offset: -(1i64 << 30), // a quarter tick before the packet
    };
    for tick in [100u64, 104, 120] {
        let mut buf = [0u8; 64];
        let n =
            r.tx.write_with(&mut buf, 97, tick == 100, tick, |b| {
                encode_events(b, 1, 2, 0b10, &[record])
            })
            .unwrap();
        assert_eq!(r.feed(&buf[..n]), Outcome::Stored);
    }
    let ev = &r.sink.batch.events;
    assert_eq!(ev.len(), 1, "three copies, one edge");
    assert_eq!(ev[0].channel, 3, "two sampled channels, then door, motion");
    assert_eq!(ev[0].value, 1);
    assert_eq!(ev[0].ts_ns, T0_NS + 1_000_000_000 - 2_500_000);
}

#[test]
fn wrong_payload_type_and_malformed_payload_are_refused() {
    let mut r = rig(None, 100);
    r.sender_report();
    let mut buf = [0u8; 128];
    let n =
        r.tx.write_with(&mut buf, 98, false, 0, |b| {
            sipsensor_protocol::encode_samples(b, 1, 2, &[1; 10])
        })
        .unwrap();
    assert_eq!(
        r.feed(&buf[..n]),
        Outcome::Dropped(Reject::WrongPayloadType)
    );
    let n =
        r.tx.write_with(&mut buf, 96, false, 0, |b| {
            b[..3].copy_from_slice(&[0x10, 1, 2]);
            Ok(3)
        })
        .unwrap();
    assert_eq!(
        r.feed(&buf[..n]),
        Outcome::Dropped(Reject::MalformedPayload)
    );
    // Channel count that differs from the description.
    let n =
        r.tx.write_with(&mut buf, 96, false, 0, |b| {
            sipsensor_protocol::encode_samples(b, 1, 3, &[1; 15])
        })
        .unwrap();
    assert_eq!(r.feed(&buf[..n]), Outcome::Dropped(Reject::PayloadMismatch));
    let kinds: Vec<Reject> = r.sink.rejects.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        vec![
            Reject::WrongPayloadType,
            Reject::MalformedPayload,
            Reject::PayloadMismatch
        ]
    );
}

#[test]
fn held_packets_beyond_the_bound_become_an_overload_gap() {
    let mut r = rig(None, 3);
    let d = desc(1, 10);
    for i in 0..5 {
        let p = r.samples(&d, i * 50);
        r.feed(&p);
    }
    r.sender_report();
    assert_eq!(r.flat().len(), 30, "the last three packets");
    let g = &r.sink.batch.gaps;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].cause, GapCause::Overload);
    assert_eq!(g[0].samples, 10);
    assert_eq!(g[0].from_ns, T0_NS);
    assert_eq!(g[0].to_ns, T0_NS + 1_000_000_000);
    assert_eq!(
        r.sink
            .rejects
            .iter()
            .filter(|(k, _)| *k == Reject::NoSenderReport)
            .count(),
        2
    );
}

#[test]
fn the_first_sample_closes_a_session_break_gap() {
    let prev = T0_NS - 10_000_000_000;
    let mut r = rig(Some(prev), 100);
    r.sender_report();
    let d = desc(1, 10);
    let p = r.samples(&d, 0);
    r.feed(&p);
    let g = &r.sink.batch.gaps;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].cause, GapCause::SessionBreak);
    assert_eq!((g[0].from_ns, g[0].to_ns), (prev, T0_NS));
    assert_eq!(g[0].samples, 99, "10 s at 10 Hz, the two ends present");
}

#[test]
fn receiver_reports_carry_loss_and_end_with_bye() {
    use sipsensor_protocol::{RtcpPacket, parse_rtcp_compound};
    let mut r = rig(None, 100);
    r.sender_report();
    let d = desc(1, 10);
    let p0 = r.samples(&d, 0);
    let _lost = r.samples(&d, 50);
    let p2 = r.samples(&d, 100);
    r.feed(&p0);
    r.feed(&p2);
    let mut ids = IdGenerator::seeded(2);
    let mut buf = [0u8; 256];
    let due = r.rx.rtcp_due();
    assert!(due > r.now, "the first report waits");
    let mut sent = None;
    // RFC 3550 6.2: this 1.3 kbit/s stream reports every 6 to 20 s.
    for step in 0..600 {
        let at = r.now + Duration::from_millis(100 * step);
        if let Some(n) = r.rx.poll_rtcp(at, &mut ids, &mut buf) {
            sent = Some(n);
            break;
        }
    }
    let n = sent.expect("a report within 60 s");
    let packets = parse_rtcp_compound(&buf[..n]).unwrap();
    let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
        panic!("{packets:?}")
    };
    assert_eq!(rr.ssrc, 0x0bad_cafe);
    assert_eq!(rr.reports[0].ssrc, SSRC);
    assert_eq!(rr.reports[0].cumulative_lost, 1);
    assert_ne!(rr.reports[0].last_sr, 0);
    assert_eq!(r.rx.rtcp_dest, Some("127.0.0.1:40001".parse().unwrap()));
    let n = r.rx.finish(r.now, &mut r.sink, &mut buf).unwrap();
    let packets = parse_rtcp_compound(&buf[..n]).unwrap();
    assert!(matches!(packets.last(), Some(RtcpPacket::Bye(_))));
    assert_eq!(r.rx.totals.lost, 1);
}

#[test]
fn a_flood_is_cut_to_the_stream_rate() {
    let mut r = rig(None, 10_000);
    r.sender_report();
    let d = desc(1, 10);
    let mut dropped = 0;
    for i in 0..1000u64 {
        let p = r.samples(&d, i * 50);
        if r.feed(&p) == Outcome::Dropped(Reject::Flood) {
            dropped += 1;
        }
    }
    // 2 packets/s stream: the bucket allows 58/s, a burst of 116.
    assert_eq!(dropped, 1000 - 116);
}

#[test]
fn packets_wait_for_a_storage_record_still_being_written() {
    let mut r = rig_with(None, 100, None);
    r.sender_report();
    let d = desc(1, 10);
    let p = r.samples(&d, 0);
    assert_eq!(r.feed(&p), Outcome::Held);
    let now = r.now;
    r.rx.update(
        agreed(d),
        &AgreedRecovery::default(),
        SessionId(9),
        now,
        &mut r.sink,
    );
    assert_eq!(r.flat().len(), 10);
    assert!(r.flat().iter().all(|s| s.session == SessionId(9)));
}

#[test]
fn counters_and_last_values_reach_the_statistics_at_most_once_a_second() {
    let mut r = rig(None, 100);
    r.sender_report();
    let d = desc(1, 10);
    let p = r.samples(&d, 0);
    r.feed(&p);
    let now = r.now;
    r.rx.tick(now, &mut r.sink);
    let snap = r.rx.stats.snapshot(0);
    assert_eq!(snap.last_values.len(), 2);
    assert_eq!(
        snap.last_values[0].raw,
        i64::from(raw(40, 0)),
        "the packet's last instant"
    );
    assert_eq!(snap.packets, 1);
    let p = r.samples(&d, 50);
    r.feed(&p);
    r.feed(&p); // the same packet again
    r.rx.tick(now + Duration::from_millis(500), &mut r.sink);
    let snap = r.rx.stats.snapshot(0);
    assert_eq!(snap.last_values[0].raw, i64::from(raw(40, 0)));
    assert_eq!((snap.packets, snap.duplicates), (1, 0));
    r.rx.tick(now + PUBLISH_EVERY, &mut r.sink);
    let snap = r.rx.stats.snapshot(0);
    assert_eq!(snap.last_values[0].raw, i64::from(raw(90, 0)));
    assert_eq!((snap.packets, snap.duplicates), (2, 1));
    // What arrived since is handed over when the stream ends.
    let p = r.samples(&d, 100);
    r.feed(&p);
    let mut buf = [0u8; 256];
    r.rx.finish(now + PUBLISH_EVERY, &mut r.sink, &mut buf);
    assert_eq!(r.rx.stats.snapshot(0).packets, 3);
}

/// RFC 4961: a NAT that keeps the address but rewrites the port (or a
/// relay on the same host) gets our RTCP back at the port the reports
/// came from, not at the SDP's, where nothing of ours would arrive.
#[test]
fn rtcp_goes_back_to_the_port_the_reports_come_from() {
    let mut r = rig(None, 100);
    r.sender_report();
    assert_eq!(r.rx.rtcp_dest, Some("127.0.0.1:40001".parse().unwrap()));
    let sr = r.tx.sender_report(
        100,
        NtpTime::from_unix(Duration::from_nanos(T0_NS as u64 + 1_000_000_000)),
    );
    let translated = "127.0.0.1:61000".parse().unwrap();
    r.rx.on_sender_report(
        &sr,
        translated,
        52,
        r.now,
        T0_NS + 1_000_000_000,
        &mut r.sink,
    )
    .unwrap();
    assert_eq!(r.rx.rtcp_dest, Some(translated));
}
