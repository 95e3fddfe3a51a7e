use super::*;
use crate::payload::{EventOutbox, OutboxConfig, Payload, TickTime, decode};
use crate::rtcp::NtpTime;
use crate::sdp::{ChannelSpec, EventFormat, SampleFormat, Unit};
use std::time::Duration;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn desc() -> StreamDescription {
    let ch = |n: &str, u: &str, s: i8| ChannelSpec {
        name: n.into(),
        unit: Unit::from_symbol(u).unwrap(),
        scale: s,
    };
    StreamDescription {
        clock_rate: 100,
        config: 1,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 10,
            samples_per_packet: 2,
            channels: vec![ch("temperature", "Cel", -2), ch("pressure", "Pa", 0)],
        }),
        events: Some(EventFormat {
            payload_type: 97,
            inputs: vec!["door".into(), "motion".into()],
        }),
    }
}

#[test]
fn samples_packet_matches_the_documented_bytes() {
    let mut tx = RtpSender::with_start(0x1a2b3c4d, 0x1234, 0x0000_1000);
    let mut buf = [0u8; 64];
    // Instants at ticks 0 and 10: 21.50 Cel / 101325 Pa, then 21.51 / missing.
    let n = tx
        .write_samples(
            &mut buf,
            &desc(),
            0,
            &[2150, 101_325, 2151, payload::MISSING],
            true,
        )
        .unwrap();
    assert_eq!(
        hex(&buf[..n]),
        concat!(
            "80e01234", "00001000", "1a2b3c4d", // V=2 M=1 PT=96, seq, ts, SSRC
            "10010202", "00000866", "00018bcd", "00000867", "80000000"
        )
    );
    let p = parse(&buf[..n]).unwrap();
    assert!(p.marker);
    assert_eq!(
        (p.payload_type, p.sequence, p.timestamp, p.ssrc),
        (96, 0x1234, 0x1000, 0x1a2b3c4d)
    );
    let Payload::Samples(s) = decode(p.payload).unwrap() else {
        panic!()
    };
    assert_eq!(s.check(&desc()), Ok(()));
    assert_eq!((tx.packet_count(), tx.octet_count()), (1, 20));
    assert_eq!(tx.next_sequence(), 0x1235);
}

#[test]
fn events_packet_from_the_outbox() {
    let now = crate::test_clock::base();
    let mut outbox = EventOutbox::new(2, 0, 0x0102, OutboxConfig::default(), now);
    for t in [0, 40, 240] {
        outbox.poll_packet(now + Duration::from_millis(t), 0);
    }
    let t = now + Duration::from_secs(1);
    // The door opened at tick 99.75; the packet goes out at tick 100.
    outbox.edge(
        0,
        true,
        TickTime {
            tick: 99,
            fraction: 3 << 30,
        },
        t,
    );
    let batch = outbox.poll_packet(t, 100).unwrap();
    let mut tx = RtpSender::with_start(0x1a2b3c4d, 0x1237, 0x0000_1000);
    let mut buf = [0u8; 64];
    let n = tx.write_events(&mut buf, &desc(), &batch).unwrap();
    assert_eq!(
        hex(&buf[..n]),
        concat!(
            "80e11237",
            "00001064",
            "1a2b3c4d", // M=1 PT=97, ts = 0x1000 + 100
            "11010201",
            "80000000",
            "0102",
            "00",
            "01",
            "ffffffffc0000000"
        )
    );
}

#[test]
fn sequence_and_timestamp_wrap() {
    let mut tx = RtpSender::with_start(1, 0xffff, 0xffff_fff0);
    let mut buf = [0u8; 64];
    tx.write_samples(&mut buf, &desc(), 0, &[1, 2], false)
        .unwrap();
    let n = tx
        .write_samples(&mut buf, &desc(), 0x20, &[1, 2], false)
        .unwrap();
    let p = parse(&buf[..n]).unwrap();
    assert_eq!((p.sequence, p.timestamp), (0, 0x10));
    assert_eq!(tx.timestamp(1 << 32), 0xffff_fff0, "ticks wrap at 2^32");
}

