//! Every timer of RFC 3261 section 17 on a virtual clock.

use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Request, Response, SipMessage, StatusCode};

use super::*;
use crate::sip::response::response_to;

const SENSOR: &str = "192.0.2.1:5060";
const COLLECTOR: &str = "192.0.2.9:5060";

fn request(method: &str, branch: &str) -> Request {
    let text = format!(
        "{method} sip:collector@example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP {SENSOR};branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:s1@example.net>;tag=f1\r\n\
To: <sip:collector@example.net>\r\n\
Call-ID: c1@192.0.2.1\r\n\
CSeq: 1 {method}\r\n\
Route: <sip:proxy.example.net;lr>\r\n\
Content-Length: 0\r\n\r\n"
    );
    Request::try_from(text.as_bytes()).unwrap()
}

fn udp(addr: &str) -> Target {
    Target::new(Transport::Udp, addr.parse().unwrap())
}

fn tcp(addr: &str) -> Target {
    Target::new(Transport::Tcp, addr.parse().unwrap())
}

fn reply(req: &Request, status: StatusCode) -> Response {
    response_to(req, status, Some("t1"))
}

/// Runs the layer's clock from `start` to `end` the way a shell would,
/// waking at every `poll_timeout`, and returns the offsets (in ms from
/// `t0`) of each transmit and every event seen.
fn run_until(
    layer: &mut TransactionLayer,
    t0: Instant,
    end: Duration,
) -> (Vec<u128>, Vec<TransactionEvent>) {
    let mut sends = vec![];
    let mut events = vec![];
    drain(layer, t0, t0, &mut sends, &mut events);
    for _ in 0..10_000 {
        let Some(at) = layer.poll_timeout() else {
            break;
        };
        if at > t0 + end {
            break;
        }
        layer.handle_timeout(at);
        drain(layer, t0, at, &mut sends, &mut events);
    }
    (sends, events)
}

fn drain(
    layer: &mut TransactionLayer,
    t0: Instant,
    now: Instant,
    sends: &mut Vec<u128>,
    events: &mut Vec<TransactionEvent>,
) {
    while let Some(out) = layer.poll_output() {
        match out {
            Output::Transmit(_) => sends.push((now - t0).as_millis()),
            Output::Event(e) => events.push(e),
        }
    }
}

fn transmits(layer: &mut TransactionLayer) -> Vec<SipMessage> {
    let mut out = vec![];
    while let Some(o) = layer.poll_output() {
        if let Output::Transmit(t) = o {
            out.push(t.message);
        }
    }
    out
}

fn events(layer: &mut TransactionLayer) -> Vec<TransactionEvent> {
    let mut out = vec![];
    while let Some(o) = layer.poll_output() {
        if let Output::Event(e) = o {
            out.push(e);
        }
    }
    out
}

#[test]
fn invite_client_timer_a_doubles_and_timer_b_gives_up_at_64_t1() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let id = layer
        .send_request(request("INVITE", "z9hG4bK1"), udp(COLLECTOR), t0)
        .unwrap();
    let (sends, events) = run_until(&mut layer, t0, Duration::from_secs(40));
    // 17.1.1.2: A fires at T1, 2T1, 4T1, ...; B at 64*T1.
    assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(events, [TransactionEvent::Timeout { id }]);
    assert!(layer.is_empty());
}

#[test]
fn invite_client_provisional_stops_retransmissions_and_timer_b() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let id = layer
        .send_request(invite.clone(), udp(COLLECTOR), t0)
        .unwrap();
    layer.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(transmits(&mut layer).len(), 2);
    let ringing = reply(&invite, StatusCode::Ringing);
    layer
        .handle_message(
            ringing.into(),
            udp(COLLECTOR),
            t0 + Duration::from_millis(600),
        )
        .unwrap();
    assert!(
        matches!(&events(&mut layer)[..], [TransactionEvent::Response { id: i, .. }] if *i == id)
    );
    assert_eq!(layer.client_state(id), Some(ClientState::Proceeding));
    assert_eq!(layer.poll_timeout(), None, "no timer runs in Proceeding");
}

