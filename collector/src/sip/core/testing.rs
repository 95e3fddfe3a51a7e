//! What the TU's tests share: a virtual clock, a collector with users s1
//! and s2, sensors' requests and offers.

pub(super) use super::*;
pub(super) use crate::config::Policy;
pub(super) use crate::media::StreamKey;
pub(super) use crate::sip::control::{CallRequest, Request};
pub(super) use crate::sip::credentials::Credentials;
pub(super) use crate::storage::{SensorId, SessionId};
pub(super) use sipsensor_protocol::headers::UntypedHeader;
pub(super) use sipsensor_protocol::{
    AnswerPolicy, AorPolicy, ChannelSpec, DigestClient, DigestServerConfig, EndReason,
    LiteralsOnly, LocalEndpoint, LocalMedia, LocalSdp, Password, RegistrarConfig,
    RegistrationEvent, SampleFormat, ServerSecret, StreamDescription, StreamRole, Target,
    Transport, UaConfig, UaOutput, Unit, UserAgent, WallClock,
};
use sipsensor_protocol::{answer_offer, make_offer, parse_sdp};
pub(super) use std::path::Path;
pub(super) use std::time::Duration;

pub(super) const SENSOR: &str = "198.51.100.10:5060";
pub(super) const PROXY: &str = "192.0.2.50:5060";
pub(super) const HOST: &str = "192.0.2.1:5060";
pub(super) const UNIX_START_NS: i64 = 1_700_000_000_000_000_000;

/// A virtual clock: `at(s)` is `s` seconds after the start.
pub(super) struct Clock(pub(super) Instant);

impl Clock {
    pub(super) fn at(&self, secs: u64) -> Now {
        let d = Duration::from_secs(secs);
        Now {
            instant: self.0 + d,
            unix_ns: UNIX_START_NS + i64::try_from(d.as_nanos()).unwrap(),
        }
    }
}

pub(super) fn settings(embedded_registrar: bool) -> Settings {
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
        calling_user: None,
        media_security: Default::default(),
        media_security_over_tls: None,
        proxy_over_tls: false,
        recovery: true,
        backfill_max_rate: 20_000,
    }
}

pub(super) fn credentials() -> Credentials {
    let text = "users:\n  s1: pw1\n  s2: pw2\n";
    Credentials::parse(text, Path::new("users.yaml"), "example.net").unwrap()
}

