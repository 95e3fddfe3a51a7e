//! The registrar (RFC 3261 10.3) on whatever REGISTER a stranger sends:
//! the Authorization header and its digest (RFC 7616), Contact with its
//! `expires` and `q`, Expires, the To/From AOR and the top Via. Run twice:
//! with authentication, as deployed, and without, so that the Contact
//! rules behind step 3 are reached too. Beyond "never panics": every
//! response the registrar builds is a message our own `inspect` accepts
//! (but for the Vias: a response copies all of the request's, RFC 3261
//! 8.2.6.2, and a client discards one with more than one, 8.1.3.3).

use sipsensor_protocol::{
    DigestServerConfig, IdGenerator, InMemoryCredentials, InboundMessage, InspectConfig,
    MessageError, Method, Password, Registrar, RegistrarConfig, ServerSecret, Transport, WallClock,
    encode_message, inspect_message,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SOURCE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10)),
    5060,
);

fn registrar(authenticate: bool, now: Instant) -> Registrar {
    let mut users = InMemoryCredentials::new();
    users.insert_password("sensor", Password::new("secret"));
    let config = RegistrarConfig {
        authenticate,
        ..RegistrarConfig::default()
    };
    let digest = DigestServerConfig::new(
        "sipsensor",
        ServerSecret::new(b"registrar fuzz secret 0123456789".to_vec()),
    );
    match Registrar::new(
        config,
        digest,
        Box::new(users),
        WallClock::new(now, 1_700_000_000),
        IdGenerator::seeded(3),
    ) {
        Ok(r) => r,
        Err(e) => panic!("the harness's registrar: {e}"),
    }
}

pub fn run(data: &[u8]) {
    let mut config = InspectConfig::new(Transport::Udp);
    config.allow.push(Method::Register);
    let InboundMessage::Request(request) =
        inspect_message(data, &config, &mut IdGenerator::seeded(1))
    else {
        return;
    };
    let now = Instant::now();
    for authenticate in [true, false] {
        let mut reg = registrar(authenticate, now);
        let response = reg.handle_register(&request, SOURCE, Transport::Udp, now);
        readable(response, &config);
        if let Err(challenge) = reg.authenticate_request(&request, now) {
            readable(challenge, &config);
        }
        for (aor, _) in reg.location().iter() {
            let _ = reg.lookup(aor, now);
        }
        let _ = reg.expire(now + Duration::from_secs(100_000));
    }
}

/// Panics unless our own `inspect` would accept `response`.
fn readable(response: sipsensor_protocol::Response, config: &InspectConfig) {
    let wire = encode_message(&rsip::SipMessage::Response(response));
    let got = inspect_message(&wire, config, &mut IdGenerator::seeded(1));
    let fine = match &got {
        InboundMessage::Response(_) => true,
        InboundMessage::Discard(MessageError::ResponseVias(n)) => *n > 1,
        _ => false,
    };
    assert!(
        fine,
        "the registrar answered with an invalid message: {got:?}\n{}",
        String::from_utf8_lossy(&wire)
    );
}
