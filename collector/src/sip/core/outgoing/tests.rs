//! Calls the collector places.

use super::target_for;
use crate::sip::core::testing::*;
use sipsensor_protocol::SipUri;

fn call_request(aor: &str) -> Request {
    Request::Call(CallRequest {
        aor: aor.into(),
        stream: None,
    })
}

/// s1 registered (at 1 s) and offered its stream once (call 1, ended).
fn known_sensor(c: &mut Core, clock: &Clock) {
    known_sensor_offering(c, clock, sensor_offer(&capabilities()));
}

/// [`known_sensor`] with `offer` as the stream it offered.
fn known_sensor_offering(c: &mut Core, clock: &Clock, offer: Vec<u8>) {
    with_digest(c, clock, register_request("s1"), "s1", "pw1", |r| {
        register_event(&r, clock)
    });
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, offer), clock.at(1));
    actions(c);
    c.handle_event(
        UaEvent::Ended {
            session: session(1),
            reason: EndReason::RemoteCancel,
            warning: None,
            retry_after: None,
        },
        clock.at(1),
    );
    c.handle_report(
        Report::Opened {
            session: session(1),
            result: Err(SetupError::Open {
                status: 500,
                reason: "storage: gone".into(),
            }),
        },
        clock.at(1),
    );
    actions(c);
}

/// Calls s1 at 10 s; the INVITE's offer.
fn call_s1(c: &mut Core, clock: &Clock) -> Vec<u8> {
    c.handle_control(call_request("sip:s1@example.net"), ReplyTo(7), clock.at(10));
    let acts = actions(c);
    let [
        Action::ExpectSource { ip, until },
        Action::Call {
            call,
            target,
            offer,
            ..
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*ip, "198.51.100.10".parse::<IpAddr>().unwrap());
    assert_eq!(*until, clock.at(50).instant);
    assert_eq!(target, &format!("sip:s1@{SENSOR}"));
    assert_eq!(*call, PendingId(0));
    offer.clone()
}

#[test]
fn a_registered_sensor_is_called_at_its_contact_and_streams() {
    let (mut c, clock) = core();
    known_sensor(&mut c, &clock);
    let offer = call_s1(&mut c, &clock);
    c.handle_report(
        Report::Placed {
            call: PendingId(0),
            result: Ok(session(2)),
        },
        clock.at(10),
    );
    assert_eq!(actions(&mut c), vec![]);
    c.handle_event(
        UaEvent::Answered {
            session: session(2),
            answer: sensor_answer(&offer),
        },
        clock.at(11),
    );
    let acts = actions(&mut c);
    let [
        Action::Open {
            session: s,
            args,
            accept: None,
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*s, session(2));
    assert_eq!(args.aor, "sip:s1@example.net");
    assert!(args.call_id.starts_with("collector-"), "{}", args.call_id);
    assert_eq!(args.started_ns, clock.at(10).unix_ns);
    assert_eq!(args.signalling_ip, Some("198.51.100.10".parse().unwrap()));
    c.handle_report(
        Report::Opened {
            session: session(2),
            result: Ok(opened()),
        },
        clock.at(12),
    );
    let acts = actions(&mut c);
    let [Action::Reply { to, reply }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(*to, ReplyTo(7));
    assert!(reply.ok);
    assert!(
        reply.message.starts_with("sip:s1@example.net streaming: "),
        "{}",
        reply.message
    );
}

#[test]
fn a_sensor_that_never_offered_its_stream_cannot_be_called_bare() {
    let (mut c, clock) = core();
    c.handle_control(call_request("sip:s1@example.net"), ReplyTo(1), clock.at(0));
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(1),
            reply: Reply::error(
                "sip:s1@example.net has not offered its stream to this collector yet: describe \
                 what to ask for (--clock, --channel, --input)"
            )
        }]
    );
    c.handle_control(call_request("not a uri"), ReplyTo(2), clock.at(0));
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(2),
            reply: Reply::error("\"not a uri\" is not a SIP URI")
        }]
    );
}

#[test]
fn an_unregistered_sensor_is_not_called() {
    let (mut c, clock) = core();
    known_sensor(&mut c, &clock);
    // The binding ran out at 121 s.
    c.handle_control(
        call_request("sip:s1@example.net"),
        ReplyTo(1),
        clock.at(121),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(1),
            reply: Reply::error("sip:s1@example.net is not registered here")
        }]
    );
}

#[test]
fn without_the_embedded_registrar_the_proxy_locates_the_sensor() {
    let start = Instant::now();
    let clock = Clock(start);
    let mut c = Core::new(settings(false), None, IdGenerator::seeded(1));
    let req = Request::Call(CallRequest {
        aor: "sip:s1@example.net".into(),
        stream: None,
    });
    // It offered its stream once.
    let invite = request("INVITE", "s1", "call-1", "");
    c.handle_event(
        invite_event(invite, PROXY, sensor_offer(&capabilities())),
        clock.at(0),
    );
    actions(&mut c);
    c.handle_control(req, ReplyTo(1), clock.at(1));
    let acts = actions(&mut c);
    let [Action::Call { target, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(target, "sip:s1@example.net");
}

#[test]
fn a_call_that_cannot_be_placed_is_reported() {
    let (mut c, clock) = core();
    known_sensor(&mut c, &clock);
    call_s1(&mut c, &clock);
    c.handle_report(
        Report::Placed {
            call: PendingId(0),
            result: Err(UaError::UnknownRequest),
        },
        clock.at(10),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(7),
            reply: Reply::error(
                "cannot call sip:s1@example.net: no such request awaiting an answer"
            )
        }]
    );
}

