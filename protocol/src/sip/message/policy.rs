//! What a UAS core checks before processing a well-formed request (RFC 3261
//! 8.2.1 to 8.2.3), in that order: method, extensions, body.

use super::InspectConfig;
use super::error::{MessageError, clip};
use super::fields::{parse_accept, parse_addr, parse_media_type, token_list};
use super::lex::Field;
use rsip::Method;
use std::collections::HashSet;

/// Most option tags one 420 lists in Unsupported.
const MAX_UNSUPPORTED: usize = 32;

fn values<'a>(fields: &'a [Field], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    fields
        .iter()
        .filter(move |f| f.name.is(name))
        .map(|f| f.value.as_str())
}

/// Fields reach here validated, so parse failures only mean "absent".
pub(crate) fn check(
    method: Method,
    fields: &[Field],
    body: &[u8],
    config: &InspectConfig,
) -> Result<(), MessageError> {
    // An ACK is never answered (RFC 3261 17.1.1.3): hand it on as it is.
    if method == Method::Ack {
        return Ok(());
    }
    // 8.2.1: a method this UAS does not implement for anyone.
    if !config.allow.contains(&method) {
        return Err(MessageError::MethodNotAllowed(method.to_string()));
    }
    // 8.2.2.3: every option tag in Require must be supported; CANCEL's
    // Require is ignored.
    if method != Method::Cancel {
        let mut missing: Vec<String> = Vec::new();
        let mut listed = HashSet::new();
        for tag in values(fields, "Require").flat_map(|v| token_list(v, true).unwrap_or_default()) {
            let known = config.supported.iter().any(|s| s.eq_ignore_ascii_case(tag));
            // One unknown tag is enough for the client; listing at most
            // MAX_UNSUPPORTED keeps the 420 small whatever the request holds.
            if !known && listed.insert(tag) && missing.len() < MAX_UNSUPPORTED {
                missing.push(clip(tag));
            }
        }
        if !missing.is_empty() {
            return Err(MessageError::BadExtension(missing));
        }
    }
    // 8.2.3: a body we cannot read, unless its disposition says optional.
    if !body.is_empty() {
        let optional = values(fields, "Content-Disposition").any(|d| {
            d.split(';')
                .skip(1)
                .any(|p| p.eq_ignore_ascii_case("handling=optional"))
        });
        if !optional {
            for coding in values(fields, "Content-Encoding").flat_map(|v| v.split(',')) {
                if !coding.eq_ignore_ascii_case("identity") {
                    return Err(MessageError::UnsupportedMediaType(format!(
                        "Content-Encoding {}",
                        clip(coding)
                    )));
                }
            }
            if let Some(ct) = values(fields, "Content-Type").next() {
                let (t, s) = parse_media_type(ct).unwrap_or_default();
                let understood = config.accept.iter().any(|a| {
                    a.split_once('/').is_some_and(|(at, as_)| {
                        at.eq_ignore_ascii_case(t) && as_.eq_ignore_ascii_case(s)
                    })
                });
                if !understood {
                    return Err(MessageError::UnsupportedMediaType(format!(
                        "Content-Type {}/{}",
                        clip(t),
                        clip(s)
                    )));
                }
            }
        }
    }
    // RFC 4475 3.3.15: an INVITE whose Accept rules out SDP cannot be
    // answered with a session description (an empty Accept allows nothing,
    // RFC 3261 20.1).
    if method == Method::Invite {
        let mut accepts = values(fields, "Accept").peekable();
        if accepts.peek().is_some() {
            let sdp_ok = accepts
                .flat_map(|v| parse_accept(v).unwrap_or_default())
                .any(|(t, s)| {
                    (t == "*" && s == "*")
                        || (t.eq_ignore_ascii_case("application")
                            && (s == "*" || s.eq_ignore_ascii_case("sdp")))
                });
            if !sdp_ok {
                return Err(MessageError::NotAcceptable);
            }
        }
    }
    // RFC 3261 10.2: the address-of-record in a REGISTER's To is a SIP or
    // SIPS URI (RFC 4475 3.3.3).
    if method == Method::Register {
        let aor_ok = values(fields, "To").next().is_some_and(|to| {
            parse_addr(to).is_ok_and(|a| {
                a.scheme().eq_ignore_ascii_case("sip") || a.scheme().eq_ignore_ascii_case("sips")
            })
        });
        if !aor_ok {
            return Err(MessageError::AorNotSip);
        }
    }
    Ok(())
}
