//! What a client reads from a response: the digest challenge in
//! WWW-Authenticate / Proxy-Authenticate (RFC 3261 22.2, RFC 7616), and
//! `received` / `rport` in the top Via (RFC 3581 4). Beyond "never
//! panics": when a challenge is taken, the request authorized for it is a
//! message our own `inspect` accepts, whatever the hostile server wrote.

use sipsensor_protocol::{
    DigestClient, IdGenerator, InboundMessage, InspectConfig, Password, Transport, encode_message,
    inspect_message, reflexive_address, response_route,
};
use std::sync::OnceLock;

const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-fuzz;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:sensor@example.com>;tag=f1\r\n\
To: <sip:sensor@example.com>\r\n\
Call-ID: fuzz-call\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:sensor@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n";

fn config() -> InspectConfig {
    let mut config = InspectConfig::new(Transport::Udp);
    config.allow.push(sipsensor_protocol::Method::Register);
    config
}

fn register() -> &'static sipsensor_protocol::Request {
    static REQUEST: OnceLock<sipsensor_protocol::Request> = OnceLock::new();
    REQUEST.get_or_init(|| {
        match inspect_message(REGISTER, &config(), &mut IdGenerator::seeded(1)) {
            InboundMessage::Request(r) => r,
            other => panic!("the harness's REGISTER is not accepted: {other:?}"),
        }
    })
}

pub fn run(data: &[u8]) {
    let config = config();
    let InboundMessage::Response(response) =
        inspect_message(data, &config, &mut IdGenerator::seeded(1))
    else {
        return;
    };
    let _ = reflexive_address(&response);
    let _ = response_route(&response);
    let request = register();
    let mut client = DigestClient::new("sensor", Password::new("secret"));
    if client.handle_challenge(request, &response).is_err() {
        return;
    }
    let mut authorized = request.clone();
    client.authorize(&mut authorized, &mut IdGenerator::seeded(2));
    let wire = encode_message(&rsip::SipMessage::Request(authorized));
    let got = inspect_message(&wire, &config, &mut IdGenerator::seeded(1));
    assert!(
        matches!(got, InboundMessage::Request(_)),
        "a request authorized for a hostile challenge is not a valid message: {got:?}\n{}",
        String::from_utf8_lossy(&wire)
    );
}
