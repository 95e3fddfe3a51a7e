//! The tests of the three URI readers this type replaced (the registrar's,
//! the message layer's and the agent's config check), each on the one type.

use super::*;

fn u(s: &str) -> SipUri {
    SipUri::parse(s).unwrap()
}

// From the registrar's reader.

#[test]
fn parses_the_parts() {
    let x = u("SIP:alice:secret@Example.COM:5070;transport=TCP;lr?subject=x");
    assert_eq!(x.scheme, "sip");
    assert_eq!(x.user.as_deref(), Some("alice"));
    assert_eq!(x.host, "example.com");
    assert_eq!(x.port, Some(5070));
    assert_eq!(x.param("transport"), Some(Some("TCP")));
    assert_eq!(x.param("lr"), Some(None));
    assert_eq!(x.headers.as_deref(), Some("subject=x"));
    assert_eq!(
        x.to_string(),
        "SIP:alice:secret@Example.COM:5070;transport=TCP;lr?subject=x"
    );
    assert_eq!(x.aor(), "sip:alice@example.com");
}

#[test]
fn ipv6_and_socket_addresses() {
    let x = u("sip:s1@[2001:DB8::1]:5062;transport=udp");
    assert_eq!(x.host, "2001-db8-0-0-0-0-0-1.ipv6.invalid");
    // The internal form reads the same.
    let internal = u("sip:s1@2001-db8-0-0-0-0-0-1.ipv6.invalid:5062");
    assert_eq!(internal.ip(), x.ip());
    assert_eq!(internal.aor(), x.aor());
    assert!(same_host(
        "[2001:DB8::1]",
        "2001-db8-0-0-0-0-0-1.ipv6.invalid"
    ));
    assert!(same_host("2001:db8::1", "[2001:db8::1]"));
    assert!(same_host("::ffff:192.0.2.1", "192.0.2.1"));
    assert!(same_host("Example.COM", "example.com"));
    assert!(!same_host("example.com", "192.0.2.1"));
    assert_eq!(x.socket_addr(), Some("[2001:db8::1]:5062".parse().unwrap()));
    assert_eq!(
        u("sips:198.51.100.7").socket_addr(),
        Some("198.51.100.7:5061".parse().unwrap())
    );
    assert_eq!(u("sip:host.example").socket_addr(), None);
}

#[test]
fn user_with_semicolons() {
    let x = u("sip:+1-212-555-1212;phone-context=x@gw.example.com;user=phone");
    assert_eq!(x.user.as_deref(), Some("+1-212-555-1212;phone-context=x"));
    assert_eq!(x.host, "gw.example.com");
    assert_eq!(x.param("user"), Some(Some("phone")));
}

#[test]
fn rfc3261_19_1_4_equivalent_pairs() {
    for (a, b) in [
        (
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp",
        ),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
    ] {
        assert!(u(a).equivalent(&u(b)), "{a} == {b}");
        assert!(u(b).equivalent(&u(a)), "{b} == {a}");
    }
}

#[test]
fn rfc3261_19_1_4_different_pairs() {
    for (a, b) in [
        (
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP",
        ),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        (
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp",
        ),
        (
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting",
        ),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        (
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off",
        ),
        ("sip:a@h", "sips:a@h"),
    ] {
        assert!(!u(a).equivalent(&u(b)), "{a} != {b}");
        assert!(!u(b).equivalent(&u(a)), "{b} != {a}");
    }
}

#[test]
fn malformed_uris_are_typed_errors() {
    assert_eq!(SipUri::parse(""), Err(UriError::Empty));
    assert!(matches!(SipUri::parse("alice"), Err(UriError::NoScheme(_))));
    assert!(matches!(
        SipUri::parse("tel:+123"),
        Err(UriError::UnsupportedScheme(_))
    ));
    assert!(matches!(SipUri::parse("sip:a@"), Err(UriError::NoHost(_))));
    assert!(matches!(
        SipUri::parse("sip:a@h:99999"),
        Err(UriError::BadPort(_))
    ));
    assert!(matches!(
        SipUri::parse("sip:a@h:"),
        Err(UriError::BadPort(_))
    ));
    assert!(matches!(
        SipUri::parse("sip:[::1"),
        Err(UriError::BadIpv6(_))
    ));
    assert!(matches!(
        SipUri::parse("sip:[zz]"),
        Err(UriError::BadIpv6(_))
    ));
    assert!(matches!(
        SipUri::parse("sip:[::1]5060"),
        Err(UriError::BadPort(_))
    ));
    assert!(matches!(
        SipUri::parse("sip:a b@h"),
        Err(UriError::BadCharacter { .. })
    ));
    let long = format!("sip:{}@h", "a".repeat(MAX_URI_LEN));
    assert_eq!(SipUri::parse(&long), Err(UriError::TooLong));
    let params: String = (0..=MAX_URI_PARAMS).map(|i| format!(";p{i}")).collect();
    let many = format!("sip:h{params}");
    assert!(matches!(
        SipUri::parse(&many),
        Err(UriError::TooManyParams(_))
    ));
}

/// Found by fuzzing (fuzz/corpus/sip_uri/duplicate_transport): with two
/// `transport` parameters a URI was not equivalent to itself.
#[test]
fn rfc3261_19_1_1_a_parameter_name_appears_once() {
    assert_eq!(
        SipUri::parse("sip:s@example.com;Transport=tcp;transport=udp"),
        Err(UriError::DuplicateParam("transport".into()))
    );
    assert_eq!(
        SipUri::parse("sip:s@example.com;lr;x=1;LR"),
        Err(UriError::DuplicateParam("LR".into()))
    );
    // The same name in the user part or the headers is no parameter.
    let x = u("sip:a;lr@example.com;lr?lr=1");
    assert!(x.equivalent(&x));
}

