//! Registering, refreshing, NAT, unregistering.

use super::*;

#[test]
fn first_register_is_complete() {
    let mut c = client_with(config());
    assert_eq!(c.state(), RegistrationState::Idle);
    c.start(t0());
    let req = request(&mut c);
    assert_eq!(req.method, rsip::Method::Register);
    assert_eq!(req.uri.to_string(), "sip:example.com");
    let via = one(&req.headers, "Via");
    assert!(
        via.starts_with("SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK"),
        "{via}"
    );
    assert!(via.ends_with(";rport"));
    assert_eq!(one(&req.headers, "Max-Forwards"), "70");
    assert!(one(&req.headers, "From").starts_with("<sip:s1@example.com>;tag="));
    assert_eq!(one(&req.headers, "To"), "<sip:s1@example.com>");
    assert_eq!(one(&req.headers, "Call-ID"), c.call_id());
    assert!(one(&req.headers, "Call-ID").ends_with("@10.0.0.2"));
    assert_eq!(
        one(&req.headers, "Contact"),
        "<sip:s1@10.0.0.2:5062>;expires=3600"
    );
    assert_eq!(one(&req.headers, "Expires"), "3600");
    assert_eq!(one(&req.headers, "Content-Length"), "0");
    assert!(values(&req.headers, "Authorization").is_empty());
    assert!(values(&req.headers, "Route").is_empty());
    assert_eq!(c.state(), RegistrationState::Registering);
    assert_eq!(c.poll_timeout(), None, "the transaction layer times out");
    // The request survives a trip through the wire format.
    let parsed = rsip::Request::try_from(req.to_string()).unwrap();
    assert_eq!(parsed.to_string(), req.to_string());
}

#[test]
fn challenge_then_200_then_refresh_with_cached_credentials() {
    let mut c = client_with(config());
    c.start(t0());
    let first = request(&mut c);
    let challenge = reply(
        &first,
        401,
        vec![www(
            r#"Digest realm="example.com", nonce="n1", qop="auth", algorithm=SHA-256"#,
        )],
    );
    c.handle_response(&challenge, t0()).unwrap();
    assert!(events(&mut c).is_empty(), "a challenge is no failure");
    let second = request(&mut c);
    assert_eq!(cseq(&second), cseq(&first) + 1, "10.2.4: CSeq grows");
    assert_eq!(
        one(&second.headers, "Call-ID"),
        one(&first.headers, "Call-ID")
    );
    assert_ne!(
        one(&second.headers, "Via"),
        one(&first.headers, "Via"),
        "new branch"
    );
    let auth = one(&second.headers, "Authorization");
    assert!(
        auth.contains("nc=00000001") && auth.contains("algorithm=SHA-256"),
        "{auth}"
    );

    let ok = reply(
        &second,
        200,
        vec![contact(&format!("<sip:s1@{LOCAL}>;expires=1800"))],
    );
    c.handle_response(&ok, t0()).unwrap();
    assert_eq!(
        events(&mut c),
        [RegistrationEvent::Registered {
            expires: secs(1800),
            contact: "sip:s1@10.0.0.2:5062".into()
        }]
    );
    assert!(c.is_registered(t0() + secs(1799)));
    assert!(!c.is_registered(t0() + secs(1800)));
    // Refresh at 40-50 % of the granted 1800 s.
    let at = c.poll_timeout().unwrap();
    assert!(
        at >= t0() + secs(720) && at <= t0() + secs(900),
        "{:?}",
        at - t0()
    );
    c.handle_timeout(at - Duration::from_millis(1));
    assert!(c.poll_request().is_none(), "not before its time");
    c.handle_timeout(at);
    let refresh = request(&mut c);
    assert_eq!(cseq(&refresh), cseq(&second) + 1);
    assert_eq!(one(&refresh.headers, "Call-ID"), c.call_id());
    assert!(one(&refresh.headers, "Authorization").contains("nc=00000002"));
}

#[test]
fn granted_expiry_comes_from_contact_then_header_then_request() {
    for (extra, granted) in [
        (
            vec![
                contact("<sip:other@h>;expires=10"),
                rsip::Header::Expires(rsip::headers::Expires::new("900")),
            ],
            900,
        ),
        (
            vec![
                contact(&format!("<sip:s1@{LOCAL}>;expires=120")),
                rsip::Header::Expires(rsip::headers::Expires::new("900")),
            ],
            120,
        ),
        (vec![], 3600),
    ] {
        let mut c = client_with(config());
        c.start(t0());
        let req = request(&mut c);
        c.handle_response(&reply(&req, 200, extra), t0()).unwrap();
        assert!(matches!(
            events(&mut c)[..],
            [RegistrationEvent::Registered { expires, .. }] if expires == secs(granted)
        ));
    }
}

