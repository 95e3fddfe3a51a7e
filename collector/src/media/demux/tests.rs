use super::*;
use crate::media::fixtures::{SSRC, T0_NS, agreed, desc, limits, setup};
use crate::stats::StreamsRegistry;
use crate::storage::SessionId;
use sipsensor_protocol::{
    Agreed, AgreedRecovery, IdGenerator, NtpTime, ReceiverReport, RemoteMedia, RtpSender,
    StreamDescription, receiver_report_compound, sender_report_compound,
};
use std::sync::Arc;

mod backfill;
mod recovery;
mod rtcp;
mod srtp;

const SDP_RTP: &str = "127.0.0.1:40000";
const SDP_RTCP: &str = "127.0.0.1:40001";
const STRANGER: &str = "10.0.0.9:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `agreed(d)` without `a=ssrc`, streaming from `rtp` (RTCP on the next port).
fn unsignalled(d: StreamDescription, rtp: &str) -> Agreed {
    let rtp = addr(rtp);
    Agreed {
        remote_ssrc: None,
        remote: Some(RemoteMedia {
            rtp,
            rtcp: SocketAddr::new(rtp.ip(), rtp.port() + 1),
        }),
        ..agreed(d)
    }
}

struct Rig {
    demux: Demux,
    sink: Sink,
    now: Instant,
    ids: IdGenerator,
    registry: Arc<StreamsRegistry>,
}

/// A sensor's packets: samples under `desc(1, 10)`.
struct Sensor {
    tx: RtpSender,
    tick: u64,
}

impl Sensor {
    fn new(ssrc: u32) -> Sensor {
        Sensor {
            tx: RtpSender::with_start(ssrc, 100, 0x1000),
            tick: 0,
        }
    }

    /// The next samples packet (five instants of two channels).
    fn next(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 128];
        let n = self
            .tx
            .write_samples(&mut buf, &desc(1, 10), self.tick, &[1; 10], false)
            .unwrap();
        self.tick += 50;
        buf[..n].to_vec()
    }

    /// SR + SDES pinning tick 0 to T0.
    fn sender_report(&self) -> Vec<u8> {
        self.sender_report_at(0, T0_NS)
    }

    /// SR + SDES pinning `tick` to `ns`.
    fn sender_report_at(&self, tick: u64, ns: i64) -> Vec<u8> {
        let sr = self
            .tx
            .sender_report(tick, NtpTime::from_unix(Duration::from_nanos(ns as u64)));
        let mut buf = [0u8; 128];
        let n = sender_report_compound(&mut buf, &sr, "sensor@example.net").unwrap();
        buf[..n].to_vec()
    }
}

fn refused(reason: Reject, from: &str, detail: &str) -> Rejected {
    Rejected {
        reason,
        from: addr(from),
        detail: detail.into(),
    }
}

fn unknown_ssrc(from: &str, ssrc: u32) -> Delivery {
    Delivery::Rejected(refused(
        Reject::UnknownSource,
        from,
        &format!("SSRC {ssrc:#010x}"),
    ))
}

impl Rig {
    fn new(max_streams: u32) -> Rig {
        Rig {
            demux: Demux::new(max_streams),
            sink: Sink::default(),
            now: Instant::now(),
            ids: IdGenerator::seeded(1),
            registry: StreamsRegistry::new(),
        }
    }

    fn add_with(
        &mut self,
        agreed: Agreed,
        signalling_ip: Option<IpAddr>,
    ) -> Result<(StreamKey, Vec<Delivery>), Full> {
        let mut s = setup(&self.registry, agreed, Some(SessionId(7)), None);
        s.signalling_ip = signalling_ip;
        let stream = StreamRx::new(s, limits(100), self.now, &mut self.ids);
        self.demux.add(stream, T0_NS, &mut self.sink)
    }

    /// Adds a stream that had no packets waiting for it.
    fn add(&mut self, agreed: Agreed) -> StreamKey {
        let (key, replayed) = self.add_with(agreed, None).unwrap();
        assert_eq!(replayed, []);
        key
    }

    fn datagram(&mut self, data: &[u8], from: &str, port: Port, at: Instant) -> Delivery {
        let d = Datagram {
            data,
            from: addr(from),
            port,
            truncated: false,
            authenticated_for: None,
        };
        self.demux.on_datagram(d, at, T0_NS, &mut self.sink)
    }

    fn rtp(&mut self, data: &[u8], from: &str) -> Delivery {
        self.datagram(data, from, Port::Rtp, self.now)
    }

