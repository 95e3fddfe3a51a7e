//! What the core does by itself: malformed input and SIGTERM.

use crate::sip::core::testing::*;

#[test]
fn a_malformed_message_is_counted_and_warned_about() {
    let (mut c, clock) = core();
    let ev = UaEvent::Malformed {
        source: udp(SENSOR),
        reason: "no Via".into(),
    };
    c.handle_event(ev, clock.at(0));
    assert_eq!(
        actions(&mut c),
        vec![
            Action::Count("sip_malformed"),
            Action::Warn {
                kind: "malformed",
                message: format!("unusable SIP message from {SENSOR}: no Via"),
            }
        ]
    );
}

#[test]
fn sigterm_hangs_up_every_call_and_closes_its_stream() {
    let start = Instant::now();
    let clock = Clock(start);
    let mut s = settings(true);
    s.own_user = Some("collector".into());
    let mut c = Core::new(s, Some(registrar(start)), IdGenerator::seeded(1));
    active_incoming(&mut c, &clock);
    let stopping = c.stop();
    assert_eq!(
        stopping,
        Stopping {
            close: vec![opened()],
            calls: 1,
            unregistering: true
        }
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Hangup(session(1)), Action::Unregister]
    );
}

#[test]
fn requests_the_stack_refused_are_counted_by_why() {
    let (mut c, clock) = core();
    for (status, counter) in [(503, "sip_overloaded"), (416, "sip_insecure_scheme")] {
        let ev = UaEvent::Refused {
            source: udp(SENSOR),
            status,
            reason: "why".into(),
        };
        c.handle_event(ev, clock.at(0));
        assert_eq!(
            actions(&mut c),
            vec![
                Action::Count(counter),
                Action::Warn {
                    kind: "refused",
                    message: format!("answered {status} to {SENSOR}: why"),
                }
            ]
        );
    }
}
