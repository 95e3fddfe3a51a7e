//! SRTP and SRTCP (RFC 3711) as the collector meets them from the network:
//! any datagram through an inbound context (rtc-srtp's header parsing and
//! authentication) must be refused or opened, never crash; nothing
//! unauthenticated may open, and what opens has the input's header.

use sipsensor_protocol::{SrtpContext, SrtpKey, SrtpSuite};

/// A fixed key: the fuzzer cannot forge a tag, so it explores the parsing
/// in front of the check.
const KEY: [u8; 30] = [7; 30];

pub fn run(data: &[u8]) {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let suite = SrtpSuite::ALL[usize::from(selector) % SrtpSuite::ALL.len()];
    let key_len = suite.key_len() + suite.salt_len();
    let Ok(key) = SrtpKey::from_bytes(suite, &KEY[..key_len]) else {
        panic!("a {suite} key of {key_len} bytes is refused");
    };
    let Ok(mut context) = SrtpContext::inbound(&key) else {
        panic!("no {suite} context");
    };
    let mut out = Vec::new();
    let opened = if selector & 0x80 == 0 {
        context.unprotect_rtp(packet, &mut out)
    } else {
        context.unprotect_rtcp(packet, &mut out)
    };
    assert!(opened.is_err(), "an unauthenticated {suite} packet opened");
}
