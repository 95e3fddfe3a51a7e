//! The registration client on a virtual clock, against scripted
//! responses and against this crate's registrar.

use super::*;
use crate::ids::IdGenerator;
use crate::sip::digest::{InMemoryCredentials, ServerConfig, ServerSecret, WallClock};
use crate::sip::registrar::response::response_to;
use crate::sip::registrar::{Registrar, RegistrarConfig};
use crate::sip::{LocalEndpoint, Transport};
use rsip::headers::UntypedHeader;
use std::net::SocketAddr;
use std::time::Instant;

const LOCAL: &str = "10.0.0.2:5062";

fn t0() -> Instant {
    crate::test_clock::base()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn config() -> RegistrationConfig {
    RegistrationConfig::new(
        "sip:example.com",
        "sip:s1@example.com",
        "s1",
        Password::new("pw1"),
        LocalEndpoint::new(Transport::Udp, LOCAL.parse().unwrap()),
    )
}

fn client_with(config: RegistrationConfig) -> RegistrationClient {
    RegistrationClient::new(config, IdGenerator::seeded(11)).unwrap()
}

/// Header values by name (long form as rsip prints it).
fn values(headers: &rsip::Headers, name: &str) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (n, v) = text.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
        .collect()
}

fn one(headers: &rsip::Headers, name: &str) -> String {
    let v = values(headers, name);
    assert_eq!(v.len(), 1, "{name}: {v:?}");
    v[0].clone()
}

fn cseq(req: &rsip::Request) -> u32 {
    one(&req.headers, "CSeq")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A response as a registrar on the same network would send it (the
/// Via's rport filled with our own port: no NAT).
fn reply(req: &rsip::Request, code: u16, extra: Vec<rsip::Header>) -> rsip::Response {
    response_to(req, code, Some(LOCAL.parse().unwrap()), "rt", extra)
}

fn reply_from_nat(
    req: &rsip::Request,
    code: u16,
    public: &str,
    extra: Vec<rsip::Header>,
) -> rsip::Response {
    response_to(req, code, Some(public.parse().unwrap()), "rt", extra)
}

fn contact(v: &str) -> rsip::Header {
    rsip::Header::Contact(rsip::headers::Contact::new(v))
}

fn www(v: &str) -> rsip::Header {
    rsip::Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(v))
}

fn events(c: &mut RegistrationClient) -> Vec<RegistrationEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn request(c: &mut RegistrationClient) -> rsip::Request {
    let r = c.poll_request().expect("a REGISTER");
    assert!(c.poll_request().is_none(), "one REGISTER at a time (10.2)");
    r
}

/// Start and answer 200 granting `granted` seconds; returns the request.
fn registered(c: &mut RegistrationClient, granted: u32, at: Instant) -> rsip::Request {
    c.start(at);
    let req = request(c);
    let ok = reply(
        &req,
        200,
        vec![contact(&format!("<sip:s1@{LOCAL}>;expires={granted}"))],
    );
    c.handle_response(&ok, at).unwrap();
    assert_eq!(
        events(c),
        [RegistrationEvent::Registered {
            expires: secs(granted.into()),
            contact: format!("sip:s1@{LOCAL}")
        }]
    );
    req
}

fn registrar() -> Registrar {
    let mut users = InMemoryCredentials::new();
    users.insert_password("s1", Password::new("pw1"));
    Registrar::new(
        RegistrarConfig {
            domains: vec!["example.com".into()],
            ..RegistrarConfig::default()
        },
        ServerConfig::new(
            "example.com",
            ServerSecret::new(b"0123456789abcdef0123456789abcdef".to_vec()),
        ),
        Box::new(users),
        WallClock::new(t0(), 1_700_000_000),
        IdGenerator::seeded(99),
    )
    .unwrap()
}

/// Runs requests through the registrar until none is pending.
fn exchange(c: &mut RegistrationClient, reg: &mut Registrar, source: SocketAddr, now: Instant) {
    for _ in 0..10 {
        let Some(req) = c.poll_request() else { return };
        // Through the wire format, as the transport would.
        let req = rsip::Request::try_from(req.to_string()).unwrap();
        let resp = reg.handle_register(&req, source, Transport::Udp, now);
        let resp = rsip::Response::try_from(resp.to_string()).unwrap();
        c.handle_response(&resp, now).unwrap();
    }
    panic!("exchange did not settle");
}

mod failures;
mod flow;
mod with_registrar;
