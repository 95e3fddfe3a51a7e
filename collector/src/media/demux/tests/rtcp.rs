//! Sender reports as an attacker would send them (issue 14, finding 2):
//! from another port of the sensor's address, with another SSRC, and with
//! a clock that would move the stored timeline.

use super::*;

const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SECOND;
/// Another port of the sensor's address.
const OTHER_PORT: &str = "127.0.0.1:40003";

fn not_the_rtcp_address(from: &str) -> Delivery {
    refused_report(
        Reject::WrongAddress,
        from,
        "RTCP sender report from SSRC 0x1a2b3c4d: not the session's RTCP address",
    )
}

fn sample_times(r: &Rig) -> Vec<i64> {
    r.sink.batch.readings.iter().map(|x| x.ts_ns).collect()
}

#[test]
fn a_sender_report_from_another_port_of_the_sensors_address_is_refused() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    // A plausible clock, so only the address can refuse it.
    let forged = s.sender_report_at(0, T0_NS + SECOND);
    assert_eq!(
        r.rtcp(&forged, OTHER_PORT),
        not_the_rtcp_address(OTHER_PORT)
    );
    assert!(r.sink.batch.readings.is_empty(), "nothing was timed by it");
    assert_eq!(r.rtcp(&s.sender_report(), SDP_RTCP), taken(key));
    assert_eq!(sample_times(&r)[0], T0_NS);
    assert_eq!(
        r.rtcp(&forged, OTHER_PORT),
        not_the_rtcp_address(OTHER_PORT)
    );
    // Another SSRC from the right address is nobody's.
    let stranger = Sensor::new(0x99).sender_report();
    assert_eq!(
        r.rtcp(&stranger, SDP_RTCP),
        refused_report(
            Reject::UnknownSource,
            SDP_RTCP,
            "RTCP sender report from SSRC 0x00000099"
        )
    );
    assert_eq!(r.rtcp(&s.sender_report(), SDP_RTCP), taken(key));
}

#[test]
fn behind_a_translator_rtcp_latches_to_the_address_rtp_came_from() {
    let mut r = Rig::new(10);
    let (key, _) = r
        .add_with(agreed(desc(1, 10)), Some("192.0.2.7".parse().unwrap()))
        .unwrap();
    let mut s = Sensor::new(SSRC);
    // The SDP address is private and RTP has not shown the public one yet.
    assert_eq!(
        r.rtcp(&s.sender_report(), "192.0.2.7:61001"),
        not_the_rtcp_address("192.0.2.7:61001")
    );
    assert_eq!(r.rtp(&s.next(), "192.0.2.7:61000"), to(key, Outcome::Held));
    assert_eq!(r.rtcp(&s.sender_report(), "192.0.2.7:61001"), taken(key));
    // Latched: another port of that address is refused from now on.
    assert_eq!(
        r.rtcp(&s.sender_report(), "192.0.2.7:62000"),
        not_the_rtcp_address("192.0.2.7:62000")
    );
    assert_eq!(r.rtcp(&s.sender_report(), "192.0.2.7:61001"), taken(key));
}

#[test]
fn rtp_of_the_stream_from_another_port_than_it_latched_to_is_refused() {
    let mut r = Rig::new(10);
    let key = r.add(unsignalled(desc(1, 10), SDP_RTP));
    let mut s = Sensor::new(0x5151);
    r.rtp(&s.next(), SDP_RTP);
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Held));
    assert_eq!(
        r.rtp(&s.next(), OTHER_PORT),
        Delivery::Rejected(refused(Reject::WrongAddress, OTHER_PORT, "SSRC 0x00005151"))
    );
}

/// The attack: one forged SR a day ahead, from the sensor's own
/// RTCP address (spoofed), stored the next 30 samples 86,400 s ahead.
#[test]
fn a_sender_report_a_day_ahead_re_times_no_sample() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    assert_eq!(r.rtcp(&s.sender_report(), SDP_RTCP), taken(key));
    for _ in 0..6 {
        assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Stored));
    }
    // The next tick, a day later than the sensor's clock says (100 Hz):
    // 3 s after T0, where the rig's wall clock stays.
    let forged = s.sender_report_at(s.tick, T0_NS + DAY + s.tick as i64 * SECOND / 100);
    assert_eq!(
        r.rtcp(&forged, SDP_RTCP),
        refused_report(
            Reject::ClockOffset,
            SDP_RTCP,
            "RTCP sender report from SSRC 0x1a2b3c4d (sip:s1@example.net): its clock is \
             +86403.000 s from the collector's, more than media.max_clock_offset_s allows"
        )
    );
    for _ in 0..6 {
        assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Stored));
    }
    let times = sample_times(&r);
    assert_eq!(times.len(), 60, "12 packets of 5 instants");
    // Every instant at its tick on the genuine clock: 10 ms apart from T0.
    let expected: Vec<i64> = (0..60).map(|k| T0_NS + k * SECOND / 10).collect();
    assert_eq!(times, expected);
}

#[test]
fn a_sender_report_whose_clock_jumps_is_refused_and_drift_is_taken() {
    let mut r = Rig::new(10);
    let key = r.add(agreed(desc(1, 10)));
    let mut s = Sensor::new(SSRC);
    assert_eq!(r.rtcp(&s.sender_report(), SDP_RTCP), taken(key));
    for _ in 0..6 {
        r.rtp(&s.next(), SDP_RTP);
    }
    // Tick 300 is T0 + 3 s: 30 s is within a minute of our clock (T0) but
    // 27 s from the sensor's own pairing.
    let jumped = s.sender_report_at(300, T0_NS + 30 * SECOND);
    assert_eq!(
        r.rtcp(&jumped, SDP_RTCP),
        refused_report(
            Reject::ClockJump,
            SDP_RTCP,
            "RTCP sender report from SSRC 0x1a2b3c4d (sip:s1@example.net): its clock jumped \
             +27.000 s from the previous report's, more than media.max_clock_step_ms allows"
        )
    );
    let drifted = s.sender_report_at(300, T0_NS + 3 * SECOND + SECOND / 2);
    assert_eq!(r.rtcp(&drifted, SDP_RTCP), taken(key));
    assert_eq!(r.rtp(&s.next(), SDP_RTP), to(key, Outcome::Stored));
    let last = *sample_times(&r).last().unwrap();
    // Tick 340 on the new pairing (tick 300 = T0 + 3.5 s).
    assert_eq!(last, T0_NS + 3 * SECOND + SECOND / 2 + 400 * SECOND / 1000);
}
