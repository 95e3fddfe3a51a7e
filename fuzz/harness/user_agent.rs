//! The user agent as both ends run it (`UserAgent::handle_input`, RFC 3261
//! 8, 12-17): inspect, `received` stamping, transactions, dialogs and
//! sessions on a sequence of messages from one stranger, with the TU
//! accepting every call and re-offer so that dialogs are reached, and the
//! timers run out at the end.
//!
//! Input: a flags byte, then messages separated by `\0\0`. Flags: bit 0
//! TCP instead of UDP (with bit 3 also set, TLS: `sips:` URIs are served
//! only there, RFC 3261 26.2.2), bit 1 place a call first (so responses
//! have a transaction to match), bit 2 hand REGISTER to the TU. In a message,
//! `%B`, `%C`, `%T` and `%S` stand for the branch, Call-ID, From tag and
//! CSeq number of the last request we sent, and `%R` for the To tag of our
//! last response, so that the fuzzer can answer them and stay in a dialog.

use sipsensor_protocol::{
    IdGenerator, LiteralsOnly, LocalEndpoint, StatusCode, Target, Transport, UaConfig, UaEvent,
    UaOutput, UserAgent, response_to,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MAX_MESSAGES: usize = 8;
const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=application 16384 RTP/AVP 96\r\n";

pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let transport = match (flags & 1 != 0, flags & 8 != 0) {
        (false, _) => Transport::Udp,
        (true, false) => Transport::Tcp,
        (true, true) => Transport::Tls,
    };
    let port = transport.default_port();
    let local = LocalEndpoint::new(transport, addr([192, 0, 2, 9], port));
    let mut config = UaConfig::new(local, "sip:collector@example.net");
    config.accept_register = flags & 4 != 0;
    let Ok(mut ua) = UserAgent::new(config, IdGenerator::seeded(7), Box::new(LiteralsOnly)) else {
        panic!("the harness's user agent");
    };
    let peer = Target::new(transport, addr([192, 0, 2, 10], port));
    let t0 = Instant::now();
    let mut last_sent = Sent::default();
    if flags & 2 != 0 {
        let to = match transport {
            Transport::Tls => "sips:sensor@192.0.2.10:5061",
            _ => "sip:sensor@192.0.2.10:5060",
        };
        let _ = ua.call(to, SDP.to_vec(), t0);
        drain(&mut ua, t0, &mut last_sent);
    }
    for (i, message) in split(rest).take(MAX_MESSAGES).enumerate() {
        let now = t0 + Duration::from_millis(100 * (i as u64 + 1));
        let message = substitute(message, &last_sent);
        ua.handle_input(&message, peer, now);
        drain(&mut ua, now, &mut last_sent);
    }
    // Let every timer run out: retransmissions, timeouts, session ends.
    for secs in [1, 5, 40, 200] {
        let now = t0 + Duration::from_secs(secs);
        ua.handle_timeout(now);
        drain(&mut ua, now, &mut last_sent);
    }
}

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let data = rest?;
        match data.windows(2).position(|w| w == b"\0\0") {
            Some(at) => {
                rest = Some(&data[at + 2..]);
                Some(&data[..at])
            }
            None => {
                rest = None;
                Some(data)
            }
        }
    })
}

/// Plays the TU: accepts calls and re-offers, answers other requests 200.
fn drain(ua: &mut UserAgent, now: Instant, last_sent: &mut Sent) {
    // Bounded: every answer makes at most a few outputs.
    for _ in 0..64 {
        let Some(output) = ua.poll_output() else {
            return;
        };
        match output {
            UaOutput::Transmit { bytes, .. } => {
                if bytes.starts_with(b"SIP/2.0") {
                    last_sent.response = bytes;
                } else {
                    last_sent.request = bytes;
                }
            }
            UaOutput::Event(UaEvent::IncomingCall { session, .. }) => {
                let _ = ua.accept(session, SDP.to_vec(), now);
            }
            UaOutput::Event(UaEvent::ReofferReceived { session, .. }) => {
                let _ = ua.answer_reoffer(session, Ok(SDP.to_vec()), now);
            }
            UaOutput::Event(UaEvent::Request { id, request, .. }) => {
                let ok = response_to(&request, StatusCode::OK, Some("fz"));
                let _ = ua.respond(id, ok, now);
            }
            UaOutput::Event(_) => {}
        }
    }
}

/// The last request and the last response we transmitted.
#[derive(Default)]
struct Sent {
    request: Vec<u8>,
    response: Vec<u8>,
}

/// A header's value in `message`: the text after `name` on its line, up to
/// `;`, `>` or the end of the line.
fn field(message: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(message);
    text.find(name)
        .map(|at| &text[at + name.len()..])
        .and_then(|v| v.split([';', '\r', '\n', '>']).next())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A `tag` parameter on the line that starts with `header`.
fn tag_of(message: &[u8], header: &str) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .find(|l| l.starts_with(header))
        .and_then(|l| l.split(";tag=").nth(1))
        .and_then(|t| t.split([';', '\r']).next())
        .unwrap_or_default()
        .to_owned()
}

/// Replaces the `%` placeholders of the module comment.
fn substitute(message: &[u8], sent: &Sent) -> Vec<u8> {
    if !message.contains(&b'%') {
        return message.to_vec();
    }
    let cseq = field(&sent.request, "CSeq:");
    let values = [
        (b'B', field(&sent.request, "branch=")),
        (b'C', field(&sent.request, "Call-ID:")),
        (b'T', tag_of(&sent.request, "From:")),
        (b'S', cseq.split(' ').next().unwrap_or_default().to_owned()),
        (b'R', tag_of(&sent.response, "To:")),
    ];
    let mut out = Vec::with_capacity(message.len());
    let mut i = 0;
    while i < message.len() {
        let value = match (message[i], message.get(i + 1)) {
            (b'%', Some(c)) => values.iter().find(|(k, _)| k == c),
            _ => None,
        };
        match value {
            Some((_, v)) => {
                out.extend_from_slice(v.as_bytes());
                i += 2;
            }
            None => {
                out.push(message[i]);
                i += 1;
            }
        }
    }
    out
}
