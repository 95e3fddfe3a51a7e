//! RFC 8866 parser: strict about structure, bounded in size.
//!
//! Limits: [`MAX_SDP_LEN`] bytes and [`MAX_LINES`] lines, so memory use is
//! proportional to an input that is itself bounded; [`MAX_MEDIA`] sections
//! and [`MAX_FORMATS`] formats per `m=` line bound the work of the
//! negotiation that follows.

use super::model::{Attribute, Bandwidth, Connection, Media, Origin, Sdp, Timing};
use thiserror::Error;

/// Largest description accepted (SIP over UDP bodies stay far below this).
pub const MAX_SDP_LEN: usize = 32 * 1024;
/// Most lines accepted in one description.
pub const MAX_LINES: usize = 1024;
/// Most `m=` sections accepted.
pub const MAX_MEDIA: usize = 32;
/// Most formats on one `m=` line.
pub const MAX_FORMATS: usize = 64;

/// Why a byte string is not a session description.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    #[error("SDP is empty")]
    Empty,
    #[error("SDP of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("SDP has more than {limit} lines")]
    TooManyLines { limit: usize },
    #[error("SDP has more than {limit} media sections")]
    TooManyMedia { limit: usize },
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 { line: usize },
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: &'static str },
    #[error("line {line}: unknown line type `{kind}=` (RFC 8866 section 5)")]
    UnknownType { line: usize, kind: char },
    #[error("line {line}: `{kind}=` is out of order (RFC 8866 section 5)")]
    OutOfOrder { line: usize, kind: char },
    #[error("line {line}: bad `{kind}=` line: {reason}")]
    Field {
        line: usize,
        kind: char,
        reason: &'static str,
    },
    #[error("missing `{0}=` line")]
    Missing(char),
}

/// Parses a session description. Lines may end in CRLF or a bare LF
/// (RFC 8866 section 5 asks parsers to be tolerant of the latter).
pub fn parse(input: &[u8]) -> Result<Sdp, SdpError> {
    if input.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge {
            len: input.len(),
            limit: MAX_SDP_LEN,
        });
    }
    let lines = split_lines(input)?;
    let mut p = Parser {
        lines: lines.into_iter(),
        current: 0,
    };
    p.session()
}

/// Splits into `(line number, text)`, rejecting stray CR and NUL, and
/// dropping blank lines only at the very end.
fn split_lines(input: &[u8]) -> Result<Vec<(usize, &str)>, SdpError> {
    let mut out = Vec::new();
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    if body.is_empty() {
        return Err(SdpError::Empty);
    }
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        if out.len() == MAX_LINES {
            return Err(SdpError::TooManyLines { limit: MAX_LINES });
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().any(|&b| b == b'\r' || b == 0) {
            return Err(SdpError::Syntax {
                line: n,
                reason: "CR or NUL inside a line",
            });
        }
        let text = std::str::from_utf8(raw).map_err(|_| SdpError::NotUtf8 { line: n })?;
        out.push((n, text));
    }
    // Trailing blank lines (an extra CRLF after the body) are harmless.
    while out.last().is_some_and(|(_, l)| l.is_empty()) {
        out.pop();
    }
    if out.is_empty() {
        return Err(SdpError::Empty);
    }
    Ok(out)
}

struct Parser<'a> {
    lines: std::vec::IntoIter<(usize, &'a str)>,
    current: usize,
}

