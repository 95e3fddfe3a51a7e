//! Unit tests of `inspect` as a whole; the RFC 4475 messages are run in
//! `tests/rfc4475.rs`.

use super::*;
use rsip::prelude::*;

const INVITE: &str = "INVITE sip:sensor@192.0.2.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKa1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Collector\" <sip:collector@example.com>;tag=c1\r\n\
To: <sip:sensor@example.com>\r\n\
Call-ID: k1@192.0.2.20\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:collector@192.0.2.20:5062>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn udp() -> InspectConfig {
    InspectConfig::new(Transport::Udp)
}

fn tcp() -> InspectConfig {
    InspectConfig::new(Transport::Tcp)
}

fn run(msg: &[u8], config: &InspectConfig) -> Inbound {
    inspect(msg, config, &mut IdGenerator::seeded(9))
}

fn with(msg: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(msg.contains(from), "{from}");
    msg.replacen(from, to, 1).into_bytes()
}

fn reject_code(i: &Inbound) -> Option<u16> {
    match i {
        Inbound::Reject { response, .. } => Some(response.status_code.code()),
        _ => None,
    }
}

fn reason(i: &Inbound) -> &MessageError {
    match i {
        Inbound::Reject { reason, .. } | Inbound::Discard(reason) => reason,
        other => panic!("accepted: {other:?}"),
    }
}

#[test]
fn a_plain_invite_is_accepted_and_survives_encoding() {
    let got = run(INVITE.as_bytes(), &udp());
    let Inbound::Request(req) = &got else {
        panic!("{got:?}")
    };
    assert_eq!(req.method, Method::Invite);
    assert_eq!(req.uri.to_string(), "sip:sensor@192.0.2.10:5060");
    assert_eq!(req.body, b"v=0\n");
    assert_eq!(
        req.via_header()
            .unwrap()
            .typed()
            .unwrap()
            .branch()
            .unwrap()
            .to_string(),
        "z9hG4bKa1"
    );
    let again = run(&encode(&rsip::SipMessage::Request(req.clone())), &udp());
    assert_eq!(again, got);
}

