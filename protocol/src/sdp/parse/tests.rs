//! Tests of the RFC 8866 parser.
use super::*;

const PHONE: &str = "v=0\r\n\
o=alice 2890844526 2890844527 IN IP4 198.51.100.1\r\n\
s=-\r\n\
i=A call\r\n\
c=IN IP4 198.51.100.1\r\n\
b=AS:64\r\n\
t=0 0\r\n\
a=tool:baresip\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
b=TIAS:64000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP6 2001:db8::1\r\n\
a=rtpmap:96 H264/90000\r\n";

#[test]
fn parses_a_phone_offer() {
    let sdp = parse(PHONE.as_bytes()).unwrap();
    assert_eq!(sdp.origin.session_id, 2890844526);
    assert_eq!(sdp.origin.session_version, 2890844527);
    assert_eq!(sdp.information.as_deref(), Some("A call"));
    assert_eq!(sdp.bandwidths[0].bandwidth, 64);
    assert_eq!(sdp.attributes[0], Attribute::value("tool", "baresip"));
    assert_eq!(sdp.media.len(), 2);
    let audio = &sdp.media[0];
    assert_eq!(audio.port, 49170);
    assert_eq!(audio.formats, ["0", "8", "101"]);
    assert_eq!(audio.attribute_values("rtpmap").count(), 2);
    assert!(audio.has_flag("sendrecv"));
    assert_eq!(sdp.media[1].port, 0);
    assert_eq!(
        sdp.media[1].connections[0].ip(),
        Some("2001:db8::1".parse().unwrap())
    );
}

#[test]
fn serializes_back_to_the_same_bytes() {
    let sdp = parse(PHONE.as_bytes()).unwrap();
    assert_eq!(sdp.to_string(), PHONE);
    assert_eq!(parse(&sdp.to_bytes()).unwrap(), sdp);
}

#[test]
fn accepts_bare_lf_and_trailing_blank_lines() {
    let lf = PHONE.replace("\r\n", "\n") + "\n\n";
    assert_eq!(
        parse(lf.as_bytes()).unwrap(),
        parse(PHONE.as_bytes()).unwrap()
    );
}

#[test]
fn keeps_repeat_times_with_their_timing() {
    let s = "v=0\no=- 1 1 IN IP4 h\ns=x\nt=1 2\nr=7d 1h 0 25h\nt=3 4\nz=2882844526 -1h\nk=prompt\n";
    let sdp = parse(s.as_bytes()).unwrap();
    assert_eq!(sdp.timings.len(), 2);
    assert_eq!(sdp.timings[0].repeats, ["7d 1h 0 25h"]);
    assert_eq!(sdp.key.as_deref(), Some("prompt"));
    assert_eq!(parse(sdp.to_string().as_bytes()).unwrap(), sdp);
}

#[test]
fn port_count_round_trips() {
    let s = "v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0 0\r\nm=video 49170/2 RTP/AVP 31\r\n";
    let sdp = parse(s.as_bytes()).unwrap();
    assert_eq!(sdp.media[0].port_count, Some(2));
    assert_eq!(sdp.to_string(), s);
}

fn err(s: &str) -> SdpError {
    parse(s.as_bytes()).unwrap_err()
}

#[test]
fn structural_errors_are_typed() {
    assert_eq!(err(""), SdpError::Empty);
    assert_eq!(err("\r\n"), SdpError::Empty);
    assert_eq!(err("v=0\r\n"), SdpError::Missing('o'));
    assert_eq!(err("v=0\no=- 1 1 IN IP4 h\ns=x\n"), SdpError::Missing('t'));
    assert_eq!(
        err("v=1\n"),
        SdpError::Field {
            line: 1,
            kind: 'v',
            reason: "only version 0 exists"
        }
    );
    assert_eq!(
        err("o=- 1 1 IN IP4 h\n"),
        SdpError::OutOfOrder { line: 1, kind: 'o' }
    );
    assert!(matches!(
        err("v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\nx=1\n"),
        SdpError::UnknownType { line: 5, kind: 'x' }
    ));
    assert!(matches!(
        err("v=0\no=- 1 1 IN IP4 h\ns=x\na=b\nt=0 0\n"),
        SdpError::OutOfOrder { line: 5, kind: 't' }
    ));
    assert!(matches!(
        err("v=0\no=- 1 1 IN IP4 h\ns=x\nc=IN IP4 a\nc=IN IP4 b\nt=0 0\n"),
        SdpError::OutOfOrder { line: 5, kind: 'c' }
    ));
    assert!(matches!(
        err("v=0\no=- 1 1 IN IP4 h\ns=x\nr=1 2 3\nt=0 0\n"),
        SdpError::OutOfOrder { line: 4, kind: 'r' }
    ));
    assert!(matches!(
        err("v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\nm=audio 1 RTP/AVP 0\na=x\nc=IN IP4 h\n"),
        SdpError::OutOfOrder { line: 7, kind: 'c' }
    ));
    assert!(matches!(
        err("v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\nm=audio 1 RTP/AVP 0\nt=0 0\n"),
        SdpError::OutOfOrder { line: 6, kind: 't' }
    ));
    assert!(matches!(
        err("v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\nm=audio 1 RTP/AVP 0\nq=1\n"),
        SdpError::UnknownType { line: 6, kind: 'q' }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 1 IN IP4 h\r\r\n"),
        SdpError::Syntax { line: 2, .. }
    ));
    assert!(matches!(
        err("v=0\no=- 1 1 IN IP4 h\ns=x\n\nt=0 0\n"),
        SdpError::Syntax { line: 4, .. }
    ));
    assert!(matches!(err("v =0\n"), SdpError::Syntax { line: 1, .. }));
    assert!(matches!(err("V=0\n"), SdpError::Syntax { line: 1, .. }));
    assert_eq!(
        err("v=0\n\u{0}"),
        SdpError::Syntax {
            line: 2,
            reason: "CR or NUL inside a line"
        }
    );
}

