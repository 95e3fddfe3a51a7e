//! Who may end or change a running stream, tried as an attacker would: a
//! BYE and a re-INVITE forged from the dialog's identifiers as seen on the
//! wire and sent from another socket, another caller's credentials, a
//! replayed Authorization; and the collector's own re-INVITE and BYE
//! passing the challenge with its calling credential (RFC 3261 22.2).
//! The collector's and the sensor's user agents are the protocol crate's,
//! wired in memory; the controller decides for the sensor.

use std::net::SocketAddr;
use std::time::Instant;

use sipsensor_protocol::{
    DigestClient, IdGenerator, LiteralsOnly, LocalEndpoint, LocalMedia, LocalSdp, Password,
    SessionState, StreamRole, Target, Transport, UaConfig, UaEvent, UaOutput, UserAgent,
    make_offer,
};

use super::trust::{offer, udp, waiting};
use super::{capabilities, session, settings};
use crate::session::{Action, Controller};

const COLLECTOR: &str = "203.0.113.5:5060";
const SENSOR: &str = "198.51.100.10:5060";
const ATTACKER: &str = "198.51.100.66:5060";

/// Collector and sensor talking over UDP in memory, the controller
/// answering for the sensor; what happened to the stream.
struct Wire {
    collector: UserAgent,
    sensor: UserAgent,
    controller: Controller,
    now: Instant,
    /// Every message each side sent, as text.
    collector_sent: Vec<String>,
    sensor_sent: Vec<String>,
    collector_events: Vec<UaEvent>,
    stopped: bool,
    updated: usize,
}

impl Wire {
    /// A stream the collector opened with its calling credential.
    fn streaming(collector_password: &str, extra_callers: &[(&str, &str)]) -> Self {
        let mut s = settings(true);
        for (user, password) in extra_callers {
            s.trust
                .callers
                .push(((*user).into(), Password::new(*password)));
        }
        let (controller, now) = waiting(s);
        let ua = |addr: &str, aor: &str, seed| {
            let mut config = UaConfig::new(
                LocalEndpoint::new(Transport::Udp, addr.parse().unwrap()),
                aor,
            );
            config.screen_in_dialog = addr == SENSOR;
            UserAgent::new(config, IdGenerator::seeded(seed), Box::new(LiteralsOnly)).unwrap()
        };
        let mut collector = ua(COLLECTOR, "sip:collector@example.net", 3);
        collector.set_credentials(Some((
            "collector".into(),
            Password::new(collector_password),
        )));
        let mut wire = Self {
            collector,
            sensor: ua(SENSOR, "sip:s1@example.net", 4),
            controller,
            now,
            collector_sent: vec![],
            sensor_sent: vec![],
            collector_events: vec![],
            stopped: false,
            updated: 0,
        };
        wire.collector
            .call(&format!("sip:s1@{SENSOR}"), offer(), now)
            .unwrap();
        wire.settle();
        assert!(
            wire.collector_events
                .iter()
                .any(|e| matches!(e, UaEvent::Answered { .. })),
            "the collector's call was not answered: {:?}",
            wire.collector_events
        );
        wire
    }

    /// Moves messages and carries out the controller's actions until
    /// nothing moves.
    fn settle(&mut self) {
        let now = self.now;
        for _ in 0..50 {
            let mut moved = false;
            while let Some(out) = self.collector.poll_output() {
                moved = true;
                match out {
                    UaOutput::Transmit { bytes, .. } => {
                        self.collector_sent
                            .push(String::from_utf8_lossy(&bytes).into_owned());
                        self.sensor.handle_input(&bytes, udp(COLLECTOR), now);
                    }
                    UaOutput::Event(e) => self.collector_events.push(e),
                }
            }
            while let Some(out) = self.sensor.poll_output() {
                moved = true;
                match out {
                    UaOutput::Transmit { bytes, target } => {
                        self.sensor_sent
                            .push(String::from_utf8_lossy(&bytes).into_owned());
                        if target.addr == COLLECTOR.parse::<SocketAddr>().unwrap() {
                            self.collector.handle_input(&bytes, udp(SENSOR), now);
                        }
                    }
                    UaOutput::Event(e) => self.controller.handle_event(e, now),
                }
            }
            moved |= self.carry_out();
            if !moved {
                return;
            }
        }
        panic!("the wire never settled");
    }

