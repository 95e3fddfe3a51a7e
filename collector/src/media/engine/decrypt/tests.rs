use super::*;
use sipsensor_protocol::{SrtpKey, SrtpSuite};

const SSRC: u32 = 0x5e45_0001;
const SENSOR: [u8; 4] = [192, 0, 2, 10];

fn keys() -> SrtpKeys {
    SrtpKeys {
        send: SrtpKey::generate(SrtpSuite::AeadAes128Gcm),
        receive: SrtpKey::generate(SrtpSuite::AeadAes128Gcm),
    }
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(b"sensor samples");
    p
}

fn sensor() -> IpAddr {
    IpAddr::from(SENSOR)
}

/// The agent's side: protects with the key the collector receives with.
fn agent(keys: &SrtpKeys) -> SrtpContext {
    SrtpContext::outbound(&keys.receive).unwrap()
}

fn protect(ctx: &mut SrtpContext, packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ctx.protect_rtp(packet, &mut out).unwrap();
    out
}

#[test]
fn without_srtp_streams_everything_passes_as_it_came() {
    let mut d = Decryptor::default();
    assert_eq!(d.open(Kind::Rtp, &rtp(1, SSRC), sensor()), Opened::Plain);
}

#[test]
fn the_genuine_stream_is_decrypted_spoofs_and_replays_refused() {
    let (k, mut d) = (keys(), Decryptor::default());
    d.set(StreamKey(1), Some(&k), Some(SSRC), vec![sensor()])
        .unwrap();
    let mut tx = agent(&k);
    let wire = protect(&mut tx, &rtp(1, SSRC));
    assert_eq!(
        d.open(Kind::Rtp, &wire, sensor()),
        Opened::Decrypted(&rtp(1, SSRC))
    );
    // Finding 2: plain RTP from the sensor's address with its SSRC.
    assert_eq!(
        d.open(Kind::Rtp, &rtp(2, SSRC), sensor()),
        Opened::Refused(SrtpError::Authentication)
    );
    assert_eq!(
        d.open(Kind::Rtp, &wire, sensor()),
        Opened::Refused(SrtpError::Replay)
    );
    // ... or under another SSRC from the sensor's address.
    assert_eq!(
        d.open(Kind::Rtp, &rtp(3, 99), sensor()),
        Opened::Refused(SrtpError::ForeignSsrc(99))
    );
    // Another address and SSRC is some other (plain) stream's business.
    assert_eq!(
        d.open(Kind::Rtp, &rtp(3, 99), IpAddr::from([192, 0, 2, 99])),
        Opened::Plain
    );
    let r = d.take_refusals();
    assert_eq!((r.authentication, r.replay, r.foreign_ssrc), (1, 1, 1));
    assert_eq!(d.take_refusals(), Refusals::default());
}

#[test]
fn a_stream_without_a_signalled_ssrc_binds_the_first_that_authenticates() {
    let (k, mut d) = (keys(), Decryptor::default());
    d.set(StreamKey(1), Some(&k), None, vec![sensor()]).unwrap();
    let forged = rtp(1, 7);
    assert_eq!(
        d.open(Kind::Rtp, &forged, sensor()),
        Opened::Refused(SrtpError::Authentication)
    );
    let mut tx = agent(&k);
    let wire = protect(&mut tx, &rtp(1, SSRC));
    assert!(matches!(
        d.open(Kind::Rtp, &wire, sensor()),
        Opened::Decrypted(_)
    ));
    assert_eq!(
        d.open(Kind::Rtp, &forged, sensor()),
        Opened::Refused(SrtpError::ForeignSsrc(7))
    );
}

