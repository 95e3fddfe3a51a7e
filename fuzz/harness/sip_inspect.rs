//! SIP: `inspect_message`, `frame_message` and `encode_message`, over UDP,
//! TCP and TLS. Beyond "never panics" it checks that an accepted message
//! is a fixed point (encoding and inspecting it again gives the same
//! message), that a rejection's response can itself be inspected, and that
//! `rsip`'s typed parsers, which the transaction layer and dialogs call on
//! accepted messages, do not panic on what `inspect` lets through. TLS
//! carries the same stream as TCP (RFC 3261 18.3, 26.2): its verdict must
//! be TCP's.

use rsip::prelude::*;
use sipsensor_protocol::{
    IdGenerator, InboundMessage, InspectConfig, MAX_STREAM_MESSAGE, MessageFrame, Transport,
    encode_message, frame_message, inspect_message,
};

pub fn run(data: &[u8]) {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut config = InspectConfig::new(transport);
        config.allow.push(rsip::Method::Register);
        let got = inspect_message(data, &config, &mut IdGenerator::seeded(1));
        match &got {
            InboundMessage::Request(r) => {
                typed(&r.headers);
                let again = encode_message(&rsip::SipMessage::Request(r.clone()));
                let again = inspect_message(&again, &config, &mut IdGenerator::seeded(1));
                assert_eq!(again, got, "an accepted request is a fixed point");
            }
            InboundMessage::Response(r) => {
                typed(&r.headers);
                let again = encode_message(&rsip::SipMessage::Response(r.clone()));
                let again = inspect_message(&again, &config, &mut IdGenerator::seeded(1));
                assert_eq!(again, got, "an accepted response is a fixed point");
            }
            InboundMessage::Reject { response, reason } => {
                assert_eq!(response.status_code.code(), reason.status_code());
                let wire = encode_message(&rsip::SipMessage::Response(response.clone()));
                let _ = inspect_message(&wire, &config, &mut IdGenerator::seeded(1));
            }
            InboundMessage::Discard(_) => {}
        }
        if transport == Transport::Tcp {
            let mut tls = InspectConfig::new(Transport::Tls);
            tls.allow.push(rsip::Method::Register);
            let over_tls = inspect_message(data, &tls, &mut IdGenerator::seeded(1));
            assert_eq!(over_tls, got, "TLS is judged as TCP");
        }
    }
    match frame_message(data, MAX_STREAM_MESSAGE) {
        Ok(MessageFrame::KeepAlive(n) | MessageFrame::Message(n)) => {
            assert!(n > 0 && n <= data.len(), "a frame lies within the buffer");
        }
        Ok(MessageFrame::Incomplete) | Err(_) => {}
    }
}

/// The typed views the rest of the stack asks `rsip` for.
fn typed(headers: &rsip::Headers) {
    for h in headers.iter() {
        match h {
            rsip::Header::Via(v) => drop(v.typed()),
            rsip::Header::From(v) => drop(v.typed()),
            rsip::Header::To(v) => drop(v.typed()),
            rsip::Header::CSeq(v) => drop(v.typed()),
            rsip::Header::Contact(v) => drop(v.typed()),
            rsip::Header::MaxForwards(v) => drop(v.num()),
            rsip::Header::ContentLength(v) => drop(v.length()),
            rsip::Header::Expires(v) => drop(v.seconds()),
            rsip::Header::MinExpires(v) => drop(v.seconds()),
            rsip::Header::Route(v) => drop(v.typed()),
            rsip::Header::RecordRoute(v) => drop(v.typed()),
            rsip::Header::ContentType(v) => drop(v.typed()),
            rsip::Header::Authorization(v) => drop(v.typed()),
            rsip::Header::WwwAuthenticate(v) => drop(v.typed()),
            rsip::Header::ProxyAuthenticate(v) => drop(v.typed()),
            rsip::Header::ProxyAuthorization(v) => drop(v.typed()),
            rsip::Header::Allow(v) => drop(v.typed()),
            rsip::Header::Accept(v) => drop(v.typed()),
            rsip::Header::Warning(v) => drop(v.typed()),
            _ => {}
        }
    }
}
