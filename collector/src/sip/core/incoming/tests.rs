//! Sensors' INVITEs and the life of the calls they start.

use crate::sip::core::testing::*;

#[test]
fn an_unanswerable_offer_is_refused_with_its_status_and_warning() {
    let (mut c, clock) = core();
    // Encrypted RTP is not spoken here.
    let offer = String::from_utf8(sensor_offer(&capabilities()))
        .unwrap()
        .replace("RTP/AVP", "RTP/SAVP");
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, offer.into_bytes()), clock.at(0));
    let acts = actions(&mut c);
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert_eq!(acts[0], Action::Count("sip_not_acceptable"));
    let Action::Warn { kind, message } = &acts[1] else {
        panic!("{acts:?}")
    };
    assert_eq!(*kind, "not_acceptable");
    assert!(message.starts_with(&format!("INVITE from sip:s1@example.net ({PROXY}): 488")));
    assert_eq!(status_of(&acts[2]), 488);
    assert!(warning_of(&acts[2]).starts_with(&format!("302 {HOST} ")));
}

#[test]
fn malformed_sdp_is_refused_with_400() {
    let (mut c, clock) = core();
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, b"v=0\r\n".to_vec()), clock.at(0));
    let acts = actions(&mut c);
    assert_eq!(acts.len(), 2, "{acts:?}");
    assert_eq!(acts[0], Action::Count("sip_not_acceptable"));
    assert_eq!(status_of(&acts[1]), 400);
    assert!(warning_of(&acts[1]).contains("malformed SDP"));
}

#[test]
fn an_invite_without_a_readable_from_is_refused_with_400() {
    let (mut c, clock) = core();
    let mut req = request("INVITE", "s1", "call-1", "");
    req.headers
        .retain(|h| !matches!(h, sipsensor_protocol::Header::From(_)));
    c.handle_event(
        invite_event(req, PROXY, sensor_offer(&capabilities())),
        clock.at(0),
    );
    let acts = actions(&mut c);
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(status_of(&acts[0]), 400);
    assert_eq!(
        warning_of(&acts[0]),
        format!("399 {HOST} \"no readable From\"")
    );
}

#[test]
fn a_busy_collector_rejects_the_call_with_the_media_status() {
    let (mut c, clock) = core();
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(
        invite_event(req, PROXY, sensor_offer(&capabilities())),
        clock.at(0),
    );
    actions(&mut c);
    let busy = SetupError::Open {
        status: 503,
        reason: "too many streams".into(),
    };
    c.handle_report(
        Report::Opened {
            session: session(1),
            result: Err(busy),
        },
        clock.at(1),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Reject {
            session: session(1),
            status: 503,
            reason: "too many streams".into()
        }]
    );
    // Forgotten: nothing streams.
    c.handle_control(Request::Sessions, ReplyTo(1), clock.at(2));
    let acts = actions(&mut c);
    let [Action::Reply { reply, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(reply.message, "0 active sessions");
}

#[test]
fn an_accepted_call_is_listed_and_its_sensor_remembered() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    c.handle_control(Request::Sessions, ReplyTo(1), clock.at(2));
    let acts = actions(&mut c);
    let [Action::Reply { to, reply }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(*to, ReplyTo(1));
    assert_eq!(reply.message, "1 active sessions");
    let detail = reply.detail.as_ref().unwrap();
    assert_eq!(detail[0]["aor"], "sip:s1@example.net");
    assert_eq!(detail[0]["call_id"], "call-1");
    // The next call of the same sensor reuses its id.
    c.handle_event(
        UaEvent::IncomingCall {
            session: session(2),
            request: request("INVITE", "s1", "call-2", ""),
            source: udp(PROXY),
            offer: sensor_offer(&capabilities()),
        },
        clock.at(3),
    );
    let acts = actions(&mut c);
    let [Action::Open { args, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(args.sensor, Some(SensorId(5)));
}

#[test]
fn a_bye_from_the_sensor_closes_its_stream_then_records_its_state() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    let bye = UaEvent::Ended {
        session: session(1),
        reason: EndReason::RemoteBye,
        warning: None,
        retry_after: None,
    };
    c.handle_event(bye, clock.at(5));
    assert_eq!(
        actions(&mut c),
        vec![Action::Close {
            opened: opened(),
            report: Some("sip:s1@example.net".into())
        }]
    );
    c.handle_report(
        Report::Closed {
            aor: "sip:s1@example.net".into(),
        },
        clock.at(6),
    );
    // Not registered here: offline.
    assert_eq!(
        actions(&mut c),
        vec![Action::SetState {
            aor: "sip:s1@example.net".into(),
            state: SensorState::Offline
        }]
    );
}

#[test]
fn a_call_ended_during_set_up_is_released_once_set_up() {
    let (mut c, clock) = core();
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(
        invite_event(req, PROXY, sensor_offer(&capabilities())),
        clock.at(0),
    );
    actions(&mut c);
    let cancel = UaEvent::Ended {
        session: session(1),
        reason: EndReason::RemoteCancel,
        warning: None,
        retry_after: None,
    };
    c.handle_event(cancel, clock.at(1));
    assert_eq!(actions(&mut c), vec![]);
    c.handle_report(
        Report::Opened {
            session: session(1),
            result: Ok(opened()),
        },
        clock.at(2),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Close {
            opened: opened(),
            report: Some("sip:s1@example.net".into())
        }]
    );
}

#[test]
fn a_stream_set_up_for_a_forgotten_call_is_closed_silently() {
    let (mut c, clock) = core();
    c.handle_report(
        Report::Opened {
            session: session(9),
            result: Ok(opened()),
        },
        clock.at(0),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Close {
            opened: opened(),
            report: None
        }]
    );
}