#[test]
fn unescape_handles_bad_escapes() {
    assert_eq!(unescape("%61b%zz%4"), "ab%zz%4");
    assert_eq!(unescape("%"), "%");
    assert_eq!(unescape("%\u{e9}\u{e9}"), "%\u{e9}\u{e9}");
}

// From the message layer's reader.

#[test]
fn user_parts_with_dots_semicolons_and_escapes() {
    let x = u("sip:user;par=u%40example.net@example.com");
    assert_eq!(x.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(x.host_kind(), Host::Name("example.com".into()));
    let x = u("sip:j.user@example.com");
    assert_eq!(x.user.as_deref(), Some("j.user"));
    let r = x.to_rsip();
    assert_eq!(r.to_string(), "sip:j.user@example.com");
    assert_eq!(r.user(), Some("j.user"));
}

#[test]
fn unusual_but_legal_characters() {
    let x = u(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
    );
    assert_eq!(
        x.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        x.password(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert!(x.headers.is_none());
}

#[test]
fn ipv6_ports_and_params() {
    let x = u("sips:[2001:db8::1]:5061;transport=tcp;lr");
    assert!(x.is_secure());
    assert_eq!(x.port, Some(5061));
    let r = x.to_rsip();
    assert_eq!(r.to_string(), "sips:[2001:db8::1]:5061;transport=TCP;lr");
    assert_eq!(r.transport(), Some(&rsip::Transport::Tcp));
    assert!(SipUri::parse("sip:[2001:db8::1:5060").is_err());
    assert!(SipUri::parse("sip:host:99999").is_err());
    assert!(SipUri::parse("sip:host:").is_err());
}

#[test]
fn malformed_uris_are_refused() {
    for bad in [
        "sip:",
        "sip:user@",
        "sip:a%zz@host",
        "sip:a b@host",
        "sip:host;",
        "sip:host;a=",
        "sip:-bad-.example.com",
        "sip:256.1.1.1",
        "sip:host?x",
        "<sip:host>",
        "sip:I have spaces@host",
    ] {
        assert!(SipUri::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse_request_uri("sip:user@example.com?Route=%3Csip:example.com%3E")
            .unwrap_err()
            .to_string(),
        "headers are not allowed in a Request-URI (RFC 3261 19.1.1)"
    );
    assert!(SipUri::parse("sip:host?Route=%3Csip:x%3E&a=").is_ok());
}

#[test]
fn other_schemes() {
    use grammar::{check_absolute_uri, split_scheme};
    assert_eq!(
        split_scheme("soap.beep://192.0.2.103:3002").map(|s| s.0),
        Some("soap.beep")
    );
    assert!(split_scheme("<sip:x>").is_none());
    assert!(check_absolute_uri("isbn:2983792873").is_ok());
    assert!(check_absolute_uri("http://www.example.com").is_ok());
    assert!(check_absolute_uri("name:John_Smith").is_ok());
    assert!(check_absolute_uri("x:a b").is_err());
    assert!(SipUri::parse("tel:+1234").is_err());
}

// From the agent's config check (its config-only rules, no password and
// no port 0, stay with the agent's wrapper and its tests).

#[test]
fn accepts_valid_uris() {
    let x = u("sip:sensor-0001@example.net");
    assert_eq!(x.user.as_deref(), Some("sensor-0001"));
    assert_eq!(x.host_kind(), Host::Name("example.net".into()));
    assert_eq!(x.port, None);
    assert!(!x.is_secure());

    let x = u("SIPS:a@B.example.:5061;transport=tcp;lr");
    assert!(x.is_secure());
    assert_eq!(x.host_kind(), Host::Name("b.example.".into()));
    assert_eq!(x.port, Some(5061));

    let x = u("sip:[2001:db8::1]:5070");
    assert_eq!(x.host_kind(), Host::V6("2001:db8::1".parse().unwrap()));
    assert_eq!(x.port, Some(5070));

    let x = u("sip:198.51.100.7;lr");
    assert_eq!(x.host_kind(), Host::V4(Ipv4Addr::new(198, 51, 100, 7)));
    assert_eq!(x.user, None);

    // RFC 3261 19.1.3 examples.
    u("sip:alice;day=tuesday@atlanta.com");
    u("sip:+1-212-555-1212@gateway.com;user=phone");
    u("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com");
    u("sip:%61lice@atlanta.com;transport=TCP");
}

#[test]
fn rejects_what_rsip_lets_through() {
    for (text, why) in [
        ("foo", "must start with"),
        ("http://x", "must start with"),
        ("sip:", "no host"),
        ("sip:@x", "empty user"),
        ("sip:a b@c", "contains ` `"),
        ("sip:a@b@c", "invalid host name `b@c`"),
        ("sip:a@exa mple", "invalid host name"),
        ("sip:a@b:99999", "invalid port"),
        ("sip:a@b:x", "invalid port"),
        ("sip:a@256.1.1.1", "invalid IPv4"),
        ("sip:a@host.123", "invalid host name"),
        ("sip:a@-host", "invalid host name"),
        ("sip:[::1", "closing"),
        ("sip:[::g]", "invalid IPv6"),
        ("sip:a%4@host", "two hex digits"),
        ("sip:host;=x", "empty URI parameter"),
        ("sip:host;lr=", "empty value"),
        ("sip:host?x", "without `=`"),
        ("sip:héllo@host", "must be %-escaped"),
    ] {
        let err = SipUri::parse(text).unwrap_err().to_string();
        assert!(err.contains(why), "{text}: {err}");
    }
}

#[test]
fn converts_to_rsip() {
    let x = u("sip:collector@example.net:5060");
    assert_eq!(x.to_rsip().to_string(), "sip:collector@example.net:5060");
}
