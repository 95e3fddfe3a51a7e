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
    let [Action::RespondToInvite { response, .. }] = &acts[..] else {
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
    assert_eq!(status_of(&acts[2]), 403);
    assert_eq!(
        warning_of(&acts[2]),
        format!(
            "399 {HOST} \"198.51.100.10 is not a trusted peer and this collector has no \
             credentials\""
        )
    );
}