#[test]
fn start_values_are_random_and_seedable() {
    let a = RtpSender::new(&mut IdGenerator::seeded(11));
    let b = RtpSender::new(&mut IdGenerator::seeded(11));
    let c = RtpSender::new(&mut IdGenerator::seeded(12));
    assert_eq!(
        (a.ssrc(), a.next_sequence(), a.timestamp(0)),
        (b.ssrc(), b.next_sequence(), b.timestamp(0))
    );
    assert_ne!(a.ssrc(), c.ssrc());
}

#[test]
fn failed_writes_do_not_consume_sequence_numbers() {
    let mut tx = RtpSender::with_start(1, 10, 0);
    let mut buf = [0u8; 64];
    assert_eq!(
        tx.write_samples(&mut buf[..8], &desc(), 0, &[1, 2], false),
        Err(SendError::BufferTooSmall)
    );
    assert_eq!(
        tx.write_samples(&mut buf[..20], &desc(), 0, &[1, 2], false),
        Err(SendError::Payload(EncodeError::BufferTooSmall {
            need: 12,
            have: 8
        }))
    );
    assert_eq!(
        tx.write_samples(&mut buf, &desc(), 0, &[1, 2, 3], false),
        Err(SendError::Payload(EncodeError::Shape {
            values: 3,
            channels: 2
        }))
    );
    let mut no_samples = desc();
    no_samples.samples = None;
    assert_eq!(
        tx.write_samples(&mut buf, &no_samples, 0, &[1], false),
        Err(SendError::NoFormat("samples"))
    );
    assert_eq!(
        tx.write_with(&mut buf, 128, false, 0, |_| Ok(0)),
        Err(SendError::PayloadType(128))
    );
    assert_eq!(tx.next_sequence(), 10);
    assert_eq!(tx.packet_count(), 0);
}

#[test]
fn sender_report_pairs_a_tick_with_its_wall_clock() {
    let mut tx = RtpSender::with_start(7, 0, 1000);
    let mut buf = [0u8; 64];
    tx.write_samples(&mut buf, &desc(), 0, &[1, 2], false)
        .unwrap();
    let ntp = NtpTime::from_unix(Duration::from_secs(1_767_225_600));
    let sr = tx.sender_report(250, ntp);
    assert_eq!(
        (sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count),
        (7, 1250, 1, 12)
    );
    assert_eq!(sr.ntp, ntp);
}