    fn rtcp(&mut self, data: &[u8], from: &str) -> Delivery {
        self.datagram(data, from, Port::Rtcp, self.now)
    }
}

fn taken(key: StreamKey) -> Delivery {
    Delivery::Rtcp(vec![Report::Taken(key)])
}

fn refused_report(reason: Reject, from: &str, detail: &str) -> Delivery {
    Delivery::Rtcp(vec![Report::Refused(refused(reason, from, detail))])
}

fn to(key: StreamKey, outcome: Outcome) -> Delivery {
    Delivery::Rtp { key, outcome }
}

#[test]
fn the_signalled_ssrc_latches_on_its_first_packet_from_the_sdp_address() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    // Signalled in SDP: valid from the first packet, held for the first SR.
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    // RFC 3550 8.2: once latched, the same SSRC from another port is a
    // collision or a loop.
    assert_eq!(
        r.rtp(&s.next(), "127.0.0.1:40002"),
        Delivery::Rejected(refused(
            Reject::WrongAddress,
            "127.0.0.1:40002",
            "SSRC 0x1a2b3c4d"
        ))
    );
    // An IPv4-mapped IPv6 source is the same address.
    assert_eq!(
        r.rtp(&s.next(), "[::ffff:127.0.0.1]:40000"),
        to(key, Outcome::Held)
    );
}

#[test]
fn the_signalled_ssrc_from_an_address_not_negotiated_is_refused() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    assert_eq!(
        r.rtp(&s.next(), STRANGER),
        Delivery::Rejected(refused(Reject::WrongAddress, STRANGER, "SSRC 0x1a2b3c4d"))
    );
    // The stranger did not latch it: the real sensor still can.
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
}

#[test]
fn the_sip_peers_address_is_allowed_besides_the_sdp_one() {
    let mut r = Rig::new(10);
    let (key, _) = r
        .add_with(agreed(desc(1, 10)), Some("192.0.2.7".parse().unwrap()))
        .unwrap();
    let mut s = Sensor::new(SSRC);
    // Behind NAT the SDP address is private; RTP comes from the public one.
    assert_eq!(r.rtp(&s.next(), "192.0.2.7:61000"), to(key, Outcome::Held));
}

#[test]
fn an_ssrc_no_stream_has_is_unknown() {
    let mut r = Rig::new(10);
    r.add(agreed(desc(1, 10)));
    let mut other = Sensor::new(0x99);
    assert_eq!(r.rtp(&other.next(), SDP_RTP), unknown_ssrc(SDP_RTP, 0x99));
    assert_eq!(r.rtp(&other.next(), STRANGER), unknown_ssrc(STRANGER, 0x99));
}

#[test]
fn without_a_signalled_ssrc_the_first_packet_latches_and_a_new_ssrc_is_unknown() {
    let mut r = Rig::new(10);
    let key = r.add(unsignalled(desc(1, 10), SDP_RTP));
    let mut s = Sensor::new(0x5151);
    // RFC 3550 A.1 probation: the first packet only starts it.
    assert_eq!(
        r.rtp(&s.next(), SDP_RTP),
        to(key, Outcome::Dropped(Reject::BadSequence))
    );
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    // The sensor restarted with a new SSRC: the stream is latched to the
    // old one, so the new one is nobody's.
    let mut restarted = Sensor::new(0x6262);
    assert_eq!(
        r.rtp(&restarted.next(), SDP_RTP),
        unknown_ssrc(SDP_RTP, 0x6262)
    );
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
}

#[test]
fn among_streams_sharing_an_address_the_exact_sdp_port_latches_first() {
    let mut r = Rig::new(10);
    let first = r.add(unsignalled(desc(1, 10), "127.0.0.1:40000"));
    let second = r.add(unsignalled(desc(1, 10), "127.0.0.1:40010"));
    let probation = Outcome::Dropped(Reject::BadSequence);
    let mut b = Sensor::new(0xb);
    assert_eq!(r.rtp(&b.next(), "127.0.0.1:40010"), to(second, probation));
    // Any other port of the address goes to the stream still free.
    let mut a = Sensor::new(0xa);
    assert_eq!(r.rtp(&a.next(), "127.0.0.1:40020"), to(first, probation));
    let mut c = Sensor::new(0xc);
    assert_eq!(
        r.rtp(&c.next(), "127.0.0.1:40000"),
        unknown_ssrc("127.0.0.1:40000", 0xc)
    );
}