#[test]
fn invite_client_acks_a_failure_and_absorbs_its_retransmissions() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let id = layer
        .send_request(invite.clone(), udp(COLLECTOR), t0)
        .unwrap();
    transmits(&mut layer);
    let busy = reply(&invite, StatusCode::BusyHere);
    layer
        .handle_message(busy.clone().into(), udp(COLLECTOR), t0)
        .unwrap();
    let mut sent = vec![];
    let mut evs = vec![];
    while let Some(o) = layer.poll_output() {
        match o {
            Output::Transmit(t) => sent.push(t.message),
            Output::Event(e) => evs.push(e),
        }
    }
    assert_eq!(evs.len(), 1, "the 486 goes up once");
    let [SipMessage::Request(ack)] = &sent[..] else {
        panic!("expected one ACK, got {sent:?}")
    };
    // 17.1.1.3: the ACK's fields.
    assert_eq!(ack.method, rsip::Method::Ack);
    assert_eq!(ack.uri, invite.uri);
    assert_eq!(ack.cseq_header().unwrap().value(), "1 ACK");
    assert_eq!(ack.via_header().unwrap(), invite.via_header().unwrap());
    assert_eq!(
        ack.to_header().unwrap().tag().unwrap().unwrap().value(),
        "t1"
    );
    assert_eq!(
        ack.call_id_header().unwrap(),
        invite.call_id_header().unwrap()
    );
    assert!(
        ack.to_string()
            .contains("Route: <sip:proxy.example.net;lr>")
    );
    assert_eq!(layer.client_state(id), Some(ClientState::Completed));

    // A retransmitted 486 is answered with the same ACK and not passed up.
    layer
        .handle_message(busy.into(), udp(COLLECTOR), t0 + Duration::from_secs(1))
        .unwrap();
    let again = transmits(&mut layer);
    assert_eq!(again, vec![SipMessage::Request(ack.clone())]);

    // Timer D: at least 32 s over UDP.
    layer.handle_timeout(t0 + Duration::from_millis(31_999));
    assert_eq!(layer.client_state(id), Some(ClientState::Completed));
    layer.handle_timeout(t0 + Duration::from_secs(32));
    assert_eq!(layer.client_state(id), None);
}

#[test]
fn invite_client_passes_every_2xx_up_while_accepted() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let id = layer
        .send_request(invite.clone(), udp(COLLECTOR), t0)
        .unwrap();
    transmits(&mut layer);
    let ok = reply(&invite, StatusCode::OK);
    for ms in [10, 510] {
        layer
            .handle_message(
                ok.clone().into(),
                udp(COLLECTOR),
                t0 + Duration::from_millis(ms),
            )
            .unwrap();
    }
    let evs = events(&mut layer);
    assert_eq!(evs.len(), 2, "RFC 6026: 2xx retransmissions reach the TU");
    assert!(
        transmits(&mut layer).is_empty(),
        "the TU ACKs a 2xx, not us"
    );
    assert_eq!(layer.client_state(id), Some(ClientState::Accepted));
    // Timer M = 64*T1 after the first 2xx.
    layer.handle_timeout(t0 + Duration::from_millis(32_010));
    assert_eq!(layer.client_state(id), None);
}

#[test]
fn non_invite_client_timer_e_caps_at_t2_and_timer_f_gives_up() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let id = layer
        .send_request(request("REGISTER", "z9hG4bK2"), udp(COLLECTOR), t0)
        .unwrap();
    let (sends, events) = run_until(&mut layer, t0, Duration::from_secs(40));
    // 17.1.2.2: E at T1, doubling, capped at T2 = 4 s; F at 64*T1.
    assert_eq!(
        sends,
        [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(events, [TransactionEvent::Timeout { id }]);
}

#[test]
fn non_invite_client_in_proceeding_retransmits_every_t2() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("OPTIONS", "z9hG4bK2");
    layer.send_request(req.clone(), udp(COLLECTOR), t0).unwrap();
    transmits(&mut layer);
    layer
        .handle_message(reply(&req, StatusCode::Trying).into(), udp(COLLECTOR), t0)
        .unwrap();
    events(&mut layer);
    let (sends, _) = run_until(&mut layer, t0, Duration::from_secs(12));
    assert_eq!(sends, [500, 4500, 8500]);
}

#[test]
fn non_invite_client_completed_absorbs_then_timer_k_ends_it() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("REGISTER", "z9hG4bK2");
    let id = layer.send_request(req.clone(), udp(COLLECTOR), t0).unwrap();
    transmits(&mut layer);
    let ok = reply(&req, StatusCode::OK);
    layer
        .handle_message(ok.clone().into(), udp(COLLECTOR), t0)
        .unwrap();
    layer.handle_message(ok.into(), udp(COLLECTOR), t0).unwrap();
    assert_eq!(events(&mut layer).len(), 1);
    layer.handle_timeout(t0 + Duration::from_millis(4_999));
    assert_eq!(layer.client_state(id), Some(ClientState::Completed));
    layer.handle_timeout(t0 + Duration::from_secs(5)); // timer K = T4
    assert_eq!(layer.client_state(id), None);
}

