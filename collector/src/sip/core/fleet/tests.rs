//! The fleet subscriptions on the TU's virtual clock: the manager's
//! commands out as user agent actions, the subscription events back as
//! the manager's, and the NOTIFY screening an attacker meets.

use super::super::testing::*;
use crate::update::subscriptions::{Answer, Command, CommandKind, NotifyStatus, RequestId};
use sipsensor_protocol::fleet::{FleetState, FleetWant, RebootPolicy, UpdateState};
use sipsensor_protocol::{SubscriptionEnd, SubscriptionEvent, SubscriptionId, SubscriptionState};

const S1: &str = "sip:s1@example.net";
const STRANGER: &str = "203.0.113.9:5060";

fn want() -> FleetWant {
    FleetWant {
        version: "2026.12.2".into(),
        url: "https://collector.example.net:8443/bundles/ab.raucb".into(),
        sha256: [0xab; 32],
        size: 4096,
        reboot: RebootPolicy::Now,
    }
}

fn command(request: u64, kind: CommandKind, want: Option<FleetWant>) -> Command {
    Command {
        request: RequestId(request),
        sensor: S1.into(),
        kind,
        want,
        expires: Duration::from_secs(3600),
    }
}

fn state_body(update: &str) -> Vec<u8> {
    format!("version=v1\nagent=0.1.0\ncompatible=c\nslot=A\nupdate={update}\ntarget=v2\n")
        .into_bytes()
}

