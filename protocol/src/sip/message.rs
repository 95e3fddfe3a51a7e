//! The stack's message entry point: every datagram, and every message
//! framed out of a stream, goes through [`inspect`] first.
//!
//! ```text
//! bytes ──► inspect(bytes, &config, &mut ids) ──► Inbound::Request(rsip::Request)   valid: to the transaction layer / UA core
//!                                                 Inbound::Response(rsip::Response) valid: to the client transaction
//!                                                 Inbound::Reject { response, reason }  send `response` back (statelessly), log `reason`
//!                                                 Inbound::Discard(reason)              nothing can be answered: log and count
//! ```
//!
//! Stream transports first cut messages out of the byte stream with
//! [`frame_stream`]; [`encode`] writes a message with its body intact.
//!
//! # Why not `rsip`'s parser
//!
//! Fed the RFC 4475 torture messages, `rsip` 0.4 refuses valid ones (line
//! folding and LWS around `:` and `/`, extension methods, `;` or escapes in
//! the user part), accepts invalid ones, and its closed `Method` enum cannot
//! hold the method a 501 must answer. So `rsip`'s parser is not used at
//! all; this module reads the message itself and builds `rsip` values:
//!
//! 1. a pre-pass (`message/lex.rs`) splits start line, fields and body, unfolds
//!    continuation lines, expands compact names and normalises LWS around
//!    `;` `=` `,` `/` `:` (RFC 3261 7.3.1, 25.1), leaving quoted strings
//!    and `<...>` alone;
//! 2. the start line is read: version (505), method (501 when `rsip`
//!    cannot name it), Request-URI (400, 416 for a scheme other than
//!    sip/sips), parsed here ([`uri`]) and given to `rsip` ready-made;
//! 3. the fields the stack interprets are checked (`message/fields.rs`): Via, From,
//!    To, Contact, Route, Call-ID, CSeq (method must match), Max-Forwards,
//!    Content-Length, Content-Type, Accept, Require, Expires ...;
//!    duplicates of single-valued fields and missing mandatory fields are
//!    errors; the body is cut by Content-Length (RFC 3261 18.3);
//! 4. a request then meets the UAS core checks of RFC 3261 8.2.1-8.2.3
//!    (`message/policy.rs`): 405, 420, 415, plus 406 and the REGISTER AOR rule that
//!    RFC 4475 3.3 names.
//!
//! A request that fails gets the response RFC 3261 8.2.6 describes, with a
//! `Warning: 399` naming the problem; a failed response, an ACK, or a
//! request without a usable Via is discarded. Nothing panics, and nothing
//! allocates more than a small multiple of the (size-limited) input.
//!
//! Accepted messages come out normalised: one Via, Contact, Route or
//! Record-Route value per `rsip` header, long header names, LWS removed
//! around separators, CSeq / Max-Forwards / Content-Length as plain
//! decimals. Normalising twice changes nothing. The RFC 4475 outcome of
//! every torture message is listed in `docs/protocol-sip.md`.

mod error;
mod fields;
mod frame;
mod lex;
mod policy;
mod reply;
use crate::sip::uri;

pub use error::MessageError;
pub use frame::{Frame, encode, frame_stream};

use crate::ids::IdGenerator;
use crate::sip::Transport;
use error::clip;
use lex::{Field, Kind, Lexed, Name};
use rsip::headers::UntypedHeader;
use rsip::{Header, Method, headers as h};

/// Largest UDP payload (RFC 768: a 16-bit length).
pub const MAX_UDP_MESSAGE: usize = 65_535;
/// Largest message accepted from a stream transport.
pub const MAX_STREAM_MESSAGE: usize = 64 * 1024;

/// The outcome of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A valid request, ready for the transaction layer / UA core.
    Request(rsip::Request),
    /// A valid response.
    Response(rsip::Response),
    /// A request the stack cannot process: send `response` (to the top
    /// Via, RFC 3261 18.2.2) and log `reason`.
    Reject {
        response: rsip::Response,
        reason: MessageError,
    },
    /// Nothing can be answered (a bad response, an ACK, no usable Via,
    /// garbage): log and count.
    Discard(MessageError),
}