#[test]
fn a_sips_request_leaves_only_over_tls() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let mut req = request("OPTIONS", "z9hG4bKs1");
    req.uri = rsip::Uri::try_from("sips:collector@example.net").unwrap();
    for target in [udp(COLLECTOR), tcp(COLLECTOR)] {
        assert_eq!(
            layer.send_request(req.clone(), target, t0),
            Err(TransactionError::SipsOverInsecure(target.transport))
        );
    }
    let mut ack = request("ACK", "z9hG4bKs2");
    ack.uri = req.uri.clone();
    layer.send_stateless(ack.clone().into(), tcp(COLLECTOR));
    assert!(transmits(&mut layer).is_empty(), "no ACK in clear text");
    let tls = Target::new(Transport::Tls, "192.0.2.9:5061".parse().unwrap());
    layer.send_stateless(ack.into(), tls);
    layer.send_request(req, tls, t0).unwrap();
    assert_eq!(transmits(&mut layer).len(), 2);
}

#[test]
fn reliable_transports_never_retransmit_but_still_time_out() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let id = layer
        .send_request(request("REGISTER", "z9hG4bK2"), tcp(COLLECTOR), t0)
        .unwrap();
    let (sends, events) = run_until(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(sends, [0]);
    assert_eq!(events, [TransactionEvent::Timeout { id }]);

    // Timer K is zero over TCP: the final response ends the transaction.
    let req = request("REGISTER", "z9hG4bK3");
    let id = layer.send_request(req.clone(), tcp(COLLECTOR), t0).unwrap();
    layer
        .handle_message(reply(&req, StatusCode::OK).into(), tcp(COLLECTOR), t0)
        .unwrap();
    assert_eq!(layer.client_state(id), None);
}

#[test]
fn timers_follow_a_configured_t1_and_t2() {
    let t0 = crate::test_clock::base();
    let timers = TimerConfig {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        t4: Duration::from_secs(1),
    };
    let mut layer = TransactionLayer::new(timers);
    layer
        .send_request(request("OPTIONS", "z9hG4bK2"), udp(COLLECTOR), t0)
        .unwrap();
    let (sends, events) = run_until(&mut layer, t0, Duration::from_secs(10));
    assert_eq!(&sends[..6], [0, 100, 300, 700, 1100, 1500]);
    assert_eq!(*sends.last().unwrap(), 6300);
    assert_eq!(events.len(), 1); // F at 6.4 s
}

#[test]
fn transport_error_fails_the_waiting_transactions() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let id = layer
        .send_request(request("REGISTER", "z9hG4bK2"), tcp(COLLECTOR), t0)
        .unwrap();
    transmits(&mut layer);
    layer.handle_transport_error(tcp(COLLECTOR));
    assert_eq!(
        events(&mut layer),
        [TransactionEvent::TransportError { id }]
    );
    assert!(layer.is_empty());
}

#[test]
fn responses_match_on_branch_and_cseq_method() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let invite_id = layer
        .send_request(invite.clone(), udp(COLLECTOR), t0)
        .unwrap();
    let cancel = request("CANCEL", "z9hG4bK1");
    let cancel_id = layer
        .send_request(cancel.clone(), udp(COLLECTOR), t0)
        .unwrap();
    transmits(&mut layer);

    layer
        .handle_message(reply(&cancel, StatusCode::OK).into(), udp(COLLECTOR), t0)
        .unwrap();
    assert!(
        matches!(&events(&mut layer)[..], [TransactionEvent::Response { id, .. }] if *id == cancel_id)
    );
    assert_eq!(layer.client_state(invite_id), Some(ClientState::Calling));

    let other = reply(&request("INVITE", "z9hG4bKother"), StatusCode::OK);
    layer
        .handle_message(other.into(), udp(COLLECTOR), t0)
        .unwrap();
    assert!(matches!(
        &events(&mut layer)[..],
        [TransactionEvent::StrayResponse { .. }]
    ));
}

#[test]
fn duplicate_branches_and_acks_are_refused() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    layer
        .send_request(request("INVITE", "z9hG4bK1"), udp(COLLECTOR), t0)
        .unwrap();
    assert_eq!(
        layer.send_request(request("INVITE", "z9hG4bK1"), udp(COLLECTOR), t0),
        Err(TransactionError::DuplicateBranch)
    );
    assert_eq!(
        layer.send_request(request("ACK", "z9hG4bK9"), udp(COLLECTOR), t0),
        Err(TransactionError::AckIsNotATransaction)
    );
}

