use std::time::{Duration, Instant};

use sipsensor_protocol::{
    AnswerPolicy, ChannelSpec, EndReason, FailureReason, IdGenerator, LocalEndpoint, LocalMedia,
    LocalSdp, Password, ReceivePolicy, RegistrationConfig, RegistrationEvent, SampleFormat,
    SessionId, StreamDescription, StreamRole, Transport, UaEvent, Unit, WallClock, answer_offer,
    make_offer, parse_sdp,
};

use super::flow::FlowPing;
use super::run::show_status;
use super::*;
use crate::status::{AgentState, StatusHub};

fn capabilities() -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: 1,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 1,
            samples_per_packet: 2,
            channels: ["t", "h", "p"]
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

pub(in crate::session) fn settings(registrar: bool) -> Settings {
    let local = LocalEndpoint::new(Transport::Udp, "198.51.100.10:5060".parse().unwrap());
    Settings {
        collector: Some("sip:collector@example.net".into()),
        registration: registrar.then(|| {
            RegistrationConfig::new(
                "sip:example.net",
                "sip:s1@example.net",
                "s1",
                Password::new("pw"),
                local,
            )
        }),
        trust: TrustConfig {
            flow: None,
            callers: vec![("collector".into(), Password::new("calling-secret"))],
            realm: "s1@example.net".into(),
            aor: "sip:s1@example.net".into(),
            allow_md5: false,
            clock: WallClock::new(Instant::now(), 1_800_000_000),
        },
        capabilities: capabilities(),
        local_media: LocalMedia::new("198.51.100.10:40000".parse().unwrap()),
        recovery: Default::default(),
        keepalive: Duration::from_secs(30),
        peer_timeout: Duration::from_secs(4),
        flow_keepalive: None,
        retry_initial: Duration::from_secs(2),
        retry_max: Duration::from_secs(300),
        sdp_user: "s1".into(),
        sdp_address: "198.51.100.10".parse().unwrap(),
    }
}

pub(in crate::session) fn actions(c: &mut Controller) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

fn session(n: u64) -> SessionId {
    // Session ids come from the user agent; tests make their own.
    SessionId::from_raw(n)
}

/// The collector's answer to `offer`, as a collector with `policy` builds it.
fn collector_answer(offer: &[u8], policy: ReceivePolicy) -> Vec<u8> {
    let offer = parse_sdp(offer).unwrap();
    let mut origin = LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), 7);
    let local = LocalMedia::new("203.0.113.5:50000".parse().unwrap());
    let (answer, _) =
        answer_offer(&offer, &AnswerPolicy::Receive(policy), &local, &mut origin).unwrap();
    answer.to_bytes()
}

pub(in crate::session) fn registered() -> UaEvent {
    UaEvent::Registration(RegistrationEvent::Registered {
        expires: Duration::from_secs(3600),
        contact: "<sip:s1@198.51.100.10:5060>".into(),
    })
}

/// The call the controller placed as `session` gets no answer.
fn call_times_out(c: &mut Controller, session: SessionId, now: Instant) {
    c.call_placed(Ok(session), now);
    c.handle_event(
        UaEvent::Ended {
            session,
            reason: EndReason::Timeout,
            warning: None,
            retry_after: None,
        },
        now,
    );
}

/// Registers, calls, gets answered: returns the controller streaming.
fn streaming() -> (Controller, StatusHub, Instant) {
    let hub = StatusHub::new();
    let now = Instant::now();
    let mut c = Controller::new(settings(true), IdGenerator::seeded(1));
    c.start(now);
    assert!(matches!(&actions(&mut c)[..], [Action::Register(_)]));
    // What the daemon's status shows once the shell applied the changes.
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Registering);
    c.handle_event(registered(), now);
    let Action::Call { to, offer } = actions(&mut c).remove(0) else {
        panic!()
    };
    assert_eq!(to, "sip:collector@example.net");
    c.call_placed(Ok(session(1)), now);
    let answer = collector_answer(&offer, ReceivePolicy::default());
    c.handle_event(
        UaEvent::Answered {
            session: session(1),
            answer,
        },
        now,
    );
    let acts = actions(&mut c);
    let [Action::StartStream { agreed, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(
        agreed.remote.as_ref().unwrap().rtp,
        "203.0.113.5:50000".parse().unwrap()
    );
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Streaming);
    (c, hub, now)
}