/// How [`inspect`] judges messages: the transport they came on and what
/// this user agent implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectConfig {
    /// UDP: a missing Content-Length means "to the end of the datagram"
    /// and octets past it are dropped; a stream needs Content-Length
    /// (RFC 3261 18.3).
    pub transport: Transport,
    /// Larger input is refused with 513 (if its header section is
    /// readable) or discarded.
    pub max_size: usize,
    /// Methods the UAS implements (405 and the Allow of 405/501).
    pub allow: Vec<Method>,
    /// Option tags the UAS supports (420 for others in Require).
    pub supported: Vec<String>,
    /// Body types the UAS understands, `type/subtype` (415 for others).
    pub accept: Vec<String>,
    /// warn-agent of the `Warning: 399` in rejections: `host[:port]` or a
    /// token (RFC 3261 20.43).
    pub warning_agent: String,
}

impl InspectConfig {
    /// A user agent (INVITE, ACK, CANCEL, BYE, OPTIONS; SDP bodies) on
    /// `transport` with the transport's size limit. A registrar adds
    /// `Method::Register` to `allow`.
    pub fn new(transport: Transport) -> Self {
        InspectConfig {
            transport,
            max_size: match transport {
                Transport::Udp => MAX_UDP_MESSAGE,
                Transport::Tcp | Transport::Tls => MAX_STREAM_MESSAGE,
            },
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Cancel,
                Method::Bye,
                Method::Options,
            ],
            supported: Vec::new(),
            accept: vec!["application/sdp".into()],
            warning_agent: "sipsensor".into(),
        }
    }
}

/// Reads one whole message (a datagram, or a frame from
/// [`frame_stream`]). `ids` supplies the To tag of rejections
/// (RFC 3261 8.2.6.2).
pub fn inspect(bytes: &[u8], config: &InspectConfig, ids: &mut IdGenerator) -> Inbound {
    let too_large = (bytes.len() > config.max_size).then_some(MessageError::TooLarge {
        len: bytes.len(),
        max: config.max_size,
    });
    let input = &bytes[..bytes.len().min(config.max_size)];
    let lexed = match lex::lex(input) {
        Ok(l) => l,
        Err(e) => return Inbound::Discard(too_large.unwrap_or(e)),
    };
    match lexed.kind {
        Kind::Response => match too_large.map_or_else(|| response(&lexed, config), Err) {
            Ok(r) => Inbound::Response(r),
            Err(e) => Inbound::Discard(e),
        },
        Kind::Request => {
            let result = match too_large {
                // 513 (RFC 3261 21.5.14) only when the cut kept the whole head.
                Some(e) if lexed.terminated => Err(e),
                Some(e) => return Inbound::Discard(e),
                None => request(&lexed, config),
            };
            match result {
                Ok(r) => Inbound::Request(r),
                Err(reason) => reject(&lexed, reason, config, ids),
            }
        }
    }
}

fn reject(
    lexed: &Lexed<'_>,
    reason: MessageError,
    config: &InspectConfig,
    ids: &mut IdGenerator,
) -> Inbound {
    let echo = reply::Echo::new(&lexed.fields);
    let is_ack = lexed.start.split(|&b| b == b' ').next() == Some(b"ACK");
    // An ACK is never answered (RFC 3261 17); a stream body shorter than
    // its Content-Length is a framing fault, not the peer's request
    // (RFC 4475 3.1.2.2).
    let framing =
        config.transport.is_reliable() && matches!(reason, MessageError::BodyTooShort { .. });
    if is_ack || framing || !echo.usable() {
        return Inbound::Discard(reason);
    }
    let extras = reply::Extras {
        allow: &config.allow,
        accept: &config.accept,
        warning_agent: &config.warning_agent,
    };
    let response = reply::build(&echo, &reason, &extras, ids);
    Inbound::Reject { response, reason }
}

/// The methods `rsip` can name. Methods are case-sensitive (RFC 3261
/// 7.1), so `invite` is an extension method, unlike in `rsip`'s parser.
fn known_method(m: &str) -> Option<Method> {
    Some(match m {
        "ACK" => Method::Ack,
        "BYE" => Method::Bye,
        "CANCEL" => Method::Cancel,
        "INFO" => Method::Info,
        "INVITE" => Method::Invite,
        "MESSAGE" => Method::Message,
        "NOTIFY" => Method::Notify,
        "OPTIONS" => Method::Options,
        "PRACK" => Method::PRack,
        "PUBLISH" => Method::Publish,
        "REFER" => Method::Refer,
        "REGISTER" => Method::Register,
        "SUBSCRIBE" => Method::Subscribe,
        "UPDATE" => Method::Update,
        _ => return None,
    })
}

/// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT; only 2.0 is spoken.
fn check_version(v: &str, malformed: MessageError) -> Result<(), MessageError> {
    let nums = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and_then(|_| v[4..].split_once('.'))
        .filter(|(a, b)| {
            [a, b]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        });
    let Some((major, minor)) = nums else {
        return Err(malformed);
    };
    let two_oh =
        fields::parse_decimal(major, 9) == Some(2) && fields::parse_decimal(minor, 9) == Some(0);
    if two_oh {
        Ok(())
    } else {
        Err(MessageError::VersionNotSupported(clip(v)))
    }
}

fn request(lexed: &Lexed<'_>, config: &InspectConfig) -> Result<rsip::Request, MessageError> {
    let line =
        std::str::from_utf8(lexed.start).map_err(|_| MessageError::BadRequestLine("not UTF-8"))?;
    // Runs of SP are tolerated (RFC 4475 3.1.2.9, 3.1.2.10 allow either
    // choice); LWS inside the URI still splits it into too many parts.
    let parts: Vec<&str> = line.split(' ').filter(|p| !p.is_empty()).collect();
    let [method, uri, version] = parts[..] else {
        return Err(MessageError::BadRequestLine(
            "not Method SP Request-URI SP SIP-Version",
        ));
    };
    check_version(
        version,
        MessageError::BadRequestLine("malformed SIP-Version"),
    )?;
    if !fields::is_token(method) {
        return Err(MessageError::BadRequestLine("method is not a token"));
    }
    let known = known_method(method).ok_or_else(|| MessageError::UnknownMethod(clip(method)))?;
    let (scheme, _) =
        uri::grammar::split_scheme(uri).ok_or(MessageError::BadRequestUri("no valid scheme"))?;
    // RFC 3261 8.2.2.1: 416 for a scheme this UAS does not speak.
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return Err(MessageError::UnsupportedUriScheme(clip(scheme)));
    }
    let ruri = uri::parse_request_uri(uri).map_err(|e| MessageError::BadRequestUri(e.reason()))?;
    let checked = check_fields(lexed, config.transport)?;
    if checked.cseq_method != method {
        return Err(MessageError::CSeqMismatch {
            method: clip(method),
            cseq: clip(checked.cseq_method),
        });
    }
    let body = body(lexed, checked.content_length, config.transport)?;
    policy::check(known, &lexed.fields, body, config)?;
    Ok(rsip::Request {
        method: known,
        uri: ruri,
        version: rsip::Version::V2,
        headers: rsip_headers(&lexed.fields),
        body: body.to_vec(),
    })
}

fn response(lexed: &Lexed<'_>, config: &InspectConfig) -> Result<rsip::Response, MessageError> {
    let line =
        std::str::from_utf8(lexed.start).map_err(|_| MessageError::BadStatusLine("not UTF-8"))?;
    let (version, rest) = line.split_once(' ').unwrap_or((line, ""));
    check_version(
        version,
        MessageError::BadStatusLine("malformed SIP-Version"),
    )?;
    // A missing SP before an empty Reason-Phrase is tolerated (RFC 4475 3.1.1.13).
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code = (code.len() == 3)
        .then(|| fields::parse_decimal(code, 699))
        .flatten()
        .filter(|c| *c >= 100)
        .ok_or(MessageError::BadStatusLine("status code is not 100 to 699"))?;
    if reason
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(MessageError::BadStatusLine(
            "control character in the Reason-Phrase",
        ));
    }
    let checked = check_fields(lexed, config.transport)?;
    // RFC 3261 8.1.3.3: a UAC discards a response with more than one Via
    // (RFC 4475 3.3.13: one sent to a broadcast address).
    if checked.vias != 1 {
        return Err(MessageError::ResponseVias(checked.vias));
    }
    let body = body(lexed, checked.content_length, config.transport)?;
    let code = u16::try_from(code)
        .map_err(|_| MessageError::BadStatusLine("status code is not 100 to 699"))?;
    let status_code = match rsip::StatusCode::from(code) {
        rsip::StatusCode::Other(c, _) => rsip::StatusCode::Other(c, reason.to_owned()),
        known => known,
    };
    Ok(rsip::Response {
        status_code,
        version: rsip::Version::V2,
        headers: rsip_headers(&lexed.fields),
        body: body.to_vec(),
    })
}