pub(super) fn registrar(start: Instant) -> Registrar {
    let mut ids = IdGenerator::seeded(7);
    let config = RegistrarConfig {
        authenticate: true,
        aor_policy: AorPolicy::UsernameIsAorUser,
        agent: HOST.into(),
        ..RegistrarConfig::default()
    };
    let digest = DigestServerConfig::new("example.net", ServerSecret::generate(&mut ids));
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
pub(super) fn core() -> (Core, Clock) {
    core_with(|_| {})
}

/// [`core`] with its settings changed first.
pub(super) fn core_with(tweak: impl FnOnce(&mut Settings)) -> (Core, Clock) {
    let start = Instant::now();
    let mut settings = settings(true);
    tweak(&mut settings);
    let core = Core::new(settings, Some(registrar(start)), IdGenerator::seeded(1));
    (core, Clock(start))
}

/// What the core asked for, but the authentication counters and log
/// lines and the fleet subscriptions' events (their own tests look at
/// those with [`all_actions`]).
pub(super) fn actions(c: &mut Core) -> Vec<Action> {
    all_actions(c)
        .into_iter()
        .filter(|a| {
            !matches!(
                a,
                Action::CountAuth(_) | Action::LogAuth(_) | Action::Fleet(_)
            )
        })
        .collect()
}

pub(super) fn all_actions(c: &mut Core) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// The response an action sends, whichever way.
pub(super) fn response_of(a: &Action) -> Option<&sipsensor_protocol::Response> {
    match a {
        Action::RespondToInvite { response, .. }
        | Action::Respond { response, .. }
        | Action::RefuseInviteStatelessly { response, .. }
        | Action::RespondStatelessly { response, .. } => Some(response),
        _ => None,
    }
}

pub(super) fn session(n: u64) -> UaSession {
    UaSession::from_raw(n)
}

pub(super) fn udp(addr: &str) -> Target {
    Target {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

pub(super) fn capabilities() -> StreamDescription {
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

pub(super) fn sensor_media() -> (LocalMedia, LocalSdp) {
    let local = LocalMedia::new("198.51.100.10:41000".parse().unwrap());
    let origin = LocalSdp::with_session_id("s1", "198.51.100.10".parse().unwrap(), 3);
    (local, origin)
}

/// The offer a sensor sends with its INVITE (or re-INVITE).
pub(super) fn sensor_offer(desc: &StreamDescription) -> Vec<u8> {
    let (local, mut origin) = sensor_media();
    make_offer(desc, StreamRole::Sender, &local, &mut origin)
        .unwrap()
        .to_bytes()
}

/// A sensor's answer to the collector's offer.
pub(super) fn sensor_answer(offer: &[u8]) -> Vec<u8> {
    let (local, mut origin) = sensor_media();
    let offer = parse_sdp(offer).unwrap();
    let policy = AnswerPolicy::Send {
        capabilities: capabilities(),
    };
    answer_offer(&offer, &policy, &local, &mut origin)
        .unwrap()
        .0
        .to_bytes()
}

pub(super) fn request(
    method: &str,
    from_user: &str,
    call_id: &str,
    extra: &str,
) -> sipsensor_protocol::Request {
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
    sipsensor_protocol::Request::try_from(text.as_bytes()).unwrap()
}

pub(super) fn invite_event(
    request: sipsensor_protocol::Request,
    source: &str,
    offer: Vec<u8>,
) -> UaEvent {
    UaEvent::IncomingCall {
        session: session(1),
        request,
        source: udp(source),
        offer,
    }
}

pub(super) fn status_of(a: &Action) -> u16 {
    match response_of(a) {
        Some(response) => response.status_code.code(),
        None => panic!("not a response: {a:?}"),
    }
}

pub(super) fn warning_of(a: &Action) -> String {
    let Some(response) = response_of(a) else {
        panic!("not a response: {a:?}")
    };
    response
        .headers
        .iter()
        .find_map(|h| match h {
            sipsensor_protocol::Header::Warning(w) => Some(w.value().to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

pub(super) fn opened() -> Opened {
    Opened {
        sensor: SensorId(5),
        session: SessionId(50),
        media: StreamKey(500),
    }
}

/// A sensor s1 called from a trusted proxy and was set up: session 1 active.
pub(super) fn active_incoming(c: &mut Core, clock: &Clock) {
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(
        invite_event(req, PROXY, sensor_offer(&capabilities())),
        clock.at(0),
    );
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
pub(super) fn register_event(request: &sipsensor_protocol::Request, clock: &Clock) -> UaEvent {
    let local = LocalEndpoint::new(Transport::Udp, HOST.parse().unwrap());
    let mut config = UaConfig::new(local, "sip:collector@example.net");
    config.accept_register = true;
    let mut ua = UserAgent::new(config, IdGenerator::seeded(9), Box::new(LiteralsOnly)).unwrap();
    ua.handle_input(&request.to_string().into_bytes(), udp(SENSOR), clock.0);
    std::iter::from_fn(|| ua.poll_output())
        .find_map(|o| match o {
            UaOutput::Event(ev @ UaEvent::Request { .. }) => Some(ev),
            _ => None,
        })
        .unwrap()
}

pub(super) fn register_request(user: &str) -> sipsensor_protocol::Request {
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
    sipsensor_protocol::Request::try_from(text.as_bytes()).unwrap()
}

/// Sends `request` unauthenticated, answers the challenge as `user` with
/// `password` and returns the actions for the second attempt.
pub(super) fn with_digest(
    c: &mut Core,
    clock: &Clock,
    mut request: sipsensor_protocol::Request,
    user: &str,
    password: &str,
    event: impl Fn(sipsensor_protocol::Request) -> UaEvent,
) -> Vec<Action> {
    c.handle_event(event(request.clone()), clock.at(0));
    let acts = actions(c);
    let [challenge] = &acts[..] else {
        panic!("{acts:?}")
    };
    let Some(response) = response_of(challenge) else {
        panic!("{acts:?}")
    };
    assert_eq!(response.status_code.code(), 401);
    let mut client = DigestClient::new(user, Password::new(password));
    client.handle_challenge(&request, response).unwrap();
    client.authorize(&mut request, &mut IdGenerator::seeded(4));
    c.handle_event(event(request), clock.at(1));
    actions(c)
}

/// Signs `request` for user s1 with `password`, answering the challenge
/// among the actions `first`.
pub(super) fn sign_as_s1(
    first: &[Action],
    request: &mut sipsensor_protocol::Request,
    password: &str,
    seed: u64,
) {
    let Some(challenge) = first.iter().find_map(response_of) else {
        panic!("{first:?}")
    };
    let mut client = DigestClient::new("s1", Password::new(password));
    client.handle_challenge(request, challenge).unwrap();
    client.authorize(request, &mut IdGenerator::seeded(seed));
}