/// One `<type>=<value>` line.
struct Line<'a> {
    n: usize,
    kind: char,
    value: &'a str,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Result<Option<Line<'a>>, SdpError> {
        let Some((n, text)) = self.lines.next() else {
            return Ok(None);
        };
        self.current = n;
        let bytes = text.as_bytes();
        // RFC 8866 5: `<type>=<value>`, type one letter, no spaces around '='.
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(SdpError::Syntax {
                line: n,
                reason: "expected `<letter>=<value>`",
            });
        }
        Ok(Some(Line {
            n,
            kind: char::from(bytes[0]),
            value: &text[2..],
        }))
    }

    fn expect(&mut self, kind: char) -> Result<Line<'a>, SdpError> {
        match self.next()? {
            Some(l) if l.kind == kind => Ok(l),
            Some(l) => Err(SdpError::OutOfOrder {
                line: l.n,
                kind: l.kind,
            }),
            None => Err(SdpError::Missing(kind)),
        }
    }

    fn session(&mut self) -> Result<Sdp, SdpError> {
        let v = self.expect('v')?;
        if v.value != "0" {
            return Err(field(&v, "only version 0 exists"));
        }
        let o = self.expect('o')?;
        let origin = parse_origin(&o)?;
        let s = self.expect('s')?;
        let mut sdp = Sdp::new(origin, s.value);
        sdp.timings.clear();

        // Session-level lines, ranked in the order of RFC 8866 section 5.
        let mut rank = 0u8;
        let mut next = self.next()?;
        while let Some(l) = next.take() {
            let r = match l.kind {
                'i' => 1,
                'u' => 2,
                'e' => 3,
                'p' => 4,
                'c' => 5,
                'b' => 6,
                't' | 'r' => 7,
                'z' => 8,
                'k' => 9,
                'a' => 10,
                'm' => {
                    next = Some(l);
                    break;
                }
                'v' | 'o' | 's' => return Err(out_of_order(&l)),
                other => {
                    return Err(SdpError::UnknownType {
                        line: l.n,
                        kind: other,
                    });
                }
            };
            let singleton = matches!(l.kind, 'i' | 'u' | 'c' | 'z' | 'k');
            if r < rank || (r == rank && singleton) {
                return Err(out_of_order(&l));
            }
            rank = r;
            match l.kind {
                'i' => sdp.information = Some(l.value.into()),
                'u' => sdp.uri = Some(l.value.into()),
                'e' => sdp.emails.push(l.value.into()),
                'p' => sdp.phones.push(l.value.into()),
                'c' => sdp.connection = Some(parse_connection(&l)?),
                'b' => sdp.bandwidths.push(parse_bandwidth(&l)?),
                't' => sdp.timings.push(parse_timing(&l)?),
                'r' => match sdp.timings.last_mut() {
                    Some(t) => t.repeats.push(l.value.into()),
                    None => return Err(out_of_order(&l)),
                },
                'z' => sdp.time_zones = Some(l.value.into()),
                'k' => sdp.key = Some(l.value.into()),
                _ => sdp.attributes.push(parse_attribute(&l)?),
            }
            next = self.next()?;
        }
        if sdp.timings.is_empty() {
            return Err(SdpError::Missing('t'));
        }
        while let Some(m) = next.take() {
            if sdp.media.len() == MAX_MEDIA {
                return Err(SdpError::TooManyMedia { limit: MAX_MEDIA });
            }
            let (media, following) = self.media(&m)?;
            sdp.media.push(media);
            next = following;
        }
        Ok(sdp)
    }

    /// One media section; returns it and the `m=` line that ends it, if any.
    fn media(&mut self, m: &Line<'a>) -> Result<(Media, Option<Line<'a>>), SdpError> {
        let mut media = parse_media_line(m)?;
        let mut rank = 0u8;
        loop {
            let Some(l) = self.next()? else {
                return Ok((media, None));
            };
            let r = match l.kind {
                'i' => 1,
                'c' => 2,
                'b' => 3,
                'k' => 4,
                'a' => 5,
                'm' => return Ok((media, Some(l))),
                'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => {
                    return Err(out_of_order(&l));
                }
                other => {
                    return Err(SdpError::UnknownType {
                        line: l.n,
                        kind: other,
                    });
                }
            };
            let singleton = matches!(l.kind, 'i' | 'k');
            if r < rank || (r == rank && singleton) {
                return Err(out_of_order(&l));
            }
            rank = r;
            match l.kind {
                'i' => media.title = Some(l.value.into()),
                'c' => media.connections.push(parse_connection(&l)?),
                'b' => media.bandwidths.push(parse_bandwidth(&l)?),
                'k' => media.key = Some(l.value.into()),
                _ => media.attributes.push(parse_attribute(&l)?),
            }
        }
    }
}

fn field(l: &Line<'_>, reason: &'static str) -> SdpError {
    SdpError::Field {
        line: l.n,
        kind: l.kind,
        reason,
    }
}

fn out_of_order(l: &Line<'_>) -> SdpError {
    SdpError::OutOfOrder {
        line: l.n,
        kind: l.kind,
    }
}

