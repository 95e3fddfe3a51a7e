//! In-dialog requests screened by the TU, tried as an attacker would: a
//! BYE or re-INVITE copied from the wire and sent from another socket, a
//! forged CSeq; and the peer answering the challenge with its credentials.

use super::*;
use crate::sip::digest::{
    ChallengeKind, DigestServer, InMemoryCredentials, Password, ServerConfig, ServerSecret,
    WallClock,
};
use crate::sip::response::response_to;

const ATTACKER: &str = "203.0.113.66:5060";

/// A network whose sensor screens its dialogs; the collector holds the
/// password `password` for user "collector".
fn screening_net(seed: u64, password: &str) -> Net {
    let mut net = Net::new(seed);
    let local = LocalEndpoint::new(Transport::Udp, SENSOR.parse().unwrap());
    let mut config = UaConfig::new(local, "sip:sensor-1@example.net");
    config.screen_in_dialog = true;
    net.nodes[0].ua = UserAgent::new(
        config,
        IdGenerator::seeded(seed + 100),
        Box::new(LiteralsOnly),
    )
    .unwrap();
    net.nodes[1]
        .ua
        .set_credentials(Some(("collector".into(), Password::new(password))));
    net
}

/// The sensor's digest check, as its TU would run it.
struct Gate {
    server: DigestServer,
    store: InMemoryCredentials,
    ids: IdGenerator,
}

impl Gate {
    fn new(now: Instant) -> Self {
        let mut store = InMemoryCredentials::new();
        store.insert_password("collector", Password::new("right"));
        Self {
            server: DigestServer::new(
                ServerConfig::new("sensor.example.net", ServerSecret::new(vec![9u8; 32])),
                WallClock::new(now, 1_800_000_000),
            )
            .unwrap(),
            store,
            ids: IdGenerator::seeded(77),
        }
    }

    /// Admits the screened requests that carry valid credentials,
    /// challenges the others; how many of each.
    fn decide(&mut self, net: &mut Net) -> (usize, usize) {
        let now = net.now;
        let (mut admitted, mut challenged) = (0, 0);
        for (id, request) in screened(&net.take_events(0)) {
            match self
                .server
                .verify(&request, ChallengeKind::Www, &self.store, now)
            {
                Ok(_) => {
                    net.sensor().admit_in_dialog(id, now).unwrap();
                    admitted += 1;
                }
                Err(why) => {
                    let mut r = response_to(&request, rsip::StatusCode::Unauthorized, None);
                    let challenges =
                        self.server
                            .challenges(ChallengeKind::Www, why.stale(), now, &mut self.ids);
                    r.headers.extend(challenges);
                    net.sensor().refuse_in_dialog(id, r, now).unwrap();
                    challenged += 1;
                }
            }
        }
        net.settle();
        (admitted, challenged)
    }
}

fn screened(events: &[UaEvent]) -> Vec<(ServerId, Request)> {
    events
        .iter()
        .filter_map(|e| match e {
            UaEvent::InDialogRequest { id, request, .. } => Some((*id, request.clone())),
            _ => None,
        })
        .collect()
}