    fn carry_out(&mut self) -> bool {
        let now = self.now;
        let mut any = false;
        while let Some(action) = self.controller.poll_action() {
            any = true;
            let ua = &mut self.sensor;
            match action {
                Action::Challenge { session, response } => {
                    ua.respond_to_invite(session, *response, now).unwrap()
                }
                Action::Accept { session, answer } => ua.accept(session, answer, now).unwrap(),
                Action::AdmitInDialog(id) => ua.admit_in_dialog(id, now).unwrap(),
                Action::RefuseInDialog { id, response } => {
                    ua.refuse_in_dialog(id, *response, now).unwrap()
                }
                Action::AnswerReoffer { session, answer } => {
                    ua.answer_reoffer(session, answer, now).unwrap()
                }
                Action::StopStream => self.stopped = true,
                Action::UpdateStream(..) => self.updated += 1,
                _ => {}
            }
        }
        any
    }

    /// Sends `text` to the sensor from the attacker's socket; the status
    /// line it got back.
    fn forge(&mut self, text: &str) -> String {
        let before = self.sensor_sent.len();
        self.sensor
            .handle_input(text.as_bytes(), udp(ATTACKER), self.now);
        self.settle();
        self.sensor_sent[before..]
            .iter()
            .find(|m| m.starts_with("SIP/2.0"))
            .map(|m| m.lines().next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    /// The collector's INVITE as it crossed the wire (with its Call-ID and
    /// From tag) and the sensor's To tag from its 200: all an
    /// eavesdropper needs to aim at the dialog.
    fn observed(&self) -> (String, String, String) {
        let invite = self
            .collector_sent
            .iter()
            .find(|m| m.starts_with("INVITE"))
            .unwrap();
        let ok = self
            .sensor_sent
            .iter()
            .find(|m| m.starts_with("SIP/2.0 200") && m.contains("INVITE"))
            .unwrap();
        (
            header(invite, "Call-ID"),
            tag(&header(invite, "From")),
            tag(&header(ok, "To")),
        )
    }

    /// A request inside the dialog as the collector would send it, but
    /// from the attacker's socket.
    fn forged(&self, method: &str, cseq: u32, body: &str) -> String {
        let (call_id, from_tag, to_tag) = self.observed();
        format!(
            "{method} sip:s1@{SENSOR} SIP/2.0\r\nVia: SIP/2.0/UDP {ATTACKER};branch=z9hG4bKf{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:collector@example.net>;tag={from_tag}\r\n\
             To: <sip:s1@example.net>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:collector@{ATTACKER}>\r\n{body}",
        )
    }

    /// The sensor's session: its second, after the challenged first
    /// INVITE.
    fn sensor_established(&self) -> bool {
        self.sensor.session_state(session(2)) == Some(SessionState::Established)
    }
}

fn header(message: &str, name: &str) -> String {
    message
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .map(|l| l[name.len() + 1..].trim().to_owned())
        .unwrap()
}

fn tag(value: &str) -> String {
    value.split("tag=").nth(1).unwrap().trim().to_owned()
}

fn no_body() -> String {
    "Content-Length: 0\r\n\r\n".into()
}

/// An SDP body that asks for the stream at the attacker's address.
fn sdp_to_attacker() -> String {
    let mut origin = LocalSdp::with_session_id("x", "198.51.100.66".parse().unwrap(), 9);
    let local = LocalMedia::new("198.51.100.66:50000".parse().unwrap());
    let sdp = make_offer(&capabilities(), StreamRole::Receiver, &local, &mut origin)
        .unwrap()
        .to_bytes();
    let sdp = String::from_utf8(sdp).unwrap();
    format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[test]
fn a_stranger_bye_with_the_dialogs_identifiers_does_not_stop_the_stream() {
    let mut wire = Wire::streaming("calling-secret", &[]);
    let answer = wire.forge(&wire.forged("BYE", 90, &no_body()));
    assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
    assert!(!wire.stopped, "a forged BYE stopped the stream");
    assert!(wire.sensor_established());
}

#[test]
fn a_stranger_reinvite_does_not_move_the_stream() {
    let mut wire = Wire::streaming("calling-secret", &[]);
    let answer = wire.forge(&wire.forged("INVITE", 91, &sdp_to_attacker()));
    assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
    assert_eq!(wire.updated, 0, "a forged re-INVITE changed the stream");
    assert!(wire.sensor_established());
}

#[test]
fn the_collector_changes_the_rate_and_ends_the_stream_through_the_challenge() {
    let mut wire = Wire::streaming("calling-secret", &[]);
    let callee = sipsensor_protocol::SessionId::from_raw(1);
    // Half the rate, as `set-rate` asks.
    let mut wanted = capabilities();
    wanted.config = 2;
    if let Some(s) = wanted.samples.as_mut() {
        s.period = 2;
    }
    let mut origin = LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), 8);
    let local = LocalMedia::new("203.0.113.5:50000".parse().unwrap());
    let reoffer = make_offer(&wanted, StreamRole::Receiver, &local, &mut origin).unwrap();
    let now = wire.now;
    wire.collector
        .reinvite(callee, reoffer.to_bytes(), now)
        .unwrap();
    wire.settle();
    assert_eq!(wire.updated, 1);
    assert!(
        wire.collector_events
            .iter()
            .any(|e| matches!(e, UaEvent::ReofferAnswered { .. })),
        "{:?}",
        wire.collector_events
    );
    let challenged = |sent: &[String]| sent.iter().filter(|m| m.starts_with("SIP/2.0 401")).count();
    assert_eq!(
        challenged(&wire.sensor_sent),
        2,
        "the INVITE and the re-INVITE"
    );
    wire.collector.hangup(callee, now).unwrap();
    wire.settle();
    assert_eq!(challenged(&wire.sensor_sent), 3);
    assert!(wire.stopped, "the collector's BYE did not end the stream");
}

/// A forged BYE (CSeq `cseq`), challenged, then sent again signed as
/// `user` with `password`: the sensor's answer to the signed one.
fn signed_bye(wire: &mut Wire, cseq: u32, user: &str, password: &str) -> String {
    let bye = wire.forged("BYE", cseq, &no_body());
    let before = wire.sensor_sent.len();
    wire.forge(&bye);
    let challenge = wire.sensor_sent[before..]
        .iter()
        .find(|m| m.starts_with("SIP/2.0 401"))
        .unwrap()
        .clone();
    let mut client = DigestClient::new(user, Password::new(password));
    let challenge = sipsensor_protocol::Response::try_from(challenge.as_bytes()).unwrap();
    let mut signed = sipsensor_protocol::Request::try_from(bye.as_bytes()).unwrap();
    client.handle_challenge(&signed, &challenge).unwrap();
    client.authorize(&mut signed, &mut IdGenerator::seeded(5));
    let text = signed
        .to_string()
        .replace(
            &format!("CSeq: {cseq} BYE"),
            &format!("CSeq: {} BYE", cseq + 1),
        )
        .replace(&format!("z9hG4bKf{cseq}"), &format!("z9hG4bKf{}", cseq + 1));
    wire.forge(&text)
}

#[test]
fn another_callers_credentials_do_not_steer_the_session() {
    let mut wire = Wire::streaming("calling-secret", &[("other", "other-secret")]);
    // The other caller knows its own password, and signs the BYE with it.
    let answer = signed_bye(&mut wire, 92, "other", "other-secret");
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    assert!(!wire.stopped);
    assert_eq!(wire.controller.refused_in_dialog(), 1);
}

#[test]
fn a_wrong_password_is_refused_with_403_and_counted_and_the_stream_goes_on() {
    let mut wire = Wire::streaming("calling-secret", &[]);
    let answer = signed_bye(&mut wire, 94, "collector", "guess");
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    assert!(!wire.stopped);
    assert_eq!(wire.controller.refused_in_dialog(), 1);
    // The right password on the next one ends the stream: the count did
    // not lock the caller out. (Its CSeq must be past the dialog's, which
    // the refused ones never moved: 12.2.2.)
    let answer = signed_bye(&mut wire, 2_147_483_000, "collector", "calling-secret");
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    assert!(wire.stopped);
}

#[test]
fn a_replayed_authorization_is_not_admitted() {
    let mut wire = Wire::streaming("calling-secret", &[]);
    let callee = sipsensor_protocol::SessionId::from_raw(1);
    let now = wire.now;
    wire.collector.reinvite(callee, offer(), now).unwrap();
    wire.settle();
    let updates = wire.updated;
    // The collector's authorized re-INVITE, replayed word for word from
    // another socket: its nonce count was used.
    let authorized = wire
        .collector_sent
        .iter()
        .rev()
        .find(|m| m.starts_with("INVITE") && m.contains("Authorization:"))
        .unwrap()
        .replace(
            &format!("SIP/2.0/UDP {COLLECTOR}"),
            &format!("SIP/2.0/UDP {ATTACKER}"),
        );
    let answer = wire.forge(&authorized);
    assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
    assert_eq!(wire.updated, updates, "a replayed re-INVITE took effect");
    // Its Authorization on a BYE covers another method: refused.
    let auth = header(&authorized, "Authorization");
    let bye = wire.forged(
        "BYE",
        999,
        &format!("Authorization: {auth}\r\n{}", no_body()),
    );
    let answer = wire.forge(&bye);
    assert!(answer.starts_with("SIP/2.0 4"), "{answer}");
    assert!(!wire.stopped);
    assert!(wire.sensor_established());
}

#[test]
fn on_the_dialogs_own_connection_nothing_is_challenged() {
    let mut wire = Wire::streaming("calling-secret", &[]);
    let bye = wire.forged("BYE", 96, &no_body());
    let now = wire.now;
    wire.sensor.handle_input(bye.as_bytes(), udp(ATTACKER), now);
    let mut event = None;
    while let Some(out) = wire.sensor.poll_output() {
        if let UaOutput::Event(e @ UaEvent::InDialogRequest { .. }) = out {
            event = Some(e);
        }
    }
    // As the user agent reports a request on the TCP or TLS connection
    // the session was set up on.
    let Some(UaEvent::InDialogRequest {
        session,
        id,
        request,
        ..
    }) = event
    else {
        panic!("the BYE was not screened")
    };
    let connection = Target::new(Transport::Tcp, COLLECTOR.parse().unwrap());
    wire.controller.handle_event(
        UaEvent::InDialogRequest {
            session,
            id,
            request,
            source: connection,
            on_dialog_flow: true,
        },
        now,
    );
    assert_eq!(
        std::iter::from_fn(|| wire.controller.poll_action()).collect::<Vec<_>>(),
        [Action::AdmitInDialog(id)]
    );
}

#[test]
fn without_callers_a_request_off_the_flow_is_refused() {
    let mut s = settings(true);
    s.trust.callers.clear();
    let mut wire = Wire::streaming("calling-secret", &[]);
    // The same dialog, judged by a sensor that trusts only its flow.
    let (mut strict, now) = waiting(s);
    let bye = wire.forged("BYE", 97, &no_body());
    wire.sensor.handle_input(bye.as_bytes(), udp(ATTACKER), now);
    let mut decided = vec![];
    while let Some(out) = wire.sensor.poll_output() {
        if let UaOutput::Event(e) = out {
            strict.handle_event(e, now);
            decided.extend(std::iter::from_fn(|| strict.poll_action()));
        }
    }
    let [Action::RefuseInDialog { response, .. }] = &decided[..] else {
        panic!("{decided:?}")
    };
    assert_eq!(response.status_code.code(), 403);
    assert_eq!(strict.refused_in_dialog(), 1);
}
