//! The RTX and backfill SSRCs of a stream (docs/protocol.md 11.5, 11.6):
//! its own from the address its live source latched to, nobody else's.

use super::*;
use crate::media::fixtures::{BACKFILL_SSRC, RTX_SSRC, StampedAgent, recovery};

impl Rig {
    /// A stream that agreed all of section 11, `agreed` otherwise.
    fn add_recovering(&mut self, agreed: Agreed) -> StreamKey {
        self.add_agreeing(agreed, recovery())
    }

    fn add_agreeing(&mut self, agreed: Agreed, agreement: AgreedRecovery) -> StreamKey {
        let mut s = setup(&self.registry, agreed, Some(SessionId(7)), None);
        s.recovery = agreement;
        let stream = StreamRx::new(s, limits(100), self.now, &mut self.ids);
        let (key, replayed) = self.demux.add(stream, T0_NS, &mut self.sink).unwrap();
        assert_eq!(replayed, []);
        key
    }
}

fn stored(key: StreamKey) -> Delivery {
    to(key, Outcome::Stored)
}

#[test]
fn retransmission_and_backfill_ssrcs_are_the_streams_from_its_latched_address() {
    let mut r = Rig::new(10);
    let key = r.add_recovering(agreed(desc(1, 10)));
    let mut a = StampedAgent::new(10);
    let p0 = a.samples(0);
    let lost = a.samples(50);
    let p2 = a.samples(100);
    let backfill = a.backfill(0);
    let rtx = a.rtx_of(&lost);
    // Before the live source latched, nothing else can.
    assert_eq!(
        r.rtp(&backfill, SDP_RTP),
        unknown_ssrc(SDP_RTP, BACKFILL_SSRC)
    );
    assert_eq!(r.rtp(&p0, SDP_RTP), stored(key));
    assert_eq!(r.rtp(&p2, SDP_RTP), stored(key));
    // A stranger (or another port of the sensor's address) cannot inject
    // under the RTX or backfill SSRC.
    for from in [STRANGER, "127.0.0.1:40002"] {
        assert_eq!(
            r.rtp(&rtx, from),
            Delivery::Rejected(refused(
                Reject::WrongAddress,
                from,
                &format!("SSRC {RTX_SSRC:#010x}")
            ))
        );
        assert!(matches!(
            r.rtp(&backfill, from),
            Delivery::Rejected(Rejected {
                reason: Reject::WrongAddress,
                ..
            })
        ));
    }
    let before = r.sink.batch.readings.len();
    assert_eq!(r.rtp(&rtx, SDP_RTP), stored(key));
    assert_eq!(r.rtp(&backfill, SDP_RTP), stored(key));
    assert_eq!(r.sink.batch.readings.len(), before + 10);
    // Gone with its stream.
    r.demux.remove(key);
    assert_eq!(
        r.rtp(&backfill, SDP_RTP),
        unknown_ssrc(SDP_RTP, BACKFILL_SSRC)
    );
}

#[test]
fn a_backfill_ssrc_never_latches_a_stream_without_a_signalled_one() {
    let mut r = Rig::new(10);
    let key = r.add_recovering(unsignalled(desc(1, 10), SDP_RTP));
    let mut a = StampedAgent::new(10);
    let backfill = a.backfill(0);
    assert_eq!(
        r.rtp(&backfill, SDP_RTP),
        unknown_ssrc(SDP_RTP, BACKFILL_SSRC)
    );
    // The live source still latches it (RFC 3550 A.1 probation first).
    let p0 = a.samples(0);
    let p1 = a.samples(50);
    r.rtp(&p0, SDP_RTP);
    assert_eq!(r.rtp(&p1, SDP_RTP), stored(key));
    assert_eq!(r.rtp(&backfill, SDP_RTP), stored(key));
}

#[test]
fn sender_reports_of_the_extra_sources_are_ignored_not_refused() {
    let mut r = Rig::new(10);
    r.add_recovering(agreed(desc(1, 10)));
    let rtx = Sensor::new(RTX_SSRC);
    assert_eq!(
        r.rtcp(&rtx.sender_report(), SDP_RTCP),
        Delivery::Rtcp(vec![])
    );
}

#[test]
fn a_reinvite_routes_the_rtx_and_backfill_ssrcs_it_agrees_and_no_longer_those_it_drops() {
    let mut r = Rig::new(10);
    let instants_only = AgreedRecovery {
        instant_id: Some(1),
        ..AgreedRecovery::default()
    };
    let key = r.add_agreeing(agreed(desc(1, 10)), instants_only.clone());
    let mut a = StampedAgent::new(10);
    let p0 = a.samples(0);
    let p1 = a.samples(50);
    r.rtp(&p0, SDP_RTP);
    assert_eq!(r.rtp(&p1, SDP_RTP), stored(key));
    let backfill = a.backfill(0);
    assert_eq!(
        r.rtp(&backfill, SDP_RTP),
        unknown_ssrc(SDP_RTP, BACKFILL_SSRC)
    );
    let reinvite = |r: &mut Rig, agreement: AgreedRecovery| {
        let (now, sink) = (r.now, &mut r.sink);
        assert!(r.demux.change_stream(key, |s| {
            s.update(agreed(desc(1, 10)), &agreement, SessionId(7), now, sink)
        }));
    };
    reinvite(&mut r, recovery());
    assert_eq!(r.rtp(&a.backfill(100), SDP_RTP), stored(key));
    // Latched from its address; a stranger still cannot use it.
    assert!(matches!(
        r.rtp(&a.backfill(200), STRANGER),
        Delivery::Rejected(Rejected {
            reason: Reject::WrongAddress,
            ..
        })
    ));
    reinvite(&mut r, instants_only);
    assert_eq!(
        r.rtp(&a.backfill(300), SDP_RTP),
        unknown_ssrc(SDP_RTP, BACKFILL_SSRC)
    );
    assert!(!r.demux.change_stream(StreamKey(999), |_| {}));
}