#[test]
fn parse_errors_are_typed() {
    assert_eq!(parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
    let mut p = [0u8; 12];
    p[0] = 0x40;
    assert_eq!(parse(&p), Err(RtpError::Version(1)));
    p[0] = 0x81; // one CSRC, none present
    assert!(matches!(
        parse(&p),
        Err(RtpError::Truncated {
            header_len: 16,
            len: 12
        })
    ));
    p[0] = 0x90; // extension flag, no extension header
    assert!(matches!(parse(&p), Err(RtpError::Truncated { .. })));
    p[0] = 0xa0; // padding flag, nothing to pad
    assert!(matches!(parse(&p), Err(RtpError::Truncated { .. })));
    let mut q = [0u8; 14];
    q[0] = 0xa0;
    q[13] = 3; // three padding bytes, only two after the header
    assert_eq!(parse(&q), Err(RtpError::Padding(3)));
    q[13] = 0;
    assert_eq!(parse(&q), Err(RtpError::Padding(0)));
    // An RTCP SR sent to the RTP port.
    let mut r = [0u8; 28];
    r[0] = 0x80;
    r[1] = 200;
    assert_eq!(parse(&r), Err(RtpError::LooksLikeRtcp(72)));
}

#[test]
fn csrcs_extension_and_padding_are_skipped() {
    let ext = [1u8, 2, 3, 4];
    let payload = [9u8, 8, 7];
    let pkt = rtp_rs::RtpPacketBuilder::new()
        .payload_type(96)
        .add_csrc(5)
        .extension(0xbede, &ext)
        .payload(&payload)
        .padded(rtp_rs::Pad::round_to(4))
        .build()
        .unwrap();
    let p = parse(&pkt).unwrap();
    assert_eq!(p.payload, payload);
    assert_eq!(p.csrc_count, 1);
    assert!(p.has_extension);
}

#[test]
fn parse_never_panics() {
    let mut tx = RtpSender::with_start(1, 2, 3);
    let mut buf = [0u8; 64];
    let n = tx
        .write_samples(&mut buf, &desc(), 0, &[1, 2], true)
        .unwrap();
    let mut b = buf[..n].to_vec();
    for end in 0..=b.len() {
        let _ = parse(&b[..end]);
    }
    for i in 0..b.len() {
        for v in [0x00u8, 0x0f, 0x10, 0x20, 0x3f, 0x80, 0x9f, 0xbf, 0xff] {
            let old = b[i];
            b[i] = v;
            if let Ok(p) = parse(&b) {
                let _ = decode(p.payload);
            }
            b[i] = old;
        }
    }
}

#[test]
fn a_stamped_samples_packet_carries_its_instant_and_the_same_payload() {
    let mut plain = RtpSender::with_start(0x1a2b3c4d, 0x1234, 0x0000_1000);
    let mut stamped = plain.clone();
    let mut a = [0u8; 128];
    let mut b = [0u8; 128];
    let values = [2150, 101_325, 2151, payload::MISSING];
    let n = plain
        .write_samples(&mut a, &desc(), 40, &values, false)
        .unwrap();
    let instant = SampleInstant {
        first_ns: 1_767_225_600_900_000_000,
        step_ns: 100_000_000,
    };
    let m = stamped
        .write_samples_stamped(&mut b, &desc(), 40, &values, false, (3, instant))
        .unwrap();
    let (p, q) = (parse(&a[..n]).unwrap(), parse(&b[..m]).unwrap());
    assert_eq!(m, n + 24, "4-byte extension header, 17 bytes, 3 of padding");
    assert_eq!((q.sequence, q.timestamp), (p.sequence, p.timestamp));
    assert_eq!(q.payload, p.payload);
    assert_eq!(q.sample_instant(3).unwrap(), Some(instant));
    assert_eq!(q.sample_instant(1).unwrap(), None);
    assert_eq!(p.sample_instant(3).unwrap(), None);
    assert_eq!(
        stamped.octet_count(),
        plain.octet_count(),
        "payload octets only"
    );
}

// ---- receiver ----

fn pkt(seq: u16, ts: u32) -> RtpPacket<'static> {
    RtpPacket {
        marker: false,
        payload_type: 96,
        sequence: seq,
        timestamp: ts,
        ssrc: 0xabc,
        csrc_count: 0,
        has_extension: false,
        extension: None,
        payload: &[],
    }
}

fn accepted(v: Verdict) -> u64 {
    match v {
        Verdict::Accepted { extended_seq, .. } => extended_seq,
        other => panic!("{other:?}"),
    }
}

#[test]
fn in_order_stream_with_known_ssrc_counts_from_the_first_packet() {
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    for i in 0..10u16 {
        assert_eq!(
            accepted(rx.on_packet_at(&pkt(65530u16.wrapping_add(i), 0), 0)),
            65530 + u64::from(i)
        );
    }
    let st = rx.stats();
    assert_eq!((st.received, st.expected, st.lost), (10, 10, 0));
    assert_eq!(
        st.extended_highest_seq, 65539,
        "wrapped into the second cycle"
    );
    let rb = rx.report_block(crate::test_clock::base()).unwrap();
    assert_eq!(rb.extended_highest_seq, 0x0001_0003);
    assert_eq!((rb.fraction_lost, rb.cumulative_lost), (0, 0));
    assert_eq!(
        rx.on_packet_at(
            &RtpPacket {
                ssrc: 1,
                ..pkt(1, 0)
            },
            0
        ),
        Verdict::ForeignSource(1)
    );
    assert_eq!(rx.stats().foreign, 1);
}

#[test]
fn loss_and_fraction_per_report_interval() {
    // RFC 3550 A.3: fraction = lost_interval * 256 / expected_interval.
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    let now = crate::test_clock::base();
    for seq in 0..100u16 {
        if seq % 10 != 5 {
            rx.on_packet_at(&pkt(seq, 0), 0);
        }
    }
    let rb = rx.report_block(now).unwrap();
    assert_eq!(rb.cumulative_lost, 10);
    assert_eq!(rb.fraction_lost, (10 * 256 / 100) as u8);
    for seq in 100..200u16 {
        rx.on_packet_at(&pkt(seq, 0), 0);
    }
    let rb = rx.report_block(now).unwrap();
    assert_eq!((rb.cumulative_lost, rb.fraction_lost), (10, 0));
    // No packets since: expected_interval 0.
    assert_eq!(rx.report_block(now).unwrap().fraction_lost, 0);
}

