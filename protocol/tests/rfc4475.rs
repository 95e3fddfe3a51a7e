//! RFC 4475 torture messages through the stack's entry point
//! (`inspect_message`), each checked against the handling the RFC
//! names for it.
//!
//! The messages are IETF test data and are not in this repository: they are
//! read from `$SIPSENSOR_RFC4475_DIR`, or `<repo>/../shared/conformance/rfc4475`.
//! Without them the test says so and passes, unless `SIPSENSOR_CI=1`.
//!
//! The element under test is the collector's user agent: a UAS that also
//! registers (INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER; SDP bodies; no
//! extensions), receiving over UDP as the RFC's messages ostensibly were.
//! Where the RFC allows a choice, the table says which one is made and why;
//! docs/protocol-sip.md carries the same list.

use rsip::prelude::*;
use sipsensor_protocol::{
    IdGenerator, InboundMessage, InspectConfig, MessageError, Transport, inspect_message,
};
use std::path::PathBuf;

/// What RFC 4475 asks of a UAS for one message.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Parsed and passed on (request or response), then `check` holds.
    Accept(fn(&InboundMessage) -> Result<(), String>),
    /// Answered with this status code, for a reason whose text contains
    /// the second field (so the right code for the wrong reason fails).
    Reject(u16, &'static str),
    /// Dropped without an answer, for this reason.
    Discard(&'static str),
}

struct Case {
    file: &'static str,
    section: &'static str,
    expect: Expect,
    /// What the RFC says, and the choice made where it offers one.
    why: &'static str,
}

fn ok(_: &InboundMessage) -> Result<(), String> {
    Ok(())
}

fn request(i: &InboundMessage) -> Result<&rsip::Request, String> {
    match i {
        InboundMessage::Request(r) => Ok(r),
        other => Err(format!("not a request: {other:?}")),
    }
}

fn ensure(cond: bool, what: &str) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.to_owned()) }
}

fn wsinv(i: &InboundMessage) -> Result<(), String> {
    let r = request(i)?;
    ensure(r.method == rsip::Method::Invite, "method")?;
    ensure(
        r.cseq_header().map_err(|e| e.to_string())?.value() == "9 INVITE",
        "CSeq 9 INVITE",
    )?;
    ensure(
        r.max_forwards_header().map_err(|e| e.to_string())?.value() == "68",
        "Max-Forwards 68",
    )?;
    let vias: Vec<_> = r
        .headers
        .iter()
        .filter(|h| matches!(h, rsip::Header::Via(_)))
        .collect();
    ensure(vias.len() == 3, "three Via values")?;
    let top = r
        .via_header()
        .map_err(|e| e.to_string())?
        .typed()
        .map_err(|e| e.to_string())?;
    ensure(
        top.branch().map(|b| b.to_string()) == Some("390skdjuw".into()),
        "top branch",
    )?;
    let from = r.from_header().map_err(|e| e.to_string())?;
    ensure(
        from.value() == r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#,
        "From unfolded with its quoted display name intact",
    )?;
    let contact = r
        .contact_header()
        .map_err(|e| e.to_string())?
        .value()
        .to_owned();
    ensure(
        contact
            == r#""Quoted string \"\"" <sip:jdrosen@example.com>;newparam=newvalue;secondparam;q=0.33"#,
        "Contact normalised",
    )?;
    ensure(r.body.len() == 150, "150-octet body")
}

fn intmeth_allow(i: &InboundMessage) -> Result<(), String> {
    let InboundMessage::Reject { response, .. } = i else {
        return Err("not rejected".into());
    };
    let allow = response.headers.iter().find_map(|h| match h {
        rsip::Header::Allow(a) => Some(a.value().to_owned()),
        _ => None,
    });
    ensure(
        allow.as_deref() == Some("INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"),
        "501 lists the methods in Allow",
    )
}

fn esc01(i: &InboundMessage) -> Result<(), String> {
    let r = request(i)?;
    ensure(
        r.uri.user() == Some("sips%3Auser%40example.com"),
        "Request-URI user part kept escaped",
    )?;
    ensure(
        r.uri.host().to_string() == "example.net",
        "Request-URI host",
    )
}