#[test]
fn a_sender_report_goes_to_its_stream_and_releases_the_held_packets() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    assert!(r.sink.batch.readings.is_empty());
    let sr = s.sender_report();
    // From another address the report is not the stream's.
    assert_eq!(
        r.rtcp(&sr, "10.0.0.9:40001"),
        Delivery::Rtcp(vec![Report::Refused(refused(
            Reject::WrongAddress,
            "10.0.0.9:40001",
            "RTCP sender report from SSRC 0x1a2b3c4d: not the session's RTCP address"
        ))])
    );
    assert!(r.sink.batch.readings.is_empty());
    assert_eq!(
        r.rtcp(&sr, SDP_RTCP),
        Delivery::Rtcp(vec![Report::Taken(key)])
    );
    assert_eq!(r.sink.batch.readings.len(), 10, "2 packets x 5 instants");
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Stored));
}

#[test]
fn rtcp_without_sender_reports_or_not_rtcp_at_all() {
    let mut r = Rig::new(10);
    r.add(agreed(desc(1, 10)));
    let rr = ReceiverReport {
        ssrc: SSRC,
        reports: vec![],
    };
    let mut buf = [0u8; 128];
    let n = receiver_report_compound(&mut buf, &rr, "sensor@example.net").unwrap();
    assert_eq!(r.rtcp(&buf[..n], SDP_RTCP), Delivery::Rtcp(vec![]));
    // RTP sent to the RTCP port (RFC 3550 11: they are told apart by port).
    let rtp = Sensor::new(SSRC).next();
    let why = parse_rtcp_compound(&rtp).unwrap_err().to_string();
    assert_eq!(
        r.rtcp(&rtp, SDP_RTCP),
        Delivery::Rejected(refused(Reject::MalformedRtcp, SDP_RTCP, &why))
    );
}

#[test]
fn a_duplicate_reaches_its_stream_and_is_dropped_there() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    r.rtcp(&s.sender_report(), SDP_RTCP);
    let p = s.next();
    assert_eq!(r.rtp(&p, SDP_RTP), to(key, Outcome::Stored));
    assert_eq!(
        r.rtp(&p, SDP_RTP),
        to(key, Outcome::Dropped(Reject::Duplicate))
    );
    assert_eq!(r.sink.rejects, vec![(Reject::Duplicate, String::new())]);
    assert_eq!(r.sink.batch.readings.len(), 5);
}

#[test]
fn a_removed_streams_late_packets_are_unknown_and_its_slot_is_reused() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    let removed = r.demux.remove(key).unwrap();
    assert_eq!(removed.totals.received, 1);
    assert!(r.demux.remove(key).is_none());
    assert!(r.demux.stream_mut(key).is_none());
    assert_eq!(r.rtp(&s.next(), SDP_RTP), unknown_ssrc(SDP_RTP, SSRC));
    assert_eq!(
        r.rtcp(&s.sender_report(), SDP_RTCP),
        Delivery::Rtcp(vec![Report::Refused(refused(
            Reject::UnknownSource,
            SDP_RTCP,
            "RTCP sender report from SSRC 0x1a2b3c4d"
        ))])
    );
    // The next call's stream gets a new key; the old latch is gone.
    let next = r.add(agreed(desc(1, 10)));
    assert_ne!(next, key);
    assert_eq!(r.demux.keys(), vec![next]);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(next, Outcome::Held));
}

#[test]
fn an_awaited_sensors_packets_are_kept_and_replayed_when_its_stream_is_added() {
    let mut r = Rig::new(10);
    r.demux.expect_source(addr(SDP_RTP).ip(), r.now + LIMBO_AGE);
    let mut s = Sensor::new(SSRC);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), Delivery::Kept { evicted: false });
    assert_eq!(r.rtp(&s.next(), SDP_RTP), Delivery::Kept { evicted: false });
    // Only the awaited address is kept for.
    assert_eq!(r.rtp(&s.next(), STRANGER), unknown_ssrc(STRANGER, SSRC));
    let (key, replayed) = r.add_with(agreed(desc(1, 10)), None).unwrap();
    assert_eq!(
        replayed,
        vec![to(key, Outcome::Held), to(key, Outcome::Held)]
    );
    // The call is set up: that address is no longer awaited.
    r.demux.remove(key);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), unknown_ssrc(SDP_RTP, SSRC));
}

