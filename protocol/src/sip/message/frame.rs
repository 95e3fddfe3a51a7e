//! Stream framing (RFC 3261 18.3) and encoding with the body kept byte for
//! byte.

use super::error::MessageError;
use super::fields::parse_decimal;
use super::lex::lex;

/// What the start of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet: read more.
    Incomplete,
    /// This many CR/LF octets precede the next start line (RFC 3261 7.5
    /// says to ignore them; a double CRLF is an RFC 5626 4.4.1 keep-alive
    /// ping that a single CRLF answers). Drop them and frame again.
    KeepAlive(usize),
    /// The first this many octets are one message: pass them to
    /// [`inspect`](super::inspect).
    Message(usize),
}

/// Index just past the empty line that ends the header section.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Finds the first message in a stream buffer by its Content-Length.
///
/// An error means the stream cannot be framed any more (a bad or
/// conflicting Content-Length, RFC 4475 3.1.2.3; a header section or
/// message over `max`): close the connection. A missing Content-Length
/// frames an empty body, and [`inspect`](super::inspect) then answers 400
/// because a stream transport requires the header.
pub fn frame_stream(buf: &[u8], max: usize) -> Result<Frame, MessageError> {
    let crlf = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf > 0 {
        return Ok(Frame::KeepAlive(crlf));
    }
    let window = &buf[..buf.len().min(max)];
    let Some(head) = head_end(window) else {
        return if buf.len() >= max {
            Err(MessageError::TooLarge {
                len: buf.len(),
                max,
            })
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let lexed = lex(&buf[..head])?;
    let mut length: Option<u64> = None;
    for f in lexed.fields.iter().filter(|f| f.name.is("Content-Length")) {
        let n = parse_decimal(&f.value, u32::MAX.into()).ok_or(MessageError::BadHeader {
            name: "Content-Length",
            reason: "not a non-negative 32-bit number",
        })?;
        if length.is_some_and(|l| l != n) {
            return Err(MessageError::DuplicateHeader("Content-Length"));
        }
        length = Some(n);
    }
    let total = usize::try_from(length.unwrap_or(0))
        .ok()
        .and_then(|n| n.checked_add(head))
        .unwrap_or(usize::MAX);
    if total > max {
        return Err(MessageError::TooLarge { len: total, max });
    }
    Ok(if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
    })
}

/// The wire form of a message. `rsip`'s `Display` and `Into<Vec<u8>>`
/// pass the body through `from_utf8_lossy`, which corrupts binary bodies
/// (RFC 4475 3.1.1.11); this writes the body as it is.
pub fn encode(msg: &rsip::SipMessage) -> Vec<u8> {
    let (head, body) = match msg {
        rsip::SipMessage::Request(r) => (
            format!("{} {} {}\r\n{}\r\n", r.method, r.uri, r.version, r.headers),
            &r.body,
        ),
        rsip::SipMessage::Response(r) => (
            format!("{} {}\r\n{}\r\n", r.version, r.status_code, r.headers),
            &r.body,
        ),
    };
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 4\r\nVia: SIP/2.0/TCP h\r\n\r\nbody";

    #[test]
    fn frames_by_content_length() {
        assert_eq!(frame_stream(MSG, 1000), Ok(Frame::Message(MSG.len())));
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(frame_stream(&two, 1000), Ok(Frame::Message(MSG.len())));
        assert_eq!(
            frame_stream(&MSG[..MSG.len() - 1], 1000),
            Ok(Frame::Incomplete)
        );
        assert_eq!(frame_stream(&MSG[..20], 1000), Ok(Frame::Incomplete));
    }

    #[test]
    fn keepalives_and_limits() {
        assert_eq!(
            frame_stream(b"\r\n\r\nOPTIONS", 1000),
            Ok(Frame::KeepAlive(4))
        );
        assert!(matches!(
            frame_stream(MSG, 40),
            Err(MessageError::TooLarge { .. })
        ));
        assert!(matches!(
            frame_stream(&[b'a'; 50], 40),
            Err(MessageError::TooLarge { len: 50, max: 40 })
        ));
    }

    #[test]
    fn unframeable_lengths_are_errors() {
        let bad = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert!(frame_stream(bad, 1000).is_err());
        let two = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n";
        assert_eq!(
            frame_stream(two, 1000),
            Err(MessageError::DuplicateHeader("Content-Length"))
        );
        let none = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\nnext";
        assert_eq!(frame_stream(none, 1000), Ok(Frame::Message(none.len() - 4)));
    }

    #[test]
    fn encode_keeps_binary_bodies() {
        let r = rsip::Request {
            method: rsip::Method::Message,
            uri: rsip::Uri::try_from("sip:a@b").unwrap(),
            version: rsip::Version::V2,
            headers: rsip::Headers::default(),
            body: vec![0, 0xff, 0x80],
        };
        let out = encode(&rsip::SipMessage::Request(r));
        assert!(out.starts_with(b"MESSAGE sip:a@b SIP/2.0\r\n\r\n"));
        assert!(out.ends_with(&[0, 0xff, 0x80]));
    }
}
