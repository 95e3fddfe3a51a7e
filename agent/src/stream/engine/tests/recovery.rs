//! docs/protocol.md 11 on the live stream: packets stamped with the
//! sample instant the spool records, kept for RTX, resent on NACK within
//! the rate bound.

use super::*;
use crate::spool;
use sipsensor_protocol::{RtxConfig, parse_rtx};

const RTX_SSRC: u32 = 0x5e1f_0001;

fn history(rate: u64, now: Instant) -> RetransmitHistory {
    RetransmitHistory::new(
        RtxConfig {
            payload_types: vec![(96, 98), (97, 99)],
            rtx_time: Duration::from_secs(3),
            capacity: 512,
            max_rate: rate,
            burst: 3000,
            resend_holdoff: Duration::from_millis(100),
        },
        RtpSender::with_start(RTX_SSRC, 1, 0),
        now,
    )
}

/// 100 Hz, 2 instants a packet, channel a; inputs door; stamped with ID 1.
fn stamped() -> Rig {
    let mut r = rig(desc(1, 1, 2, &["a"], &["door"]));
    r.core.instant_id = Some(1);
    r
}

#[test]
fn live_packets_carry_the_instants_the_spool_records() {
    let mut r = stamped();
    let (feed, mut rx) = spool::feed(spool::FEED_BYTES);
    r.core.spool = Some(feed);
    for k in 0..6u64 {
        let now = r.at(ms(10 * k));
        r.publish(now, 1.0, 2.0);
        if k == 2 {
            r.inputs[0].push(Event {
                input: 0,
                level: true,
                at: now,
            });
        }
        r.run(now);
    }
    let wall0 = spool::unix_ns(r.wall0) as u64;
    let dir = tempfile::TempDir::new().expect("tempdir");
    let options = spool::SpoolOptions {
        dir: dir.path().to_owned(),
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(86_400),
    };
    let mut store = spool::Spool::open(&options, r.wall0).expect("open");
    rx.drain(&mut store, &mut Vec::new(), r.wall0);
    let runs: Vec<_> = store
        .read_from(i64::MIN)
        .filter_map(|rec| match rec {
            spool::Record::Samples(s) => Some(s),
            spool::Record::Edge(_) => None,
        })
        .collect();
    let packets = r.packets();
    let samples: Vec<_> = packets.iter().filter(|p| p.payload_type == 96).collect();
    assert_eq!(samples.len(), 3);
    assert_eq!(runs.len(), 3);
    for (n, (p, run)) in samples.iter().zip(&runs).enumerate() {
        let instant = p.sample_instant(1).unwrap().expect("stamped");
        assert_eq!(instant.first_ns, wall0 + 20_000_000 * n as u64);
        assert_eq!(instant.step_ns, 10_000_000);
        // One key for a sample whether it comes live or from the spool.
        assert_eq!(instant.first_ns as i64, run.first_ns);
        assert_eq!(instant.step_ns, u64::from(run.spacing_ns));
    }
    let events = packets
        .iter()
        .find(|p| p.payload_type == 97)
        .expect("an events packet");
    let instant = events.sample_instant(1).unwrap().expect("stamped");
    // The instant of its tick; step: ns per tick of the 100 Hz clock.
    let tick = events.timestamp.wrapping_sub(BASE_TS);
    assert_eq!(instant.first_ns, wall0 + 10_000_000 * u64::from(tick));
    assert_eq!(instant.step_ns, 10_000_000);
    assert_eq!(r.stats.snapshot().first_live_ns, Some(wall0));
}

#[test]
fn without_the_extension_agreed_packets_are_as_before() {
    let mut r = rig(desc(1, 1, 2, &["a"], &["door"]));
    let at = r.at(ms(0));
    r.inputs[0].push(Event {
        input: 0,
        level: true,
        at,
    });
    for k in 0..4u64 {
        r.run(r.at(ms(10 * k)));
    }
    assert!(!r.packets().is_empty());
    assert!(r.packets().iter().all(|p| p.extension.is_none()));
}

