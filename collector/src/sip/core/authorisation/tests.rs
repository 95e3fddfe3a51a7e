//! Who may call: trusted peers, digest users calling as themselves.

use crate::sip::core::testing::*;

#[test]
fn a_trusted_peer_is_let_in_without_a_challenge() {
    let (mut c, clock) = core();
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(
        invite_event(req, PROXY, sensor_offer(&capabilities())),
        clock.at(3),
    );
    let acts = actions(&mut c);
    let [
        Action::Open {
            session: s,
            args,
            accept: Some(_),
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*s, session(1));
    assert_eq!(args.aor, "sip:s1@example.net");
    assert_eq!(args.call_id, "call-1");
    assert_eq!(args.sensor, None);
    assert_eq!(args.signalling_ip, Some("192.0.2.50".parse().unwrap()));
    assert_eq!(args.started_ns, clock.at(3).unix_ns);
    assert_eq!(args.agreed.description, capabilities());
}

#[test]
fn an_invite_is_challenged_then_let_in_by_digest() {
    let (mut c, clock) = core();
    let offer = sensor_offer(&capabilities());
    let acts = with_digest(
        &mut c,
        &clock,
        request("INVITE", "s1", "call-1", ""),
        "s1",
        "pw1",
        |r| invite_event(r, SENSOR, offer.clone()),
    );
    assert!(matches!(&acts[..], [Action::Open { .. }]), "{acts:?}");
}

#[test]
fn a_user_calling_as_another_sensor_is_forbidden() {
    let (mut c, clock) = core();
    let offer = sensor_offer(&capabilities());
    let acts = with_digest(
        &mut c,
        &clock,
        request("INVITE", "s2", "call-1", ""),
        "s1",
        "pw1",
        |r| invite_event(r, SENSOR, offer.clone()),
    );
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert_eq!(acts[0], Action::Count("sip_forbidden"));
    assert_eq!(
        acts[1],
        Action::Warn {
            kind: "forbidden",
            message: format!(
                "INVITE from {SENSOR}: 403, user s1 may not call as sip:s2@example.net"
            ),
        }
    );
    assert_eq!(status_of(&acts[2]), 403);
    assert_eq!(
        warning_of(&acts[2]),
        format!("399 {HOST} \"user s1 may not call as sip:s2@example.net\"")
    );
}

#[test]
fn a_wrong_password_is_not_let_in() {
    let (mut c, clock) = core();
    let offer = sensor_offer(&capabilities());
    let acts = with_digest(
        &mut c,
        &clock,
        request("INVITE", "s1", "call-1", ""),
        "s1",
        "wrong",
        |r| invite_event(r, SENSOR, offer.clone()),
    );
    let [Action::RefuseInviteStatelessly { response, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(response.status_code.code(), 401);
}

#[test]
fn without_credentials_only_trusted_peers_get_in() {
    let (_, clock) = core();
    let mut c = Core::new(settings(false), None, IdGenerator::seeded(1));
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(
        invite_event(req, SENSOR, sensor_offer(&capabilities())),
        clock.at(0),
    );
    let acts = actions(&mut c);
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert_eq!(acts[0], Action::Count("sip_forbidden"));
    assert!(matches!(acts[2], Action::RefuseInviteStatelessly { .. }));
    assert_eq!(status_of(&acts[2]), 403);
    assert_eq!(
        warning_of(&acts[2]),
        format!(
            "399 {HOST} \"198.51.100.10 is not a trusted peer and this collector has no \
             credentials\""
        )
    );
}

/// An INVITE from `source` with a digest for `password`, answering the
/// challenge the core gave at `at` seconds: every action of the second
/// attempt.
fn invite_with_password(
    c: &mut Core,
    clock: &Clock,
    source: &str,
    password: &str,
    at: u64,
) -> Vec<Action> {
    let offer = sensor_offer(&capabilities());
    let call_id = format!("call-{at}");
    let mut req = request("INVITE", "s1", &call_id, "");
    c.handle_event(
        invite_event(req.clone(), source, offer.clone()),
        clock.at(at),
    );
    let first = all_actions(c);
    sign_as_s1(&first, &mut req, password, at);
    c.handle_event(invite_event(req, source, offer), clock.at(at));
    all_actions(c)
}

#[test]
fn a_wrong_password_is_counted_and_logged_with_source_and_aor() {
    let (mut c, clock) = core();
    let acts = invite_with_password(&mut c, &clock, SENSOR, "wrong", 0);
    assert_eq!(acts[0], Action::CountAuth("wrong_password"));
    assert_eq!(
        acts[1],
        Action::LogAuth(
            "sip auth failure: source=198.51.100.10 aor=sip:s1@example.net method=INVITE \
             outcome=wrong_password held=0"
                .into()
        )
    );
    assert!(
        matches!(acts[2], Action::RefuseInviteStatelessly { .. }),
        "{acts:?}"
    );
    // The right password is counted as accepted, and not logged.
    let acts = invite_with_password(&mut c, &clock, SENSOR, "pw1", 5);
    assert_eq!(acts[0], Action::CountAuth("accepted"));
    assert!(
        !acts.iter().any(|a| matches!(a, Action::LogAuth(_))),
        "{acts:?}"
    );
}

#[test]
fn a_source_guessing_passwords_is_refused_unheard_for_a_while() {
    let (mut c, clock) = core();
    for i in 0..9 {
        let acts = invite_with_password(&mut c, &clock, SENSOR, &format!("guess{i}"), i);
        assert_eq!(acts[0], Action::CountAuth("wrong_password"));
    }
    let acts = invite_with_password(&mut c, &clock, SENSOR, "guess9", 9);
    assert!(
        acts.contains(&Action::LogAuth(
            "sip auth back-off: source=198.51.100.10 refused for 300 s after 10 failures \
             within 60 s"
                .into()
        )),
        "{acts:?}"
    );
    // Even the right password is not heard now: 403, counted, stateless.
    let req = request("INVITE", "s1", "call-late", "");
    c.handle_event(invite_event(req, SENSOR, vec![]), clock.at(10));
    let acts = all_actions(&mut c);
    assert_eq!(acts[0], Action::CountAuth("blocked"));
    let [_, refusal @ Action::RefuseInviteStatelessly { .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(status_of(refusal), 403);
    assert_eq!(
        warning_of(refusal),
        format!("399 {HOST} \"too many authentication failures\"")
    );
    // Another source is challenged as usual; this one again after 300 s.
    let acts = invite_with_password(&mut c, &clock, "198.51.100.11:5060", "pw1", 11);
    assert_eq!(acts[0], Action::CountAuth("accepted"));
    let acts = invite_with_password(&mut c, &clock, SENSOR, "pw1", 309);
    assert_eq!(acts[0], Action::CountAuth("accepted"));
}

/// Finding 6: an unauthenticated INVITE from a forged source, never
/// ACKed, through the real user agent on a virtual clock: one 401 on the
/// wire in 40 s (it was 11 with a transaction: T1, 2*T1, ... up to 64*T1).
#[test]
fn an_invite_never_acked_gets_exactly_one_401_in_40_s() {
    let (mut c, clock) = core();
    let local = LocalEndpoint::new(Transport::Udp, HOST.parse().unwrap());
    let config = UaConfig::new(local, "sip:collector@example.net");
    let mut ua = UserAgent::new(config, IdGenerator::seeded(9), Box::new(LiteralsOnly)).unwrap();
    let invite = request("INVITE", "s1", "spoofed", "");
    ua.handle_input(&invite.to_string().into_bytes(), udp(SENSOR), clock.0);
    let mut sent_401 = 0;
    let end = clock.0 + Duration::from_secs(40);
    let mut now = clock.0;
    for _ in 0..1000 {
        while let Some(out) = ua.poll_output() {
            match out {
                UaOutput::Event(ev) => c.handle_event(
                    ev,
                    Now {
                        instant: now,
                        unix_ns: 0,
                    },
                ),
                UaOutput::Transmit { bytes, .. } => {
                    sent_401 += usize::from(bytes.starts_with(b"SIP/2.0 401"));
                }
            }
            for a in all_actions(&mut c) {
                match a {
                    Action::RefuseInviteStatelessly { session, response } => {
                        ua.reject_statelessly(session, response, now).unwrap()
                    }
                    Action::RespondToInvite { session, response } => {
                        ua.respond_to_invite(session, response, now).unwrap()
                    }
                    _ => {}
                }
            }
        }
        match ua.poll_timeout() {
            Some(at) if at <= end => {
                now = at;
                ua.handle_timeout(at);
            }
            _ => break,
        }
    }
    assert_eq!(sent_401, 1);
}