#[test]
fn kept_packets_and_awaited_sources_expire() {
    let mut r = Rig::new(10);
    let until = r.now + Duration::from_secs(5);
    r.demux.expect_source(addr(SDP_RTP).ip(), until);
    let mut s = Sensor::new(SSRC);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), Delivery::Kept { evicted: false });
    assert_eq!(r.demux.expire(r.now + LIMBO_AGE), vec![]);
    assert_eq!(
        r.demux.expire(r.now + LIMBO_AGE + Duration::from_millis(1)),
        vec![refused(
            Reject::UnknownSource,
            SDP_RTP,
            "no session was set up for it"
        )]
    );
    // Past `until` the address is no longer awaited.
    let late = r.datagram(&s.next(), SDP_RTP, Port::Rtp, until);
    assert_eq!(late, unknown_ssrc(SDP_RTP, SSRC));
    r.demux.expire(until);
    let now = r.now;
    let later = r.datagram(&s.next(), SDP_RTP, Port::Rtp, now);
    assert_eq!(later, unknown_ssrc(SDP_RTP, SSRC));
}

#[test]
fn kept_packets_are_bounded_oldest_first() {
    let mut r = Rig::new(10);
    let (first, rest) = (r.now, r.now + Duration::from_secs(1));
    r.demux.expect_source(addr(SDP_RTP).ip(), rest + LIMBO_AGE);
    let mut s = Sensor::new(SSRC);
    let kept = Delivery::Kept { evicted: false };
    assert_eq!(r.datagram(&s.next(), SDP_RTP, Port::Rtp, first), kept);
    for _ in 1..LIMBO_MAX {
        assert_eq!(r.datagram(&s.next(), SDP_RTP, Port::Rtp, rest), kept);
    }
    let over = r.datagram(&s.next(), SDP_RTP, Port::Rtp, rest);
    assert_eq!(over, Delivery::Kept { evicted: true });
    // The packet given up was the oldest: none is old enough to expire when
    // only the first one would be.
    assert_eq!(
        r.demux.expire(first + LIMBO_AGE + Duration::from_millis(1)),
        vec![]
    );
    let (key, replayed) = r.add_with(agreed(desc(1, 10)), None).unwrap();
    assert_eq!(replayed.len(), LIMBO_MAX);
    assert!(
        replayed
            .iter()
            .all(|d| matches!(d, Delivery::Rtp { key: k, .. } if *k == key))
    );
}

#[test]
fn parked_packets_are_replayed_when_the_re_invite_completes() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    r.rtcp(&s.sender_report(), SDP_RTCP);
    let until = r.now + Duration::from_secs(5);
    r.demux.stream_mut(key).unwrap().expect_new_config(until);
    let mut buf = [0u8; 128];
    let n =
        s.tx.write_samples(&mut buf, &desc(2, 20), 0, &[1; 10], false)
            .unwrap();
    assert_eq!(r.rtp(&buf[..n], SDP_RTP), to(key, Outcome::Parked));
    assert!(r.sink.batch.readings.is_empty());
    let (now, sink) = (r.now, &mut r.sink);
    let stream = r.demux.stream_mut(key).unwrap();
    stream.update(
        agreed(desc(2, 20)),
        &AgreedRecovery::default(),
        SessionId(8),
        now,
        sink,
    );
    assert_eq!(r.sink.batch.readings.len(), 5);
    assert!(
        r.sink
            .batch
            .readings
            .iter()
            .all(|x| x.session == SessionId(8))
    );
}

#[test]
fn oversized_and_malformed_datagrams_are_refused() {
    let mut r = Rig::new(10);
    r.add(agreed(desc(1, 10)));
    let p = Sensor::new(SSRC).next();
    let truncated = Datagram {
        data: &p,
        from: addr(SDP_RTP),
        port: Port::Rtp,
        truncated: true,
        authenticated_for: None,
    };
    assert_eq!(
        r.demux.on_datagram(truncated, r.now, T0_NS, &mut r.sink),
        Delivery::Rejected(refused(
            Reject::Oversized,
            SDP_RTP,
            "datagram larger than 2048 bytes"
        ))
    );
    let garbage = [0u8; 5];
    let why = parse_rtp(&garbage).unwrap_err().to_string();
    assert_eq!(
        r.rtp(&garbage, SDP_RTP),
        Delivery::Rejected(refused(Reject::MalformedRtp, SDP_RTP, &why))
    );
}

#[test]
fn no_more_streams_than_the_maximum() {
    let mut r = Rig::new(1);
    let key = r.add(agreed(desc(1, 10)));
    let full = r.add_with(agreed(desc(1, 10)), None).unwrap_err();
    assert_eq!(full, Full(1));
    assert_eq!(
        full.to_string(),
        "1 streams are being received, the configured maximum"
    );
    r.demux.remove(key);
    assert!(r.add_with(agreed(desc(1, 10)), None).is_ok());
}