fn receive(layer: &mut TransactionLayer, req: &Request, at: Instant) -> ServerId {
    layer
        .handle_message(req.clone().into(), udp(SENSOR), at)
        .unwrap();
    let evs = events(layer);
    match &evs[..] {
        [TransactionEvent::Request { id, .. }] => *id,
        other => panic!("expected a new request, got {other:?}"),
    }
}

#[test]
fn invite_server_sends_100_trying_after_200_ms_of_silence() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    receive(&mut layer, &invite, t0);
    layer.handle_timeout(t0 + Duration::from_millis(199));
    assert!(transmits(&mut layer).is_empty());
    layer.handle_timeout(t0 + Duration::from_millis(200));
    let sent = transmits(&mut layer);
    let [SipMessage::Response(trying)] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(trying.status_code, StatusCode::Trying);

    // A TU that answers at once needs no 100.
    let invite = request("INVITE", "z9hG4bK7");
    let id = receive(&mut layer, &invite, t0);
    layer
        .respond(id, reply(&invite, StatusCode::Ringing), t0)
        .unwrap();
    transmits(&mut layer);
    layer.handle_timeout(t0 + Duration::from_millis(300));
    assert!(transmits(&mut layer).is_empty());
}

#[test]
fn invite_server_answers_a_retransmission_with_the_last_provisional() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let id = receive(&mut layer, &invite, t0);
    let ringing = reply(&invite, StatusCode::Ringing);
    layer.respond(id, ringing.clone(), t0).unwrap();
    transmits(&mut layer);
    layer
        .handle_message(invite.into(), udp(SENSOR), t0 + Duration::from_millis(500))
        .unwrap();
    assert_eq!(transmits(&mut layer), vec![SipMessage::Response(ringing)]);
}

#[test]
fn invite_server_failure_timer_g_until_ack_then_timer_i() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let id = receive(&mut layer, &invite, t0);
    layer
        .respond(id, reply(&invite, StatusCode::NotAcceptableHere), t0)
        .unwrap();
    let (sends, _) = run_until(&mut layer, t0, Duration::from_millis(12_000));
    // 17.2.1: G at T1, doubling, capped at T2.
    assert_eq!(sends, [0, 500, 1500, 3500, 7500, 11500]);
    let mut ack = request("ACK", "z9hG4bK1");
    ack.headers.retain(|h| !matches!(h, rsip::Header::Route(_)));
    layer
        .handle_message(ack.into(), udp(SENSOR), t0 + Duration::from_secs(12))
        .unwrap();
    assert!(events(&mut layer).is_empty(), "this ACK is absorbed");
    assert_eq!(layer.server_state(id), Some(ServerState::Confirmed));
    layer.handle_timeout(t0 + Duration::from_secs(17)); // timer I = T4
    assert_eq!(layer.server_state(id), None);
}

#[test]
fn invite_server_timer_h_reports_a_missing_ack() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let id = receive(&mut layer, &invite, t0);
    layer
        .respond(id, reply(&invite, StatusCode::BusyHere), t0)
        .unwrap();
    let (_, events) = run_until(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(events, [TransactionEvent::AckTimeout { id }]);
}

#[test]
fn invite_server_accepted_absorbs_retransmissions_and_passes_2xx_acks_up() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let id = receive(&mut layer, &invite, t0);
    let ok = reply(&invite, StatusCode::OK);
    layer.respond(id, ok.clone(), t0).unwrap();
    transmits(&mut layer);
    layer
        .handle_message(invite.clone().into(), udp(SENSOR), t0)
        .unwrap();
    assert!(transmits(&mut layer).is_empty());
    // The TU retransmits its 2xx (13.3.1.4) through the transaction.
    layer
        .respond(id, ok, t0 + Duration::from_millis(500))
        .unwrap();
    assert_eq!(transmits(&mut layer).len(), 1);
    // The ACK for a 2xx is its own transaction: a new branch.
    let ack = request("ACK", "z9hG4bKnew");
    layer.handle_message(ack.into(), udp(SENSOR), t0).unwrap();
    assert!(matches!(
        &events(&mut layer)[..],
        [TransactionEvent::Ack { .. }]
    ));
    // Timer L.
    layer.handle_timeout(t0 + Duration::from_secs(32));
    assert_eq!(layer.server_state(id), None);
}

