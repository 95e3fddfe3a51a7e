//! REGISTER, expiry and our own registration, on a virtual clock.

use crate::sip::core::testing::*;

#[test]
fn a_register_is_challenged_then_recorded_as_registered() {
    let (mut c, clock) = core();
    let acts = with_digest(&mut c, &clock, register_request("s1"), "s1", "pw1", |r| {
        register_event(&r, &clock)
    });
    assert_eq!(acts.len(), 2, "{acts:?}");
    assert_eq!(status_of(&acts[0]), 200);
    assert_eq!(
        acts[1],
        Action::SetState {
            aor: "sip:s1@example.net".into(),
            state: SensorState::Registered
        }
    );
}

#[test]
fn a_register_for_another_users_aor_is_refused_and_counted() {
    let (mut c, clock) = core();
    let acts = with_digest(&mut c, &clock, register_request("s2"), "s1", "pw1", |r| {
        register_event(&r, &clock)
    });
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert_eq!(status_of(&acts[0]), 403);
    assert_eq!(acts[1], Action::Count("register_refused"));
    assert_eq!(
        acts[2],
        Action::Warn {
            kind: "register",
            message: format!("REGISTER for sip:s2@example.net from {SENSOR} refused with 403"),
        }
    );
}

#[test]
fn a_register_without_an_embedded_registrar_gets_405() {
    let (_, clock) = core();
    let mut c = Core::new(settings(false), None, IdGenerator::seeded(1));
    c.handle_event(register_event(&register_request("s1"), &clock), clock.at(0));
    let acts = actions(&mut c);
    assert_eq!(acts.len(), 1);
    assert_eq!(status_of(&acts[0]), 405);
}

#[test]
fn a_registration_expires_at_its_instant_and_the_sensor_goes_offline() {
    let (mut c, clock) = core();
    with_digest(&mut c, &clock, register_request("s1"), "s1", "pw1", |r| {
        register_event(&r, &clock)
    });
    // Registered at 1 s for 120 s.
    assert_eq!(c.poll_timeout(), Some(clock.at(121).instant));
    c.handle_timeout(clock.at(120).instant);
    assert_eq!(actions(&mut c), vec![]);
    c.handle_timeout(clock.at(121).instant);
    assert_eq!(
        actions(&mut c),
        vec![Action::SetState {
            aor: "sip:s1@example.net".into(),
            state: SensorState::Offline
        }]
    );
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_streaming_sensor_stays_streaming_when_its_registration_expires() {
    let (mut c, clock) = core();
    with_digest(&mut c, &clock, register_request("s1"), "s1", "pw1", |r| {
        register_event(&r, &clock)
    });
    active_incoming(&mut c, &clock);
    c.handle_timeout(clock.at(121).instant);
    assert_eq!(actions(&mut c), vec![]);
}

#[test]
fn sighup_credentials_reach_our_own_registration() {
    let start = Instant::now();
    let mut s = settings(false);
    s.own_user = Some("s2".into());
    let mut c = Core::new(s, None, IdGenerator::seeded(1));
    c.reload(credentials());
    assert_eq!(
        actions(&mut c),
        vec![Action::SetOwnCredentials {
            user: "s2".into(),
            password: Password::new("pw2")
        }]
    );
    let _ = start;
}

#[test]
fn our_registration_failing_is_a_rate_limited_warning() {
    let (mut c, clock) = core();
    c.handle_event(
        UaEvent::Registration(RegistrationEvent::Expired),
        clock.at(0),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Warn {
            kind: "registration",
            message: "our registration expired".into()
        }]
    );
}