#[test]
fn reordering_is_not_loss_and_duplicates_are_not_counted() {
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    for seq in [10u16, 11, 13, 14, 12, 15] {
        rx.on_packet_at(&pkt(seq, 0), 0);
    }
    assert_eq!(rx.stats().lost, 0);
    assert_eq!(rx.on_packet_at(&pkt(15, 0), 0), Verdict::Duplicate);
    assert_eq!(rx.on_packet_at(&pkt(12, 0), 0), Verdict::Duplicate);
    assert_eq!(rx.on_packet_at(&pkt(9, 0), 0), Verdict::TooOld);
    let st = rx.stats();
    assert_eq!(
        (st.received, st.expected, st.duplicates, st.lost),
        (6, 6, 2, 0)
    );
    // A late packet across the wrap gets the previous cycle's number.
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    for seq in [65534u16, 65535, 1, 0] {
        rx.on_packet_at(&pkt(seq, 0), 0);
    }
    let st = rx.stats();
    assert_eq!(
        (st.received, st.lost, st.extended_highest_seq),
        (4, 0, 65537)
    );
    // A packet more than 100 behind counts as a restart candidate (A.1).
    assert_eq!(rx.on_packet_at(&pkt(65000, 0), 0), Verdict::BadSequence);
}

#[test]
fn gaps_below_max_dropout_are_loss_and_jumps_beyond_resync() {
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    rx.on_packet_at(&pkt(100, 0), 0);
    accepted(rx.on_packet_at(&pkt(2000, 0), 0));
    assert_eq!(rx.stats().lost, 1899);
    // A jump of 10000: held back, then confirmed by its successor.
    assert_eq!(rx.on_packet_at(&pkt(12000, 0), 0), Verdict::BadSequence);
    assert_eq!(
        rx.on_packet_at(&pkt(12001, 0), 0),
        Verdict::Accepted {
            extended_seq: 12001,
            restarted: true
        }
    );
    let st = rx.stats();
    assert_eq!((st.received, st.expected, st.lost), (1, 1, 0));
}

#[test]
fn probation_validates_an_unsignalled_source() {
    let mut rx = RtpReceiver::new(100, None);
    assert_eq!(rx.ssrc(), None);
    assert_eq!(rx.on_packet_at(&pkt(7, 0), 0), Verdict::Probation);
    assert_eq!(rx.report_block(crate::test_clock::base()), None);
    // Out of sequence: probation restarts.
    assert_eq!(rx.on_packet_at(&pkt(9, 0), 0), Verdict::Probation);
    // Another SSRC during probation takes over.
    let other = RtpPacket {
        ssrc: 0xdef,
        ..pkt(50, 0)
    };
    assert_eq!(rx.on_packet_at(&other, 0), Verdict::Probation);
    let next = RtpPacket {
        ssrc: 0xdef,
        ..pkt(51, 0)
    };
    assert_eq!(accepted(rx.on_packet_at(&next, 0)), 51);
    assert_eq!(rx.ssrc(), Some(0xdef));
    assert_eq!(
        rx.on_packet_at(&pkt(10, 0), 0),
        Verdict::ForeignSource(0xabc)
    );
    assert_eq!(rx.stats().received, 1);
    rx.reset(Some(0xabc));
    assert_eq!(accepted(rx.on_packet_at(&pkt(10, 0), 0)), 10);
}