#[test]
fn sender_reports_are_checked_and_receiver_reports_sealed() {
    let (k, mut d) = (keys(), Decryptor::default());
    d.set(StreamKey(1), Some(&k), Some(SSRC), vec![sensor()])
        .unwrap();
    // An RR with one report block (RFC 3550 6.4.2), long enough to be
    // taken for SRTCP.
    let mut report = vec![0x81, 201, 0, 7];
    report.extend_from_slice(&SSRC.to_be_bytes());
    report.extend_from_slice(&[0; 24]);
    let mut wire = Vec::new();
    agent(&k).protect_rtcp(&report, &mut wire).unwrap();
    assert_eq!(
        d.open(Kind::Rtcp, &wire, sensor()),
        Opened::Decrypted(&report)
    );
    assert_eq!(
        d.open(Kind::Rtcp, &report, sensor()),
        Opened::Refused(SrtpError::Authentication)
    );

    let rr = [0x80, 201, 0, 1, 0, 0, 0, 5];
    let sealed = d.seal(StreamKey(1), &rr).unwrap().to_vec();
    let mut plain = Vec::new();
    SrtpContext::inbound(&k.send)
        .unwrap()
        .unprotect_rtcp(&sealed, &mut plain)
        .unwrap();
    assert_eq!(plain, rr);
    assert_eq!(d.seal(StreamKey(2), &rr), Some(&rr[..]), "a plain stream");
}

#[test]
fn removed_and_rekeyed_streams_leave_nothing_behind() {
    let (k, mut d) = (keys(), Decryptor::default());
    d.set(StreamKey(1), Some(&k), None, vec![sensor()]).unwrap();
    let mut tx = agent(&k);
    let wire = protect(&mut tx, &rtp(1, SSRC));
    assert!(matches!(
        d.open(Kind::Rtp, &wire, sensor()),
        Opened::Decrypted(_)
    ));
    // New keys: the learnt SSRC stays, the old key no longer opens.
    let k2 = keys();
    d.set(StreamKey(1), Some(&k2), None, vec![sensor()])
        .unwrap();
    let old = protect(&mut tx, &rtp(2, SSRC));
    assert_eq!(
        d.open(Kind::Rtp, &old, sensor()),
        Opened::Refused(SrtpError::Authentication)
    );
    let new = protect(&mut agent(&k2), &rtp(3, SSRC));
    assert!(matches!(
        d.open(Kind::Rtp, &new, sensor()),
        Opened::Decrypted(_)
    ));
    d.remove(StreamKey(1));
    assert!(d.streams.is_empty());
    assert!(d.by_ip.is_empty() && d.by_ssrc.is_empty());
    assert_eq!(d.open(Kind::Rtp, &new, sensor()), Opened::Plain);
}

/// Finding 2 under SRTP: RTP spoofed from the sensor's address, port and
/// SSRC, sent ahead of each genuine packet with the same sequence numbers
/// (which in plain RTP got stored and made the genuine ones duplicates),
/// is dropped; the genuine stream is stored in full.
#[test]
fn spoofed_rtp_is_dropped_and_the_genuine_stream_stored_in_full() {
    use crate::media::demux::{Datagram, Demux, Port};
    use crate::media::fixtures::{SSRC as FIXTURE_SSRC, T0_NS, agreed, desc, setup};
    use crate::media::stream::{Sink, StreamRx};
    use crate::stats::StreamsRegistry;
    use crate::storage::SessionId;
    use sipsensor_protocol::{IdGenerator, NtpTime, RtpSender, sender_report_compound};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    const PACKETS: usize = 10;
    let rtp_from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let rtcp_from: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let k = keys();
    let mut a = agreed(desc(1, 10));
    a.srtp = Some(k.clone());
    let registry = StreamsRegistry::new();
    let now = Instant::now();
    let stream = StreamRx::new(
        setup(&registry, a, Some(SessionId(7)), None),
        crate::media::fixtures::limits(100),
        now,
        &mut IdGenerator::seeded(1),
    );
    let ips = stream.allowed_ips.clone();
    let (mut demux, mut sink) = (Demux::new(4), Sink::default());
    let (key, _) = demux.add(stream, T0_NS, &mut sink).unwrap();
    let mut d = Decryptor::default();
    d.set(key, Some(&k), Some(FIXTURE_SSRC), ips).unwrap();
    let mut deliver = |data: &[u8], from: SocketAddr, port: Port| {
        let kind = match port {
            Port::Rtp => Kind::Rtp,
            Port::Rtcp => Kind::Rtcp,
        };
        let data = match d.open(kind, data, from.ip()) {
            Opened::Plain => data,
            Opened::Decrypted(p) => p,
            Opened::Refused(_) => return,
        };
        let datagram = Datagram {
            data,
            from,
            port,
            truncated: false,
        };
        demux.on_datagram(datagram, now, T0_NS, &mut sink);
    };

    let mut genuine = RtpSender::with_start(FIXTURE_SSRC, 100, 0x1000);
    let mut spoofer = RtpSender::with_start(FIXTURE_SSRC, 100, 0x1000);
    let mut agent_ctx = agent(&k);
    let mut buf = [0u8; 256];
    let sr = genuine.sender_report(0, NtpTime::from_unix(Duration::from_nanos(T0_NS as u64)));
    let n = sender_report_compound(&mut buf, &sr, "sensor@example.net").unwrap();
    let mut wire = Vec::new();
    agent_ctx.protect_rtcp(&buf[..n], &mut wire).unwrap();
    deliver(&wire, rtcp_from, Port::Rtcp);
    // A forged sender report a day ahead, plain, from the sensor's port.
    let forged_sr = spoofer.sender_report(
        0,
        NtpTime::from_unix(Duration::from_nanos(T0_NS as u64 + 86_400_000_000_000)),
    );
    let n = sender_report_compound(&mut buf, &forged_sr, "sensor@example.net").unwrap();
    deliver(&buf[..n], rtcp_from, Port::Rtcp);
    for i in 0..PACKETS {
        let tick = (i * 50) as u64;
        let n = spoofer
            .write_samples(&mut buf, &desc(1, 10), tick, &[9; 10], false)
            .unwrap();
        deliver(&buf[..n], rtp_from, Port::Rtp);
        let n = genuine
            .write_samples(&mut buf, &desc(1, 10), tick, &[1; 10], false)
            .unwrap();
        let mut wire = Vec::new();
        agent_ctx.protect_rtp(&buf[..n], &mut wire).unwrap();
        deliver(&wire, rtp_from, Port::Rtp);
    }
    let readings = &sink.batch.readings;
    assert_eq!(readings.len(), PACKETS * 5, "every genuine instant");
    assert!(
        readings.iter().all(|r| r.raws == [Some(1), Some(1)]),
        "nothing spoofed stored"
    );
    assert!(
        readings
            .iter()
            .all(|r| r.ts_ns < T0_NS + 86_400_000_000_000),
        "the forged clock was not taken"
    );
    let refused = d.take_refusals();
    assert_eq!(refused.authentication, PACKETS as u64 + 1);
}