fn dblreq(i: &InboundMessage) -> Result<(), String> {
    let r = request(i)?;
    ensure(r.method == rsip::Method::Register, "the REGISTER")?;
    ensure(r.body.is_empty(), "the trailing INVITE octets are dropped")
}

fn semiuri(i: &InboundMessage) -> Result<(), String> {
    let r = request(i)?;
    ensure(
        r.uri.user() == Some("user;par=u%40example.net"),
        "user part with ;",
    )?;
    ensure(r.uri.host().to_string() == "example.com", "host")
}

fn transports(i: &InboundMessage) -> Result<(), String> {
    let r = request(i)?;
    let vias = r
        .headers
        .iter()
        .filter(|h| matches!(h, rsip::Header::Via(_)))
        .count();
    ensure(vias == 5, "five Via values")
}

fn longreq(i: &InboundMessage) -> Result<(), String> {
    let r = request(i)?;
    let vias = r
        .headers
        .iter()
        .filter(|h| matches!(h, rsip::Header::Via(_)))
        .count();
    ensure(vias == 34, "34 Via values")?;
    ensure(r.body.len() == 150, "150-octet body")
}

fn response_code(code: u16) -> impl Fn(&InboundMessage) -> Result<(), String> {
    move |i| match i {
        InboundMessage::Response(r) if r.status_code.code() == code => Ok(()),
        other => Err(format!("not a {code} response: {other:?}")),
    }
}

fn unreason(i: &InboundMessage) -> Result<(), String> {
    response_code(200)(i)
}

fn noreason(i: &InboundMessage) -> Result<(), String> {
    response_code(100)(i)
}

fn inv2543(i: &InboundMessage) -> Result<(), String> {
    let r = request(i)?;
    ensure(r.body.len() == 105, "body runs to the end of the datagram")
}