#[test]
fn a_nacked_packet_goes_again_as_rtx_with_its_instant() {
    let mut r = stamped();
    r.core.history = Some(history(100_000, r.t0));
    for k in 0..4u64 {
        let now = r.at(ms(10 * k));
        r.publish(now, 1.0, 2.0);
        r.run(now);
    }
    let lost_bytes = r
        .sink
        .rtp
        .iter()
        .find(|p| parse_rtp(p).unwrap().payload_type == 96)
        .expect("a samples packet")
        .clone();
    let lost = parse_rtp(&lost_bytes).unwrap();
    let now = r.at(ms(45));
    r.core.on_nack([lost.sequence], now);
    assert!(r.core.poll_timeout() <= now, "RTX is due at once");
    r.run(now);
    assert_eq!(r.sink.rtx.len(), 1);
    let rtx = parse_rtp(&r.sink.rtx[0]).unwrap();
    assert_eq!(rtx.ssrc, RTX_SSRC);
    assert_eq!(rtx.payload_type, 98, "the RTX type whose apt is 96");
    assert_eq!((rtx.timestamp, rtx.marker), (lost.timestamp, lost.marker));
    assert_eq!(
        rtx.sample_instant(1).unwrap(),
        lost.sample_instant(1).unwrap()
    );
    let (osn, original) = parse_rtx(rtx.payload).unwrap();
    assert_eq!(osn, lost.sequence);
    assert_eq!(original, lost.payload);
    // Asked again at once: the hold-off keeps it to one copy.
    r.core.on_nack([lost.sequence], now);
    r.run(now);
    assert_eq!(r.sink.rtx.len(), 1);
    let s = r.stats.snapshot();
    assert_eq!((s.rtx_sent, s.rtx_unavailable), (1, 0));
}

#[test]
fn a_nack_for_what_was_never_sent_is_counted_and_sends_nothing() {
    let mut r = stamped();
    r.core.history = Some(history(100_000, r.t0));
    r.run(r.at(ms(0)));
    r.run(r.at(ms(10)));
    let sent = r.packets()[0].sequence;
    r.core.on_nack(
        [sent.wrapping_add(100), sent.wrapping_sub(100)],
        r.at(ms(11)),
    );
    r.run(r.at(ms(11)));
    assert!(r.sink.rtx.is_empty());
    assert_eq!(r.stats.snapshot().rtx_unavailable, 2);
}

#[test]
fn a_forged_nack_of_every_sequence_number_stays_within_the_rate() {
    const RATE: u64 = 2_000;
    let mut r = stamped();
    r.core.history = Some(history(RATE, r.t0));
    let every: Vec<u16> = (0..=u16::MAX).collect();
    // 3 s of streaming with the whole sequence space NACKed every 50 ms.
    let end = r.at(ms(3_000));
    let mut next_nack = r.at(ms(20));
    for _ in 0..100_000 {
        let now = r.core.poll_timeout().min(next_nack);
        if now > end {
            break;
        }
        if now >= next_nack {
            r.core.on_nack(every.iter().copied(), now);
            next_nack += ms(50);
        }
        r.publish(now, 1.0, 2.0);
        r.run(now);
    }
    let bytes: u64 = r.sink.rtx.iter().map(|p| p.len() as u64).sum();
    // Rate × time + the burst, whatever was asked.
    assert!(bytes <= RATE * 3 + 3000, "{bytes} bytes of RTX");
    assert!(!r.sink.rtx.is_empty(), "kept packets were resent");
    // Live went on at full rate: 150 samples packets in 3 s.
    let live = r.packets().iter().filter(|p| p.payload_type == 96).count();
    assert!(live >= 149, "{live} live packets");
}

#[test]
fn every_copy_of_an_edge_gives_the_instant_the_spool_records() {
    let mut r = stamped();
    let (feed, mut rx) = spool::feed(spool::FEED_BYTES);
    r.core.spool = Some(feed);
    // An edge between ticks, at a time whose 32.32 fraction is inexact.
    let at = r.at(Duration::from_nanos(25_500_001));
    r.inputs[0].push(Event {
        input: 0,
        level: true,
        at,
    });
    r.run_until(r.at(ms(400)));
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut store = crate::stream::test_spool::open_in(dir.path(), r.wall0);
    rx.drain(&mut store, &mut Vec::new(), r.wall0);
    let spooled: Vec<i64> = store
        .read_from(i64::MIN)
        .filter_map(|rec| match rec {
            spool::Record::Edge(e) => Some(e.at_ns),
            spool::Record::Samples(_) => None,
        })
        .collect();
    assert_eq!(spooled.len(), 1);
    let mut copies = 0;
    for p in r.packets().iter().filter(|p| p.payload_type == 97) {
        let instant = p.sample_instant(1).unwrap().expect("stamped");
        let Payload::Events(events) = decode_payload(p.payload).unwrap() else {
            panic!("not events")
        };
        for record in events.records() {
            copies += 1;
            assert_eq!(
                instant.edge(record.offset).map(|t| t as i64),
                Some(spooled[0]),
                "copy {copies}"
            );
        }
    }
    assert!(copies >= 2, "the edge and its repeats: {copies}");
}
