//! A stream gone silent (issue 15): its agent was killed or its path cut,
//! so no BYE will come. The media engine notices (`media/silence.rs`); the
//! core hangs up (BYE, best effort: the agent may be gone) and releases the
//! stream and its record as if the agent had said BYE, so the sensor no
//! longer shows as streaming.

use super::{Action, Core, Now};
use crate::media::StreamKey;
use std::time::Duration;

impl Core {
    pub(super) fn silent(&mut self, media: StreamKey, last_heard_ns: i64, now: Now) {
        // A call that ended meanwhile has released its stream already.
        let Some(session) = self
            .calls
            .iter()
            .find(|(_, c)| c.opened.is_some_and(|o| o.media == media))
            .map(|(s, _)| *s)
        else {
            return;
        };
        let Some(call) = self.calls.remove(&session) else {
            return;
        };
        let Some(opened) = call.opened else { return };
        let silent_for = u64::try_from(now.unix_ns.saturating_sub(last_heard_ns))
            .map_or(Duration::ZERO, Duration::from_nanos);
        self.push(Action::Hangup(session));
        self.push(Action::CloseSilent {
            opened,
            aor: call.aor,
            last_heard_ns,
            silent_for,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::media::StreamKey;
    use crate::sip::core::testing::*;
    use crate::sip::core::{Action, Report};
    use crate::storage::SensorState;
    use std::time::Duration;

    #[test]
    fn a_silent_stream_is_hung_up_closed_at_its_last_packet_and_recorded() {
        let (mut c, clock) = core();
        active_incoming(&mut c, &clock);
        let last_heard_ns = clock.at(3).unix_ns;
        c.handle_report(
            Report::Silent {
                media: opened().media,
                last_heard_ns,
            },
            clock.at(13),
        );
        assert_eq!(
            actions(&mut c),
            vec![
                Action::Hangup(session(1)),
                Action::CloseSilent {
                    opened: opened(),
                    aor: "sip:s1@example.net".into(),
                    last_heard_ns,
                    silent_for: Duration::from_secs(10),
                }
            ]
        );
        // The call is gone: its BYE's outcome and a second notice change
        // nothing, and the sensor is recorded as it is once closed.
        c.handle_report(
            Report::Silent {
                media: opened().media,
                last_heard_ns,
            },
            clock.at(14),
        );
        assert_eq!(actions(&mut c), vec![]);
        c.handle_report(
            Report::Closed {
                aor: "sip:s1@example.net".into(),
            },
            clock.at(14),
        );
        assert_eq!(
            actions(&mut c),
            vec![Action::SetState {
                aor: "sip:s1@example.net".into(),
                state: SensorState::Offline
            }]
        );
    }

    #[test]
    fn a_notice_for_a_stream_no_call_has_changes_nothing() {
        let (mut c, clock) = core();
        active_incoming(&mut c, &clock);
        c.handle_report(
            Report::Silent {
                media: StreamKey(999),
                last_heard_ns: 0,
            },
            clock.at(20),
        );
        assert_eq!(actions(&mut c), vec![]);
        // The real call is still there: its BYE closes it as usual.
        c.handle_event(
            sipsensor_protocol::UaEvent::Ended {
                session: session(1),
                reason: sipsensor_protocol::EndReason::RemoteBye,
                warning: None,
                retry_after: None,
            },
            clock.at(21),
        );
        assert!(matches!(&actions(&mut c)[..], [Action::Close { .. }]));
    }
}
