//! Responses to requests the stack will not process, built as RFC 3261
//! 8.2.6 says: Via, From, Call-ID and CSeq copied, To copied with a tag
//! added, a Warning (20.43, code 399) naming the problem, no body.

use super::error::MessageError;
use super::fields::{parse_addr, via_sent_by};
use super::lex::{Field, split_list};
use crate::ids::IdGenerator;
use rsip::Header;
use rsip::headers::UntypedHeader;
use rsip::headers::{
    Accept, AcceptEncoding, Allow, CSeq, CallId, ContentLength, From, To, Unsupported, Via, Warning,
};

/// The fields of a request that a response echoes, as received (after
/// unfolding), whether or not they are valid.
#[derive(Debug, Default)]
pub(crate) struct Echo {
    vias: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    cseq: Option<String>,
}

impl Echo {
    pub fn new(fields: &[Field]) -> Self {
        let mut echo = Echo::default();
        for f in fields {
            let slot = match f.name.as_str() {
                "Via" => {
                    echo.vias.push(f.value.clone());
                    continue;
                }
                "From" => &mut echo.from,
                "To" => &mut echo.to,
                "Call-ID" => &mut echo.call_id,
                "CSeq" => &mut echo.cseq,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(f.value.clone());
            }
        }
        echo
    }

    /// A response goes to the top Via's sent-by (RFC 3261 18.2.2); without
    /// one there is nowhere to send it.
    pub fn usable(&self) -> bool {
        self.vias
            .first()
            .and_then(|v| split_list(v).first().map(|top| via_sent_by(top).is_ok()))
            .unwrap_or(false)
    }
}

/// What a response to a rejected request carries besides the copied fields.
#[derive(Debug)]
pub(crate) struct Extras<'a> {
    pub allow: &'a [rsip::Method],
    pub accept: &'a [String],
    pub warning_agent: &'a str,
}

/// warn-text is a quoted-string: keep printable ASCII, no quote or backslash.
fn warn_text(reason: &MessageError) -> String {
    reason
        .to_string()
        .chars()
        .take(200)
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

pub(crate) fn build(
    echo: &Echo,
    reason: &MessageError,
    extras: &Extras<'_>,
    ids: &mut IdGenerator,
) -> rsip::Response {
    let code = reason.status_code();
    let mut headers: Vec<Header> = echo
        .vias
        .iter()
        .map(|v| Header::Via(Via::new(v.as_str())))
        .collect();
    if let Some(from) = &echo.from {
        headers.push(Header::From(From::new(from.as_str())));
    }
    if let Some(to) = &echo.to {
        // RFC 3261 8.2.6.2: add a To tag when the request had none, so the
        // client can match the response; only a parseable To can take one.
        let tagless = parse_addr(to).is_ok_and(|a| a.param("tag").is_none());
        let to = if tagless {
            format!("{to};tag={}", ids.tag())
        } else {
            to.clone()
        };
        headers.push(Header::To(To::new(to)));
    }
    if let Some(call_id) = &echo.call_id {
        headers.push(Header::CallId(CallId::new(call_id.as_str())));
    }
    if let Some(cseq) = &echo.cseq {
        headers.push(Header::CSeq(CSeq::new(cseq.as_str())));
    }
    let methods = || {
        extras
            .allow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match reason {
        // RFC 3261 21.5.2 and 21.4.6: say which methods are supported.
        MessageError::UnknownMethod(_) | MessageError::MethodNotAllowed(_) => {
            headers.push(Header::Allow(Allow::new(methods())));
        }
        // RFC 3261 8.2.2.3: list the option tags not understood.
        MessageError::BadExtension(tags) => {
            headers.push(Header::Unsupported(Unsupported::new(tags.join(", "))));
        }
        // RFC 3261 8.2.3: list the acceptable body formats.
        MessageError::UnsupportedMediaType(_) => {
            headers.push(Header::Accept(Accept::new(extras.accept.join(", "))));
            headers.push(Header::AcceptEncoding(AcceptEncoding::new("identity")));
        }
        _ => {}
    }
    headers.push(Header::Warning(Warning::new(format!(
        "399 {} \"{}\"",
        extras.warning_agent,
        warn_text(reason)
    ))));
    headers.push(Header::ContentLength(ContentLength::new("0")));
    rsip::Response {
        status_code: rsip::StatusCode::from(code),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::lex::lex;
    use rsip::prelude::*;

    fn echo(msg: &str) -> Echo {
        Echo::new(&lex(msg.as_bytes()).unwrap().fields)
    }

    const EXTRAS: Extras<'static> = Extras {
        allow: &[rsip::Method::Invite, rsip::Method::Bye],
        accept: &[],
        warning_agent: "sipsensor",
    };

    #[test]
    fn copies_fields_and_adds_a_to_tag() {
        let e = echo(
            "FOO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP h2;branch=z9hG4bK2\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 FOO\r\n\r\n",
        );
        assert!(e.usable());
        let mut ids = IdGenerator::seeded(3);
        let r = build(
            &e,
            &MessageError::UnknownMethod("FOO".into()),
            &EXTRAS,
            &mut ids,
        );
        assert_eq!(r.status_code.code(), 501);
        let text = r.to_string();
        assert!(text.contains("Via: SIP/2.0/UDP h1;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP h2"));
        assert!(text.contains("Allow: INVITE, BYE\r\n"), "{text}");
        assert!(text.contains("Warning: 399 sipsensor \"method FOO is not implemented\""));
        let to = r.to_header().unwrap().typed().unwrap();
        assert!(to.tag().is_some());
        assert_eq!(r.from_header().unwrap().value(), "<sip:x@y>;tag=1");
        assert_eq!(r.call_id_header().unwrap().value(), "c1");
        assert_eq!(r.cseq_header().unwrap().value(), "1 FOO");
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    }

    #[test]
    fn an_existing_tag_is_kept_and_missing_fields_are_left_out() {
        let e = echo("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: sip:a@b;tag=9\r\n\r\n");
        let mut ids = IdGenerator::seeded(3);
        let r = build(&e, &MessageError::MissingHeader("From"), &EXTRAS, &mut ids);
        assert_eq!(r.to_header().unwrap().value(), "sip:a@b;tag=9");
        assert!(r.from_header().is_err());
        assert!(r.to_string().contains("\"missing mandatory From header\""));
    }

    #[test]
    fn no_via_or_a_broken_one_is_unusable() {
        assert!(!echo("OPTIONS sip:a@b SIP/2.0\r\nTo: sip:a@b\r\n\r\n").usable());
        assert!(!echo("OPTIONS sip:a@b SIP/2.0\r\nVia: garbage\r\n\r\n").usable());
        assert!(
            echo("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n\r\n").usable()
        );
    }

    #[test]
    fn warning_text_cannot_break_out_of_its_quotes() {
        let t = warn_text(&MessageError::UnknownMethod("A\"B\\C".into()));
        assert_eq!(t, "method A'B'C is not implemented");
    }
}