fn fleet_events(acts: &[Action]) -> Vec<SipEvent> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Fleet(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// A collector with s1 registered from [`SENSOR`] and subscribed to (its
/// subscription `sub1`, accepted).
fn subscribed() -> (Core, Clock, SubscriptionId) {
    let (mut c, clock) = core_with(|s| s.credentials_file = None);
    c.reload(credentials());
    with_digest(&mut c, &clock, register_request("s1"), "s1", "pw1", |r| {
        register_event(&r, &clock)
    });
    c.handle_fleet_command(
        command(1, CommandKind::Subscribe, Some(want())),
        clock.at(2),
    );
    let acts = all_actions(&mut c);
    let [
        Action::Subscribe {
            request,
            target,
            body,
            expires,
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    // Routed like an INVITE: to the binding the sensor registered.
    assert_eq!(
        (*request, target.as_str(), *expires),
        (RequestId(1), "sip:s1@198.51.100.10:5060", 3600)
    );
    assert_eq!(body, &want().to_body().unwrap());
    let sub = SubscriptionId::from_raw(1);
    c.handle_report(
        Report::Subscribed {
            request: RequestId(1),
            result: Ok(sub),
        },
        clock.at(2),
    );
    c.handle_event(
        UaEvent::Subscription(SubscriptionEvent::Active {
            subscription: sub,
            expires: 600,
        }),
        clock.at(3),
    );
    assert_eq!(
        fleet_events(&all_actions(&mut c)),
        vec![SipEvent::Answered {
            sensor: S1.into(),
            request: RequestId(1),
            answer: Answer::Accepted {
                expires: Duration::from_secs(600)
            },
        }]
    );
    (c, clock, sub)
}

/// A transaction id for a screened request: the core passes it through,
/// so any the user agent hands out will do.
fn server_id(clock: &Clock) -> ServerId {
    match register_event(&register_request("s9"), clock) {
        UaEvent::Request { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

fn notify(cseq: u32, body: &[u8]) -> sipsensor_protocol::Request {
    let text = format!(
        "NOTIFY sip:collector@{HOST} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {SENSOR};branch=z9hG4bKn{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:s1@example.net>;tag=sensor\r\n\
         To: <sip:collector@example.net>;tag=collector\r\n\
         Call-ID: sub-1\r\n\
         CSeq: {cseq} NOTIFY\r\n\
         Event: sipsensor-fleet\r\n\
         Subscription-State: active;expires=600\r\n\
         Content-Type: application/vnd.sipsensor.fleet\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    sipsensor_protocol::Request::try_from(bytes.as_slice()).unwrap()
}

/// The NOTIFY handed up for screening from `source`; the actions it gets.
fn screen(
    c: &mut Core,
    clock: &Clock,
    sub: SubscriptionId,
    source: &str,
    request: sipsensor_protocol::Request,
    at: u64,
) -> Vec<Action> {
    let id = server_id(clock);
    c.handle_event(
        UaEvent::Subscription(SubscriptionEvent::InDialogRequest {
            subscription: sub,
            id,
            request,
            source: udp(source),
            on_dialog_flow: false,
        }),
        clock.at(at),
    );
    all_actions(c)
}

fn refused_status(acts: &[Action]) -> Option<u16> {
    acts.iter().find_map(|a| match a {
        Action::RefuseInDialog { response, .. } => Some(response.status_code.code()),
        _ => None,
    })
}

#[test]
fn a_subscription_answers_the_managers_requests_and_its_notifies_reach_it() {
    let (mut c, clock, sub) = subscribed();
    // The user agent's own refresh answers nothing of the manager's.
    c.handle_event(
        UaEvent::Subscription(SubscriptionEvent::Active {
            subscription: sub,
            expires: 600,
        }),
        clock.at(300),
    );
    assert_eq!(all_actions(&mut c), vec![]);
    // Half the grant: the user agent refreshes by itself, so the manager's
    // renewal is answered from what it holds, with nothing sent.
    c.handle_fleet_command(command(9, CommandKind::Renew, None), clock.at(301));
    assert_eq!(
        all_actions(&mut c),
        vec![Action::Fleet(SipEvent::Answered {
            sensor: S1.into(),
            request: RequestId(9),
            answer: Answer::Accepted {
                expires: Duration::from_secs(600)
            },
        })]
    );
    // A NOTIFY from where the sensor registered is let through...
    let acts = screen(
        &mut c,
        &clock,
        sub,
        SENSOR,
        notify(2, &state_body("good")),
        10,
    );
    assert!(matches!(&acts[..], [Action::AdmitInDialog(_)]), "{acts:?}");
    // ...and once the user agent took it, the manager hears its state.
    c.handle_event(
        UaEvent::Subscription(SubscriptionEvent::Notified {
            subscription: sub,
            state: SubscriptionState::parse("active;expires=600").unwrap(),
            body: state_body("good"),
        }),
        clock.at(10),
    );
    let state = FleetState::parse(&state_body("good")).unwrap();
    assert_eq!(state.update, UpdateState::Good);
    assert_eq!(
        fleet_events(&all_actions(&mut c)),
        vec![SipEvent::Notified {
            sensor: S1.into(),
            status: NotifyStatus::Active {
                expires: Duration::from_secs(600)
            },
            state: Some(state),
        }]
    );
    // The rollout's want goes out as a refresh in the dialog.
    c.handle_fleet_command(command(2, CommandKind::Refresh, Some(want())), clock.at(20));
    assert_eq!(
        all_actions(&mut c),
        vec![Action::RefreshSubscription {
            sub,
            body: want().to_body().unwrap()
        }]
    );
    // A 481 to it (a rebooted sensor): the manager hears Gone.
    c.handle_event(
        UaEvent::Subscription(SubscriptionEvent::Terminated {
            subscription: sub,
            reason: SubscriptionEnd::DialogGone(481),
        }),
        clock.at(21),
    );
    assert_eq!(
        fleet_events(&all_actions(&mut c)),
        vec![SipEvent::Answered {
            sensor: S1.into(),
            request: RequestId(2),
            answer: Answer::Gone,
        }]
    );
    // Nothing left to renew or refresh: answered Gone at once.
    for (request, kind) in [(3, CommandKind::Refresh), (4, CommandKind::Renew)] {
        c.handle_fleet_command(command(request, kind, None), clock.at(22));
        assert_eq!(
            fleet_events(&all_actions(&mut c)),
            vec![SipEvent::Answered {
                sensor: S1.into(),
                request: RequestId(request),
                answer: Answer::Gone,
            }]
        );
    }
}

#[test]
fn a_subscription_ending_between_requests_is_a_last_notify_for_the_manager() {
    let (mut c, clock, sub) = subscribed();
    c.handle_event(
        UaEvent::Subscription(SubscriptionEvent::Terminated {
            subscription: sub,
            reason: SubscriptionEnd::Expired,
        }),
        clock.at(700),
    );
    assert_eq!(
        fleet_events(&all_actions(&mut c)),
        vec![SipEvent::Notified {
            sensor: S1.into(),
            status: NotifyStatus::Terminated,
            state: None,
        }]
    );
}

#[test]
fn a_sensor_not_registered_here_is_not_subscribed_to() {
    let (mut c, clock) = core();
    c.handle_fleet_command(command(7, CommandKind::Subscribe, None), clock.at(0));
    assert_eq!(
        fleet_events(&all_actions(&mut c)),
        vec![SipEvent::Answered {
            sensor: S1.into(),
            request: RequestId(7),
            answer: Answer::Refused { status: 404 },
        }]
    );
}

#[test]
fn stream_sessions_starting_and_ending_reach_the_manager() {
    let (mut c, clock) = core();
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(
        invite_event(req, PROXY, sensor_offer(&capabilities())),
        clock.at(0),
    );
    all_actions(&mut c);
    c.handle_report(
        Report::Opened {
            session: session(1),
            result: Ok(opened()),
        },
        clock.at(1),
    );
    assert_eq!(
        fleet_events(&all_actions(&mut c)),
        vec![SipEvent::SessionStarted { sensor: S1.into() }]
    );
    c.handle_event(
        UaEvent::Ended {
            session: session(1),
            reason: EndReason::RemoteBye,
            warning: None,
            retry_after: None,
        },
        clock.at(5),
    );
    all_actions(&mut c);
    c.handle_report(Report::Closed { aor: S1.into() }, clock.at(6));
    assert_eq!(
        fleet_events(&all_actions(&mut c)),
        vec![SipEvent::SessionEnded { sensor: S1.into() }]
    );
}

#[test]
fn a_notify_from_a_stranger_socket_is_refused_and_reported_to_nobody() {
    let (mut c, clock, sub) = subscribed();
    let acts = screen(
        &mut c,
        &clock,
        sub,
        STRANGER,
        notify(2, &state_body("good")),
        10,
    );
    assert_eq!(refused_status(&acts), Some(403), "{acts:?}");
    assert!(acts.contains(&Action::Count("fleet_notify_forbidden")));
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::AdmitInDialog(_) | Action::Fleet(_))),
        "{acts:?}"
    );
    // A trusted proxy relays the sensor's NOTIFYs: let through.
    let acts = screen(
        &mut c,
        &clock,
        sub,
        PROXY,
        notify(3, &state_body("good")),
        11,
    );
    assert!(matches!(&acts[..], [Action::AdmitInDialog(_)]), "{acts:?}");
}

#[test]
fn a_notify_with_a_malformed_or_oversized_body_gets_400_logged_and_counted() {
    let (mut c, clock, sub) = subscribed();
    let bad = [
        b"version=v1\nupdate=sideways\n".to_vec(),
        b"Version=v1\n".to_vec(),
        vec![b'a'; sipsensor_protocol::fleet::MAX_BODY + 1],
    ];
    for (i, body) in bad.into_iter().enumerate() {
        let at = 10 + i as u64;
        let acts = screen(&mut c, &clock, sub, SENSOR, notify(2 + i as u32, &body), at);
        assert_eq!(refused_status(&acts), Some(400), "{acts:?}");
        assert!(acts.contains(&Action::Count("fleet_body_malformed")));
        assert!(
            acts.iter().any(|a| matches!(
                a,
                Action::Warn {
                    kind: "fleet_body",
                    ..
                }
            )),
            "{acts:?}"
        );
        assert!(!acts.iter().any(|a| matches!(a, Action::AdmitInDialog(_))));
    }
}

#[test]
fn a_notify_flood_is_bounded_per_subscription() {
    let (mut c, clock, sub) = subscribed();
    let mut admitted = 0;
    let mut refused = 0;
    for n in 0..50 {
        let acts = screen(
            &mut c,
            &clock,
            sub,
            SENSOR,
            notify(2 + n, &state_body("good")),
            10,
        );
        match refused_status(&acts) {
            None => admitted += 1,
            Some(503) => refused += 1,
            other => panic!("{other:?}: {acts:?}"),
        }
    }
    assert_eq!(
        (admitted, refused),
        (super::NOTIFY_BURST, 50 - super::NOTIFY_BURST)
    );
    // The budget comes back with time: one a second.
    let acts = screen(
        &mut c,
        &clock,
        sub,
        SENSOR,
        notify(60, &state_body("good")),
        12,
    );
    assert!(matches!(&acts[..], [Action::AdmitInDialog(_)]), "{acts:?}");
}
