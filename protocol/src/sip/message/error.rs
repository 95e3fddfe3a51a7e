//! Why a message was rejected or discarded.

use thiserror::Error;

/// What is wrong with an inbound message. Every variant names the problem
/// precisely enough for a log line and for the `Warning: 399` text of the
/// response (RFC 3261 20.43). Strings copied from the input are clipped to
/// printable ASCII, so an error never echoes raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("message of {len} octets exceeds the {max}-octet limit")]
    TooLarge { len: usize, max: usize },
    #[error("no start line: the input is empty or only line breaks")]
    Empty,
    #[error("start line is neither a Request-Line nor a Status-Line")]
    Garbage,
    #[error("header section is not terminated by an empty line")]
    Unterminated,
    #[error("malformed Request-Line: {0}")]
    BadRequestLine(&'static str),
    #[error("malformed Status-Line: {0}")]
    BadStatusLine(&'static str),
    #[error("SIP version {0} is not supported")]
    VersionNotSupported(String),
    #[error("method {0} is not implemented")]
    UnknownMethod(String),
    #[error("malformed Request-URI: {0}")]
    BadRequestUri(&'static str),
    #[error("Request-URI scheme {0} is not supported")]
    UnsupportedUriScheme(String),
    #[error("header line {line}: {reason}")]
    BadHeaderLine { line: usize, reason: &'static str },
    #[error("malformed {name} header: {reason}")]
    BadHeader {
        name: &'static str,
        reason: &'static str,
    },
    #[error("missing mandatory {0} header")]
    MissingHeader(&'static str),
    #[error("{0} header appears more than once")]
    DuplicateHeader(&'static str),
    #[error("CSeq method {cseq} does not match the request method {method}")]
    CSeqMismatch { method: String, cseq: String },
    #[error("Content-Length {declared} exceeds the {available} octets of body received")]
    BodyTooShort { declared: usize, available: usize },
    #[error("Content-Length is required on a stream transport (RFC 3261 18.3)")]
    MissingContentLength,
    #[error("a non-empty body needs a Content-Type (RFC 3261 20.15)")]
    MissingContentType,
    #[error("a response must carry exactly one Via, this one has {0} (RFC 3261 8.1.3.3)")]
    ResponseVias(usize),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("unsupported extension required: {}", .0.join(", "))]
    BadExtension(Vec<String>),
    #[error("unsupported body: {0}")]
    UnsupportedMediaType(String),
    #[error("Accept excludes application/sdp, the only session description offered")]
    NotAcceptable,
    #[error("the To of a REGISTER must be a SIP or SIPS URI (RFC 3261 10.2)")]
    AorNotSip,
}

impl MessageError {
    /// The status code answering a request rejected for this reason.
    pub fn status_code(&self) -> u16 {
        match self {
            MessageError::TooLarge { .. } => 513,
            MessageError::VersionNotSupported(_) => 505,
            MessageError::UnknownMethod(_) => 501,
            MessageError::UnsupportedUriScheme(_) => 416,
            MessageError::MethodNotAllowed(_) => 405,
            MessageError::BadExtension(_) => 420,
            MessageError::UnsupportedMediaType(_) => 415,
            MessageError::NotAcceptable => 406,
            _ => 400,
        }
    }
}

/// Input text safe to put in an error, a log line or a Warning: printable
/// ASCII only, at most 40 characters.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 40;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if s.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_printable_ascii_and_bounds_length() {
        assert_eq!(clip("INVITE"), "INVITE");
        assert_eq!(clip("a\u{0}b\u{e9}"), "a?b?");
        let long = "x".repeat(100);
        assert_eq!(clip(&long).len(), 43);
    }

    #[test]
    fn status_codes_follow_rfc_3261() {
        assert_eq!(MessageError::UnknownMethod("FOO".into()).status_code(), 501);
        assert_eq!(
            MessageError::UnsupportedUriScheme("tel".into()).status_code(),
            416
        );
        assert_eq!(MessageError::MissingHeader("To").status_code(), 400);
        assert_eq!(
            MessageError::BadExtension(vec!["a".into(), "b".into()]).to_string(),
            "unsupported extension required: a, b"
        );
    }
}
