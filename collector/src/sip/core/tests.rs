//! Every decision of the TU on a virtual clock: inputs with their time,
//! the exact actions that come out.

use super::*;
use rsip::headers::UntypedHeader;
use crate::config::Policy;
use crate::media::StreamKey;
use crate::sip::control::{CallRequest, Request};
use crate::sip::credentials::Credentials;
use crate::storage::{SensorId, SessionId};
use sipsensor_protocol::sdp::{
    AnswerPolicy, ChannelSpec, LocalMedia, LocalSdp, Role, SampleFormat, StreamDescription, Unit,
};
use sipsensor_protocol::sip::digest::{DigestClient, Password, ServerConfig, ServerSecret, WallClock};
use sipsensor_protocol::sip::locate::LiteralsOnly;
use sipsensor_protocol::sip::registrar::{AorPolicy, RegistrarConfig};
use sipsensor_protocol::sip::registration::RegistrationEvent;
use sipsensor_protocol::sip::ua::{EndReason, Output, UaConfig, UserAgent};
use sipsensor_protocol::sip::{LocalEndpoint, Target, Transport};
use std::path::Path;
use std::time::Duration;

const SENSOR: &str = "198.51.100.10:5060";
const PROXY: &str = "192.0.2.50:5060";
const HOST: &str = "192.0.2.1:5060";
const UNIX_START_NS: i64 = 1_700_000_000_000_000_000;

/// A virtual clock: `at(s)` is `s` seconds after the start.
struct Clock(Instant);

impl Clock {
    fn at(&self, secs: u64) -> Now {
        let d = Duration::from_secs(secs);
        Now {
            instant: self.0 + d,
            unix_ns: UNIX_START_NS + i64::try_from(d.as_nanos()).unwrap(),
        }
    }
}

fn settings(embedded_registrar: bool) -> Settings {
    Settings {
        host: HOST.into(),
        identity: "sip:collector@example.net".into(),
        rtp: "192.0.2.1:40000".parse().unwrap(),
        policy: Policy::default(),
        trusted: vec!["192.0.2.48/29".parse().unwrap()],
        embedded_registrar,
        credentials_file: None,
        realm: "example.net".into(),
        own_user: None,
    }
}

fn credentials() -> Credentials {
    let text = "users:\n  s1: pw1\n  s2: pw2\n";
    Credentials::parse(text, Path::new("users.yaml"), "example.net").unwrap()
}

fn registrar(start: Instant) -> Registrar {
    let mut ids = IdGenerator::seeded(7);
    let config = RegistrarConfig {
        authenticate: true,
        aor_policy: AorPolicy::UsernameIsAorUser,
        agent: HOST.into(),
        ..RegistrarConfig::default()
    };
    let digest = ServerConfig::new("example.net", ServerSecret::generate(&mut ids));
    Registrar::new(
        config,
        digest,
        Box::new(credentials().store),
        WallClock::new(start, 1_700_000_000),
        IdGenerator::seeded(8),
    )
    .unwrap()
}

/// A collector with the embedded registrar and users s1 and s2.
fn core() -> (Core, Clock) {
    let start = Instant::now();
    let core = Core::new(settings(true), Some(registrar(start)), IdGenerator::seeded(1));
    (core, Clock(start))
}

fn actions(c: &mut Core) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

fn session(n: u64) -> UaSession {
    UaSession::from_raw(n)
}

fn udp(addr: &str) -> Target {
    Target {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

fn capabilities() -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: 1,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 1,
            samples_per_packet: 2,
            channels: ["t", "h"]
                .iter()
                .map(|n| ChannelSpec {
                    name: (*n).into(),
                    unit: Unit::from_symbol("Cel").unwrap(),
                    scale: -2,
                })
                .collect(),
        }),
        events: None,
    }
}

fn sensor_media() -> (LocalMedia, LocalSdp) {
    let local = LocalMedia::new("198.51.100.10:41000".parse().unwrap());
    let origin = LocalSdp::with_session_id("s1", "198.51.100.10".parse().unwrap(), 3);
    (local, origin)
}