#[test]
fn folded_lists_become_one_header_per_value() {
    let msg = with(
        INVITE,
        "Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKa1;rport\r\n",
        "v: SIP / 2.0 / UDP 192.0.2.20 : 5062 ; branch = z9hG4bKa1 ; rport ,\r\n SIP/2.0/TCP [2001:db8::1];branch=z9hG4bKb2\r\n",
    );
    let Inbound::Request(req) = run(&msg, &udp()) else {
        panic!()
    };
    let vias: Vec<String> = req
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Via(v) => Some(v.value().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(
        vias,
        [
            "SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKa1;rport",
            "SIP/2.0/TCP [2001:db8::1];branch=z9hG4bKb2"
        ]
    );
}

#[test]
fn numbers_come_out_in_plain_decimal() {
    let msg = with(INVITE, "CSeq: 1 INVITE", "CSeq:   0001 \t INVITE");
    let msg = String::from_utf8(msg).unwrap();
    let msg = with(&msg, "Max-Forwards: 70", "Max-Forwards: 070");
    let Inbound::Request(req) = run(&msg, &udp()) else {
        panic!()
    };
    assert_eq!(req.cseq_header().unwrap().value(), "1 INVITE");
    assert_eq!(req.max_forwards_header().unwrap().value(), "70");
}

#[test]
fn a_reject_echoes_the_request_and_tags_the_to() {
    let msg = with(INVITE, "INVITE sip:", "FROB sip:");
    let msg = String::from_utf8(msg).unwrap();
    let msg = with(&msg, "CSeq: 1 INVITE", "CSeq: 1 FROB");
    let got = run(&msg, &udp());
    let Inbound::Reject { response, reason } = &got else {
        panic!("{got:?}")
    };
    assert_eq!(reason, &MessageError::UnknownMethod("FROB".into()));
    assert_eq!(response.status_code, rsip::StatusCode::NotImplemented);
    assert_eq!(response.call_id_header().unwrap().value(), "k1@192.0.2.20");
    assert_eq!(response.cseq_header().unwrap().value(), "1 FROB");
    let to = response.to_header().unwrap().typed().unwrap();
    assert!(to.tag().is_some());
    // The same seed gives the same tag: no hidden randomness.
    assert_eq!(run(&msg, &udp()), got);
    // Our own response passes our own checks.
    let back = run(
        &encode(&rsip::SipMessage::Response(response.clone())),
        &udp(),
    );
    assert!(matches!(back, Inbound::Response(_)), "{back:?}");
}

#[test]
fn methods_are_case_sensitive() {
    let msg = with(INVITE, "INVITE sip:", "invite sip:");
    assert_eq!(reject_code(&run(&msg, &udp())), Some(501));
}

#[test]
fn an_ack_is_never_answered() {
    let ack = with(INVITE, "INVITE sip:", "ACK sip:");
    let ack = String::from_utf8(ack).unwrap();
    // CSeq still says INVITE: malformed, but an ACK gets no response.
    assert!(matches!(
        run(ack.as_bytes(), &udp()),
        Inbound::Discard(MessageError::CSeqMismatch { .. })
    ));
    // A well-formed ACK skips the UAS checks (its body is the SDP answer).
    let ack = with(&ack, "CSeq: 1 INVITE", "CSeq: 1 ACK");
    let ack = String::from_utf8(ack).unwrap();
    let ack = with(&ack, "application/sdp", "application/x-odd");
    assert!(matches!(run(&ack, &udp()), Inbound::Request(r) if r.method == Method::Ack));
}

#[test]
fn uas_core_checks() {
    let options = with(INVITE, "INVITE sip:", "SUBSCRIBE sip:");
    let options = String::from_utf8(options).unwrap();
    let options = with(&options, "CSeq: 1 INVITE", "CSeq: 1 SUBSCRIBE");
    assert_eq!(reject_code(&run(&options, &udp())), Some(405));

    let require = with(INVITE, "Max-Forwards: 70\r\n", "Require: 100rel, timer\r\n");
    let got = run(&require, &udp());
    assert_eq!(
        reason(&got),
        &MessageError::BadExtension(vec!["100rel".into(), "timer".into()])
    );
    let mut config = udp();
    config.supported = vec!["100rel".into(), "timer".into()];
    assert!(matches!(run(&require, &config), Inbound::Request(_)));

    let mut many = String::from("Require: ");
    for i in 0..100 {
        many.push_str(&format!("x{i},"));
    }
    many.push_str("x0\r\n");
    let got = run(&with(INVITE, "Max-Forwards: 70\r\n", &many), &udp());
    let MessageError::BadExtension(tags) = reason(&got) else {
        panic!("{got:?}")
    };
    assert_eq!(tags.len(), 32, "the 420 stays small");
    assert_eq!(tags[..2], ["x0", "x1"]);

    let gzip = with(INVITE, "Max-Forwards: 70\r\n", "Content-Encoding: gzip\r\n");
    assert_eq!(reject_code(&run(&gzip, &udp())), Some(415));

    let optional = with(
        INVITE,
        "Content-Type: application/sdp\r\n",
        "Content-Type: text/plain\r\nContent-Disposition: render;handling=optional\r\n",
    );
    assert!(matches!(run(&optional, &udp()), Inbound::Request(_)));

    let accept = with(INVITE, "Max-Forwards: 70\r\n", "Accept: application/*\r\n");
    assert!(matches!(run(&accept, &udp()), Inbound::Request(_)));
    let empty = with(INVITE, "Max-Forwards: 70\r\n", "Accept: \r\n");
    assert_eq!(reject_code(&run(&empty, &udp())), Some(406));
}

#[test]
fn cancel_ignores_require() {
    let cancel = with(INVITE, "INVITE sip:", "CANCEL sip:");
    let cancel = String::from_utf8(cancel).unwrap();
    let cancel = with(&cancel, "CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel = String::from_utf8(cancel).unwrap();
    let cancel = with(&cancel, "Max-Forwards: 70\r\n", "Require: foo\r\n");
    assert!(matches!(run(&cancel, &udp()), Inbound::Request(_)));
}

#[test]
fn stream_rules() {
    let no_length = with(INVITE, "Content-Length: 4\r\n", "");
    let got = run(&no_length[..no_length.len() - 4], &tcp());
    assert_eq!(reason(&got), &MessageError::MissingContentLength);
    assert_eq!(reject_code(&got), Some(400));
    // Over UDP the body runs to the end of the datagram.
    assert!(matches!(run(&no_length, &udp()), Inbound::Request(r) if r.body == b"v=0\n"));

    let short = &INVITE.as_bytes()[..INVITE.len() - 2];
    assert!(matches!(
        run(short, &tcp()),
        Inbound::Discard(MessageError::BodyTooShort { .. })
    ));
    assert_eq!(reject_code(&run(short, &udp())), Some(400));

    let unterminated = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n";
    assert_eq!(
        reason(&run(unterminated.as_bytes(), &tcp())),
        &MessageError::Unterminated
    );
}

#[test]
fn size_limit() {
    let mut config = udp();
    config.max_size = 600;
    let mut big = INVITE.as_bytes().to_vec();
    big.extend(std::iter::repeat_n(b'x', 1000));
    // The head fits: the peer learns why (513).
    assert_eq!(reject_code(&run(&big, &config)), Some(513));
    // It does not: nothing can be answered.
    config.max_size = 100;
    let len = big.len();
    assert!(matches!(
        run(&big, &config),
        Inbound::Discard(MessageError::TooLarge {
            len: l,
            max: 100
        }) if l == len
    ));
}

#[test]
fn what_cannot_be_answered_is_discarded() {
    assert_eq!(reason(&run(b"", &udp())), &MessageError::Empty);
    assert_eq!(
        reason(&run(b"\x00\x01garbage\r\n\r\n", &udp())),
        &MessageError::Garbage
    );
    let no_via = with(
        INVITE,
        "Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKa1;rport\r\n",
        "",
    );
    assert!(matches!(
        run(&no_via, &udp()),
        Inbound::Discard(MessageError::MissingHeader("Via"))
    ));
}

#[test]
fn header_faults_are_400s() {
    let cases: &[(&str, &str, MessageError)] = &[
        (
            "Content-Type: application/sdp\r\n",
            "",
            MessageError::MissingContentType,
        ),
        (
            "To: <sip:sensor@example.com>\r\n",
            "To: <sip:sensor@example.com>\r\nt: <sip:x@y>\r\n",
            MessageError::DuplicateHeader("To"),
        ),
        (
            "Content-Length: 4\r\n",
            "Content-Length: 4\r\nl: 4\r\n",
            MessageError::DuplicateHeader("Content-Length"),
        ),
        (
            "Max-Forwards: 70",
            "Max-Forwards: 256",
            MessageError::BadHeader {
                name: "Max-Forwards",
                reason: "not a number from 0 to 255",
            },
        ),
        (
            "Call-ID: k1@192.0.2.20\r\n",
            "",
            MessageError::MissingHeader("Call-ID"),
        ),
        (
            "Max-Forwards: 70\r\n",
            "X-Bad: a\x01b\r\n",
            MessageError::BadHeaderLine {
                line: 3,
                reason: "control character in a field value",
            },
        ),
        (
            " SIP/2.0\r\n",
            " SIP/3.0\r\n",
            MessageError::VersionNotSupported("SIP/3.0".into()),
        ),
        (
            " SIP/2.0\r\n",
            " SIP/two\r\n",
            MessageError::BadRequestLine("malformed SIP-Version"),
        ),
        (
            "sip:sensor@192.0.2.10:5060",
            "tel:+15551234",
            MessageError::UnsupportedUriScheme("tel".into()),
        ),
        (
            "sip:sensor@192.0.2.10:5060",
            "sip:sensor@192.0.2.10:99999",
            MessageError::BadRequestUri("port out of range"),
        ),
    ];
    for (from, to, want) in cases {
        let msg = with(INVITE, from, to);
        let got = run(&msg, &udp());
        assert_eq!(reason(&got), want, "{from} -> {to}");
        assert!(reject_code(&got).is_some(), "{got:?}");
    }
}

#[test]
fn non_utf8_field_values_are_refused() {
    let mut msg = with(INVITE, "Max-Forwards: 70\r\n", "X-Bad: ?\r\n");
    let at = msg.iter().position(|&b| b == b'?').unwrap();
    msg[at] = 0xff;
    let got = run(&msg, &udp());
    assert_eq!(
        reason(&got),
        &MessageError::BadHeaderLine {
            line: 3,
            reason: "value is not UTF-8"
        }
    );
}

const OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKx;received=192.0.2.99;rport=40000\r\n\
From: <sip:sensor@example.com>;tag=s1\r\n\
To: <sip:collector@example.com>;tag=c9\r\n\
Call-ID: r1@192.0.2.10\r\n\
CSeq: 7 REGISTER\r\n\
Content-Length: 0\r\n\
\r\n";

#[test]
fn responses() {
    let got = run(OK.as_bytes(), &udp());
    let Inbound::Response(resp) = &got else {
        panic!("{got:?}")
    };
    assert_eq!(resp.status_code, rsip::StatusCode::OK);
    assert_eq!(
        run(&encode(&rsip::SipMessage::Response(resp.clone())), &udp()),
        got
    );

    let odd = with(OK, "200 OK", "299 Fine Thanks");
    let Inbound::Response(resp) = run(&odd, &udp()) else {
        panic!()
    };
    assert_eq!(
        resp.status_code,
        rsip::StatusCode::Other(299, "Fine Thanks".into())
    );

    let two_vias = with(
        OK,
        "Via:",
        "Via: SIP/2.0/UDP p.example.com;branch=z9hG4bKp,",
    );
    assert_eq!(
        reason(&run(&two_vias, &udp())),
        &MessageError::ResponseVias(2)
    );
    let no_cseq = with(OK, "CSeq: 7 REGISTER\r\n", "");
    assert_eq!(
        reason(&run(&no_cseq, &udp())),
        &MessageError::MissingHeader("CSeq")
    );
    let bad_code = with(OK, "200 OK", "2000 OK");
    assert!(matches!(
        run(&bad_code, &udp()),
        Inbound::Discard(MessageError::BadStatusLine(_))
    ));
    let v1 = with(OK, "SIP/2.0 200", "SIP/1.0 200");
    assert!(matches!(
        run(&v1, &udp()),
        Inbound::Discard(MessageError::VersionNotSupported(_))
    ));
}
