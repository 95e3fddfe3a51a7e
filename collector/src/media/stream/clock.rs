//! Whether a sender report may time a stream's samples.
//!
//! An SR pairs an RTP timestamp with the sender's wall clock (RFC 3550
//! 6.4.1) and every later sample is timed from that pair, so one forged SR
//! would move the whole stream's timeline (issue 14: a day ahead). The
//! agent pins each SR to a tick of one steady clock (docs/protocol.md 6),
//! so consecutive reports agree to within drift; a report is refused when
//!
//! - its NTP time is further than `max_offset` from the collector's own
//!   clock (the first report has nothing else to be checked against), or
//! - its pairing moves the timeline by more than `max_step` from the
//!   previous accepted report's, unless it lands within `max_step` of the
//!   collector's clock and its RTP timestamp advanced from the previous
//!   report's as the collector's own clock did (within `max_step`): an
//!   agent whose clock NTP has just stepped sends such a report
//!   (docs/protocol.md 6). Without the second condition a report saying
//!   "now" for an RTP timestamp days away would move every sample by days.

use sipsensor_protocol::{SenderReport, SrMapping};
use std::time::{Duration, UNIX_EPOCH};

/// How far a sender report's clock may be from ours and from the previous
/// report's (`media.max_clock_offset_s`, `media.max_clock_step_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockBounds {
    pub max_step: Duration,
    pub max_offset: Duration,
}

/// Why a sender report does not time the stream. Nanosecond figures are
/// the report's time minus the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockRefusal {
    #[error(
        "its clock is {} s from the collector's, more than media.max_clock_offset_s allows",
        seconds(*offset_ns)
    )]
    FarFromOurs { offset_ns: i128 },
    #[error(
        "its clock jumped {} s from the previous report's, more than media.max_clock_step_ms allows",
        seconds(*step_ns)
    )]
    Jumped { step_ns: i128 },
}

fn seconds(ns: i128) -> String {
    format!("{:+.3}", ns as f64 / 1e9)
}

fn ns_since_epoch(t: std::time::SystemTime) -> Option<i128> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as i128)
}