/// The offer a sensor sends with its INVITE (or re-INVITE).
fn sensor_offer(desc: &StreamDescription) -> Vec<u8> {
    let (local, mut origin) = sensor_media();
    sdp::offer(desc, Role::Sender, &local, &mut origin)
        .unwrap()
        .to_bytes()
}

/// A sensor's answer to the collector's offer.
fn sensor_answer(offer: &[u8]) -> Vec<u8> {
    let (local, mut origin) = sensor_media();
    let offer = sdp::parse(offer).unwrap();
    let policy = AnswerPolicy::Send {
        capabilities: capabilities(),
    };
    sdp::answer(&offer, &policy, &local, &mut origin)
        .unwrap()
        .0
        .to_bytes()
}

fn request(method: &str, from_user: &str, call_id: &str, extra: &str) -> rsip::Request {
    let text = format!(
        "{method} sip:collector@example.net SIP/2.0\r\n\
         Via: SIP/2.0/UDP {SENSOR};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from_user}@example.net>;tag=t{call_id}\r\n\
         To: <sip:collector@example.net>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:{from_user}@{SENSOR}>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_bytes()).unwrap()
}

fn invite_event(request: rsip::Request, source: &str, offer: Vec<u8>) -> UaEvent {
    UaEvent::IncomingCall {
        session: session(1),
        request,
        source: udp(source),
        offer,
    }
}

fn status_of(a: &Action) -> u16 {
    match a {
        Action::RespondToInvite { response, .. } | Action::Respond { response, .. } => {
            response.status_code.code()
        }
        other => panic!("not a response: {other:?}"),
    }
}

fn warning_of(a: &Action) -> String {
    let (Action::RespondToInvite { response, .. } | Action::Respond { response, .. }) = a else {
        panic!("not a response: {a:?}")
    };
    response
        .headers
        .iter()
        .find_map(|h| match h {
            rsip::Header::Warning(w) => Some(w.value().to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

fn opened() -> Opened {
    Opened {
        sensor: SensorId(5),
        session: SessionId(50),
        media: StreamKey(500),
    }
}

/// A sensor s1 called from a trusted proxy and was set up: session 1 active.
fn active_incoming(c: &mut Core, clock: &Clock) {
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, sensor_offer(&capabilities())), clock.at(0));
    let acts = actions(c);
    assert!(matches!(&acts[..], [Action::Open { .. }]), "{acts:?}");
    c.handle_report(
        Report::Opened {
            session: session(1),
            result: Ok(opened()),
        },
        clock.at(1),
    );
    assert_eq!(actions(c), vec![]);
}

/// The REGISTER as the user agent hands it up (with its transaction id).
fn register_event(request: &rsip::Request, clock: &Clock) -> UaEvent {
    let local = LocalEndpoint::new(Transport::Udp, HOST.parse().unwrap());
    let mut config = UaConfig::new(local, "sip:collector@example.net");
    config.accept_register = true;
    let mut ua = UserAgent::new(config, IdGenerator::seeded(9), Box::new(LiteralsOnly)).unwrap();
    ua.handle_input(&request.to_string().into_bytes(), udp(SENSOR), clock.0);
    std::iter::from_fn(|| ua.poll_output())
        .find_map(|o| match o {
            Output::Event(ev @ UaEvent::Request { .. }) => Some(ev),
            _ => None,
        })
        .unwrap()
}

fn register_request(user: &str) -> rsip::Request {
    let text = format!(
        "REGISTER sip:example.net SIP/2.0\r\n\
         Via: SIP/2.0/UDP {SENSOR};branch=z9hG4bKreg{user}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@example.net>;tag=r{user}\r\n\
         To: <sip:{user}@example.net>\r\n\
         Call-ID: reg-{user}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@{SENSOR}>\r\n\
         Expires: 120\r\n\
         Content-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_bytes()).unwrap()
}

/// Sends `request` unauthenticated, answers the challenge as `user` with
/// `password` and returns the actions for the second attempt.
fn with_digest(
    c: &mut Core,
    clock: &Clock,
    mut request: rsip::Request,
    user: &str,
    password: &str,
    event: impl Fn(rsip::Request) -> UaEvent,
) -> Vec<Action> {
    c.handle_event(event(request.clone()), clock.at(0));
    let acts = actions(c);
    let [Action::Respond { response, .. } | Action::RespondToInvite { response, .. }] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(response.status_code.code(), 401);
    let mut client = DigestClient::new(user, Password::new(password));
    client.handle_challenge(&request, response).unwrap();
    client.authorize(&mut request, &mut IdGenerator::seeded(4));
    c.handle_event(event(request), clock.at(1));
    actions(c)
}

// ---- registration ----

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
    c.handle_event(UaEvent::Registration(RegistrationEvent::Expired), clock.at(0));
    assert_eq!(
        actions(&mut c),
        vec![Action::Warn {
            kind: "registration",
            message: "our registration expired".into()
        }]
    );
}

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

// ---- authorisation ----

#[test]
fn a_trusted_peer_is_let_in_without_a_challenge() {
    let (mut c, clock) = core();
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, sensor_offer(&capabilities())), clock.at(3));
    let acts = actions(&mut c);
    let [Action::Open {
        session: s,
        args,
        accept: Some(_),
    }] = &acts[..]
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
    c.handle_event(invite_event(req, SENSOR, sensor_offer(&capabilities())), clock.at(0));
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

// ---- incoming calls ----

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
    req.headers.retain(|h| !matches!(h, rsip::Header::From(_)));
    c.handle_event(invite_event(req, PROXY, sensor_offer(&capabilities())), clock.at(0));
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
    c.handle_event(invite_event(req, PROXY, sensor_offer(&capabilities())), clock.at(0));
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
    c.handle_event(invite_event(req, PROXY, sensor_offer(&capabilities())), clock.at(0));
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

// ---- outgoing calls ----

fn call_request(aor: &str) -> Request {
    Request::Call(CallRequest {
        aor: aor.into(),
        stream: None,
    })
}

/// s1 registered (at 1 s) and offered its stream once (call 1, ended).
fn known_sensor(c: &mut Core, clock: &Clock) {
    with_digest(c, clock, register_request("s1"), "s1", "pw1", |r| {
        register_event(&r, clock)
    });
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, sensor_offer(&capabilities())), clock.at(1));
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
    c.handle_control(call_request("sip:s1@example.net"), ReplyTo(1), clock.at(121));
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
    c.handle_event(invite_event(invite, PROXY, sensor_offer(&capabilities())), clock.at(0));
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
        reply.message.starts_with("sip:s1@example.net answered unusably: "),
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

// ---- re-offers ----

fn set_rate(hz: f64) -> Request {
    Request::SetRate {
        sensor: "s1".into(),
        hz,
    }
}

#[test]
fn set_rate_sends_a_reinvite_and_records_the_new_stream() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    c.handle_control(set_rate(50.0), ReplyTo(3), clock.at(20));
    let acts = actions(&mut c);
    let [
        Action::ExpectConfig { media, until },
        Action::Reinvite { session: s, offer },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!((*media, *s), (StreamKey(500), session(1)));
    assert_eq!(*until, clock.at(55).instant);
    let offer = offer.clone();
    // A second change waits for the first.
    c.handle_control(set_rate(25.0), ReplyTo(4), clock.at(21));
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(4),
            reply: Reply::error("a change of sip:s1@example.net's stream is already under way")
        }]
    );
    c.handle_event(
        UaEvent::ReofferAnswered {
            session: session(1),
            answer: sensor_answer(&offer),
        },
        clock.at(22),
    );
    let acts = actions(&mut c);
    let [
        Action::Renegotiate {
            opened: o,
            call_id,
            agreed,
            answer: None,
            ..
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!((*o, call_id.as_str()), (opened(), "call-1"));
    assert_eq!(agreed.description.samples.as_ref().unwrap().period, 2);
    let agreed = agreed.clone();
    c.handle_report(
        Report::Renegotiated {
            session: session(1),
            answer: None,
            result: Ok((SessionId(51), agreed)),
        },
        clock.at(23),
    );
    let acts = actions(&mut c);
    let [Action::Reply { to, reply }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(*to, ReplyTo(3));
    assert!(reply.ok, "{reply:?}");
    assert!(reply.message.starts_with("sip:s1@example.net now streams "));
    // The same rate again changes nothing.
    c.handle_control(set_rate(50.0), ReplyTo(5), clock.at(24));
    let acts = actions(&mut c);
    let [Action::Reply { reply, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert!(reply.ok);
    assert!(reply.message.starts_with("sip:s1@example.net already streams "));
}

#[test]
fn a_refused_or_unsent_reinvite_is_reported_and_another_may_follow() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    c.handle_control(set_rate(50.0), ReplyTo(3), clock.at(20));
    actions(&mut c);
    c.handle_event(
        UaEvent::ReofferRejected {
            session: session(1),
            status: 488,
            warning: Some("no".into()),
        },
        clock.at(21),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(3),
            reply: Reply::error("sip:s1@example.net refused the change with 488: no")
        }]
    );
    c.handle_control(set_rate(50.0), ReplyTo(4), clock.at(22));
    assert_eq!(actions(&mut c).len(), 2);
    c.handle_report(
        Report::ReinviteFailed {
            session: session(1),
            error: UaError::OfferPending(session(1)),
        },
        clock.at(22),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(4),
            reply: Reply::error(UaError::OfferPending(session(1)).to_string())
        }]
    );
}