/// A REGISTER for s1 from `source` with a digest for `password`,
/// answering the challenge the core gave: every action of the second
/// attempt.
fn register_with_password(
    c: &mut Core,
    clock: &Clock,
    source: &str,
    password: &str,
    at: u64,
) -> Vec<Action> {
    let from = |r: &sipsensor_protocol::Request| match register_event(r, clock) {
        UaEvent::Request { id, request, .. } => UaEvent::Request {
            id,
            request,
            source: udp(source),
        },
        other => other,
    };
    let mut req = register_request("s1");
    c.handle_event(from(&req), clock.at(at));
    let first = all_actions(c);
    assert!(
        matches!(
            first[..],
            [
                Action::CountAuth("challenged"),
                Action::RespondStatelessly { .. }
            ]
        ),
        "{first:?}"
    );
    sign_as_s1(&first, &mut req, password, at);
    c.handle_event(from(&req), clock.at(at));
    all_actions(c)
}

#[test]
fn a_wrong_password_register_is_counted_logged_and_answered_statelessly() {
    let (mut c, clock) = core();
    let acts = register_with_password(&mut c, &clock, SENSOR, "wrong", 0);
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert_eq!(acts[0], Action::CountAuth("wrong_password"));
    assert_eq!(
        acts[1],
        Action::LogAuth(
            "sip auth failure: source=198.51.100.10 aor=sip:s1@example.net method=REGISTER \
             outcome=wrong_password held=0"
                .into()
        )
    );
    assert!(matches!(acts[2], Action::RespondStatelessly { .. }));
    assert_eq!(status_of(&acts[2]), 401);
}

#[test]
fn a_source_guessing_register_passwords_gets_403_until_its_back_off_ends() {
    let (mut c, clock) = core();
    for i in 0..10 {
        register_with_password(&mut c, &clock, SENSOR, &format!("guess{i}"), i);
    }
    c.handle_event(
        register_event(&register_request("s1"), &clock),
        clock.at(10),
    );
    let acts = all_actions(&mut c);
    let [
        Action::CountAuth("blocked"),
        refusal @ Action::RespondStatelessly { .. },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(status_of(refusal), 403);
    let acts = register_with_password(&mut c, &clock, SENSOR, "pw1", 309);
    assert_eq!(acts[0], Action::CountAuth("accepted"));
    assert_eq!(status_of(&acts[1]), 200);
}

#[test]
fn a_trusted_proxy_relaying_bad_passwords_is_never_blocked() {
    let (mut c, clock) = core();
    for i in 0..12 {
        let acts = register_with_password(&mut c, &clock, PROXY, &format!("guess{i}"), i);
        assert_eq!(acts[0], Action::CountAuth("wrong_password"));
    }
    let acts = register_with_password(&mut c, &clock, PROXY, "pw1", 12);
    assert_eq!(acts[0], Action::CountAuth("accepted"));
}

#[test]
fn an_address_with_its_fill_of_sensors_gets_503_for_another() {
    let (mut c, clock) = core();
    c.set_aors_per_source(1);
    let acts = register_with_password(&mut c, &clock, SENSOR, "pw1", 0);
    assert_eq!(status_of(&acts[1]), 200);
    // s2 from the same address: refused before anything is kept.
    c.handle_event(register_event(&register_request("s2"), &clock), clock.at(1));
    let acts = actions(&mut c);
    assert_eq!(acts.len(), 3, "{acts:?}");
    let Action::RespondStatelessly { response, .. } = &acts[0] else {
        panic!("{acts:?}")
    };
    assert_eq!(response.status_code.code(), 503);
    assert!(
        response.to_string().contains("Retry-After: 300\r\n"),
        "{response}"
    );
    assert_eq!(acts[1], Action::Count("register_source_full"));
    assert!(matches!(
        &acts[2],
        Action::Warn {
            kind: "register",
            ..
        }
    ));
    // s1's binding gone (121 s), the address has room again.
    c.handle_timeout(clock.at(122).instant);
    actions(&mut c);
    c.handle_event(
        register_event(&register_request("s2"), &clock),
        clock.at(123),
    );
    let acts = actions(&mut c);
    assert_eq!(status_of(&acts[0]), 401, "{acts:?}");
}