impl ClockBounds {
    /// Checks `sr` against the stream's current pairing (`previous`, with
    /// the time since its report arrived; `None` before the first accepted
    /// report) and the collector's clock `now_ns`.
    pub fn check(
        &self,
        sr: &SenderReport,
        previous: Option<(&SrMapping, Duration)>,
        now_ns: i64,
    ) -> Result<(), ClockRefusal> {
        let reported = sr.ntp.to_unix().as_nanos() as i128;
        let offset_ns = reported - i128::from(now_ns);
        if offset_ns.unsigned_abs() > self.max_offset.as_nanos() {
            return Err(ClockRefusal::FarFromOurs { offset_ns });
        }
        let Some((previous, since)) = previous else {
            return Ok(());
        };
        // Where the previous pairing puts this report's RTP timestamp; a
        // timestamp it cannot place (before 1970) is measured from its NTP.
        let expected = previous
            .system_time_of(sr.rtp_timestamp)
            .and_then(ns_since_epoch)
            .unwrap_or(previous.ntp.to_unix().as_nanos() as i128);
        let step_ns = reported - expected;
        let within = |ns: i128| ns.unsigned_abs() <= self.max_step.as_nanos();
        // RTP ticks since the previous report, against our own elapsed time.
        let ticks = i128::from(sr.rtp_timestamp.wrapping_sub(previous.rtp_timestamp) as i32);
        let rtp_elapsed_ns = ticks * 1_000_000_000 / i128::from(previous.clock_rate.max(1));
        let rtp_keeps_time = within(rtp_elapsed_ns - since.as_nanos() as i128);
        if within(step_ns) || (within(offset_ns) && rtp_keeps_time) {
            Ok(())
        } else {
            Err(ClockRefusal::Jumped { step_ns })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::NtpTime;

    /// 2026-01-01T00:00:00Z in ns.
    const T0: i64 = 1_767_225_600_000_000_000;
    const SECOND: i64 = 1_000_000_000;
    const BOUNDS: ClockBounds = ClockBounds {
        max_step: Duration::from_secs(2),
        max_offset: Duration::from_secs(60),
    };

    /// An SR at `rtp` (100 Hz clock) saying `ns`.
    fn sr(rtp: u32, ns: i64) -> SenderReport {
        SenderReport {
            ssrc: 1,
            ntp: NtpTime::from_unix(Duration::from_nanos(ns as u64)),
            rtp_timestamp: rtp,
            packet_count: 0,
            octet_count: 0,
            reports: vec![],
        }
    }

    fn mapping(s: &SenderReport) -> SrMapping {
        SrMapping {
            ntp: s.ntp,
            rtp_timestamp: s.rtp_timestamp,
            clock_rate: 100,
        }
    }

    #[test]
    fn the_first_report_is_checked_against_our_clock() {
        assert_eq!(BOUNDS.check(&sr(0, T0), None, T0 + 59 * SECOND), Ok(()));
        assert_eq!(BOUNDS.check(&sr(0, T0 + 60 * SECOND), None, T0), Ok(()));
        // The forged report: a day ahead.
        let day = 86_400 * SECOND;
        assert_eq!(
            BOUNDS.check(&sr(0, T0 + day), None, T0),
            Err(ClockRefusal::FarFromOurs {
                offset_ns: i128::from(day)
            })
        );
        // A board that booted in 1970 and has no NTP yet.
        assert!(matches!(
            BOUNDS.check(&sr(0, SECOND), None, T0),
            Err(ClockRefusal::FarFromOurs { .. })
        ));
    }

    #[test]
    fn a_later_report_may_drift_but_not_jump() {
        let first = sr(0, T0);
        let previous = mapping(&first);
        // 10 s later (1,000 ticks at 100 Hz), 1.9 s apart from where the
        // previous pairing puts it, at our clock + 30 s: drift.
        let drifted = sr(1000, T0 + 10 * SECOND + 1_900_000_000);
        let ten = Duration::from_secs(10);
        assert_eq!(
            BOUNDS.check(&drifted, Some((&previous, ten)), T0 + 40 * SECOND),
            Ok(())
        );
        // 30 s ahead of the pairing, though within the minute of ours.
        let jumped = sr(1000, T0 + 40 * SECOND);
        assert_eq!(
            BOUNDS.check(&jumped, Some((&previous, ten)), T0 + 70 * SECOND),
            Err(ClockRefusal::Jumped {
                step_ns: i128::from(30 * SECOND)
            })
        );
        // Far from ours is refused whatever the pairing says.
        let day = sr(1000, T0 + 86_400 * SECOND);
        assert!(matches!(
            BOUNDS.check(&day, Some((&previous, ten)), T0 + 10 * SECOND),
            Err(ClockRefusal::FarFromOurs { .. })
        ));
    }

    #[test]
    fn a_step_onto_our_clock_is_taken() {
        // The sensor's clock was 50 s slow; NTP stepped it.
        // 10 s (1,000 ticks) after its previous report.
        let ten = Duration::from_secs(10);
        let slow = mapping(&sr(0, T0 - 50 * SECOND));
        let stepped = sr(1000, T0 + 10 * SECOND);
        assert_eq!(
            BOUNDS.check(&stepped, Some((&slow, ten)), T0 + 10 * SECOND + 300_000_000),
            Ok(())
        );
        // A step of the same size away from our clock is not.
        let on_time = mapping(&sr(0, T0));
        let away = sr(1000, T0 + 50 * SECOND);
        assert!(matches!(
            BOUNDS.check(&away, Some((&on_time, ten)), T0 + 10 * SECOND),
            Err(ClockRefusal::Jumped { .. })
        ));
        // "Now" for an RTP timestamp a day of ticks away would move every
        // sample by a day: its ticks did not advance with our clock.
        let day_of_ticks = 100 * 86_400;
        let forged = sr(1000 + day_of_ticks, T0 + 10 * SECOND);
        assert!(matches!(
            BOUNDS.check(&forged, Some((&on_time, ten)), T0 + 10 * SECOND),
            Err(ClockRefusal::Jumped { .. })
        ));
    }

    #[test]
    fn the_refusal_says_how_far_and_which_setting() {
        let e = ClockRefusal::Jumped {
            step_ns: -2_500_000_000,
        };
        assert_eq!(
            e.to_string(),
            "its clock jumped -2.500 s from the previous report's, more than \
             media.max_clock_step_ms allows"
        );
    }
}