/// What the field checks learn for the later steps.
#[derive(Debug)]
struct Checked<'a> {
    cseq_method: &'a str,
    content_length: Option<usize>,
    vias: usize,
}

/// Header fields that may appear once only (RFC 3261 7.3.1: a field may
/// repeat only if its grammar is a comma-separated list).
const SINGLE: &[&str] = &[
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Content-Disposition",
    "Expires",
    "Min-Expires",
    "MIME-Version",
    "Reply-To",
];

/// RFC 3261 8.1.1: what every request and response carries. Max-Forwards is
/// left out: RFC 2543 peers omit it and RFC 4475 3.4.1 asks to accept that.
const MANDATORY: &[&str] = &["Via", "From", "To", "Call-ID", "CSeq"];

fn check_fields<'a>(
    lexed: &'a Lexed<'_>,
    transport: Transport,
) -> Result<Checked<'a>, MessageError> {
    // A datagram's end also ends its header section (RFC 4475 3.1.2.15's
    // message has no empty line); on a stream it must be there (18.3).
    if !lexed.terminated && transport.is_reliable() {
        return Err(MessageError::Unterminated);
    }
    if let Some(e) = &lexed.error {
        return Err(e.clone());
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut checked = Checked {
        cseq_method: "",
        content_length: None,
        vias: 0,
    };
    for f in &lexed.fields {
        let Name::Known(known) = &f.name else {
            continue;
        };
        let name = known.name;
        fields::check_field(name, &f.value)
            .map_err(|reason| MessageError::BadHeader { name, reason })?;
        // `seen` only holds the few names SINGLE and MANDATORY list, so this
        // stays linear however many fields arrive.
        if SINGLE.contains(&name) || MANDATORY.contains(&name) {
            if SINGLE.contains(&name) && seen.contains(&name) {
                return Err(MessageError::DuplicateHeader(name));
            }
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
        match name {
            "CSeq" => {
                checked.cseq_method = fields::parse_cseq(&f.value)
                    .map(|(_, m)| m)
                    .unwrap_or_default();
            }
            "Content-Length" => {
                checked.content_length = fields::parse_decimal(&f.value, u32::MAX.into())
                    .and_then(|n| usize::try_from(n).ok());
            }
            "Via" => checked.vias += lex::split_list(&f.value).len(),
            _ => {}
        }
    }
    if let Some(missing) = MANDATORY.iter().find(|m| !seen.contains(m)) {
        return Err(MessageError::MissingHeader(missing));
    }
    Ok(checked)
}

/// The body as RFC 3261 18.3 delimits it.
fn body<'a>(
    lexed: &Lexed<'a>,
    length: Option<usize>,
    transport: Transport,
) -> Result<&'a [u8], MessageError> {
    let body = match length {
        None if transport.is_reliable() => return Err(MessageError::MissingContentLength),
        // A datagram without Content-Length: the body runs to its end.
        None => lexed.body,
        Some(n) if n > lexed.body.len() => {
            return Err(MessageError::BodyTooShort {
                declared: n,
                available: lexed.body.len(),
            });
        }
        // Octets past Content-Length are not part of the message (RFC 4475 3.1.1.8).
        Some(n) => &lexed.body[..n],
    };
    let typed = lexed.fields.iter().any(|f| f.name.is("Content-Type"));
    if !body.is_empty() && !typed {
        return Err(MessageError::MissingContentType);
    }
    Ok(body)
}

/// Fields as `rsip` headers, one value per header for the list-valued
/// fields the stack walks, numbers in plain decimal.
fn rsip_headers(fields: &[Field]) -> rsip::Headers {
    let mut out: Vec<Header> = Vec::with_capacity(fields.len());
    for f in fields {
        match &f.name {
            Name::Known(k) => {
                let split = matches!(k.name, "Via" | "Contact" | "Route" | "Record-Route");
                if split && f.value != "*" {
                    out.extend(
                        lex::split_list(&f.value)
                            .into_iter()
                            .map(|v| header(k.name, v.to_owned())),
                    );
                } else {
                    out.push(header(k.name, canonical(k.name, &f.value)));
                }
            }
            Name::Other(name) => out.push(Header::Other(name.clone(), f.value.clone())),
        }
    }
    out.into()
}