#[test]
fn non_invite_server_resends_its_final_response_until_timer_j() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("OPTIONS", "z9hG4bK4");
    let id = receive(&mut layer, &req, t0);
    layer
        .handle_message(req.clone().into(), udp(SENSOR), t0)
        .unwrap();
    assert!(transmits(&mut layer).is_empty(), "Trying absorbs");
    let ok = reply(&req, StatusCode::OK);
    layer.respond(id, ok.clone(), t0).unwrap();
    transmits(&mut layer);
    layer
        .handle_message(req.into(), udp(SENSOR), t0 + Duration::from_secs(1))
        .unwrap();
    assert_eq!(
        transmits(&mut layer),
        vec![SipMessage::Response(ok.clone())]
    );
    assert!(
        layer.respond(id, ok, t0).is_err(),
        "one final response only"
    );
    layer.handle_timeout(t0 + Duration::from_secs(32)); // timer J = 64*T1
    assert_eq!(layer.server_state(id), None);
}

#[test]
fn cancel_finds_its_invite_transaction() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK1");
    let invite_id = receive(&mut layer, &invite, t0);
    let cancel = request("CANCEL", "z9hG4bK1");
    let cancel_id = receive(&mut layer, &cancel, t0);
    assert_ne!(invite_id, cancel_id);
    assert_eq!(layer.invite_for_cancel(&cancel), Some(invite_id));
    assert_eq!(
        layer.invite_for_cancel(&request("CANCEL", "z9hG4bKnone")),
        None
    );
}

#[test]
fn rfc2543_requests_match_without_a_magic_cookie() {
    let t0 = crate::test_clock::base();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("OPTIONS", "old1");
    let id = receive(&mut layer, &req, t0);
    layer.respond(id, reply(&req, StatusCode::OK), t0).unwrap();
    transmits(&mut layer);
    layer.handle_message(req.into(), udp(SENSOR), t0).unwrap();
    assert_eq!(
        transmits(&mut layer).len(),
        1,
        "matched as a retransmission"
    );
}

#[test]
fn responses_follow_rport_or_the_sent_by_port() {
    let req = request("OPTIONS", "z9hG4bK4");
    let natted = udp("203.0.113.7:40001");
    assert_eq!(response_target(&req, natted), natted);
    let text = req.to_string().replace(";rport", "");
    let plain = Request::try_from(text.as_bytes()).unwrap();
    assert_eq!(response_target(&plain, natted), udp("203.0.113.7:5060"));
    let stream = tcp("203.0.113.7:40001");
    assert_eq!(response_target(&plain, stream), stream);
}

#[test]
fn the_deadline_index_wakes_for_the_earliest_and_forgets_ended_transactions() {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let t0 = crate::test_clock::base();
    // 500 REGISTERs answered at staggered times: each server transaction
    // lingers for timer J (64*T1 = 32 s) after its response.
    for i in 0..500u64 {
        let at = t0 + Duration::from_millis(i * 10);
        let req = request("REGISTER", &format!("z9hG4bK-{i}"));
        let id = receive(&mut layer, &req, at);
        layer.respond(id, reply(&req, StatusCode::OK), at).unwrap();
    }
    // And one client transaction, whose timer E fires first.
    let client = layer
        .send_request(
            request("OPTIONS", "z9hG4bK-c"),
            udp(COLLECTOR),
            t0 + Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(layer.len(), 501);
    assert_eq!(
        layer.poll_timeout(),
        Some(t0 + Duration::from_millis(5_500)),
        "timer E of the client (T1 after sending) comes first"
    );
    // Just past the first response's timer J: exactly that one ends.
    layer.handle_timeout(t0 + Duration::from_millis(32_000));
    assert_eq!(layer.len(), 500);
    assert!(layer.server_state(ServerId(1)).is_none());
    // A retransmission of a live one is absorbed: its response again, no
    // new transaction.
    let live = request("REGISTER", "z9hG4bK-499");
    while layer.poll_output().is_some() {}
    layer
        .handle_message(live.into(), udp(SENSOR), t0 + Duration::from_millis(32_001))
        .unwrap();
    assert_eq!(layer.len(), 500);
    assert_eq!(transmits(&mut layer).len(), 1);
    assert!(events(&mut layer).is_empty());
    let mut now = t0 + Duration::from_millis(32_001);
    for _ in 0..10_000 {
        let Some(at) = layer.poll_timeout() else {
            break;
        };
        assert!(at >= now, "the index never goes back in time");
        now = at;
        layer.handle_timeout(at);
        while layer.poll_output().is_some() {}
    }
    assert!(
        layer.is_empty(),
        "every transaction ended and was forgotten"
    );
    assert!(layer.client_state(client).is_none());
    assert_eq!(layer.poll_timeout(), None);
}