#[test]
fn an_unusable_answer_hangs_up() {
    let (mut c, clock) = core();
    known_sensor(&mut c, &clock);
    call_s1(&mut c, &clock);
    c.handle_report(
        Report::Placed {
            call: PendingId(0),
            result: Ok(session(2)),
        },
        clock.at(10),
    );
    c.handle_event(
        UaEvent::Answered {
            session: session(2),
            answer: b"v=0\r\n".to_vec(),
        },
        clock.at(11),
    );
    let acts = actions(&mut c);
    let [Action::Reply { to, reply }, Action::Hangup(s)] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!((*to, *s), (ReplyTo(7), session(2)));
    assert!(
        reply
            .message
            .starts_with("sip:s1@example.net answered unusably: "),
        "{}",
        reply.message
    );
}

#[test]
fn a_called_sensor_whose_stream_cannot_be_stored_is_hung_up() {
    let (mut c, clock) = core();
    known_sensor(&mut c, &clock);
    let offer = call_s1(&mut c, &clock);
    c.handle_report(
        Report::Placed {
            call: PendingId(0),
            result: Ok(session(2)),
        },
        clock.at(10),
    );
    c.handle_event(
        UaEvent::Answered {
            session: session(2),
            answer: sensor_answer(&offer),
        },
        clock.at(11),
    );
    actions(&mut c);
    let full = SetupError::Open {
        status: 503,
        reason: "too many streams".into(),
    };
    c.handle_report(
        Report::Opened {
            session: session(2),
            result: Err(full),
        },
        clock.at(12),
    );
    assert_eq!(
        actions(&mut c),
        vec![
            Action::Hangup(session(2)),
            Action::Reply {
                to: ReplyTo(7),
                reply: Reply::error("sip:s1@example.net: 503 too many streams")
            }
        ]
    );
}

#[test]
fn nat_bindings_are_reached_where_they_registered_from() {
    let contact = SipUri::parse("sip:s1@10.0.0.5:5070").unwrap();
    let local = "10.0.0.5:5070".parse().unwrap();
    let nat = "198.51.100.7:40123".parse().unwrap();
    assert_eq!(
        target_for(&contact, local, Transport::Udp, false),
        "sip:s1@10.0.0.5:5070"
    );
    assert_eq!(
        target_for(&contact, nat, Transport::Udp, true),
        "sip:s1@198.51.100.7:40123"
    );
    assert_eq!(
        target_for(&contact, nat, Transport::Tcp, true),
        "sip:s1@198.51.100.7:40123;transport=tcp"
    );
    assert_eq!(
        target_for(&contact, nat, Transport::Tls, true),
        "sips:s1@198.51.100.7:40123"
    );
}

