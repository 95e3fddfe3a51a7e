//! A plain stream beside an SRTP stream from one address (a plain and an
//! SRTP sensor behind one NAT, a fleet in migration): both are stored in
//! full, and plain RTP and RTCP spoofed from that address, under a new SSRC
//! or the SRTP stream's, before and after it latched, store nothing.

use super::*;
use crate::media::demux::Report;
use sipsensor_protocol::RemoteMedia;

const PACKETS: usize = 6;
const PLAIN_SSRC: u32 = 0x9a1a_0002;
const SPOOF_SSRC: u32 = 0x5bad_0003;
const DAY_NS: i64 = 86_400_000_000_000;
/// The SRTP sensor (the fixtures' addresses) and the plain one, one NAT.
const SRTP_RTP: &str = "127.0.0.1:40000";
const SRTP_RTCP: &str = "127.0.0.1:40001";
const PLAIN_RTP: &str = "127.0.0.1:40010";
const PLAIN_RTCP: &str = "127.0.0.1:40011";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The SRTP sensor's stream, its SSRC signalled or not.
fn srtp_agreed(k: &SrtpKeys, signalled: bool) -> Agreed {
    let mut a = agreed(desc(1, 10));
    a.srtp = Some(k.clone());
    if !signalled {
        a.remote_ssrc = None;
    }
    a
}

fn plain_agreed() -> Agreed {
    Agreed {
        remote: Some(RemoteMedia {
            rtp: addr(PLAIN_RTP),
            rtcp: addr(PLAIN_RTCP),
        }),
        remote_ssrc: Some(PLAIN_SSRC),
        ..agreed(desc(1, 10))
    }
}

/// The SRTP sensor (sensor 3, values 1) and the plain one (sensor 4,
/// values 2) set up side by side.
struct Beside {
    p: Pipeline,
    secure: StreamKey,
    plain: StreamKey,
    s: Sensor,
    c: Sensor,
}

fn beside(signalled: bool) -> Beside {
    let k = keys();
    let mut p = Pipeline::new();
    Beside {
        secure: p.add(3, srtp_agreed(&k, signalled)),
        plain: p.add(4, plain_agreed()),
        p,
        s: Sensor::new(FIXTURE_SSRC, Some(&k), 1),
        c: Sensor::new(PLAIN_SSRC, None, 2),
    }
}

/// Whether SRTP (`None`) or the demux refused a datagram, nothing taken.
fn refused(d: &Option<Delivery>) -> bool {
    match d {
        None | Some(Delivery::Rejected(_)) => true,
        Some(Delivery::Rtcp(reports)) => reports.iter().all(|r| matches!(r, Report::Refused(_))),
        Some(_) => false,
    }
}

/// Fails before the fix: the SRTP layer claimed every packet from an
/// address with an SRTP stream, so the plain sensor's were all dropped as
/// "from another SSRC".
#[test]
fn a_plain_and_an_srtp_stream_from_one_address_are_both_stored_in_full() {
    let Beside {
        mut p,
        secure,
        plain,
        mut s,
        mut c,
    } = beside(true);
    assert_eq!(
        p.deliver(&s.sender_report(), addr(SRTP_RTCP), Port::Rtcp),
        Some(Delivery::Rtcp(vec![Report::Taken(secure)]))
    );
    assert_eq!(
        p.deliver(&c.sender_report(), addr(PLAIN_RTCP), Port::Rtcp),
        Some(Delivery::Rtcp(vec![Report::Taken(plain)])),
        "plain RTCP for the plain stream"
    );
    for _ in 0..PACKETS {
        p.deliver(&s.next(), addr(SRTP_RTP), Port::Rtp);
        p.deliver(&c.next(), addr(PLAIN_RTP), Port::Rtp);
    }
    assert_eq!(p.stored(3, 1), PACKETS * 5);
    assert_eq!(p.stored(4, 2), PACKETS * 5);
    assert_eq!(p.decrypt.take_refusals(), Refusals::default());
}

/// Plain RTP from the SRTP sensor's very address and port, under (a) a new
/// SSRC and (b) the SRTP stream's, before and after the stream latched,
/// with its SSRC signalled or not: each is refused (by SRTP or by the
/// demux), nothing of it is stored, and both genuine streams are whole.
#[test]
fn plain_rtp_spoofed_from_the_srtp_sensors_address_stores_nothing() {
    for signalled in [true, false] {
        let Beside {
            mut p,
            mut s,
            mut c,
            ..
        } = beside(signalled);
        let mut new_ssrc = Sensor::new(SPOOF_SSRC, None, 9);
        let mut its_ssrc = Sensor::new(FIXTURE_SSRC, None, 9);
        let mut spoof = |p: &mut Pipeline, latched: bool| {
            for spoofer in [&mut new_ssrc, &mut its_ssrc] {
                let r = p.deliver(&spoofer.next(), addr(SRTP_RTP), Port::Rtp);
                assert!(
                    refused(&r),
                    "signalled {signalled}, latched {latched}: {r:?}"
                );
            }
        };
        spoof(&mut p, false);
        // The genuine streams latch (unsignalled: the first packet starts
        // RFC 3550 A.1 probation), then their reports time them.
        p.deliver(&s.next(), addr(SRTP_RTP), Port::Rtp);
        p.deliver(&c.next(), addr(PLAIN_RTP), Port::Rtp);
        p.deliver(&s.sender_report(), addr(SRTP_RTCP), Port::Rtcp);
        p.deliver(&c.sender_report(), addr(PLAIN_RTCP), Port::Rtcp);
        spoof(&mut p, true);
        for _ in 1..PACKETS {
            p.deliver(&s.next(), addr(SRTP_RTP), Port::Rtp);
            p.deliver(&c.next(), addr(PLAIN_RTP), Port::Rtp);
            spoof(&mut p, true);
        }
        let probation = usize::from(!signalled);
        assert_eq!(p.stored(3, 1), (PACKETS - probation) * 5, "{signalled}");
        assert_eq!(p.stored(4, 2), PACKETS * 5, "{signalled}");
    }
}

/// Plain sender reports spoofed from the SRTP sensor's RTCP address and
/// naming its SSRC, a day ahead, before and after the stream latched:
/// refused, and no sample is timed by them.
#[test]
fn a_plain_sender_report_naming_the_srtp_stream_is_refused() {
    for signalled in [true, false] {
        let Beside { mut p, mut s, .. } = beside(signalled);
        let mut forger = Sensor::new(FIXTURE_SSRC, None, 9);
        let mut forge = |p: &mut Pipeline| {
            let sr = forger.sender_report_at(T0_NS + DAY_NS);
            for from in [SRTP_RTCP, SRTP_RTP, PLAIN_RTCP] {
                let r = p.deliver(&sr, addr(from), Port::Rtcp);
                assert!(refused(&r), "signalled {signalled}: {r:?} from {from}");
            }
        };
        forge(&mut p);
        for _ in 0..PACKETS {
            p.deliver(&s.next(), addr(SRTP_RTP), Port::Rtp);
        }
        forge(&mut p);
        p.deliver(&s.sender_report(), addr(SRTP_RTCP), Port::Rtcp);
        forge(&mut p);
        p.deliver(&s.next(), addr(SRTP_RTP), Port::Rtp);
        let probation = usize::from(!signalled);
        assert_eq!(p.stored(3, 1), (PACKETS + 1 - probation) * 5);
        assert!(
            p.sink
                .batch
                .readings
                .iter()
                .all(|r| r.ts_ns < T0_NS + DAY_NS),
            "signalled {signalled}: a forged clock was taken"
        );
    }
}
