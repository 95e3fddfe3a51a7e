use super::*;
use crate::media::demux::{Datagram, Delivery, Demux, Port};
use crate::media::fixtures::{SSRC as FIXTURE_SSRC, T0_NS, agreed, desc, limits, setup};
use crate::media::stream::{Sink, StreamRx};
use crate::stats::StreamsRegistry;
use crate::storage::{SensorId, SessionId};
use sipsensor_protocol::{
    Agreed, IdGenerator, NtpTime, RtpSender, SrtpKey, SrtpSuite, sender_report_compound,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        Opened::Decrypted(StreamKey(1), &rtp(1, SSRC))
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
    // Another SSRC, from the sensor's address or elsewhere, is no SRTP
    // stream's: it goes on unauthenticated, for a plain stream (a plain
    // sensor behind the same NAT) or the demux's refusal.
    assert_eq!(d.open(Kind::Rtp, &rtp(3, 99), sensor()), Opened::Plain);
    assert_eq!(
        d.open(Kind::Rtp, &rtp(3, 99), IpAddr::from([192, 0, 2, 99])),
        Opened::Plain
    );
    let r = d.take_refusals();
    assert_eq!((r.authentication, r.replay, r.foreign_ssrc), (1, 1, 0));
    assert_eq!(d.take_refusals(), Refusals::default());
}

#[test]
fn a_stream_without_a_signalled_ssrc_binds_the_first_that_authenticates() {
    let (k, mut d) = (keys(), Decryptor::default());
    d.set(StreamKey(1), Some(&k), None, vec![sensor()]).unwrap();
    // Not under its key: passed on plain (the demux refuses it for the
    // SRTP stream), and the stream stays unbound.
    let forged = rtp(1, 7);
    assert_eq!(d.open(Kind::Rtp, &forged, sensor()), Opened::Plain);
    let mut tx = agent(&k);
    let wire = protect(&mut tx, &rtp(1, SSRC));
    assert!(matches!(
        d.open(Kind::Rtp, &wire, sensor()),
        Opened::Decrypted(StreamKey(1), _)
    ));
    // Bound now: its SSRC must authenticate, another is not its.
    assert_eq!(
        d.open(Kind::Rtp, &rtp(2, SSRC), sensor()),
        Opened::Refused(SrtpError::Authentication)
    );
    assert_eq!(d.open(Kind::Rtp, &forged, sensor()), Opened::Plain);
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
        Opened::Decrypted(StreamKey(1), &report)
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
        Opened::Decrypted(StreamKey(1), _)
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
        Opened::Decrypted(StreamKey(1), _)
    ));
    d.remove(StreamKey(1));
    assert!(d.streams.is_empty());
    assert!(d.by_ip.is_empty() && d.by_ssrc.is_empty());
    assert_eq!(d.open(Kind::Rtp, &new, sensor()), Opened::Plain);
}

/// The receive thread's path, SRTP then the demux, without its sockets.
struct Pipeline {
    decrypt: Decryptor,
    demux: Demux,
    sink: Sink,
    registry: Arc<StreamsRegistry>,
    ids: IdGenerator,
    now: Instant,
}

impl Pipeline {
    fn new() -> Pipeline {
        Pipeline {
            decrypt: Decryptor::default(),
            demux: Demux::new(8),
            sink: Sink::default(),
            registry: StreamsRegistry::new(),
            ids: IdGenerator::seeded(1),
            now: Instant::now(),
        }
    }

    /// Sensor `sensor`'s stream under `agreed`, set up as
    /// `ReceiveThread::add` does (SRTP when `agreed` has keys).
    fn add(&mut self, sensor: i64, agreed: Agreed) -> StreamKey {
        let (srtp, ssrc) = (agreed.srtp.clone(), agreed.remote_ssrc);
        let mut s = setup(&self.registry, agreed, Some(SessionId(sensor)), None);
        s.sensor = SensorId(sensor);
        let stream = StreamRx::new(s, limits(100), self.now, &mut self.ids);
        let ips = stream.allowed_ips.clone();
        let (key, _) = self.demux.add(stream, T0_NS, &mut self.sink).unwrap();
        self.demux.set_srtp(key, srtp.is_some());
        self.decrypt.set(key, srtp.as_ref(), ssrc, ips).unwrap();
        key
    }

    /// What became of one datagram; `None`: SRTP refused it.
    fn deliver(&mut self, data: &[u8], from: SocketAddr, port: Port) -> Option<Delivery> {
        let datagram = Datagram {
            data,
            from,
            port,
            truncated: false,
            authenticated_for: None,
        };
        let datagram = self.decrypt.open_datagram(datagram)?;
        Some(
            self.demux
                .on_datagram(datagram, self.now, T0_NS, &mut self.sink),
        )
    }

