//! SRTP streams take only what their own key authenticated (the decryptor
//! marks each datagram), plain streams only what came plain: a plain
//! packet naming an SRTP stream is refused however it names it, and plain
//! streams from the same address are not disturbed.

use super::*;

/// The plain stream beside the SRTP one, on the same address.
const BESIDE: &str = "127.0.0.1:40010";

impl Rig {
    /// `data` as the decryptor hands it on: authenticated for `by` (and
    /// decrypted), or plain when `None`.
    fn opened(&mut self, data: &[u8], from: &str, port: Port, by: Option<StreamKey>) -> Delivery {
        let d = Datagram {
            data,
            from: addr(from),
            port,
            truncated: false,
            authenticated_for: by,
        };
        self.demux.on_datagram(d, self.now, T0_NS, &mut self.sink)
    }

    fn add_srtp(&mut self, agreed: Agreed) -> StreamKey {
        let key = self.add(agreed);
        self.demux.set_srtp(key, true);
        key
    }
}

fn unauthenticated(from: &str, ssrc: u32, latched: bool) -> Delivery {
    let detail = match latched {
        true => {
            format!("SSRC {ssrc:#010x} is an SRTP session's, and this packet is not under its key")
        }
        false => format!("SSRC {ssrc:#010x}"),
    };
    Delivery::Rejected(refused(Reject::Unauthenticated, from, &detail))
}

#[test]
fn a_plain_packet_with_an_srtp_streams_ssrc_is_refused_until_a_re_invite_to_plain() {
    let mut r = Rig::new(10);
    let key = r.add_srtp(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    assert_eq!(
        r.opened(&s.next(), SDP_RTP, Port::Rtp, None),
        unauthenticated(SDP_RTP, SSRC, false)
    );
    assert_eq!(
        r.opened(&s.next(), SDP_RTP, Port::Rtp, Some(key)),
        to(key, Outcome::Held)
    );
    assert_eq!(
        r.opened(&s.next(), SDP_RTP, Port::Rtp, None),
        unauthenticated(SDP_RTP, SSRC, true)
    );
    // Authenticated, but under another stream's key.
    assert_eq!(
        r.opened(&s.next(), SDP_RTP, Port::Rtp, Some(StreamKey(99))),
        unauthenticated(SDP_RTP, SSRC, true)
    );
    assert_eq!(r.sink.batch.readings, []);
    // A re-INVITE to plain RTP: plain packets are its again, SRTP is not.
    r.demux.set_srtp(key, false);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    assert_eq!(
        r.opened(&s.next(), SDP_RTP, Port::Rtp, Some(key)),
        unauthenticated(SDP_RTP, SSRC, true),
        "a plain stream takes no SRTP"
    );
}

#[test]
fn a_plain_packet_never_latches_an_srtp_stream_without_a_signalled_ssrc() {
    let mut r = Rig::new(10);
    let secure = r.add_srtp(unsignalled(desc(1, 10), SDP_RTP));
    let mut spoofer = Sensor::new(0x5bad);
    assert_eq!(
        r.opened(&spoofer.next(), SDP_RTP, Port::Rtp, None),
        unauthenticated(SDP_RTP, 0x5bad, false)
    );
    // A plain stream beside it on the same address: plain packets, even
    // from the SRTP stream's exact SDP port, are the plain stream's.
    let plain = r.add(unsignalled(desc(1, 10), BESIDE));
    let probation = Outcome::Dropped(Reject::BadSequence);
    let mut c = Sensor::new(0xc);
    assert_eq!(
        r.opened(&c.next(), SDP_RTP, Port::Rtp, None),
        to(plain, probation)
    );
    let mut s = Sensor::new(SSRC);
    assert_eq!(
        r.opened(&s.next(), BESIDE, Port::Rtp, Some(secure)),
        to(secure, probation)
    );
}

#[test]
fn a_plain_sender_report_naming_an_srtp_stream_is_refused_its_own_taken() {
    let mut r = Rig::new(10);
    let key = r.add_srtp(agreed(desc(1, 10)));
    let s = Sensor::new(SSRC);
    let what = "RTCP sender report from SSRC 0x1a2b3c4d: an SRTP session's, not under its key";
    assert_eq!(
        r.opened(&s.sender_report(), SDP_RTCP, Port::Rtcp, None),
        refused_report(Reject::Unauthenticated, SDP_RTCP, what)
    );
    assert!(r.sink.batch.readings.is_empty());
    assert_eq!(
        r.opened(&s.sender_report(), SDP_RTCP, Port::Rtcp, Some(key)),
        taken(key)
    );
    assert_eq!(
        r.opened(&s.sender_report(), SDP_RTCP, Port::Rtcp, None),
        refused_report(Reject::Unauthenticated, SDP_RTCP, what)
    );
}