fn escnull(i: &InboundMessage) -> Result<(), String> {
    let r = request(i)?;
    let contacts = r
        .headers
        .iter()
        .filter(|h| matches!(h, rsip::Header::Contact(_)))
        .count();
    ensure(contacts == 2, "two distinct Contacts")
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // 3.1.1 Valid messages
    Case { file: "wsinv", section: "3.1.1.1", expect: Expect::Accept(wsinv), why: "short tortuous INVITE: folding and LWS everywhere, must be accepted" },
    Case { file: "intmeth", section: "3.1.1.2", expect: Expect::Reject(501, "is not implemented"), why: "valid; endpoints answer an unknown method with 501 listing Allow" },
    Case { file: "esc01", section: "3.1.1.3", expect: Expect::Accept(esc01), why: "valid % escapes: accepted" },
    Case { file: "escnull", section: "3.1.1.4", expect: Expect::Accept(escnull), why: "escaped NULs in URIs: accepted, two contacts" },
    Case { file: "esc02", section: "3.1.1.5", expect: Expect::Reject(501, "RE%47IST%45R is not implemented"), why: "RE%47IST%45R is not REGISTER: an endpoint answers 501" },
    Case { file: "lwsdisp", section: "3.1.1.6", expect: Expect::Accept(ok), why: "no LWS before <: accepted" },
    Case { file: "longreq", section: "3.1.1.7", expect: Expect::Accept(longreq), why: "long values: accepted" },
    Case { file: "dblreq", section: "3.1.1.8", expect: Expect::Accept(dblreq), why: "octets after Content-Length in a datagram are ignored" },
    Case { file: "semiuri", section: "3.1.1.9", expect: Expect::Accept(semiuri), why: "user part user;par=u%40example.net: accepted" },
    Case { file: "transports", section: "3.1.1.10", expect: Expect::Accept(transports), why: "unknown transports in lower Vias: accepted" },
    Case { file: "mpart01", section: "3.1.1.11", expect: Expect::Reject(405, "MESSAGE is not allowed"), why: "well formed (parsed, see mpart01_body_is_framed_exactly); this UA does not implement MESSAGE, so 405 (RFC 3261 8.2.1)" },
    Case { file: "unreason", section: "3.1.1.12", expect: Expect::Accept(unreason), why: "unusual reason phrase: accepted" },
    Case { file: "noreason", section: "3.1.1.13", expect: Expect::Accept(noreason), why: "empty reason phrase: accepted" },
    // 3.1.2 Invalid messages
    Case { file: "badinv01", section: "3.1.2.1", expect: Expect::Reject(400, "Via"), why: "empty Via and Contact parameters: 400" },
    Case { file: "clerr", section: "3.1.2.2", expect: Expect::Reject(400, "Content-Length 9999 exceeds"), why: "Content-Length past the datagram: 400 over UDP" },
    Case { file: "ncl", section: "3.1.2.3", expect: Expect::Reject(400, "Content-Length"), why: "negative Content-Length: an error response" },
    Case { file: "scalar02", section: "3.1.2.4", expect: Expect::Reject(400, "CSeq"), why: "CSeq over 2**32-1: 400" },
    Case { file: "scalarlg", section: "3.1.2.5", expect: Expect::Discard("CSeq"), why: "response with overlarge scalars: discarded" },
    Case { file: "quotbal", section: "3.1.2.6", expect: Expect::Reject(400, "quoted string"), why: "unterminated quoted display name: 400" },
    Case { file: "ltgtruri", section: "3.1.2.7", expect: Expect::Reject(400, "Request-URI"), why: "<> around the Request-URI: 400 (the choice that is always reasonable)" },
    Case { file: "lwsruri", section: "3.1.2.8", expect: Expect::Reject(400, "Request-Line"), why: "LWS inside the Request-URI: 400" },
    Case { file: "lwsstart", section: "3.1.2.9", expect: Expect::Accept(ok), why: "extra SP in the Request-Line: the RFC allows ignoring them; accepted (and not re-sent)" },
    Case { file: "trws", section: "3.1.2.10", expect: Expect::Accept(ok), why: "trailing SP on the Request-Line: ignored as the RFC allows; accepted" },
    Case { file: "escruri", section: "3.1.2.11", expect: Expect::Reject(400, "headers are not allowed in a Request-URI"), why: "escaped headers in the Request-URI: 400 (the RFC's first choice)" },
    Case { file: "baddate", section: "3.1.2.12", expect: Expect::Accept(ok), why: "non-GMT Date: this UA never reads Date, so it ignores it as the RFC allows" },
    Case { file: "regbadct", section: "3.1.2.13", expect: Expect::Reject(400, "Contact header: URI with headers must be enclosed"), why: "Contact URI with headers outside <>: 400" },
    Case { file: "badaspec", section: "3.1.2.14", expect: Expect::Reject(400, "To header"), why: "spaces inside <addr-spec>: 400" },
    Case { file: "baddn", section: "3.1.2.15", expect: Expect::Reject(400, "display name"), why: "unquoted display name with non-token characters: 400" },
    Case { file: "badvers", section: "3.1.2.16", expect: Expect::Reject(505, "SIP/7.0"), why: "SIP/7.0: 505" },
    Case { file: "mismatch01", section: "3.1.2.17", expect: Expect::Reject(400, "CSeq method INVITE does not match"), why: "CSeq method differs from the request method: 400" },
    Case { file: "mismatch02", section: "3.1.2.18", expect: Expect::Reject(501, "NEWMETHOD is not implemented"), why: "unknown method and CSeq mismatch: 501 (preferred over 400)" },
    Case { file: "bigcode", section: "3.1.2.19", expect: Expect::Discard("status code"), why: "status code over 699: dropped" },
    // 3.2 Transaction layer
    Case { file: "badbranch", section: "3.2.1", expect: Expect::Reject(400, "branch"), why: "branch is the bare magic cookie: 400 (the RFC's first choice; the branch would match every such request)" },
    // 3.3 Application layer
    Case { file: "insuf", section: "3.3.1", expect: Expect::Reject(400, "missing mandatory"), why: "no Call-ID, From or To: 400" },
    Case { file: "unkscm", section: "3.3.2", expect: Expect::Reject(416, "nobodyKnowsThisScheme"), why: "unknown Request-URI scheme: 416" },
    Case { file: "novelsc", section: "3.3.3", expect: Expect::Reject(416, "soap.beep"), why: "soap.beep is never meaningful to this UA: treated as unknown, 416" },
    Case { file: "unksm2", section: "3.3.4", expect: Expect::Reject(400, "REGISTER must be a SIP"), why: "REGISTER whose To is not a SIP URI: a registrar answers 400" },
    Case { file: "bext01", section: "3.3.5", expect: Expect::Reject(420, "nothingSupportsThis, nothingSupportsThisEither"), why: "unsupported Require: 420 with Unsupported" },
    Case { file: "invut", section: "3.3.6", expect: Expect::Reject(415, "application/unknownformat"), why: "unknown body type: an endpoint answers 415" },
    Case { file: "regaut01", section: "3.3.7", expect: Expect::Accept(ok), why: "unknown Authorization scheme is well formed: passed to the registrar, whose digest check answers 401" },
    Case { file: "multi01", section: "3.3.8", expect: Expect::Reject(400, "appears more than once"), why: "several Call-ID/To/From/CSeq/Max-Forwards: 400" },
    Case { file: "mcl01", section: "3.3.9", expect: Expect::Reject(400, "Content-Length header appears more than once"), why: "conflicting Content-Lengths over UDP: an error response" },
    Case { file: "bcast", section: "3.3.10", expect: Expect::Discard("exactly one Via"), why: "well formed, but a UA discards a response with two Vias (RFC 3261 8.1.3.3)" },
    Case { file: "zeromf", section: "3.3.11", expect: Expect::Accept(ok), why: "Max-Forwards 0 at an endpoint: processed normally" },
    Case { file: "cparam01", section: "3.3.12", expect: Expect::Accept(ok), why: "Contact param outside a name-addr: accepted" },
    Case { file: "cparam02", section: "3.3.13", expect: Expect::Accept(ok), why: "Contact URI param: accepted" },
    Case { file: "regescrt", section: "3.3.14", expect: Expect::Accept(ok), why: "escaped header in a bracketed Contact URI: accepted" },
    Case { file: "sdp01", section: "3.3.15", expect: Expect::Reject(406, "Accept excludes application/sdp"), why: "Accept without application/sdp on an INVITE: 406 with Warning 399" },
    // 3.4 Backward compatibility
    Case { file: "inv2543", section: "3.4.1", expect: Expect::Accept(inv2543), why: "RFC 2543 INVITE (no branch, no tags, no Max-Forwards, no Content-Length): accepted" },
];

