//! The 10.3 steps, one behaviour per test, on a virtual clock.

use super::*;
use crate::sip::digest::{DigestClient, InMemoryCredentials, Password, ServerSecret};
use rsip::headers::UntypedHeader;

const SRC: &str = "203.0.113.5:40000";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One base instant for all tests: the virtual clock's zero.
fn t0() -> Instant {
    crate::test_clock::base()
}

struct Env {
    reg: Registrar,
    ids: IdGenerator,
}

fn env_with(config: RegistrarConfig) -> Env {
    let mut users = InMemoryCredentials::new();
    users.insert_password("s1", Password::new("pw1"));
    users.insert_password("s2", Password::new("pw2"));
    let reg = Registrar::new(
        config,
        ServerConfig::new(
            "sipsensor",
            ServerSecret::new(b"registrar test secret 0123456789".to_vec()),
        ),
        Box::new(users),
        WallClock::new(t0(), 1_289_690_940),
        IdGenerator::seeded(5),
    )
    .unwrap();
    Env {
        reg,
        ids: IdGenerator::seeded(6),
    }
}

fn open_env() -> Env {
    env_with(RegistrarConfig {
        authenticate: false,
        domains: vec!["example.com".into()],
        ..RegistrarConfig::default()
    })
}

/// A REGISTER for `user`@example.com with the given extra header lines.
fn register(user: &str, call_id: &str, cseq: u32, extra: &str) -> rsip::Request {
    rsip::Request::try_from(format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK{cseq}x;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@example.com>;tag=ft\r\n\
         To: <sip:{user}@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    ))
    .unwrap()
}

fn handle(env: &mut Env, req: &rsip::Request, at: Instant) -> rsip::Response {
    env.reg
        .handle_register(req, SRC.parse().unwrap(), Transport::Udp, at)
}

fn code(r: &rsip::Response) -> u16 {
    r.status_code.code()
}

fn contacts(r: &rsip::Response) -> Vec<String> {
    r.headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Contact(c) => Some(c.value().to_string()),
            _ => None,
        })
        .collect()
}

fn header<'a>(r: &'a rsip::Response, name: &str) -> Option<&'a str> {
    r.headers.iter().find_map(|h| {
        let text = h.to_string();
        let (n, _) = text.split_once(':')?;
        if n.eq_ignore_ascii_case(name) {
            Some(match h {
                rsip::Header::MinExpires(v) => v.value(),
                rsip::Header::Date(v) => v.value(),
                rsip::Header::Unsupported(v) => v.value(),
                rsip::Header::RetryAfter(v) => v.value(),
                rsip::Header::Warning(v) => v.value(),
                rsip::Header::Via(v) => v.value(),
                rsip::Header::To(v) => v.value(),
                rsip::Header::Allow(v) => v.value(),
                _ => "",
            })
        } else {
            None
        }
    })
}

/// Random strings over the characters that matter to these grammars:
/// every reader returns a value or a typed error, never panics.
#[test]
fn random_input_never_panics() {
    const ALPHABET: &[&str] = &[
        "<",
        ">",
        "\"",
        "\\",
        ",",
        ";",
        "=",
        ":",
        "@",
        "[",
        "]",
        "?",
        "&",
        "%",
        "%4",
        " ",
        "\t",
        "sip",
        "sips:",
        "Digest ",
        "realm",
        "nonce=",
        "q=0.",
        "expires=",
        "*",
        "1",
        "9",
        "a",
        "\u{e9}",
        "received=",
        "rport",
        "SIP/2.0/UDP ",
        "::1",
        "2001:db8::",
        "\r\n",
    ];
    let mut ids = IdGenerator::seeded(2024);
    for _ in 0..3000 {
        let len = 1 + ids.u32() as usize % 24;
        let s: String = (0..len)
            .map(|_| ALPHABET[ids.u32() as usize % ALPHABET.len()])
            .collect();
        let _ = uri::SipUri::parse(&s);
        let _ = contact::parse_name_addr(&s).map(|na| (na.expires(), na.q_millis()));
        let _ = via::parse_via(&s).map(|v| v.public_addr());
        let _ = via::stamp_received(&s, SRC.parse().unwrap());
        let _ = crate::sip::digest::params::parse_auth_items(&s);
        let mut headers = rsip::Headers::default();
        headers.push(rsip::Header::Contact(rsip::headers::Contact::new(
            s.clone(),
        )));
        headers.push(rsip::Header::WwwAuthenticate(
            rsip::headers::WwwAuthenticate::new(s.clone()),
        ));
        headers.push(rsip::Header::Authorization(
            rsip::headers::Authorization::new(s.clone()),
        ));
        let _ = contact::parse_contacts(&headers);
        let _ = crate::sip::digest::Challenge::parse_all(
            crate::sip::digest::ChallengeKind::Www,
            &headers,
        );
        let _ = crate::sip::digest::DigestCredentials::parse_all(
            crate::sip::digest::ChallengeKind::Www,
            &headers,
        );
    }
}

mod auth;
mod steps;