#[test]
fn set_rate_of_a_sensor_not_streaming_is_an_error() {
    let (mut c, clock) = core();
    c.handle_control(set_rate(50.0), ReplyTo(1), clock.at(0));
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(1),
            reply: Reply::error("no active stream of s1")
        }]
    );
}

#[test]
fn a_reoffer_for_an_unknown_or_unready_call_is_refused() {
    let (mut c, clock) = core();
    let offer = sensor_offer(&capabilities());
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: offer.clone(),
        },
        clock.at(0),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::AnswerReoffer {
            session: session(1),
            answer: Err((481, "no such stream".into()))
        }]
    );
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, offer.clone()), clock.at(1));
    actions(&mut c);
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer,
        },
        clock.at(2),
    );
    // RFC 3261 14.2.
    assert_eq!(
        actions(&mut c),
        vec![Action::AnswerReoffer {
            session: session(1),
            answer: Err((491, "the stream is still being set up".into()))
        }]
    );
}

#[test]
fn an_unchanged_reoffer_is_answered_at_once() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: sensor_offer(&capabilities()),
        },
        clock.at(5),
    );
    let acts = actions(&mut c);
    let [Action::AnswerReoffer {
        session: s,
        answer: Ok(_),
    }] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*s, session(1));
}

#[test]
fn a_sensor_changing_its_channels_is_answered_once_recorded() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    let mut fewer = capabilities();
    if let Some(s) = fewer.samples.as_mut() {
        s.channels.truncate(1);
    }
    fewer.config = 2;
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: sensor_offer(&fewer),
        },
        clock.at(5),
    );
    let acts = actions(&mut c);
    let [
        Action::Renegotiate {
            agreed,
            answer: Some(answer),
            ..
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(agreed.description, fewer);
    let answer = answer.clone();
    c.handle_report(
        Report::Renegotiated {
            session: session(1),
            answer: Some(answer.clone()),
            result: Err(RenegotiateError::Gone),
        },
        clock.at(6),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::AnswerReoffer {
            session: session(1),
            answer: Err((500, "the stream is gone".into()))
        }]
    );
    let agreed = agreed.clone();
    c.handle_report(
        Report::Renegotiated {
            session: session(1),
            answer: Some(answer.clone()),
            result: Ok((SessionId(52), agreed)),
        },
        clock.at(7),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::AnswerReoffer {
            session: session(1),
            answer: Ok(answer)
        }]
    );
}

#[test]
fn an_unanswerable_reoffer_is_refused_with_a_warning() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: b"v=0\r\n".to_vec(),
        },
        clock.at(5),
    );
    let acts = actions(&mut c);
    let [
        Action::Warn { kind, message },
        Action::AnswerReoffer {
            answer: Err((status, _)),
            ..
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*kind, "reoffer");
    assert!(message.starts_with(&format!("re-offer from sip:s1@example.net ({HOST}): {status} ")));
}
