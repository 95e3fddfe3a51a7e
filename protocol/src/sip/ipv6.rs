//! IPv6 references (`[2001:db8::1]`, RFC 3261 25.1) around `rsip`.
//!
//! `rsip` 0.4 cannot parse a bracketed IPv6 reference anywhere (URIs, Via
//! sent-by): it splits host and port at the first ':'. Rather than fork it,
//! the message boundary maps each reference to a reserved host name
//! (RFC 2606 `.invalid`, so no real name can collide) before parsing, and
//! maps it back when a message is serialised. Inside the stack an IPv6 host
//! is that name; [`crate::sip::locate`] and [`decode_host`] turn it back
//! into an address.

use std::borrow::Cow;
use std::net::Ipv6Addr;

const SUFFIX: &str = ".ipv6.invalid";

/// The stack's internal host name for an IPv6 address: its eight groups in
/// hex joined by '-', e.g. `2001-db8-0-0-0-0-0-1.ipv6.invalid`.
pub fn encode_host(addr: &Ipv6Addr) -> String {
    let groups: Vec<String> = addr.segments().iter().map(|g| format!("{g:x}")).collect();
    format!("{}{SUFFIX}", groups.join("-"))
}

/// The address behind an internal IPv6 host name, if `host` is one.
pub fn decode_host(host: &str) -> Option<Ipv6Addr> {
    let label = host.strip_suffix(SUFFIX)?;
    let mut segments = [0u16; 8];
    let mut groups = label.split('-');
    for slot in &mut segments {
        *slot = u16::from_str_radix(groups.next()?, 16).ok()?;
    }
    groups.next().is_none().then(|| Ipv6Addr::from(segments))
}

/// Rewrites every bracketed IPv6 reference in a message head to its
/// internal host name. The body is left alone (SDP writes IPv6 addresses
/// without brackets, RFC 8866 5.7). Text without '[' is returned as is.
pub fn to_internal(head: &str) -> Cow<'_, str> {
    if !head.contains('[') {
        return Cow::Borrowed(head);
    }
    let mut out = String::with_capacity(head.len() + 32);
    let mut rest = head;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) => match after[..close].parse::<Ipv6Addr>() {
                Ok(addr) => {
                    out.push_str(&encode_host(&addr));
                    rest = &after[close + 1..];
                }
                Err(_) => {
                    out.push('[');
                    rest = after;
                }
            },
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The inverse of `to_internal` (applied to messages coming in), for
/// serialised messages going out: each internal name
/// (`2001-db8-0-0-0-0-0-1.ipv6.invalid`, the stand-in for an IPv6
/// reference that `rsip` 0.4 cannot parse) becomes `[2001:db8::1]` again.
pub fn to_wire(text: &str) -> Cow<'_, str> {
    if !text.contains(SUFFIX) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(SUFFIX) {
        let before = &rest[..at];
        // By bytes: the label is ASCII, and the byte after the last
        // non-label byte (perhaps the end of a multi-byte character from
        // a peer's nonce or realm) is always a character boundary.
        let label_start = before
            .bytes()
            .rposition(|b| !(b.is_ascii_hexdigit() || b == b'-'))
            .map_or(0, |i| i + 1);
        let name = &rest[label_start..at + SUFFIX.len()];
        out.push_str(&before[..label_start]);
        match decode_host(name) {
            Some(addr) => out.push_str(&format!("[{addr}]")),
            None => out.push_str(name),
        }
        rest = &rest[at + SUFFIX.len()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::prelude::*;

    #[test]
    fn addresses_round_trip_through_their_names() {
        for text in ["2001:db8::1", "::1", "fe80::1:2:3:4", "::ffff:192.0.2.1"] {
            let addr: Ipv6Addr = text.parse().unwrap();
            assert_eq!(decode_host(&encode_host(&addr)), Some(addr));
        }
        assert_eq!(decode_host("example.net"), None);
        assert_eq!(decode_host("1-2-3.ipv6.invalid"), None);
        assert_eq!(decode_host("1-2-3-4-5-6-7-8-9.ipv6.invalid"), None);
    }

    #[test]
    fn rsip_parses_the_internal_form_and_it_goes_back_on_the_wire() {
        let wire = "INVITE sip:s1@[2001:db8::1]:5070;transport=tcp SIP/2.0\r\n\
Via: SIP/2.0/TCP [2001:db8::9]:5060;branch=z9hG4bKx;rport\r\n\
Contact: <sip:c@[::1]>\r\n\
Content-Length: 0\r\n\r\n";
        let internal = to_internal(wire);
        let request = rsip::Request::try_from(internal.as_bytes()).unwrap();
        let via = request.via_header().unwrap().typed().unwrap();
        let host = via.sent_by().host_with_port.host.to_string();
        assert_eq!(decode_host(&host), Some("2001:db8::9".parse().unwrap()));
        // rsip writes parameter values its own way (TCP); compare loosely.
        assert_eq!(
            to_wire(&request.to_string()).to_ascii_lowercase(),
            wire.to_ascii_lowercase()
        );
    }

    /// Found by fuzzing (fuzz/corpus/sip_response/nonce_multibyte_before_suffix):
    /// a challenge's nonce with a multi-byte character just before the
    /// suffix panicked the digest client, which writes nonces in wire form.
    #[test]
    fn text_with_multibyte_characters_before_the_suffix_is_kept() {
        for text in [
            "n\u{3f9}.ipv6.invalid",
            "\u{3f9}1-2.ipv6.invalid x",
            "\u{e9}.ipv6.invalid",
        ] {
            assert_eq!(to_wire(text), text);
        }
        assert_eq!(
            to_wire("\u{3f9}0-0-0-0-0-0-0-1.ipv6.invalid"),
            "\u{3f9}[::1]"
        );
    }

    #[test]
    fn brackets_that_are_not_addresses_are_left_alone() {
        assert_eq!(to_internal("Subject: [urgent] x"), "Subject: [urgent] x");
        assert_eq!(to_internal("a [b"), "a [b");
        assert!(matches!(to_internal("no brackets"), Cow::Borrowed(_)));
    }
}