fn canonical(name: &str, value: &str) -> String {
    match name {
        "CSeq" => match fields::parse_cseq(value) {
            Ok((n, m)) => format!("{n} {m}"),
            Err(_) => value.to_owned(),
        },
        "Max-Forwards" | "Content-Length" | "Expires" | "Min-Expires" => {
            fields::parse_decimal(value, u32::MAX.into())
                .map_or_else(|| value.to_owned(), |n| n.to_string())
        }
        _ => value.to_owned(),
    }
}

/// The `rsip` variant for a canonical field name.
fn header(name: &str, v: String) -> Header {
    match name {
        "Accept" => Header::Accept(h::Accept::new(v)),
        "Accept-Encoding" => Header::AcceptEncoding(h::AcceptEncoding::new(v)),
        "Accept-Language" => Header::AcceptLanguage(h::AcceptLanguage::new(v)),
        "Alert-Info" => Header::AlertInfo(h::AlertInfo::new(v)),
        "Allow" => Header::Allow(h::Allow::new(v)),
        "Authentication-Info" => Header::AuthenticationInfo(h::AuthenticationInfo::new(v)),
        "Authorization" => Header::Authorization(h::Authorization::new(v)),
        "Call-ID" => Header::CallId(h::CallId::new(v)),
        "Call-Info" => Header::CallInfo(h::CallInfo::new(v)),
        "Contact" => Header::Contact(h::Contact::new(v)),
        "Content-Disposition" => Header::ContentDisposition(h::ContentDisposition::new(v)),
        "Content-Encoding" => Header::ContentEncoding(h::ContentEncoding::new(v)),
        "Content-Language" => Header::ContentLanguage(h::ContentLanguage::new(v)),
        "Content-Length" => Header::ContentLength(h::ContentLength::new(v)),
        "Content-Type" => Header::ContentType(h::ContentType::new(v)),
        "CSeq" => Header::CSeq(h::CSeq::new(v)),
        "Date" => Header::Date(h::Date::new(v)),
        "Error-Info" => Header::ErrorInfo(h::ErrorInfo::new(v)),
        "Event" => Header::Event(h::Event::new(v)),
        "Expires" => Header::Expires(h::Expires::new(v)),
        "From" => Header::From(h::From::new(v)),
        "In-Reply-To" => Header::InReplyTo(h::InReplyTo::new(v)),
        "Max-Forwards" => Header::MaxForwards(h::MaxForwards::new(v)),
        "MIME-Version" => Header::MimeVersion(h::MimeVersion::new(v)),
        "Min-Expires" => Header::MinExpires(h::MinExpires::new(v)),
        "Organization" => Header::Organization(h::Organization::new(v)),
        "Priority" => Header::Priority(h::Priority::new(v)),
        "Proxy-Authenticate" => Header::ProxyAuthenticate(h::ProxyAuthenticate::new(v)),
        "Proxy-Authorization" => Header::ProxyAuthorization(h::ProxyAuthorization::new(v)),
        "Proxy-Require" => Header::ProxyRequire(h::ProxyRequire::new(v)),
        "Record-Route" => Header::RecordRoute(h::RecordRoute::new(v)),
        "Reply-To" => Header::ReplyTo(h::ReplyTo::new(v)),
        "Require" => Header::Require(h::Require::new(v)),
        "Retry-After" => Header::RetryAfter(h::RetryAfter::new(v)),
        "Route" => Header::Route(h::Route::new(v)),
        "Server" => Header::Server(h::Server::new(v)),
        "Subject" => Header::Subject(h::Subject::new(v)),
        "Subscription-State" => Header::SubscriptionState(h::SubscriptionState::new(v)),
        "Supported" => Header::Supported(h::Supported::new(v)),
        "Timestamp" => Header::Timestamp(h::Timestamp::new(v)),
        "To" => Header::To(h::To::new(v)),
        "Unsupported" => Header::Unsupported(h::Unsupported::new(v)),
        "User-Agent" => Header::UserAgent(h::UserAgent::new(v)),
        "Via" => Header::Via(h::Via::new(v)),
        "Warning" => Header::Warning(h::Warning::new(v)),
        "WWW-Authenticate" => Header::WwwAuthenticate(h::WwwAuthenticate::new(v)),
        other => Header::Other(other.to_owned(), v),
    }
}

#[cfg(test)]
mod tests;