#[test]
fn jitter_follows_a8() {
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    // Constant transit: no jitter.
    for i in 0..50u32 {
        rx.on_packet_at(&pkt(i as u16, i * 10), 1000 + i * 10);
    }
    assert_eq!(rx.stats().jitter, 0);
    // Transit alternating by 16 units: |D| = 16 every packet. The integer
    // form of A.8 settles where (j + 8) >> 4 == 16, j = 248, reported 15.
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    for i in 0..400u32 {
        rx.on_packet_at(&pkt(i as u16, i * 10), i * 10 + (i % 2) * 16);
    }
    assert_eq!(rx.stats().jitter, 15);
    // Against the floating-point definition on a pseudo-random sequence.
    let mut rx = RtpReceiver::new(8000, Some(0xabc));
    let mut ids = IdGenerator::seeded(3);
    let (mut j, mut prev) = (0.0f64, None::<f64>);
    for i in 0..2000u32 {
        let delay = (ids.unit() * 400.0) as u32;
        let (ts, arrival) = (i * 160, i * 160 + delay);
        rx.on_packet_at(&pkt(i as u16, ts), arrival);
        let transit = f64::from(arrival) - f64::from(ts);
        if let Some(p) = prev {
            j += ((transit - p).abs() - j) / 16.0;
        }
        prev = Some(transit);
    }
    let got = f64::from(rx.stats().jitter);
    assert!((got - j).abs() <= 1.5, "integer {got} vs float {j}");
    assert_eq!(
        rx.jitter(),
        Duration::from_nanos(u64::from(rx.stats().jitter) * 125_000)
    );
}

#[test]
fn jitter_can_be_limited_to_the_samples_payload_type() {
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    rx.set_jitter_payload_type(Some(96));
    for i in 0..50u32 {
        rx.on_packet_at(&pkt(2 * i as u16, i * 10), i * 10);
        // Event packets stamped at their send tick, arriving 50 later.
        let ev = RtpPacket {
            payload_type: 97,
            ..pkt(2 * i as u16 + 1, i * 10)
        };
        rx.on_packet_at(&ev, i * 10 + 50);
    }
    assert_eq!(rx.stats().jitter, 0);
    assert_eq!(rx.stats().received, 100);
}

#[test]
fn arrival_instants_are_converted_to_timestamp_units() {
    let mut rx = RtpReceiver::new(1000, Some(0xabc));
    let t0 = crate::test_clock::base();
    for i in 0..100u32 {
        // 10 ms apart, every other one 4 ms late: |D| = 4 units each time.
        let at = t0 + Duration::from_millis(u64::from(i * 10 + (i % 2) * 4));
        rx.on_packet(&pkt(i as u16, i * 10), at);
    }
    let j = rx.stats().jitter;
    assert!((3..=4).contains(&j), "{j}");
}

#[test]
fn lsr_dlsr_and_the_wall_clock_mapping() {
    let mut rx = RtpReceiver::new(100, Some(0xabc));
    let t0 = crate::test_clock::base();
    rx.on_packet_at(&pkt(1, 0), 0);
    let sr = SenderReport {
        ssrc: 0xabc,
        ntp: NtpTime(0x1234_5678_9abc_def0),
        rtp_timestamp: 500,
        packet_count: 1,
        octet_count: 0,
        reports: vec![],
    };
    assert!(rx.on_sender_report(&sr, t0));
    assert!(!rx.on_sender_report(
        &SenderReport {
            ssrc: 1,
            ..sr.clone()
        },
        t0
    ));
    let rb = rx.report_block(t0 + Duration::from_millis(1500)).unwrap();
    assert_eq!(rb.last_sr, 0x5678_9abc);
    assert_eq!(rb.delay_since_last_sr, 98_304); // 1.5 * 65536
    let m = rx.mapping().unwrap();
    assert_eq!((m.rtp_timestamp, m.clock_rate), (500, 100));
    // Before any SR: zeros (RFC 3550 6.4.1).
    let mut fresh = RtpReceiver::new(100, Some(0xabc));
    fresh.on_packet_at(&pkt(1, 0), 0);
    let rb = fresh.report_block(t0).unwrap();
    assert_eq!((rb.last_sr, rb.delay_since_last_sr), (0, 0));
}

#[test]
fn receiver_survives_arbitrary_sequences() {
    let mut ids = IdGenerator::seeded(8);
    let mut rx = RtpReceiver::new(90_000, None);
    let t0 = crate::test_clock::base();
    for i in 0..5000u64 {
        let p = RtpPacket {
            ssrc: ids.u32() % 3,
            ..pkt(ids.u32() as u16, ids.u32())
        };
        rx.on_packet(&p, t0 + Duration::from_micros(i * 100));
        if i % 97 == 0 {
            let _ = rx.report_block(t0);
        }
    }
    let st = rx.stats();
    assert!(st.received <= 5000);
}
