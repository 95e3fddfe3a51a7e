//! `SSBF` messages (docs/protocol.md 11.4) as an attacker would send them:
//! only those in a compound whose sender report the stream took are its
//! agent's; a short one is malformed; other APP packets are ignored.

use super::*;
use sipsensor_protocol::{BackfillMessage, CompoundWriter, RtcpApp};

fn expired() -> BackfillMessage {
    BackfillMessage::Expired {
        media_ssrc: SSRC,
        after_ns: 10,
        before_ns: 20,
    }
}

/// SR + SDES + the APP packets, as the agent sends them.
fn with_apps(s: &Sensor, apps: &[RtcpApp]) -> Vec<u8> {
    let sr =
        s.tx.sender_report(0, NtpTime::from_unix(Duration::from_nanos(T0_NS as u64)));
    let mut buf = [0u8; 256];
    let mut w = CompoundWriter::new(&mut buf);
    w.sender_report(&sr).unwrap();
    w.sdes(SSRC, "sensor@example.net", &[]).unwrap();
    for a in apps {
        w.app(a).unwrap();
    }
    let n = w.finish().unwrap();
    buf[..n].to_vec()
}

#[test]
fn a_message_with_the_streams_sender_report_is_its_agents() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let s = Sensor::new(SSRC);
    let mut other_name = expired().to_app(SSRC);
    other_name.name = *b"XXXX";
    let compound = with_apps(&s, &[expired().to_app(SSRC), other_name]);
    assert_eq!(
        r.rtcp(&compound, SDP_RTCP),
        Delivery::Rtcp(vec![
            Report::Taken(key),
            Report::Backfill {
                key,
                message: expired()
            }
        ])
    );
}

#[test]
fn a_message_without_the_streams_sender_report_is_nobodys() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let s = Sensor::new(SSRC);
    assert_eq!(r.rtcp(&s.sender_report(), SDP_RTCP), taken(key));
    // The stream's SSRC, the right range, but from another port: the SR
    // is refused, and with it the message.
    let compound = with_apps(&s, &[expired().to_app(SSRC)]);
    assert_eq!(
        r.rtcp(&compound, "127.0.0.1:40003"),
        Delivery::Rtcp(vec![
            Report::Refused(refused(
                Reject::WrongAddress,
                "127.0.0.1:40003",
                "RTCP sender report from SSRC 0x1a2b3c4d: not the session's RTCP address"
            )),
            Report::Refused(refused(
                Reject::BackfillRange,
                "127.0.0.1:40003",
                "SSBF from SSRC 0x1a2b3c4d without a sender report of its stream"
            ))
        ])
    );
    // A stranger's own SR binds it to nothing either.
    let stranger = Sensor::new(0x99);
    let compound = with_apps(&stranger, &[expired().to_app(0x99)]);
    let Delivery::Rtcp(reports) = r.rtcp(&compound, SDP_RTCP) else {
        panic!()
    };
    assert!(
        reports.iter().all(|r| matches!(r, Report::Refused(_))),
        "{reports:?}"
    );
}

#[test]
fn a_short_message_is_malformed() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let s = Sensor::new(SSRC);
    let mut short = expired().to_app(SSRC);
    short.data.truncate(12);
    let compound = with_apps(&s, &[short]);
    assert_eq!(
        r.rtcp(&compound, SDP_RTCP),
        Delivery::Rtcp(vec![
            Report::Taken(key),
            Report::Refused(refused(
                Reject::MalformedRtcp,
                SDP_RTCP,
                "SSBF subtype 1: 12 data bytes, 20 needed"
            ))
        ])
    );
}