/// A sensor's SRTP offer (`RTP/SAVP`, an SDES key): answered with keys of
/// our own only when it came over TLS and `sip.tls` is configured; over
/// UDP, or without TLS configured, the keys stay out (488).
#[test]
fn a_sensors_srtp_offer_is_taken_only_over_tls() {
    let offer = String::from_utf8(sensor_offer(&capabilities()))
        .unwrap()
        .replace("RTP/AVP", "RTP/SAVP")
        .replace(
            "a=rtpmap",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\na=rtpmap",
        );
    let secure = sipsensor_protocol::MediaSecurity {
        srtp: sipsensor_protocol::SrtpPolicy::Required,
        signalling_secure: true,
    };
    let tls = Target {
        transport: Transport::Tls,
        addr: PROXY.parse().unwrap(),
    };
    let call = |over_tls: Option<sipsensor_protocol::MediaSecurity>, source: Target| {
        let (mut c, clock) = core_with(|s| s.media_security_over_tls = over_tls);
        c.handle_event(
            UaEvent::IncomingCall {
                session: session(1),
                request: request("INVITE", "s1", "call-1", ""),
                source,
                offer: offer.clone().into_bytes(),
            },
            clock.at(0),
        );
        actions(&mut c)
    };
    let acts = call(Some(secure), tls);
    let [Action::Open { args, accept, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert!(args.agreed.srtp.is_some(), "{:?}", args.agreed);
    let answer = String::from_utf8(accept.clone().unwrap()).unwrap();
    assert!(
        answer.contains("RTP/SAVP") && answer.contains("a=crypto:1 "),
        "{answer}"
    );
    // The same offer over UDP, or over TLS with no `sip.tls`: no keys.
    for (over_tls, source) in [(Some(secure), udp(PROXY)), (None, tls)] {
        let acts = call(over_tls, source);
        assert!(
            acts.iter()
                .any(|a| response_of(a).is_some_and(|r| r.status_code.code() == 488)),
            "{acts:?}"
        );
    }
}

/// An INVITE of sensor s1 offering `offer`; what the core does with it.
fn invited_with(offer: Vec<u8>) -> Vec<Action> {
    let (mut c, clock) = core();
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, offer), clock.at(0));
    actions(&mut c)
}

#[test]
fn an_agent_offering_recovery_gets_it_with_our_rate_cap() {
    use sipsensor_protocol::{
        BackfillSupport, RecoverySupport, RtxSupport, StreamRole, offer_with_recovery,
    };
    let (mut local, mut origin) = sensor_media();
    local.ssrc = Some(0x1a2b_3c4d);
    local.cname = Some("s1@198.51.100.10".into());
    let support = RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: std::time::Duration::from_secs(3),
            ssrc: Some(0x5e1f_0001),
        }),
        backfill: Some(BackfillSupport {
            oldest: Some(1),
            ssrc: Some(0x0bf0_0001),
            ..BackfillSupport::default()
        }),
    };
    let offer = offer_with_recovery(
        &capabilities(),
        StreamRole::Sender,
        &local,
        &support,
        &mut origin,
    )
    .unwrap();
    let acts = invited_with(offer.to_bytes());
    let [Action::Open { args, accept, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(args.recovery.instant_id, Some(1));
    assert_eq!(args.recovery.rtx.as_ref().unwrap().ssrc, Some(0x5e1f_0001));
    let backfill = args.recovery.backfill.as_ref().unwrap();
    assert_eq!(backfill.ssrc, Some(0x0bf0_0001));
    let answer = String::from_utf8(accept.clone().unwrap()).unwrap();
    assert!(answer.contains(" rtx/100"), "{answer}");
    // The shell sets the stored mark; the core states the cap.
    assert!(answer.contains("mark=0;max-rate=20000"), "{answer}");
}

#[test]
fn an_agent_without_recovery_gets_todays_answer() {
    let acts = invited_with(sensor_offer(&capabilities()));
    let [Action::Open { args, accept, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(args.recovery, Default::default());
    let answer = String::from_utf8(accept.clone().unwrap()).unwrap();
    for line in ["extmap", "rtcp-fb", "rtx/", "sensor-backfill"] {
        assert!(!answer.contains(line), "{answer}");
    }
}

/// The sensor's own Via, as a NAT's first-hop proxy stamps it (RFC 3581 4).
const NATED_VIA: &str =
    "Via: SIP/2.0/TLS 10.77.0.10:40000;branch=z9hG4bKs;received=203.0.113.9;rport=39488\r\n";

fn opened_signalling_ip(acts: &[Action]) -> Option<std::net::IpAddr> {
    match acts {
        [Action::Open { args, .. }] => args.signalling_ip,
        _ => panic!("{acts:?}"),
    }
}

#[test]
fn a_sensor_behind_a_nat_may_stream_from_where_the_trusted_proxy_saw_it() {
    let (mut c, clock) = core();
    let req = request("INVITE", "s1", "call-1", NATED_VIA);
    c.handle_event(
        invite_event(req, PROXY, sensor_offer(&capabilities())),
        clock.at(0),
    );
    let acts = actions(&mut c);
    assert_eq!(
        opened_signalling_ip(&acts),
        Some("203.0.113.9".parse().unwrap())
    );
}

#[test]
fn a_sensor_calling_directly_cannot_name_its_media_address_in_its_via() {
    let (mut c, clock) = core();
    let offer = sensor_offer(&capabilities());
    let acts = with_digest(
        &mut c,
        &clock,
        request("INVITE", "s1", "call-1", NATED_VIA),
        "s1",
        "pw1",
        |r| invite_event(r, SENSOR, offer.clone()),
    );
    let sensor: std::net::SocketAddr = SENSOR.parse().unwrap();
    assert_eq!(opened_signalling_ip(&acts), Some(sensor.ip()));
}
