//! Client and server together, on a virtual clock.

use super::*;
use crate::ids::IdGenerator;
use rsip::headers::UntypedHeader;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn register(extra: &str) -> rsip::Request {
    rsip::Request::try_from(format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=1\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: c1@192.0.2.1\r\n\
         CSeq: 1 REGISTER\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    ))
    .unwrap()
}

fn response(code: u16, headers: &[rsip::Header]) -> rsip::Response {
    rsip::Response {
        status_code: code.into(),
        version: rsip::Version::V2,
        headers: headers.to_vec().into(),
        body: vec![],
    }
}

fn www(value: &str) -> rsip::Header {
    rsip::Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(value))
}

fn proxy(value: &str) -> rsip::Header {
    rsip::Header::ProxyAuthenticate(rsip::headers::ProxyAuthenticate::new(value))
}

fn creds_of(kind: ChallengeKind, req: &rsip::Request) -> Vec<DigestCredentials> {
    DigestCredentials::parse_all(kind, &req.headers)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

struct Fixture {
    t0: Instant,
    ids: IdGenerator,
    server: DigestServer,
    store: InMemoryCredentials,
}

fn fixture() -> Fixture {
    let t0 = crate::test_clock::base();
    let mut store = InMemoryCredentials::new();
    store.insert_password("alice", Password::new("s3cret"));
    let server = DigestServer::new(
        ServerConfig::new("sipsensor", ServerSecret::new(SECRET)),
        WallClock::new(t0, 1_700_000_000),
    )
    .unwrap();
    Fixture {
        t0,
        ids: IdGenerator::seeded(42),
        server,
        store,
    }
}

impl Fixture {
    fn challenge(&mut self, stale: bool, at: Instant) -> rsip::Response {
        let headers = self
            .server
            .challenges(ChallengeKind::Www, stale, at, &mut self.ids);
        response(401, &headers)
    }

    fn verify(
        &mut self,
        req: &rsip::Request,
        at: Instant,
    ) -> Result<AuthenticatedUser, AuthFailure> {
        self.server.verify(req, ChallengeKind::Www, &self.store, at)
    }
}

/// Client answers a fresh server challenge; returns the signed request.
fn authenticated(f: &mut Fixture, client: &mut DigestClient, at: Instant) -> rsip::Request {
    let first = register("");
    let challenge = f.challenge(false, at);
    client.handle_challenge(&first, &challenge).unwrap();
    let mut second = register("");
    client.authorize(&mut second, &mut f.ids);
    second
}

fn authenticated_now(f: &mut Fixture, client: &mut DigestClient) -> rsip::Request {
    let t0 = f.t0;
    authenticated(f, client, t0)
}

mod client_side;
mod server_side;
mod types;