#[test]
fn a_sighup_gives_calls_the_calling_users_new_password() {
    let start = Instant::now();
    let mut s = settings(true);
    s.calling_user = Some("s2".into());
    let mut c = Core::new(s, Some(registrar(start)), IdGenerator::seeded(1));
    c.reload_calling(&credentials());
    let acts = actions(&mut c);
    let [Action::SetOwnCredentials { user, password }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!((user.as_str(), password), ("s2", &Password::new("pw2")));
    // A file without the user keeps the old password and says so.
    let without = Credentials::parse("users: {s1: pw1}\n", Path::new("u.yaml"), "x").unwrap();
    c.reload_calling(&without);
    let acts = actions(&mut c);
    assert!(
        matches!(&acts[..], [Action::Warn { message, .. }] if message.contains("\"s2\"")),
        "{acts:?}"
    );
}

/// A sensor that registered a flow over TCP is called over that
/// connection (its source port), not at its Contact, where it may not
/// listen at all; a plain TCP binding on the same host keeps its Contact.
#[test]
fn a_flow_binding_is_reached_over_its_connection() {
    let start = Instant::now();
    let mut registrar = Registrar::new(
        RegistrarConfig {
            authenticate: false,
            agent: HOST.into(),
            ..RegistrarConfig::default()
        },
        DigestServerConfig::new("example.net", ServerSecret::new(vec![7; 32])),
        Box::new(credentials().store),
        WallClock::new(start, 1_700_000_000),
        IdGenerator::seeded(8),
    )
    .unwrap();
    let flow_source: std::net::SocketAddr = "198.51.100.10:40000".parse().unwrap();
    let register = |user: &str, contact: &str| {
        let text = format!(
            "REGISTER sip:example.net SIP/2.0\r\n\
             Via: SIP/2.0/TCP 198.51.100.10:5060;branch=z9hG4bKf{user}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@example.net>;tag=f\r\n\
             To: <sip:{user}@example.net>\r\nCall-ID: f-{user}\r\nCSeq: 1 REGISTER\r\n\
             Contact: {contact}\r\nExpires: 120\r\nContent-Length: 0\r\n\r\n"
        );
        sipsensor_protocol::Request::try_from(text.as_bytes()).unwrap()
    };
    let flow = register(
        "s1",
        "<sip:s1@198.51.100.10:5060;transport=tcp;ob>;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000000001>\";reg-id=1",
    );
    let plain = register("s2", "<sip:s2@198.51.100.10:5060;transport=tcp>");
    for r in [&flow, &plain] {
        let ok = registrar.handle_register(r, flow_source, Transport::Tcp, start);
        assert_eq!(ok.status_code.code(), 200, "{ok}");
    }
    let target = |aor: &str| super::target_of(&registrar.lookup(aor, start)[0]);
    assert_eq!(
        target("sip:s1@example.net"),
        "sip:s1@198.51.100.10:40000;transport=tcp"
    );
    assert_eq!(
        target("sip:s2@example.net"),
        "sip:s2@198.51.100.10:5060;transport=tcp"
    );
}

#[test]
fn over_secure_signalling_the_call_offers_srtp_and_opens_with_keys() {
    use sipsensor_protocol::{answer_offer, parse_sdp};
    let secure = secure_media();
    let clock = Clock(Instant::now());
    // `sip.tls` configured, calls through a proxy reached over TLS.
    let mut s = settings(true);
    s.media_security_over_tls = Some(secure);
    s.proxy_over_tls = true;
    let mut c = Core::new(s, Some(registrar(clock.0)), IdGenerator::seeded(1));
    let (mut local, mut origin) = sensor_media();
    local.security = secure;
    known_sensor(&mut c, &clock);
    // From now on the sensor is reached through the proxy.
    c.settings.embedded_registrar = false;
    c.handle_control(call_request("sip:s1@example.net"), ReplyTo(7), clock.at(10));
    let acts = actions(&mut c);
    let [Action::Call { target, offer, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(target, "sip:s1@example.net");
    let offer = offer.clone();
    let text = String::from_utf8_lossy(&offer).into_owned();
    assert!(text.contains(" RTP/SAVP "), "{text}");
    assert!(
        text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{text}"
    );
    c.handle_report(
        Report::Placed {
            call: PendingId(0),
            result: Ok(session(2)),
        },
        clock.at(10),
    );
    let policy = AnswerPolicy::Send {
        capabilities: capabilities(),
    };
    let (answer, sensor) =
        answer_offer(&parse_sdp(&offer).unwrap(), &policy, &local, &mut origin).unwrap();
    c.handle_event(
        UaEvent::Answered {
            session: session(2),
            answer: answer.to_bytes(),
        },
        clock.at(11),
    );
    let acts = actions(&mut c);
    let [Action::Open { args, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    let (collector, sensor) = (args.agreed.srtp.clone().unwrap(), sensor.srtp.unwrap());
    assert_eq!(
        collector.receive, sensor.send,
        "the sensor's key opens its stream"
    );
    assert_eq!(collector.send, sensor.receive);
}

/// `sip.tls` alone puts no key into an offer: a sensor registered over
/// UDP is called over UDP, where anyone on the path would read the key
/// (RFC 4568 8.3); one registered over TLS is called on its TLS flow, with
/// keys.
#[test]
fn sdes_keys_go_only_into_an_offer_sent_over_tls() {
    let secure = secure_media();
    let clock = Clock(Instant::now());
    let mut s = settings(true);
    s.media_security_over_tls = Some(secure);
    let mut c = Core::new(s, Some(registrar(clock.0)), IdGenerator::seeded(1));
    known_sensor(&mut c, &clock);
    let offer = String::from_utf8(call_s1(&mut c, &clock)).unwrap();
    assert!(!offer.contains("a=crypto"), "{offer}");
    assert!(offer.contains(" RTP/AVP "), "{offer}");
    // The same proxy-less call on a TLS binding's target would be secure.
    assert!(super::over_tls("sips:s1@198.51.100.10:40000"));
    assert!(super::over_tls("sip:proxy.example.net;transport=TLS"));
    assert!(!super::over_tls("sip:s1@198.51.100.10:40000;transport=tcp"));
    assert!(!super::over_tls("sip:s1@198.51.100.10"));
    let target = target_for(
        &SipUri::parse("sip:s1@198.51.100.10:5061;transport=tls").unwrap(),
        "198.51.100.10:40000".parse().unwrap(),
        Transport::Tls,
        true,
    );
    assert!(super::over_tls(&target), "{target}");
}

/// SRTP required, as over TLS signalling.
fn secure_media() -> sipsensor_protocol::MediaSecurity {
    sipsensor_protocol::MediaSecurity {
        srtp: sipsensor_protocol::SrtpPolicy::Required,
        signalling_secure: true,
    }
}
