//! Building a response to a request (RFC 3261 8.2.6).

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Request, Response, StatusCode};

/// A response to `request` with the headers RFC 3261 8.2.6.2 says to copy:
/// every Via in order, From, To, Call-ID, CSeq (and Timestamp, 8.2.6.1),
/// long or compact (7.3.3; written back in long form), then Content-Length
/// 0. `to_tag` is added to To when the request's To has none and the status
/// is above 100 (a 100 Trying never carries a tag, 8.2.6.2).
pub fn response_to(request: &Request, status: StatusCode, to_tag: Option<&str>) -> Response {
    let mut headers = Headers::default();
    let tag = to_tag.filter(|t| status.code() > 100 && !t.is_empty());
    for header in request.headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone())
            }
            Header::Timestamp(_) if status.code() == 100 => headers.push(header.clone()),
            Header::To(to) => headers.push(with_tag(to.value(), tag)),
            // Compact forms rsip leaves untyped.
            Header::Other(name, value) => match name.to_ascii_lowercase().as_str() {
                "v" => headers.push(Header::Via(rsip::headers::Via::new(value.clone()))),
                "f" => headers.push(Header::From(rsip::headers::From::new(value.clone()))),
                "i" => headers.push(Header::CallId(rsip::headers::CallId::new(value.clone()))),
                "t" => headers.push(with_tag(value, tag)),
                _ => {}
            },
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Response {
        status_code: status,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// A To header with `;tag=` added when it has none and `tag` is given.
fn with_tag(to: &str, tag: Option<&str>) -> Header {
    let header = rsip::headers::To::new(to);
    let has_tag = match header.tag() {
        Ok(t) => t.is_some(),
        // Unparsable for rsip: a plain look for the parameter.
        Err(_) => to.to_ascii_lowercase().contains(";tag="),
    };
    match tag {
        Some(tag) if !has_tag => Header::To(rsip::headers::To::new(format!("{to};tag={tag}"))),
        _ => Header::To(header),
    }
}

/// The reason phrase RFC 3261 section 21 (and RFC 6026, 3329, 5626 ...)
/// gives a status code; rsip would print its enum variant's name.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

/// The status line of a response as it goes on the wire: rsip's reason
/// for codes it does not name, the RFC's phrase for those it does.
pub fn status_line(status: &StatusCode) -> String {
    match status {
        StatusCode::Other(code, reason) => format!("{code} {reason}"),
        known => format!("{} {}", known.code(), reason_phrase(known.code())),
    }
}

/// Replaces the body and its Content-Type/Content-Length of a message.
pub fn set_body(headers: &mut Headers, body: &mut Vec<u8>, content_type: &str, new: Vec<u8>) {
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    headers.push(Header::ContentType(rsip::headers::ContentType::new(
        content_type,
    )));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        new.len().to_string(),
    )));
    *body = new;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::prelude::*;

    pub(crate) const INVITE: &str = "INVITE sip:collector@example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKaaa;rport\r\n\
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKbbb\r\n\
Max-Forwards: 70\r\n\
From: <sip:s1@example.net>;tag=f1\r\n\
To: <sip:collector@example.net>\r\n\
Call-ID: c1@192.0.2.1\r\n\
CSeq: 7 INVITE\r\n\
Timestamp: 54\r\n\
Contact: <sip:s1@192.0.2.1:5060>\r\n\
Content-Length: 0\r\n\r\n";

    fn invite() -> Request {
        Request::try_from(INVITE.as_bytes()).unwrap()
    }

    #[test]
    fn copies_vias_in_order_and_the_dialog_headers() {
        let r = response_to(&invite(), StatusCode::Ringing, Some("t9"));
        let text = r.to_string();
        let first = text.find("branch=z9hG4bKaaa").unwrap();
        let second = text.find("branch=z9hG4bKbbb").unwrap();
        assert!(first < second);
        assert_eq!(r.call_id_header().unwrap().value(), "c1@192.0.2.1");
        assert_eq!(r.cseq_header().unwrap().value(), "7 INVITE");
        assert_eq!(r.to_header().unwrap().tag().unwrap().unwrap().value(), "t9");
        assert!(!text.contains("Contact"));
        assert!(!text.contains("Timestamp"), "Timestamp only echoed in 100");
    }

    #[test]
    fn trying_has_no_to_tag_but_echoes_timestamp() {
        let r = response_to(&invite(), StatusCode::Trying, Some("t9"));
        assert!(r.to_header().unwrap().tag().unwrap().is_none());
        assert!(r.to_string().contains("Timestamp: 54"));
    }

    #[test]
    fn status_lines_carry_the_rfc_reason_phrases() {
        assert_eq!(
            status_line(&StatusCode::ProxyAuthenticationRequired),
            "407 Proxy Authentication Required"
        );
        assert_eq!(status_line(&StatusCode::from(299)), "299 Other");
        assert_eq!(
            status_line(&StatusCode::CallTransactionDoesNotExist),
            "481 Call/Transaction Does Not Exist"
        );
    }

    #[test]
    fn compact_forms_are_copied_in_long_form() {
        let text = INVITE
            .replace("Via: SIP/2.0/UDP 192.0.2.9", "v: SIP/2.0/UDP 192.0.2.9")
            .replace("From:", "f:")
            .replace("To:", "t:")
            .replace("Call-ID:", "i:");
        let req = Request::try_from(text.as_bytes()).unwrap();
        let r = response_to(&req, StatusCode::OK, Some("t9"));
        let out = r.to_string();
        assert!(
            out.contains("Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKbbb\r\n"),
            "{out}"
        );
        assert!(
            out.contains("From: <sip:s1@example.net>;tag=f1\r\n"),
            "{out}"
        );
        assert!(
            out.contains("To: <sip:collector@example.net>;tag=t9\r\n"),
            "{out}"
        );
        assert!(out.contains("Call-ID: c1@192.0.2.1\r\n"), "{out}");
        let first = out.find("branch=z9hG4bKaaa").unwrap();
        let second = out.find("branch=z9hG4bKbbb").unwrap();
        assert!(first < second, "Vias keep their order: {out}");
    }

    #[test]
    fn an_existing_to_tag_is_kept() {
        let text = INVITE.replace(
            "To: <sip:collector@example.net>",
            "To: <sip:collector@example.net>;tag=old",
        );
        let req = Request::try_from(text.as_bytes()).unwrap();
        let r = response_to(&req, StatusCode::OK, Some("new"));
        assert_eq!(
            r.to_header().unwrap().tag().unwrap().unwrap().value(),
            "old"
        );
    }
}
