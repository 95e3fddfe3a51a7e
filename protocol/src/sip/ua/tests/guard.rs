//! Answers without state, tried as an attacker would: a spoofed INVITE
//! never ACKed, `sips:` in clear, a flood past the transaction cap.

use std::time::Duration;

use super::*;
use crate::sip::transaction::TransactionError;

const ATTACKER: &str = "203.0.113.66:5060";

fn collector(max_transactions: usize) -> UserAgent {
    let local = LocalEndpoint::new(Transport::Udp, COLLECTOR.parse().unwrap());
    let mut config = UaConfig::new(local, "sip:collector@example.net");
    config.max_transactions = max_transactions;
    UserAgent::new(config, IdGenerator::seeded(3), Box::new(LiteralsOnly)).unwrap()
}

fn request(method: &str, scheme: &str, branch: &str) -> Vec<u8> {
    format!(
        "{method} {scheme}:collector@example.net SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ATTACKER};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:s1@example.net>;tag=f{branch}\r\n\
         To: <sip:collector@example.net>\r\n\
         Call-ID: {branch}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:s1@{ATTACKER}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn from_attacker() -> Target {
    Target::new(Transport::Udp, ATTACKER.parse().unwrap())
}

/// Everything the UA put out, split into sent status lines and events.
fn drain(ua: &mut UserAgent) -> (Vec<String>, Vec<UaEvent>) {
    let (mut sent, mut events) = (vec![], vec![]);
    while let Some(o) = ua.poll_output() {
        match o {
            Output::Transmit { bytes, .. } => {
                let text = String::from_utf8(bytes).unwrap();
                sent.push(text.lines().next().unwrap_or_default().to_owned());
            }
            Output::Event(e) => events.push(e),
        }
    }
    (sent, events)
}

/// Fires every timer of `ua` up to `end`; the status lines it sent.
fn run_until(ua: &mut UserAgent, end: Instant) -> Vec<String> {
    let mut sent = vec![];
    for _ in 0..10_000 {
        match ua.poll_timeout() {
            Some(at) if at <= end => {
                ua.handle_timeout(at);
                sent.extend(drain(ua).0);
            }
            _ => return sent,
        }
    }
    panic!("timers never settled");
}

fn challenge(invite: &[u8]) -> Response {
    let request = rsip::Request::try_from(invite).unwrap();
    let mut r = response_to(&request, rsip::StatusCode::Unauthorized, Some("c"));
    r.headers.push(rsip::Header::WwwAuthenticate(
        rsip::headers::WwwAuthenticate::new(
            "Digest realm=\"example.net\", nonce=\"n\", qop=\"auth\"",
        ),
    ));
    r
}

use crate::sip::response::response_to;

#[test]
fn a_stateless_challenge_is_sent_once_per_invite_received() {
    let t0 = crate::test_clock::base();
    let mut ua = collector(DEFAULT_MAX_TRANSACTIONS);
    let invite = request("INVITE", "sip", "spoof1");
    ua.handle_input(&invite, from_attacker(), t0);
    let (_, events) = drain(&mut ua);
    let session = incoming(&events);
    ua.reject_statelessly(session, challenge(&invite), t0)
        .unwrap();
    let (sent, events) = drain(&mut ua);
    assert_eq!(sent, ["SIP/2.0 401 Unauthorized"]);
    assert_eq!(ended(&events), Some(&EndReason::Rejected(401)));
    // Never ACKed: 40 s later nothing more went out (a transaction would
    // have sent the 401 eleven times), and nothing is kept.
    let later = run_until(&mut ua, t0 + Duration::from_secs(40));
    assert_eq!(later, Vec::<String>::new());
    assert_eq!(ua.layer.len(), 0);
    assert_eq!(ua.session_count(), 0);
    // The INVITE again is a new call: one answer per request received.
    ua.handle_input(&invite, from_attacker(), t0 + Duration::from_secs(41));
    let (sent, events) = drain(&mut ua);
    assert_eq!(sent, Vec::<String>::new());
    let again = incoming(&events);
    assert_ne!(again, session);
}

#[test]
fn a_stateless_answer_to_a_register_keeps_no_transaction() {
    let t0 = crate::test_clock::base();
    let local = LocalEndpoint::new(Transport::Udp, COLLECTOR.parse().unwrap());
    let mut config = UaConfig::new(local, "sip:collector@example.net");
    config.accept_register = true;
    let mut ua = UserAgent::new(config, IdGenerator::seeded(3), Box::new(LiteralsOnly)).unwrap();
    let register = request("REGISTER", "sip", "reg1");
    ua.handle_input(&register, from_attacker(), t0);
    let (_, events) = drain(&mut ua);
    let [UaEvent::Request { id, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    ua.respond_statelessly(*id, challenge(&register), t0)
        .unwrap();
    assert_eq!(drain(&mut ua).0, ["SIP/2.0 401 Unauthorized"]);
    assert_eq!(ua.layer.len(), 0);
}

#[test]
fn a_sips_request_uri_in_clear_gets_416_and_no_call() {
    let t0 = crate::test_clock::base();
    let mut ua = collector(DEFAULT_MAX_TRANSACTIONS);
    ua.handle_input(&request("INVITE", "sips", "s1"), from_attacker(), t0);
    let (sent, events) = drain(&mut ua);
    assert_eq!(sent, ["SIP/2.0 416 Unsupported URI Scheme"]);
    assert!(
        matches!(&events[..], [UaEvent::Refused { status: 416, reason, .. }] if reason.contains("sips:")),
        "{events:?}"
    );
    assert_eq!(ua.layer.len(), 0);
    // An ACK is never answered.
    ua.handle_input(&request("ACK", "sips", "s1"), from_attacker(), t0);
    assert_eq!(drain(&mut ua).0, Vec::<String>::new());
}

#[test]
fn past_the_transaction_cap_requests_get_503_until_one_ends() {
    let t0 = crate::test_clock::base();
    let mut ua = collector(2);
    for branch in ["o1", "o2"] {
        ua.handle_input(&request("OPTIONS", "sip", branch), from_attacker(), t0);
        assert_eq!(drain(&mut ua).0, ["SIP/2.0 200 OK"]);
    }
    // Both wait out timer J (32 s over UDP): the layer is full.
    ua.handle_input(&request("OPTIONS", "sip", "o3"), from_attacker(), t0);
    let (sent, events) = drain(&mut ua);
    assert_eq!(sent, ["SIP/2.0 503 Service Unavailable"]);
    assert!(
        matches!(&events[..], [UaEvent::Refused { status: 503, .. }]),
        "{events:?}"
    );
    assert_eq!(ua.layer.len(), 2);
    // The flood does not stop our own requests: they have their own cap.
    for _ in 0..2 {
        ua.call("sip:s1@192.0.2.1", b"v=0\r\n".to_vec(), t0)
            .unwrap();
    }
    assert!(matches!(
        ua.call("sip:s1@192.0.2.1", b"v=0\r\n".to_vec(), t0),
        Err(UaError::Transaction(TransactionError::Full(2)))
    ));
    drain(&mut ua);
    // Timer J frees them; the next request is served.
    run_until(&mut ua, t0 + Duration::from_secs(33));
    ua.handle_input(
        &request("OPTIONS", "sip", "o4"),
        from_attacker(),
        t0 + Duration::from_secs(33),
    );
    assert_eq!(drain(&mut ua).0, ["SIP/2.0 200 OK"]);
}

#[test]
fn the_503_says_when_to_come_back() {
    let t0 = crate::test_clock::base();
    let mut ua = collector(0);
    ua.handle_input(&request("INVITE", "sip", "i1"), from_attacker(), t0);
    let mut texts = vec![];
    while let Some(o) = ua.poll_output() {
        if let Output::Transmit { bytes, .. } = o {
            texts.push(String::from_utf8(bytes).unwrap());
        }
    }
    let [busy] = &texts[..] else {
        panic!("{texts:?}")
    };
    assert!(busy.starts_with("SIP/2.0 503"), "{busy}");
    assert!(
        busy.contains(&format!(
            "Retry-After: {}\r\n",
            crate::sip::transaction::FULL_RETRY_AFTER_SECS
        )),
        "{busy}"
    );
    assert!(
        busy.contains("To: <sip:collector@example.net>;tag="),
        "{busy}"
    );
}