#[test]
fn field_errors_are_typed() {
    let base = "v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\n";
    for (extra, line) in [
        ("m=audio 70000 RTP/AVP 0\n", 5),
        ("m=audio 1 RTP/AVP\n", 5),
        ("m=audio x RTP/AVP 0\n", 5),
        ("m=audio 1/x RTP/AVP 0\n", 5),
        ("m=audio 1 RTP//AVP 0\n", 5),
        ("m=audio 1 RTP/AVP 0 \"\n", 5),
        ("m=aud\"io 1 RTP/AVP 0\n", 5),
        ("a=na me:x\n", 5),
        ("a=:x\n", 5),
        ("m=audio 1 RTP/AVP 0\nc=IN IP4\n", 6),
        ("m=audio 1 RTP/AVP 0\nb=AS\n", 6),
        ("m=audio 1 RTP/AVP 0\nb=AS:x\n", 6),
    ] {
        let e = err(&format!("{base}{extra}"));
        assert!(
            matches!(e, SdpError::Field { line: l, .. } if l == line),
            "{extra:?}: {e:?}"
        );
    }
    for bad in [
        "o=- 1 1 IN IP4\n",
        "o=- x 1 IN IP4 h\n",
        "o=- 1 99999999999999999999 IN IP4 h\n",
        "o=- 1 -1 IN IP4 h\n",
    ] {
        let e = err(&format!("v=0\n{bad}s=x\nt=0 0\n"));
        assert!(
            matches!(
                e,
                SdpError::Field {
                    line: 2,
                    kind: 'o',
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let e = err("v=0\no=- 1 1 IN IP4 h\ns=x\nt=0\n");
    assert!(matches!(
        e,
        SdpError::Field {
            line: 4,
            kind: 't',
            ..
        }
    ));
    let e = err("v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\nm=audio 1 RTP/AVP 0\n\u{ff}");
    assert!(matches!(e, SdpError::Syntax { .. }));
    let e = parse(b"v=0\no=- 1 1 IN IP4 h\ns=\xff\nt=0 0\n").unwrap_err();
    assert_eq!(e, SdpError::NotUtf8 { line: 3 });
}

#[test]
fn limits_are_enforced() {
    let big = vec![b'a'; MAX_SDP_LEN + 1];
    assert!(matches!(parse(&big), Err(SdpError::TooLarge { .. })));
    let mut many = String::from("v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\n");
    for _ in 0..MAX_LINES {
        many.push_str("a=x\n");
    }
    assert_eq!(
        parse(many.as_bytes()).unwrap_err(),
        SdpError::TooManyLines { limit: MAX_LINES }
    );
    let mut media = String::from("v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\n");
    for _ in 0..=MAX_MEDIA {
        media.push_str("m=audio 0 RTP/AVP 0\n");
    }
    assert_eq!(
        parse(media.as_bytes()).unwrap_err(),
        SdpError::TooManyMedia { limit: MAX_MEDIA }
    );
    let fmts: Vec<String> = (0..=MAX_FORMATS).map(|i| i.to_string()).collect();
    let s = format!(
        "v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\nm=audio 0 RTP/AVP {}\n",
        fmts.join(" ")
    );
    assert!(matches!(
        parse(s.as_bytes()),
        Err(SdpError::Field { line: 5, .. })
    ));
}

#[test]
fn attribute_value_may_be_empty_or_contain_colons() {
    let s = "v=0\no=- 1 1 IN IP4 h\ns=x\nt=0 0\na=x:\na=fingerprint:sha-1 4A:AD\n";
    let sdp = parse(s.as_bytes()).unwrap();
    assert_eq!(sdp.attributes[0].value.as_deref(), Some(""));
    assert_eq!(sdp.attributes[1].value.as_deref(), Some("sha-1 4A:AD"));
}

#[test]
fn every_prefix_and_byte_flip_of_a_real_sdp_is_handled() {
    // Truncation and corruption anywhere give Ok or a typed error, never
    // a panic: the bounded, deterministic cousin of the fuzz target.
    let bytes = PHONE.as_bytes();
    for end in 0..bytes.len() {
        let _ = parse(&bytes[..end]);
    }
    let mut copy = bytes.to_vec();
    for i in 0..copy.len() {
        for flip in [0x01u8, 0x20, 0x80, 0xff] {
            copy[i] ^= flip;
            let _ = parse(&copy);
            copy[i] ^= flip;
        }
    }
}

#[test]
fn connection_ip_only_for_unicast_literals() {
    let c = |t: &str, a: &str| Connection {
        net_type: "IN".into(),
        addr_type: t.into(),
        address: a.into(),
    };
    assert_eq!(
        c("IP4", "198.51.100.7").ip(),
        Some("198.51.100.7".parse().unwrap())
    );
    assert_eq!(c("IP6", "198.51.100.7").ip(), None);
    assert_eq!(c("IP4", "233.252.0.1/127").ip(), None);
    assert_eq!(c("IP4", "host.example").ip(), None);
    let mut x = c("IP4", "198.51.100.7");
    x.net_type = "ATM".into();
    assert_eq!(x.ip(), None);
}