/// RFC 8866 section 9 `token-char`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            matches!(b, 0x21 | 0x23..=0x27 | 0x2a..=0x2b | 0x2d..=0x2e | 0x30..=0x39 | 0x41..=0x5a | 0x5e..=0x7e)
        })
}

fn digits_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn fields(value: &str) -> impl Iterator<Item = &str> {
    value.split(' ').filter(|f| !f.is_empty())
}

fn parse_origin(l: &Line<'_>) -> Result<Origin, SdpError> {
    let f: Vec<&str> = fields(l.value).take(7).collect();
    let [user, id, version, net, addr_type, addr] = f[..] else {
        return Err(field(l, "expected six fields"));
    };
    let session_id = digits_u64(id).ok_or_else(|| field(l, "sess-id is not a 64-bit number"))?;
    let session_version =
        digits_u64(version).ok_or_else(|| field(l, "sess-version is not a 64-bit number"))?;
    if !is_token(net) || !is_token(addr_type) {
        return Err(field(l, "nettype and addrtype must be tokens"));
    }
    Ok(Origin {
        username: user.into(),
        session_id,
        session_version,
        net_type: net.into(),
        addr_type: addr_type.into(),
        address: addr.into(),
    })
}

fn parse_connection(l: &Line<'_>) -> Result<Connection, SdpError> {
    let f: Vec<&str> = fields(l.value).take(4).collect();
    let [net, addr_type, address] = f[..] else {
        return Err(field(l, "expected three fields"));
    };
    if !is_token(net) || !is_token(addr_type) {
        return Err(field(l, "nettype and addrtype must be tokens"));
    }
    Ok(Connection {
        net_type: net.into(),
        addr_type: addr_type.into(),
        address: address.into(),
    })
}

fn parse_bandwidth(l: &Line<'_>) -> Result<Bandwidth, SdpError> {
    let (ty, bw) = l
        .value
        .split_once(':')
        .ok_or_else(|| field(l, "expected `<bwtype>:<bandwidth>`"))?;
    if !is_token(ty) {
        return Err(field(l, "bwtype must be a token"));
    }
    let bandwidth = digits_u64(bw).ok_or_else(|| field(l, "bandwidth is not a number"))?;
    Ok(Bandwidth {
        bw_type: ty.into(),
        bandwidth,
    })
}

fn parse_timing(l: &Line<'_>) -> Result<Timing, SdpError> {
    let f: Vec<&str> = fields(l.value).take(3).collect();
    let [start, stop] = f[..] else {
        return Err(field(l, "expected `<start-time> <stop-time>`"));
    };
    let (Some(start), Some(stop)) = (digits_u64(start), digits_u64(stop)) else {
        return Err(field(l, "times must be numbers"));
    };
    Ok(Timing {
        start,
        stop,
        repeats: Vec::new(),
    })
}

fn parse_attribute(l: &Line<'_>) -> Result<Attribute, SdpError> {
    let (name, value) = match l.value.split_once(':') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (l.value, None),
    };
    if !is_token(name) {
        return Err(field(l, "attribute name must be a token"));
    }
    Ok(Attribute {
        name: name.into(),
        value,
    })
}

fn parse_media_line(l: &Line<'_>) -> Result<Media, SdpError> {
    let mut f = fields(l.value);
    let (Some(media), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
        return Err(field(l, "expected `<media> <port> <proto> <fmt> ...`"));
    };
    if !is_token(media) {
        return Err(field(l, "media must be a token"));
    }
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (p, Some(n)),
        None => (port, None),
    };
    let port = digits_u64(port)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| field(l, "port is not a number below 65536"))?;
    let port_count = match port_count {
        Some(n) => Some(
            digits_u64(n)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| field(l, "bad number of ports"))?,
        ),
        None => None,
    };
    if !proto.split('/').all(is_token) {
        return Err(field(l, "proto must be tokens separated by '/'"));
    }
    let mut formats = Vec::new();
    for fmt in f {
        if formats.len() == MAX_FORMATS {
            return Err(field(l, "too many formats"));
        }
        if !is_token(fmt) {
            return Err(field(l, "format must be a token"));
        }
        formats.push(fmt.to_string());
    }
    if formats.is_empty() {
        return Err(field(l, "at least one format is required"));
    }
    let mut m = Media::new(media, port, proto, formats);
    m.port_count = port_count;
    Ok(m)
}

#[cfg(test)]
mod tests;