fn collector_profile() -> InspectConfig {
    let mut c = InspectConfig::new(Transport::Udp);
    c.allow.push(rsip::Method::Register);
    c
}

fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SIPSENSOR_RFC4475_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/rfc4475"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "RFC 4475 messages not found at {} (set SIPSENSOR_RFC4475_DIR)",
        dir.display()
    );
    assert!(std::env::var("SIPSENSOR_CI").as_deref() != Ok("1"), "{msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

fn read(dir: &std::path::Path, file: &str) -> Vec<u8> {
    let path = dir.join(format!("{file}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks that every response the stack sends back is itself a valid
/// message that copies what RFC 3261 8.2.6 says it must.
fn check_reject(
    msg: &[u8],
    response: &rsip::Response,
    reason: &MessageError,
) -> Result<(), String> {
    let text = response.to_string();
    ensure(
        text.contains("Warning: 399 sipsensor \""),
        "Warning 399 names the problem",
    )?;
    ensure(
        response.status_code.code() == reason.status_code(),
        "code matches reason",
    )?;
    let src = String::from_utf8_lossy(msg);
    if let Ok(cid) = response.call_id_header() {
        ensure(src.contains(cid.value()), "Call-ID copied")?;
    }
    ensure(response.via_header().is_ok(), "Via copied")?;
    Ok(())
}

#[test]
fn rfc4475_messages_are_handled_as_the_rfc_says() {
    let Some(dir) = corpus_dir() else { return };
    assert_eq!(CASES.len(), 49, "the table lists every RFC 4475 message");
    let config = collector_profile();
    let mut ids = IdGenerator::seeded(4475);
    let mut failures = Vec::new();
    for case in CASES {
        let msg = read(&dir, case.file);
        let got = inspect_message(&msg, &config, &mut ids);
        let verdict = match (case.expect, &got) {
            (Expect::Accept(check), InboundMessage::Request(_) | InboundMessage::Response(_)) => {
                check(&got)
            }
            (Expect::Reject(code, why), InboundMessage::Reject { response, reason })
                if response.status_code.code() == code && reason.to_string().contains(why) =>
            {
                check_reject(&msg, response, reason).and_then(|()| match case.file {
                    "intmeth" => intmeth_allow(&got),
                    _ => Ok(()),
                })
            }
            (Expect::Discard(why), InboundMessage::Discard(reason))
                if reason.to_string().contains(why) =>
            {
                Ok(())
            }
            (_, other) => Err(format!("got {}", summary(other))),
        };
        match verdict {
            Ok(()) => println!(
                "ok   {:<10} RFC 4475 {:<9} {}: {}",
                case.file,
                case.section,
                summary(&got),
                case.why
            ),
            Err(e) => {
                println!(
                    "FAIL {:<10} RFC 4475 {:<9} {e}: {}",
                    case.file, case.section, case.why
                );
                failures.push(case.file);
            }
        }
    }
    let handled = CASES.len() - failures.len();
    println!("RFC 4475: {handled}/49 handled as the RFC says");
    assert!(
        failures.is_empty(),
        "not handled as RFC 4475 says: {failures:?}"
    );
}

fn summary(i: &InboundMessage) -> String {
    match i {
        InboundMessage::Request(r) => format!("accepted {}", r.method),
        InboundMessage::Response(r) => format!("accepted {} response", r.status_code.code()),
        InboundMessage::Reject { response, reason } => {
            format!("{} ({reason})", response.status_code.code())
        }
        InboundMessage::Discard(reason) => format!("discarded ({reason})"),
    }
}

#[test]
fn mpart01_body_is_framed_exactly() {
    let Some(dir) = corpus_dir() else { return };
    let msg = read(&dir, "mpart01");
    let mut config = collector_profile();
    config.allow.push(rsip::Method::Message);
    config.accept.push("multipart/mixed".into());
    let got = inspect_message(&msg, &config, &mut IdGenerator::seeded(1));
    let r = request(&got).unwrap();
    assert_eq!(r.method, rsip::Method::Message);
    assert_eq!(r.body.len(), 553);
    assert!(r.body.contains(&0), "binary part with NULs kept");
    assert!(r.body.ends_with(b"--7a9cbec02ceef655--\r\n"));
}

#[test]
fn bext01_lists_the_unsupported_require_tags() {
    let Some(dir) = corpus_dir() else { return };
    let got = inspect_message(
        &read(&dir, "bext01"),
        &collector_profile(),
        &mut IdGenerator::seeded(1),
    );
    let InboundMessage::Reject { response, .. } = got else {
        panic!("{got:?}")
    };
    assert!(
        response
            .to_string()
            .contains("Unsupported: nothingSupportsThis, nothingSupportsThisEither\r\n"),
        "{response}"
    );
}

#[test]
fn invut_lists_what_is_accepted() {
    let Some(dir) = corpus_dir() else { return };
    let got = inspect_message(
        &read(&dir, "invut"),
        &collector_profile(),
        &mut IdGenerator::seeded(1),
    );
    let InboundMessage::Reject { response, .. } = got else {
        panic!("{got:?}")
    };
    assert!(
        response.to_string().contains("Accept: application/sdp\r\n"),
        "{response}"
    );
}

#[test]
fn an_agent_without_a_registrar_answers_register_with_405() {
    let Some(dir) = corpus_dir() else { return };
    let got = inspect_message(
        &read(&dir, "regaut01"),
        &InspectConfig::new(Transport::Udp),
        &mut IdGenerator::seeded(1),
    );
    let InboundMessage::Reject { response, .. } = got else {
        panic!("{got:?}")
    };
    assert_eq!(response.status_code.code(), 405);
}
