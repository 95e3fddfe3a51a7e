//! Who may open a session, tried as an attacker would (issue #14 finding
//! 1): forged From, wrong password, replayed credentials, a stranger
//! against a running stream, and the trusted proxy's flow.

use std::time::{Duration, Instant};

use sipsensor_protocol::{
    DigestClient, IdGenerator, LocalMedia, LocalSdp, Password, Request, Response, StreamRole,
    Target, Transport, UaEvent, make_offer,
};

use super::{actions, capabilities, registered, session, settings};
use crate::session::{Action, Controller, Settings};

const COLLECTOR: &str = "203.0.113.5:5060";
const PROXY: &str = "192.0.2.20:5060";

pub(super) fn offer() -> Vec<u8> {
    let mut origin = LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), 7);
    let local = LocalMedia::new("203.0.113.5:50000".parse().unwrap());
    make_offer(&capabilities(), StreamRole::Receiver, &local, &mut origin)
        .unwrap()
        .to_bytes()
}

/// An INVITE with the collector's From: what a forger writes too.
fn invite(n: u64) -> Request {
    Request::try_from(
        format!(
            "INVITE sip:s1@198.51.100.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK{n}\r\n\
From: <sip:collector@example.net>;tag=a{n}\r\nTo: <sip:s1@example.net>\r\nCall-ID: c{n}\r\n\
CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

fn call(n: u64, request: Request, from: Target) -> UaEvent {
    UaEvent::IncomingCall {
        session: session(n),
        request,
        source: from,
        offer: offer(),
    }
}

pub(super) fn udp(addr: &str) -> Target {
    Target::new(Transport::Udp, addr.parse().unwrap())
}

fn tcp(addr: &str) -> Target {
    Target::new(Transport::Tcp, addr.parse().unwrap())
}

/// Registered, waiting to be called.
pub(super) fn waiting(settings: Settings) -> (Controller, Instant) {
    let now = Instant::now();
    let mut c = Controller::new(
        Settings {
            collector: None,
            ..settings
        },
        IdGenerator::seeded(9),
    );
    c.start(now);
    c.handle_event(registered(), now);
    actions(&mut c);
    (c, now)
}

/// The 401 the controller sent for session `n`.
fn challenge_of(acts: &[Action]) -> Response {
    match acts {
        [Action::Challenge { response, .. }] => (**response).clone(),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn status(r: &Response) -> u16 {
    r.status_code.code()
}

/// `request` answering `challenge` as a caller with `password` would.
fn answered(
    challenge: &Response,
    request: Request,
    password: &str,
    ids: &mut IdGenerator,
) -> Request {
    let mut client = DigestClient::new("collector", Password::new(password));
    client.handle_challenge(&request, challenge).unwrap();
    let mut request = request;
    client.authorize(&mut request, ids);
    request
}

/// A call without credentials, as every first INVITE is: its 401, and
/// the caller's id source.
fn first_challenge(c: &mut Controller, now: Instant) -> (Response, IdGenerator) {
    c.handle_event(call(1, invite(1), udp(COLLECTOR)), now);
    (challenge_of(&actions(c)), IdGenerator::seeded(77))
}

fn streams(acts: &[Action]) -> bool {
    acts.iter().any(|a| matches!(a, Action::StartStream { .. }))
}

#[test]
fn a_forged_from_gets_a_sha256_challenge_and_no_stream() {
    let (mut c, now) = waiting(settings(true));
    c.handle_event(call(1, invite(1), udp("198.51.100.66:5060")), now);
    let acts = actions(&mut c);
    assert!(!streams(&acts));
    let challenge = challenge_of(&acts);
    assert_eq!(status(&challenge), 401);
    let text = challenge.to_string();
    assert!(text.contains("algorithm=SHA-256"), "{text}");
    assert!(!text.contains("MD5"), "MD5 only when configured: {text}");
}

#[test]
fn md5_is_offered_after_sha256_only_when_configured() {
    let mut s = settings(true);
    s.trust.allow_md5 = true;
    let (mut c, now) = waiting(s);
    c.handle_event(call(1, invite(1), udp(COLLECTOR)), now);
    let text = challenge_of(&actions(&mut c)).to_string();
    let (sha, md5) = (text.find("SHA-256").unwrap(), text.find("MD5").unwrap());
    assert!(sha < md5, "{text}");
}

#[test]
fn a_wrong_password_is_refused() {
    let (mut c, now) = waiting(settings(true));
    let (challenge, mut ids) = first_challenge(&mut c, now);
    let guess = answered(&challenge, invite(2), "guess", &mut ids);
    c.handle_event(call(2, guess, udp(COLLECTOR)), now);
    let acts = actions(&mut c);
    assert!(!streams(&acts));
    let again = challenge_of(&acts);
    assert_eq!(status(&again), 401);
    assert!(!again.to_string().contains("stale=true"));
}

#[test]
fn the_right_credential_opens_a_session_and_its_replay_does_not() {
    let (mut c, now) = waiting(settings(true));
    let (challenge, mut ids) = first_challenge(&mut c, now);
    let good = answered(&challenge, invite(2), "calling-secret", &mut ids);
    c.handle_event(call(2, good.clone(), udp(COLLECTOR)), now);
    let acts = actions(&mut c);
    assert!(
        matches!(
            &acts[..],
            [Action::Accept { .. }, Action::StartStream { .. }]
        ),
        "{acts:?}"
    );
    // The stream ends; an eavesdropper replays the INVITE word for word.
    c.handle_event(
        UaEvent::Ended {
            session: session(2),
            reason: sipsensor_protocol::EndReason::RemoteBye,
            warning: None,
            retry_after: None,
        },
        now,
    );
    actions(&mut c);
    let later = now + Duration::from_secs(1);
    c.handle_event(call(3, good, udp("198.51.100.66:5060")), later);
    let acts = actions(&mut c);
    assert!(!streams(&acts), "{acts:?}");
    assert_eq!(status(&challenge_of(&acts)), 401);
}

#[test]
fn an_expired_nonce_gets_a_stale_challenge() {
    let (mut c, now) = waiting(settings(true));
    let (challenge, mut ids) = first_challenge(&mut c, now);
    let late = answered(&challenge, invite(2), "calling-secret", &mut ids);
    // Nonces live 300 s (the digest server's default).
    c.handle_event(
        call(2, late, udp(COLLECTOR)),
        now + Duration::from_secs(302),
    );
    let acts = actions(&mut c);
    assert!(!streams(&acts));
    assert!(challenge_of(&acts).to_string().contains("stale=true"));
}

#[test]
fn without_callers_a_stranger_gets_403_even_from_a_udp_flow() {
    let mut s = settings(true);
    s.trust.callers.clear();
    // A UDP "flow" is ignored: a datagram's source is anyone's to write.
    s.trust.flow = Some(udp(PROXY));
    let (mut c, now) = waiting(s);
    for (n, from) in [(1, udp(COLLECTOR)), (2, udp(PROXY))] {
        c.handle_event(call(n, invite(n), from), now);
        assert!(matches!(
            &actions(&mut c)[..],
            [Action::Reject { status: 403, .. }]
        ));
    }
}

#[test]
fn the_proxy_flow_needs_no_challenge_but_its_address_over_udp_does() {
    let mut s = settings(true);
    s.trust.flow = Some(tcp(PROXY));
    let (mut c, now) = waiting(s);
    // Same address, but a datagram: anyone can send it.
    c.handle_event(call(1, invite(1), udp(PROXY)), now);
    assert_eq!(status(&challenge_of(&actions(&mut c))), 401);
    // Another TCP peer is not the flow either.
    c.handle_event(call(2, invite(2), tcp("192.0.2.21:5060")), now);
    assert_eq!(status(&challenge_of(&actions(&mut c))), 401);
    c.handle_event(call(3, invite(3), tcp(PROXY)), now);
    assert!(streams(&actions(&mut c)));
}

#[test]
fn a_stranger_cannot_take_over_or_probe_a_running_stream() {
    let (mut c, now) = waiting(settings(true));
    let (challenge, mut ids) = first_challenge(&mut c, now);
    let good = answered(&challenge, invite(2), "calling-secret", &mut ids);
    c.handle_event(call(2, good, udp(COLLECTOR)), now);
    assert!(streams(&actions(&mut c)));
    // A stranger learns nothing, not even that the sensor is busy.
    c.handle_event(call(3, invite(3), udp("198.51.100.66:5060")), now);
    let acts = actions(&mut c);
    assert_eq!(status(&challenge_of(&acts)), 401);
    // The real caller, authenticated again, hears that it is busy.
    let second = answered(&challenge_of(&acts), invite(4), "calling-secret", &mut ids);
    c.handle_event(call(4, second, udp(COLLECTOR)), now);
    assert!(matches!(
        &actions(&mut c)[..],
        [Action::Reject { status: 486, .. }]
    ));
}

#[test]
fn credentials_for_our_aor_pass_a_proxy_that_retargeted_to_our_contact() {
    let (mut c, now) = waiting(settings(true));
    let (challenge, mut ids) = first_challenge(&mut c, now);
    // The caller sent its INVITE to our AOR; the proxy's location lookup
    // put our Contact in the Request-URI before it reached us.
    let aor_invite = |n| {
        let mut r = invite(n);
        r.uri = sipsensor_protocol::SipUri::parse("sip:s1@example.net")
            .unwrap()
            .to_rsip();
        r
    };
    let retargeted = |r: Request| {
        let mut r = r;
        r.uri = invite(0).uri;
        r
    };
    let signed = answered(&challenge, aor_invite(2), "calling-secret", &mut ids);
    c.handle_event(call(2, retargeted(signed), udp(COLLECTOR)), now);
    assert!(streams(&actions(&mut c)));
    // Credentials for any other URI are no good here.
    let mut other = invite(3);
    other.uri = sipsensor_protocol::SipUri::parse("sip:s9@example.net")
        .unwrap()
        .to_rsip();
    let signed = answered(&challenge, other, "calling-secret", &mut ids);
    c.handle_event(call(3, retargeted(signed), udp(COLLECTOR)), now);
    let acts = actions(&mut c);
    assert!(!streams(&acts));
    assert_eq!(status(&challenge_of(&acts)), 400);
}

/// The collector's user agent, configured with its calling credential as
/// `sip.calling` makes it, answers the agent's challenge by itself (RFC
/// 3261 22.2): one INVITE refused, its retry accepted, media agreed. The
/// dialog it opens is bound to the sensor's own random To tag, so a BYE
/// forged without it is refused.
#[test]
fn a_collector_with_the_credential_gets_through_and_a_forged_bye_does_not() {
    use sipsensor_protocol::{LiteralsOnly, LocalEndpoint, UaConfig, UaOutput, UserAgent};
    let collector_addr: std::net::SocketAddr = COLLECTOR.parse().unwrap();
    let agent_addr: std::net::SocketAddr = "198.51.100.10:5060".parse().unwrap();
    let ua = |addr, aor: &str, credentials: Option<(String, Password)>| {
        let mut config = UaConfig::new(LocalEndpoint::new(Transport::Udp, addr), aor);
        config.credentials = credentials;
        UserAgent::new(config, IdGenerator::seeded(3), Box::new(LiteralsOnly)).unwrap()
    };
    let mut collector = ua(
        collector_addr,
        "sip:collector@example.net",
        Some(("collector".into(), Password::new("calling-secret"))),
    );
    let mut agent = ua(agent_addr, "sip:s1@example.net", None);
    let (mut c, now) = waiting(settings(true));
    collector
        .call("sip:s1@198.51.100.10:5060", offer(), now)
        .unwrap();
    let (mut challenged, mut answered) = (0, false);
    let mut collector_invite = String::new();
    for _ in 0..20 {
        while let Some(out) = collector.poll_output() {
            match out {
                UaOutput::Transmit { bytes, .. } => {
                    if collector_invite.is_empty() {
                        collector_invite = String::from_utf8_lossy(&bytes).into_owned();
                    }
                    agent.handle_input(&bytes, udp(COLLECTOR), now)
                }
                UaOutput::Event(UaEvent::Answered { .. }) => answered = true,
                UaOutput::Event(_) => {}
            }
        }
        while let Some(out) = agent.poll_output() {
            match out {
                UaOutput::Transmit { bytes, .. } => {
                    collector.handle_input(&bytes, Target::new(Transport::Udp, agent_addr), now)
                }
                UaOutput::Event(event) => c.handle_event(event, now),
            }
        }
        for action in actions(&mut c) {
            match action {
                Action::Challenge { session, response } => {
                    challenged += 1;
                    agent.respond_to_invite(session, *response, now).unwrap();
                }
                Action::Accept { session, answer } => agent.accept(session, answer, now).unwrap(),
                _ => {}
            }
        }
    }
    assert_eq!(challenged, 1);
    assert!(answered, "the collector's call was not answered");

    // A stranger who learnt the Call-ID and the collector's tag (not the
    // sensor's own random To tag) forges a BYE: 481, the stream goes on.
    let call_id = collector
        .call_id(sipsensor_protocol::SessionId::from_raw(1))
        .unwrap();
    let bye = format!(
        "BYE sip:s1@198.51.100.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.66;branch=z9hG4bKforged\r\n\
         Max-Forwards: 70\r\nFrom: <sip:collector@example.net>;tag={from_tag}\r\n\
         To: <sip:s1@example.net>;tag=guessed\r\nCall-ID: {call_id}\r\nCSeq: 999 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        from_tag = from_tag_of(&collector_invite),
    );
    agent.handle_input(bye.as_bytes(), udp("198.51.100.66:5060"), now);
    let mut refused = false;
    while let Some(out) = agent.poll_output() {
        match out {
            UaOutput::Transmit { bytes, .. } => {
                refused |= String::from_utf8_lossy(&bytes).starts_with("SIP/2.0 481")
            }
            UaOutput::Event(event) => c.handle_event(event, now),
        }
    }
    assert!(refused, "the forged BYE was not refused");
    assert!(
        !actions(&mut c).contains(&Action::StopStream),
        "a forged BYE stopped the stream"
    );
}

/// The From tag of a request's text.
fn from_tag_of(request: &str) -> String {
    request
        .lines()
        .find(|l| l.starts_with("From:"))
        .and_then(|l| l.split("tag=").nth(1))
        .map(|t| t.trim().to_owned())
        .unwrap()
}
