//! SIP URIs (RFC 3261 19.1, 25.1), as read from Request-URIs, Contacts
//! and the collector's configuration: anything accepted reads back the
//! same from its own text, is equivalent to itself (19.1.4), and its
//! derived views (AOR, socket address, the `rsip` form) do not panic.

use sipsensor_protocol::SipUri;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = SipUri::parse(text) else {
        return;
    };
    let again = SipUri::parse(uri.as_str())
        .unwrap_or_else(|e| panic!("an accepted URI does not read back: {e}: {text:?}"));
    assert_eq!(uri, again, "a URI changed when read from its own text");
    assert!(uri.equivalent(&again), "a URI is equivalent to itself");
    let _ = (
        uri.aor(),
        uri.socket_addr(),
        uri.host_kind(),
        uri.password(),
    );
    let _ = uri.to_rsip().to_string();
}