#[test]
fn registers_calls_and_streams_what_the_collector_agreed() {
    let now = Instant::now();
    let mut c = Controller::new(settings(true), IdGenerator::seeded(1));
    c.start(now);
    actions(&mut c);
    c.handle_event(registered(), now);
    let Action::Call { offer, .. } = actions(&mut c).remove(0) else {
        panic!()
    };
    c.call_placed(Ok(session(1)), now);
    // The collector takes half the rate and two channels.
    let policy = ReceivePolicy {
        channels: Some(vec!["t".into(), "p".into()]),
        max_rate_hz: Some(50.0),
        ..ReceivePolicy::default()
    };
    let answer = collector_answer(&offer, policy);
    c.handle_event(
        UaEvent::Answered {
            session: session(1),
            answer,
        },
        now,
    );
    let acts = actions(&mut c);
    let [Action::StartStream { agreed, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(agreed.description.sample_rate_hz(), Some(50.0));
    let names: Vec<_> = agreed
        .description
        .samples
        .as_ref()
        .unwrap()
        .channels
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["t", "p"]);
}

#[test]
fn without_a_registrar_it_calls_at_once() {
    let mut c = Controller::new(settings(false), IdGenerator::seeded(2));
    c.start(Instant::now());
    assert!(matches!(&actions(&mut c)[..], [Action::Call { .. }]));
}

#[test]
fn keepalive_pings_the_session_every_interval() {
    let (mut c, _, now) = streaming();
    let mut pings = Vec::new();
    // The peer reports all along; only the OPTIONS pings are of interest.
    let mut heard = 0;
    while let Some(at) = c
        .poll_timeout()
        .filter(|t| *t <= now + Duration::from_secs(60))
    {
        c.handle_timeout(at);
        for a in actions(&mut c) {
            match a {
                Action::CheckPeer => {
                    heard += 1;
                    c.peer_checked(heard, at);
                }
                Action::Ping(s) => pings.push((s, at - now)),
                other => panic!("{other:?}"),
            }
        }
    }
    let thirty = Duration::from_secs(30);
    assert_eq!(pings, [(session(1), thirty), (session(1), 2 * thirty)]);
}

#[test]
fn a_lost_collector_is_called_again_with_backoff() {
    let (mut c, hub, now) = streaming();
    // The collector restarted: our ping got 481.
    c.handle_event(
        UaEvent::Ended {
            session: session(1),
            reason: EndReason::DialogGone(481),
            warning: None,
            retry_after: None,
        },
        now,
    );
    assert_eq!(actions(&mut c), [Action::StopStream]);
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Registered);
    let at = c.poll_timeout().unwrap();
    let wait = at - now;
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    c.handle_timeout(at);
    assert!(matches!(&actions(&mut c)[..], [Action::Call { .. }]));
    // A second failure waits longer (bounded exponential back-off).
    call_times_out(&mut c, session(2), at);
    let wait2 = c.poll_timeout().unwrap() - at;
    assert!(
        wait2 >= Duration::from_secs(2) && wait2 <= Duration::from_secs(4),
        "{wait2:?}"
    );
}

#[test]
fn a_peer_that_cannot_take_sensor_streams_is_reported_as_an_error() {
    let hub = StatusHub::new();
    let now = Instant::now();
    let mut c = Controller::new(settings(false), IdGenerator::seeded(3));
    c.start(now);
    actions(&mut c);
    c.call_placed(Ok(session(1)), now);
    c.handle_event(
        UaEvent::Ended {
            session: session(1),
            reason: EndReason::Failed {
                status: 488,
                reason: "488 Not Acceptable Here".into(),
            },
            warning: Some("304 phone \"no sensor stream offered\"".into()),
            retry_after: None,
        },
        now,
    );
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Error);
    let last = hub.snapshot().last_error.unwrap();
    assert!(
        last.message.contains("cannot take sensor streams"),
        "{}",
        last.message
    );
    assert!(last.message.contains("no sensor stream offered"));
    assert!(
        last.message.contains(": 488 Not Acceptable Here ("),
        "the code said once: {}",
        last.message
    );
    assert!(c.poll_timeout().is_some(), "it tries again later");
}

#[test]
fn retry_after_is_honoured() {
    let now = Instant::now();
    let mut c = Controller::new(settings(false), IdGenerator::seeded(4));
    c.start(now);
    c.call_placed(Ok(session(1)), now);
    c.handle_event(
        UaEvent::Ended {
            session: session(1),
            reason: EndReason::Failed {
                status: 503,
                reason: "503 Service Unavailable".into(),
            },
            warning: None,
            retry_after: Some(120),
        },
        now,
    );
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(120)));
}

#[test]
fn a_wrong_password_turns_the_state_to_error() {
    let hub = StatusHub::new();
    let now = Instant::now();
    let mut c = Controller::new(settings(true), IdGenerator::seeded(5));
    c.start(now);
    c.handle_event(
        UaEvent::Registration(RegistrationEvent::Failed {
            reason: FailureReason::WrongCredentials {
                realm: "example.net".into(),
            },
        }),
        now,
    );
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Error);
    assert!(
        actions(&mut c)
            .iter()
            .all(|a| !matches!(a, Action::Call { .. }))
    );
}

#[test]
fn a_reinvite_halving_the_rate_updates_the_stream() {
    let (mut c, _, now) = streaming();
    // The collector's new offer: it receives, at half our rate.
    let mut wanted = capabilities();
    wanted.config = 2;
    if let Some(s) = wanted.samples.as_mut() {
        s.period = 2;
    }
    let mut origin = LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), 7);
    let local = LocalMedia::new("203.0.113.5:50000".parse().unwrap());
    let offer = make_offer(&wanted, StreamRole::Receiver, &local, &mut origin).unwrap();
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: offer.to_bytes(),
        },
        now,
    );
    let acts = actions(&mut c);
    let [
        Action::AnswerReoffer { answer: Ok(_), .. },
        Action::UpdateStream(agreed, _),
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(agreed.description.sample_rate_hz(), Some(50.0));
}