#[test]
fn stale_nonce_on_refresh_is_silent() {
    let mut c = client_with(config());
    c.start(t0());
    let first = request(&mut c);
    c.handle_response(
        &reply(
            &first,
            401,
            vec![www(r#"Digest realm="r", nonce="n1", qop="auth""#)],
        ),
        t0(),
    )
    .unwrap();
    let second = request(&mut c);
    c.handle_response(&reply(&second, 200, vec![]), t0())
        .unwrap();
    events(&mut c);
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let refresh = request(&mut c);
    c.handle_response(
        &reply(
            &refresh,
            401,
            vec![www(
                r#"Digest realm="r", nonce="n2", qop="auth", stale=true"#,
            )],
        ),
        at,
    )
    .unwrap();
    assert!(events(&mut c).is_empty());
    let retry = request(&mut c);
    let auth = one(&retry.headers, "Authorization");
    assert!(
        auth.contains("nonce=\"n2\"") && auth.contains("nc=00000001"),
        "{auth}"
    );
}

#[test]
fn interval_too_brief_raises_expires_for_good() {
    let mut c = client_with(RegistrationConfig {
        expires: 60,
        ..config()
    });
    c.start(t0());
    let req = request(&mut c);
    let brief = reply(
        &req,
        423,
        vec![rsip::Header::MinExpires(rsip::headers::MinExpires::new(
            "7200",
        ))],
    );
    c.handle_response(&brief, t0()).unwrap();
    assert!(events(&mut c).is_empty());
    let again = request(&mut c);
    assert_eq!(one(&again.headers, "Expires"), "7200");
    assert!(one(&again.headers, "Contact").ends_with(";expires=7200"));
    c.handle_response(&reply(&again, 200, vec![]), t0())
        .unwrap();
    events(&mut c);
    c.handle_timeout(c.poll_timeout().unwrap());
    assert_eq!(one(&request(&mut c).headers, "Expires"), "7200");

    // Without a usable Min-Expires it is a failure with back-off.
    let mut c = client_with(config());
    c.start(t0());
    let req = request(&mut c);
    c.handle_response(&reply(&req, 423, vec![]), t0()).unwrap();
    let ev = events(&mut c);
    assert!(matches!(
        &ev[0],
        RegistrationEvent::Failed {
            reason: FailureReason::Rejected { code: 423, .. }
        }
    ));
    assert!(matches!(ev[1], RegistrationEvent::Retrying { .. }));
}

#[test]
fn nat_learnt_from_via_moves_the_contact_to_the_public_address() {
    let mut c = client_with(config());
    c.start(t0());
    let req = request(&mut c);
    let ok = reply_from_nat(
        &req,
        200,
        "203.0.113.5:40000",
        vec![contact(&format!("<sip:s1@{LOCAL}>;expires=3600"))],
    );
    c.handle_response(&ok, t0()).unwrap();
    assert!(
        events(&mut c).is_empty(),
        "not reachable yet: no Registered"
    );
    let again = request(&mut c);
    assert_eq!(
        one(&again.headers, "Contact"),
        "<sip:s1@203.0.113.5:40000>;expires=3600, <sip:s1@10.0.0.2:5062>;expires=0"
    );
    assert!(
        one(&again.headers, "Via").contains("10.0.0.2:5062"),
        "Via stays local"
    );
    let ok = reply_from_nat(
        &again,
        200,
        "203.0.113.5:40000",
        vec![contact("<sip:s1@203.0.113.5:40000>;expires=3600")],
    );
    c.handle_response(&ok, t0()).unwrap();
    assert_eq!(
        events(&mut c),
        [RegistrationEvent::Registered {
            expires: secs(3600),
            contact: "sip:s1@203.0.113.5:40000".into()
        }]
    );
    // Refreshes keep the public Contact, without the removed one.
    c.handle_timeout(c.poll_timeout().unwrap());
    assert_eq!(
        one(&request(&mut c).headers, "Contact"),
        "<sip:s1@203.0.113.5:40000>;expires=3600"
    );
}

#[test]
fn a_flapping_nat_does_not_loop_and_follow_nat_can_be_off() {
    let mut c = client_with(config());
    c.start(t0());
    for port in 40000..40010u16 {
        let req = request(&mut c);
        let ok = reply_from_nat(&req, 200, &format!("203.0.113.5:{port}"), vec![]);
        c.handle_response(&ok, t0()).unwrap();
        if !events(&mut c).is_empty() {
            assert!(port - 40000 == 2, "accepted after two rewrites, at {port}");
            break;
        }
    }
    assert_eq!(c.state(), RegistrationState::Registered);

    let mut c = client_with(RegistrationConfig {
        follow_nat: false,
        ..config()
    });
    c.start(t0());
    let req = request(&mut c);
    c.handle_response(
        &reply_from_nat(&req, 200, "203.0.113.5:40000", vec![]),
        t0(),
    )
    .unwrap();
    assert!(matches!(
        events(&mut c)[..],
        [RegistrationEvent::Registered { .. }]
    ));
}

#[test]
fn stop_unregisters_with_expires_zero() {
    let mut c = client_with(config());
    registered(&mut c, 3600, t0());
    c.stop(t0() + secs(10));
    let bye = request(&mut c);
    assert_eq!(one(&bye.headers, "Expires"), "0");
    assert_eq!(
        one(&bye.headers, "Contact"),
        "<sip:s1@10.0.0.2:5062>;expires=0"
    );
    assert_eq!(c.state(), RegistrationState::Unregistering);
    c.handle_response(&reply(&bye, 200, vec![]), t0() + secs(10))
        .unwrap();
    assert_eq!(events(&mut c), [RegistrationEvent::Unregistered]);
    assert_eq!(c.state(), RegistrationState::Stopped);
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.is_registered(t0() + secs(11)));
}

#[test]
fn stop_while_registering_waits_for_the_final_response() {
    let mut c = client_with(config());
    c.start(t0());
    let req = request(&mut c);
    c.stop(t0());
    assert!(c.poll_request().is_none(), "10.2: one REGISTER at a time");
    c.handle_response(
        &reply(
            &req,
            401,
            vec![www(r#"Digest realm="r", nonce="n", qop="auth""#)],
        ),
        t0(),
    )
    .unwrap();
    let bye = request(&mut c);
    assert_eq!(
        one(&bye.headers, "Expires"),
        "0",
        "straight to unregistering"
    );
    assert!(values(&bye.headers, "Authorization").len() == 1);
    c.handle_response(&reply(&bye, 200, vec![]), t0()).unwrap();
    assert_eq!(events(&mut c), [RegistrationEvent::Unregistered]);
}

#[test]
fn stop_edge_cases() {
    // Never started: nothing to remove.
    let mut c = client_with(config());
    c.stop(t0());
    assert!(c.poll_request().is_none());
    assert_eq!(events(&mut c), [RegistrationEvent::Unregistered]);
    assert_eq!(c.state(), RegistrationState::Stopped);

    // Unregister unanswered: reported, no retry.
    let mut c = client_with(config());
    registered(&mut c, 3600, t0());
    c.stop(t0());
    let _ = request(&mut c);
    c.handle_transaction_failure(t0()).unwrap();
    assert_eq!(
        events(&mut c),
        [RegistrationEvent::Failed {
            reason: FailureReason::Unreachable
        }]
    );
    assert_eq!(c.state(), RegistrationState::Stopped);
    assert_eq!(c.poll_timeout(), None);

    // Stop after a wrong password sends nothing more.
    let mut c = client_with(config());
    c.start(t0());
    let r1 = request(&mut c);
    c.handle_response(
        &reply(
            &r1,
            401,
            vec![www(r#"Digest realm="r", nonce="a", qop="auth""#)],
        ),
        t0(),
    )
    .unwrap();
    let r2 = request(&mut c);
    c.handle_response(
        &reply(
            &r2,
            401,
            vec![www(r#"Digest realm="r", nonce="b", qop="auth""#)],
        ),
        t0(),
    )
    .unwrap();
    events(&mut c);
    c.stop(t0());
    assert!(c.poll_request().is_none());
    assert_eq!(c.state(), RegistrationState::Stopped);
}

#[test]
fn outbound_proxy_ipv6_and_user_agent() {
    let mut cfg = config();
    cfg.outbound_proxy = Some("sip:proxy.example.com:5070".into());
    cfg.user_agent = Some("sipsensor-agent/0.1".into());
    let mut c = client_with(cfg);
    c.start(t0());
    let req = request(&mut c);
    assert_eq!(
        one(&req.headers, "Route"),
        "<sip:proxy.example.com:5070;lr>"
    );
    assert_eq!(one(&req.headers, "User-Agent"), "sipsensor-agent/0.1");
    assert_eq!(req.uri.to_string(), "sip:example.com", "loose routing");

    let v6 = RegistrationConfig::new(
        "sip:[2001:db8::1]",
        "sip:s1@example.com",
        "s1",
        Password::new("pw"),
        LocalEndpoint::new(Transport::Tcp, "[2001:db8::2]:5060".parse().unwrap()),
    );
    let mut c = client_with(v6);
    c.start(t0());
    let req = request(&mut c);
    assert_eq!(
        crate::sip::ipv6::to_wire(&req.uri.to_string()),
        "sip:[2001:db8::1]"
    );
    // Inside the stack IPv6 hosts use the internal name (sip::ipv6); the
    // wire form is what a peer sees.
    assert_eq!(
        crate::sip::ipv6::to_wire(&one(&req.headers, "Contact")),
        "<sip:s1@[2001:db8::2]:5060;transport=tcp>;expires=3600"
    );
    assert!(
        crate::sip::ipv6::to_wire(&one(&req.headers, "Via"))
            .starts_with("SIP/2.0/TCP [2001:db8::2]:5060;")
    );
    // The event names the Contact as a peer sees it.
    let ok = reply_from_nat(&req, 200, "[2001:db8::2]:40000", vec![]);
    c.handle_response(&ok, t0()).unwrap();
    assert!(matches!(
        &events(&mut c)[..],
        [RegistrationEvent::Registered { contact, .. }] if contact == "sip:s1@[2001:db8::2]:5060;transport=tcp"
    ));
}

#[test]
fn over_tcp_only_a_new_address_means_nat() {
    let tcp = |c: RegistrationConfig| RegistrationConfig {
        local: LocalEndpoint::new(Transport::Tcp, LOCAL.parse().unwrap()),
        ..c
    };
    // Same address, ephemeral source port: no rewrite.
    let mut c = client_with(tcp(config()));
    c.start(t0());
    let req = request(&mut c);
    c.handle_response(&reply_from_nat(&req, 200, "10.0.0.2:51234", vec![]), t0())
        .unwrap();
    assert!(matches!(
        &events(&mut c)[..],
        [RegistrationEvent::Registered { contact, .. }] if contact == "sip:s1@10.0.0.2:5062;transport=tcp"
    ));
    // Another address: rewrite.
    let mut c = client_with(tcp(config()));
    c.start(t0());
    let req = request(&mut c);
    c.handle_response(
        &reply_from_nat(&req, 200, "203.0.113.5:51234", vec![]),
        t0(),
    )
    .unwrap();
    assert!(events(&mut c).is_empty());
    assert!(
        one(&request(&mut c).headers, "Contact")
            .starts_with("<sip:s1@203.0.113.5:51234;transport=tcp>")
    );
}

/// RFC 5626 4.2.1 and 5.4: a flow's REGISTER names the instance and the
/// reg-id, says it supports outbound, and its Contact URI carries `ob`;
/// the 200 that lists that Contact binds it.
#[test]
fn an_outbound_register_names_its_instance_and_flow() {
    let instance = "urn:uuid:00000000-0000-4000-8000-000000000001";
    let mut cfg = config();
    cfg.local = LocalEndpoint::new(Transport::Tcp, LOCAL.parse().unwrap());
    cfg.outbound = Some(Outbound {
        instance: instance.into(),
        reg_id: 1,
    });
    let mut c = client_with(cfg);
    c.start(t0());
    let req = request(&mut c);
    let contact = one(&req.headers, "Contact");
    assert_eq!(
        contact,
        format!(
            "<sip:s1@{LOCAL};transport=tcp;ob>;expires=3600;+sip.instance=\"<{instance}>\";reg-id=1"
        )
    );
    assert_eq!(one(&req.headers, "Supported"), "outbound");
    // Through the wire and back, as a registrar reads it.
    let parsed = rsip::Request::try_from(req.to_string()).unwrap();
    assert_eq!(one(&parsed.headers, "Contact"), contact);
    let ok = reply(&req, 200, vec![contact_header_with_expires(&contact, 600)]);
    c.handle_response(&ok, t0()).unwrap();
    assert!(matches!(
        &events(&mut c)[..],
        [RegistrationEvent::Registered { contact, .. }] if contact.ends_with(";ob")
    ));
}

fn contact_header_with_expires(contact: &str, expires: u32) -> rsip::Header {
    contact_h(&contact.replace("expires=3600", &format!("expires={expires}")))
}

fn contact_h(v: &str) -> rsip::Header {
    rsip::Header::Contact(rsip::headers::Contact::new(v))
}

#[test]
fn the_instance_is_stable_per_machine_and_hides_the_machine_id() {
    let id = "0123456789abcdef0123456789abcdef";
    let a = Outbound::instance_from_machine_id(id).unwrap();
    assert_eq!(
        Outbound::instance_from_machine_id(&format!("{id}\n")),
        Some(a.clone())
    );
    assert!(!a.contains("0123456789abcdef"), "{a}");
    let uuid = a.strip_prefix("urn:uuid:").unwrap();
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12]);
    assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");
    assert!("89ab".contains(&uuid[19..20]), "RFC 9562 variant: {uuid}");
    let other = Outbound::instance_from_machine_id("f123456789abcdef0123456789abcdef").unwrap();
    assert_ne!(a, other);
    assert_eq!(Outbound::instance_from_machine_id("not-a-machine-id"), None);
    assert_eq!(Outbound::instance_from_machine_id(""), None);
}