#[test]
fn retransmission_and_backfill_sources_have_contexts_of_their_own() {
    const RTX: u32 = 0x5e1f_0001;
    const BACKFILL: u32 = 0x0bf0_0001;
    let (k, mut d) = (keys(), Decryptor::default());
    d.set(StreamKey(1), Some(&k), Some(SSRC), vec![sensor()])
        .unwrap();
    let mut live = agent(&k);
    let wire = protect(&mut live, &rtp(1, SSRC));
    let mut rtx = agent(&k);
    let rtx_wire = protect(&mut rtx, &rtp(1, RTX));
    // Before they are announced, the stream's address refuses them.
    assert_eq!(
        d.open(Kind::Rtp, &rtx_wire, sensor()),
        Opened::Refused(SrtpError::ForeignSsrc(RTX))
    );
    d.add_sources(StreamKey(1), Some(&k), &[RTX, BACKFILL])
        .unwrap();
    assert_eq!(
        d.open(Kind::Rtp, &wire, sensor()),
        Opened::Decrypted(&rtp(1, SSRC))
    );
    // The same sequence number under another SSRC is no replay (RFC 3711
    // 3.2.3: a context, and a replay list, per SSRC).
    assert_eq!(
        d.open(Kind::Rtp, &rtx_wire, sensor()),
        Opened::Decrypted(&rtp(1, RTX))
    );
    assert_eq!(
        d.open(Kind::Rtp, &rtx_wire, sensor()),
        Opened::Refused(SrtpError::Replay)
    );
    // A forger without the key cannot use the backfill SSRC either.
    assert_eq!(
        d.open(Kind::Rtp, &rtp(2, BACKFILL), sensor()),
        Opened::Refused(SrtpError::Authentication)
    );
    let mut other = SrtpContext::outbound(&keys().receive).unwrap();
    let forged = protect(&mut other, &rtp(3, BACKFILL));
    assert_eq!(
        d.open(Kind::Rtp, &forged, sensor()),
        Opened::Refused(SrtpError::Authentication)
    );
    d.remove(StreamKey(1));
    assert_eq!(d.open(Kind::Rtp, &rtx_wire, sensor()), Opened::Plain);
}