    /// The instants stored for `sensor`, all of whose values are `value`.
    fn stored(&self, sensor: i64, value: i64) -> usize {
        let mine: Vec<_> = self
            .sink
            .batch
            .readings
            .iter()
            .filter(|r| r.sensor == SensorId(sensor))
            .collect();
        assert!(
            mine.iter().all(|r| r.raws == [Some(value), Some(value)]),
            "sensor {sensor}: a value not its own stored"
        );
        mine.len()
    }
}

/// A sensor's packets under `desc(1, 10)` (SR + SDES pinning tick 0 to
/// T0), SRTP-protected when it has a key.
struct Sensor {
    tx: RtpSender,
    srtp: Option<SrtpContext>,
    tick: u64,
    value: i32,
}

impl Sensor {
    fn new(ssrc: u32, srtp: Option<&SrtpKeys>, value: i32) -> Sensor {
        Sensor {
            tx: RtpSender::with_start(ssrc, 100, 0x1000),
            srtp: srtp.map(agent),
            tick: 0,
            value,
        }
    }

    fn next(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let n = self
            .tx
            .write_samples(&mut buf, &desc(1, 10), self.tick, &[self.value; 10], false)
            .unwrap();
        self.tick += 50;
        self.seal(&buf[..n], false)
    }

    fn sender_report_at(&mut self, ns: i64) -> Vec<u8> {
        let sr = self
            .tx
            .sender_report(0, NtpTime::from_unix(Duration::from_nanos(ns as u64)));
        let mut buf = [0u8; 256];
        let n = sender_report_compound(&mut buf, &sr, "sensor@example.net").unwrap();
        self.seal(&buf[..n], true)
    }

    fn sender_report(&mut self) -> Vec<u8> {
        self.sender_report_at(T0_NS)
    }

    fn seal(&mut self, packet: &[u8], rtcp: bool) -> Vec<u8> {
        let Some(ctx) = &mut self.srtp else {
            return packet.to_vec();
        };
        let mut out = Vec::new();
        match rtcp {
            true => ctx.protect_rtcp(packet, &mut out).unwrap(),
            false => ctx.protect_rtp(packet, &mut out).unwrap(),
        }
        out
    }
}

/// Finding 2 under SRTP: RTP spoofed from the sensor's address, port and
/// SSRC, sent ahead of each genuine packet with the same sequence numbers
/// (which in plain RTP got stored and made the genuine ones duplicates),
/// is dropped; the genuine stream is stored in full.
#[test]
fn spoofed_rtp_is_dropped_and_the_genuine_stream_stored_in_full() {
    const PACKETS: usize = 10;
    let rtp_from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let rtcp_from: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let k = keys();
    let mut a = agreed(desc(1, 10));
    a.srtp = Some(k.clone());
    let mut p = Pipeline::new();
    p.add(3, a);
    let mut genuine = Sensor::new(FIXTURE_SSRC, Some(&k), 1);
    let mut spoofer = Sensor::new(FIXTURE_SSRC, None, 9);
    let sr = genuine.sender_report();
    p.deliver(&sr, rtcp_from, Port::Rtcp);
    // A forged sender report a day ahead, plain, from the sensor's port.
    let forged_sr = spoofer.sender_report_at(T0_NS + 86_400_000_000_000);
    p.deliver(&forged_sr, rtcp_from, Port::Rtcp);
    for _ in 0..PACKETS {
        p.deliver(&spoofer.next(), rtp_from, Port::Rtp);
        p.deliver(&genuine.next(), rtp_from, Port::Rtp);
    }
    assert_eq!(p.stored(3, 1), PACKETS * 5, "every genuine instant");
    assert!(
        p.sink
            .batch
            .readings
            .iter()
            .all(|r| r.ts_ns < T0_NS + 86_400_000_000_000),
        "the forged clock was not taken"
    );
    let refused = p.decrypt.take_refusals();
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
    // Before they are announced, they go on as plain (the demux refuses
    // a plain packet that names an SRTP stream).
    assert_eq!(d.open(Kind::Rtp, &rtx_wire, sensor()), Opened::Plain);
    d.add_sources(StreamKey(1), Some(&k), &[RTX, BACKFILL])
        .unwrap();
    assert_eq!(
        d.open(Kind::Rtp, &wire, sensor()),
        Opened::Decrypted(StreamKey(1), &rtp(1, SSRC))
    );
    // The same sequence number under another SSRC is no replay (RFC 3711
    // 3.2.3: a context, and a replay list, per SSRC).
    assert_eq!(
        d.open(Kind::Rtp, &rtx_wire, sensor()),
        Opened::Decrypted(StreamKey(1), &rtp(1, RTX))
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

mod plain_beside;