fn cseq_of(text: &str) -> u32 {
    let line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("cseq:"))
        .unwrap();
    line[5..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_screened_bye_takes_effect_only_when_admitted() {
    let mut net = screening_net(40, "right");
    let (call, callee) = established(&mut net);
    let now = net.now;
    net.collector().hangup(callee, now).unwrap();
    net.settle();
    let events = net.take_events(0);
    let [
        UaEvent::InDialogRequest {
            session,
            id,
            source,
            on_dialog_flow,
            ..
        },
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*session, call);
    assert_eq!(source.addr, COLLECTOR.parse().unwrap());
    // Over UDP no request is on the dialog's flow.
    assert!(!on_dialog_flow);
    assert_eq!(
        net.sensor().session_state(call),
        Some(SessionState::Established)
    );
    net.sensor().admit_in_dialog(*id, now).unwrap();
    net.settle();
    assert_eq!(ended(&net.take_events(0)), Some(&EndReason::RemoteBye));
    assert_eq!(net.sensor().screening_count(), 0);
}

#[test]
fn a_forged_bye_refused_leaves_the_session_and_the_peers_cseq_alone() {
    let mut net = screening_net(41, "right");
    let (call, callee) = established(&mut net);
    // The collector's re-INVITE, seen on the wire and lost on its way.
    net.drop = Box::new(|m| m.starts_with("INVITE"));
    let now = net.now;
    net.collector()
        .reinvite(callee, b"o2".to_vec(), now)
        .unwrap();
    net.settle();
    net.drop = Box::new(|_| false);
    let seen = net.nodes[1]
        .sent
        .iter()
        .rev()
        .find(|m| m.starts_with("INVITE"))
        .unwrap()
        .clone();
    // A BYE built from it, with a CSeq far ahead, from another socket.
    let seq = cseq_of(&seen);
    let forged = seen
        .replacen("INVITE ", "BYE ", 1)
        .replace(&format!("{seq} INVITE"), &format!("{} BYE", seq + 1000))
        .replace(COLLECTOR, ATTACKER);
    let attacker = Target::new(Transport::Udp, ATTACKER.parse().unwrap());
    net.sensor().handle_input(forged.as_bytes(), attacker, now);
    let mut gate = Gate::new(now);
    net.settle();
    assert_eq!(gate.decide(&mut net), (0, 1));
    assert_eq!(
        net.sensor().session_state(call),
        Some(SessionState::Established)
    );
    let answered = net.nodes[0].sent.last().unwrap();
    assert!(answered.starts_with("SIP/2.0 401"), "{answered}");
    // The genuine re-INVITE's retransmission, challenged and retried with
    // credentials, is served: the forged CSeq moved nothing.
    net.run_for(Duration::from_millis(600));
    assert_eq!(gate.decide(&mut net), (0, 1));
    assert_eq!(gate.decide(&mut net), (1, 0));
    let events = net.take_events(0);
    assert!(
        matches!(&events[..], [UaEvent::ReofferReceived { session, .. }] if *session == call),
        "{events:?}"
    );
}

/// A call whose collector (password `password`) has just sent the
/// re-INVITE "half": the sensor's session and its gate.
fn reinvited(seed: u64, password: &str) -> (Net, Gate, SessionId) {
    let mut net = screening_net(seed, password);
    let (call, callee) = established(&mut net);
    let now = net.now;
    net.collector()
        .reinvite(callee, b"half".to_vec(), now)
        .unwrap();
    net.settle();
    (net, Gate::new(now), call)
}

#[test]
fn a_challenged_reinvite_goes_again_with_credentials_and_a_new_cseq() {
    let (mut net, mut gate, call) = reinvited(42, "right");
    let now = net.now;
    assert_eq!(gate.decide(&mut net), (0, 1));
    assert_eq!(gate.decide(&mut net), (1, 0));
    let events = net.take_events(0);
    assert_eq!(
        events,
        [UaEvent::ReofferReceived {
            session: call,
            offer: b"half".to_vec()
        }]
    );
    let invites: Vec<&String> = net.nodes[1]
        .sent
        .iter()
        .filter(|m| m.starts_with("INVITE"))
        .collect();
    let (first, retry) = (invites[invites.len() - 2], invites[invites.len() - 1]);
    assert!(cseq_of(retry) > cseq_of(first), "14.1: a new CSeq");
    assert!(retry.contains("Authorization: Digest"), "{retry}");
    net.sensor()
        .answer_reoffer(call, Ok(b"ok".to_vec()), now)
        .unwrap();
    net.settle();
    assert!(matches!(
        &net.take_events(1)[..],
        [UaEvent::ReofferAnswered { .. }]
    ));
}

#[test]
fn a_challenged_bye_goes_again_with_credentials() {
    let mut net = screening_net(43, "right");
    let (call, callee) = established(&mut net);
    let now = net.now;
    let mut gate = Gate::new(now);
    net.collector().hangup(callee, now).unwrap();
    net.settle();
    assert_eq!(gate.decide(&mut net), (0, 1));
    assert_eq!(
        net.sensor().session_state(call),
        Some(SessionState::Established)
    );
    assert_eq!(gate.decide(&mut net), (1, 0));
    assert_eq!(ended(&net.take_events(0)), Some(&EndReason::RemoteBye));
    assert!(net.nodes[0].sent.last().unwrap().starts_with("SIP/2.0 200"));
}

#[test]
fn a_wrong_password_is_not_retried_and_refuses_the_reinvite() {
    let (mut net, mut gate, call) = reinvited(44, "wrong");
    assert_eq!(gate.decide(&mut net), (0, 1));
    assert_eq!(gate.decide(&mut net), (0, 1));
    assert_eq!(gate.decide(&mut net), (0, 0), "no third attempt");
    let events = net.take_events(1);
    assert!(
        matches!(&events[..], [UaEvent::ReofferRejected { status: 401, .. }]),
        "{events:?}"
    );
    assert_eq!(
        net.sensor().session_state(call),
        Some(SessionState::Established)
    );
}