#[test]
fn shutdown_stops_the_stream_hangs_up_and_unregisters() {
    let (mut c, _, _) = streaming();
    c.shutdown();
    assert_eq!(
        actions(&mut c),
        [
            Action::StopStream,
            Action::Hangup(session(1)),
            Action::Unregister
        ]
    );
}

mod dialog;
mod liveness;
mod trust;

/// The flow to the registrar (RFC 5626 4.4): keep-alives while it is up; a
/// keep-alive that cannot go out means the connection is gone, and the
/// agent registers again (a new connection) after a back-off, instead of
/// staying unreachable until the next refresh.
#[test]
fn a_failed_flow_is_noticed_by_its_keepalive_and_registered_again() {
    let hub = StatusHub::new();
    let mut s = settings(true);
    s.collector = None;
    s.flow_keepalive = Some(flow::KEEPALIVE_INTERVAL);
    let mut c = Controller::new(s, IdGenerator::seeded(12));
    let t0 = Instant::now();
    c.start(t0);
    assert!(matches!(&actions(&mut c)[..], [Action::Register(_)]));
    assert_eq!(
        c.poll_timeout(),
        None,
        "no keep-alive before the flow is up"
    );
    c.handle_event(registered(), t0);
    let ping_at = c.poll_timeout().unwrap();
    assert!(ping_at - t0 <= flow::KEEPALIVE_INTERVAL);
    c.handle_timeout(ping_at);
    assert_eq!(actions(&mut c), [Action::PingFlow]);
    c.flow_checked(FlowPing::Sent { pongs: 3 }, ping_at);
    assert!(actions(&mut c).is_empty());
    // Its pong came.
    let pong_at = c.poll_timeout().unwrap();
    assert_eq!(pong_at, ping_at + flow::PONG_TIMEOUT);
    c.handle_timeout(pong_at);
    assert_eq!(actions(&mut c), [Action::CountPongs]);
    c.flow_pongs(4, pong_at);
    assert!(actions(&mut c).is_empty());
    // The next keep-alive finds the connection gone.
    let ping_at = c.poll_timeout().unwrap();
    c.handle_timeout(ping_at);
    assert_eq!(actions(&mut c), [Action::PingFlow]);
    c.flow_checked(FlowPing::Failed, ping_at);
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Registering);
    let retry_at = c.poll_timeout().unwrap();
    assert!(
        retry_at - ping_at <= flow::RETRY_BASE,
        "{:?}",
        retry_at - ping_at
    );
    c.handle_timeout(retry_at - Duration::from_millis(1));
    assert!(actions(&mut c).is_empty(), "not before the back-off");
    c.handle_timeout(retry_at);
    assert!(matches!(&actions(&mut c)[..], [Action::Register(_)]));
    c.handle_event(registered(), retry_at);
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Registered);
    assert!(c.poll_timeout().unwrap() > retry_at, "keep-alives again");
}

/// A registrar (or the path to it) that died without closing the
/// connection: the keep-alive goes out but no pong comes back.
#[test]
fn a_keepalive_without_a_pong_fails_the_flow_at_the_pong_timeout() {
    let hub = StatusHub::new();
    let mut s = settings(true);
    s.collector = None;
    s.flow_keepalive = Some(flow::KEEPALIVE_INTERVAL);
    let mut c = Controller::new(s, IdGenerator::seeded(13));
    let t0 = Instant::now();
    c.start(t0);
    c.handle_event(registered(), t0);
    actions(&mut c);
    let ping_at = c.poll_timeout().unwrap();
    c.handle_timeout(ping_at);
    assert_eq!(actions(&mut c), [Action::PingFlow]);
    c.flow_checked(FlowPing::Sent { pongs: 7 }, ping_at);
    let due = c.poll_timeout().unwrap();
    assert_eq!(due, ping_at + flow::PONG_TIMEOUT);
    c.handle_timeout(due - Duration::from_millis(1));
    assert!(actions(&mut c).is_empty(), "not before the pong timeout");
    c.handle_timeout(due);
    assert_eq!(actions(&mut c), [Action::CountPongs]);
    // Still 7: no pong.
    c.flow_pongs(7, due);
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Registering);
    let retry_at = c.poll_timeout().unwrap();
    assert!(retry_at - due <= flow::RETRY_BASE);
    c.handle_timeout(retry_at);
    assert!(matches!(&actions(&mut c)[..], [Action::Register(_)]));
}

#[test]
fn without_a_flow_there_is_no_keepalive() {
    let (mut c, _, now) = streaming();
    c.flow_checked(FlowPing::Failed, now);
    assert!(actions(&mut c).is_empty());
    // Only the in-dialog OPTIONS ping and the peer check are due.
    c.handle_timeout(now + Duration::from_secs(30));
    assert!(matches!(
        &actions(&mut c)[..],
        [Action::CheckPeer, Action::Ping(_)]
    ));
}
mod recovery;
