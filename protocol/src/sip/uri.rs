//! The one SIP URI type of the workspace (RFC 3261 19.1): the registrar's
//! Contacts and AORs, the message layer's Request-URIs and From/To/Contact
//! checks, and the agent's configured URIs all read URIs here.
//!
//! `rsip` 0.4 misreads some valid SIP URIs (a user part with a `.` becomes
//! part of the host, `;` in the user part starts parameters, IPv6 literals
//! fail) and accepts invalid ones (`foo`, `sip:a b@c`), so the grammar of
//! RFC 3261 25.1 is followed here and `rsip` gets a ready-made
//! [`rsip::Uri`] from [`SipUri::to_rsip`].

mod compare;
pub(crate) mod grammar;
#[cfg(test)]
mod tests;

pub use compare::{host_ip, same_host, unescape};

use grammar::{HostRef, check_chars, is_unreserved, parse_hostport, split_scheme};
use rsip::{Auth, HostWithPort, Param, Port};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest URI read: far above any real one, bounds the work per URI.
pub const MAX_URI_LEN: usize = 2048;
/// Most `;` parameters read in one URI.
pub const MAX_URI_PARAMS: usize = 32;

/// Why a URI could not be read. The text reads after "`<uri>` is not a SIP
/// URI: "; [`UriError::reason`] is the short form the message layer puts in
/// its errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_URI_LEN} bytes")]
    TooLong,
    /// The URI as written.
    #[error("must start with `sip:` or `sips:`")]
    NoScheme(String),
    /// The scheme, lower-case.
    #[error("must start with `sip:` or `sips:`, not `{0}:`")]
    UnsupportedScheme(String),
    #[error("has an empty user part before `@`")]
    EmptyUser,
    #[error("{part} `{text}` contains `{found}`, which must be %-escaped")]
    BadCharacter {
        part: &'static str,
        text: String,
        found: char,
    },
    #[error("{part} `{text}` has a `%` not followed by two hex digits")]
    BadEscape { part: &'static str, text: String },
    /// The text where the host was expected.
    #[error("has no host")]
    NoHost(String),
    #[error("has an invalid host name `{0}`")]
    BadHostName(String),
    #[error("has an invalid IPv4 address `{0}`")]
    BadIpv4(String),
    /// The IPv6 reference as written, `[` included.
    #[error("{}", ipv6_problem(.0))]
    BadIpv6(String),
    #[error("has an invalid port `{0}`")]
    BadPort(String),
    /// The URI as written.
    #[error("has more than {MAX_URI_PARAMS} parameters")]
    TooManyParams(String),
    #[error("has an empty URI parameter name")]
    EmptyParamName,
    #[error("has an empty value for parameter `{0}`")]
    EmptyParamValue(String),
    /// The name as written the second time.
    #[error("has the parameter `{0}` more than once (RFC 3261 19.1.1)")]
    DuplicateParam(String),
    #[error("has a header `{0}` without `=`")]
    HeaderWithoutEquals(String),
    #[error("has an empty header name")]
    EmptyHeaderName,
    #[error("headers are not allowed in a Request-URI (RFC 3261 19.1.1)")]
    HeadersInRequestUri,
}

fn ipv6_problem(reference: &str) -> String {
    if reference.ends_with(']') {
        format!("has an invalid IPv6 address `{reference}`")
    } else {
        format!("has an IPv6 host `{reference}` without the closing `]`")
    }
}

impl UriError {
    /// The rule broken, in the message layer's short words (its errors
    /// carry static reasons).
    pub fn reason(&self) -> &'static str {
        let by_part = |part: &str| match part {
            "user part" => "invalid user part",
            "password" => "invalid password part",
            "parameter" | "parameter value" => "invalid URI parameter",
            "header name" | "header value" => "invalid URI headers",
            _ => "invalid characters in URI",
        };
        match self {
            UriError::Empty | UriError::NoScheme(_) => "no URI scheme",
            UriError::TooLong => "URI too long",
            UriError::UnsupportedScheme(_) => "not a SIP or SIPS URI",
            UriError::EmptyUser => "invalid user part",
            UriError::BadCharacter { part, .. } | UriError::BadEscape { part, .. } => by_part(part),
            UriError::NoHost(_) => "empty host",
            UriError::BadHostName(_) => "invalid host name",
            UriError::BadIpv4(_) => "invalid IPv4 address",
            UriError::BadIpv6(r) if r.ends_with(']') => "invalid IPv6 address",
            UriError::BadIpv6(_) => "unterminated IPv6 reference",
            UriError::BadPort(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                "port out of range"
            }
            UriError::BadPort(_) => "port is not a number",
            UriError::TooManyParams(_)
            | UriError::EmptyParamName
            | UriError::EmptyParamValue(_)
            | UriError::DuplicateParam(_) => "invalid URI parameter",
            UriError::HeaderWithoutEquals(_) | UriError::EmptyHeaderName => "invalid URI headers",
            UriError::HeadersInRequestUri => {
                "headers are not allowed in a Request-URI (RFC 3261 19.1.1)"
            }
        }
    }
}

/// The host of a SIP URI, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Lower-case.
    Name(String),
    V4(Ipv4Addr),
    /// Written `[addr]`, or in the stack's internal name form
    /// ([`ipv6_to_wire`](crate::ipv6_to_wire)).
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI that passed the RFC 3261 25.1 grammar.
/// [`Display`](fmt::Display) prints the text as read (trimmed), so a
/// Contact is echoed exactly as the UA wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    text: String,
    /// "sip" or "sips", lower-case.
    pub scheme: &'static str,
    /// The user part without password, still %-escaped.
    pub user: Option<String>,
    /// Lower-case; an IPv6 reference in the stack's internal name form
    /// ([`ipv6_to_wire`](crate::ipv6_to_wire)), whichever form the text used, so that
    /// hosts compare equal however they were written.
    pub host: String,
    /// Where the host stands in `text`, as written (an IPv6 reference with
    /// its brackets); offsets fit as `text` is at most [`MAX_URI_LEN`].
    host_at: (u16, u16),
    pub port: Option<u16>,
    /// Names and values as written; [`SipUri::param`] looks names up
    /// ignoring case (RFC 3261 19.1.4).
    pub params: Vec<(String, Option<String>)>,
    /// The text after `?`, still %-escaped.
    pub headers: Option<String>,
}

impl SipUri {
    /// Reads `sip:` / `sips:` URIs (RFC 3261 19.1.1, 25.1); surrounding
    /// whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        if text.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        let (scheme, rest) = split_scheme(text).ok_or_else(|| UriError::NoScheme(text.into()))?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            "sip"
        } else if scheme.eq_ignore_ascii_case("sips") {
            "sips"
        } else {
            return Err(UriError::UnsupportedScheme(scheme.to_ascii_lowercase()));
        };
        // RFC 3261 25.1: `@` may not appear unescaped in host, parameters
        // or headers, so the first one ends the userinfo (a user may hold
        // `;`, `?` and `/`).
        let (userinfo, rest) = match rest.split_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let user = match userinfo {
            None => None,
            Some(u) => Some(read_userinfo(u)?),
        };
        let (before_headers, headers) = match rest.split_once('?') {
            Some((b, h)) => (b, Some(h)),
            None => (rest, None),
        };
        let mut parts = before_headers.split(';');
        let hostport = parts.next().unwrap_or_default();
        let (host_ref, port) = parse_hostport(hostport)?;
        let mut params = Vec::new();
        for p in parts {
            if params.len() == MAX_URI_PARAMS {
                return Err(UriError::TooManyParams(text.into()));
            }
            let param = read_param(p)?;
            // RFC 3261 19.1.1: "any given parameter-name MUST NOT appear
            // more than once"; with two, comparison (19.1.4) and every
            // lookup would see only the first.
            if params
                .iter()
                .any(|(n, _): &(String, _)| n.eq_ignore_ascii_case(&param.0))
            {
                return Err(UriError::DuplicateParam(param.0));
            }
            params.push(param);
        }
        if let Some(h) = headers {
            check_headers(h)?;
        }
        let (host, written) = match host_ref {
            HostRef::Name(n) => (n.to_ascii_lowercase(), n),
            HostRef::V4(a) => (a.to_string(), hostport_host(hostport)),
            HostRef::V6(written, ip) => (crate::sip::ipv6::encode_host(&ip), written),
        };
        // The host opens what follows the userinfo; MAX_URI_LEN bounds the
        // offsets.
        let start = text.len() - rest.len();
        let offset = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        let host_at = (offset(start), offset(start + written.len()));
        Ok(Self {
            text: text.into(),
            scheme,
            user,
            host,
            host_at,
            port,
            params,
            headers: headers.map(Into::into),
        })
    }

    /// The URI as read.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `sips:` (RFC 3261 19.1: TLS on every hop).
    pub fn is_secure(&self) -> bool {
        self.scheme == "sips"
    }

    /// The password of the userinfo, as written (RFC 3261 19.1.1: NOT
    /// RECOMMENDED, but legal).
    pub fn password(&self) -> Option<&str> {
        let (_, rest) = split_scheme(&self.text)?;
        let (userinfo, _) = rest.split_once('@')?;
        userinfo.split_once(':').map(|(_, pw)| pw)
    }

    /// The host by kind (an internal IPv6 name is an IPv6 host).
    pub fn host_kind(&self) -> Host {
        if let Some(ip) = crate::sip::ipv6::decode_host(&self.host) {
            return Host::V6(ip);
        }
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Host::V4(a),
            Ok(IpAddr::V6(a)) => Host::V6(a),
            Err(_) => Host::Name(self.host.clone()),
        }
    }

    /// The host as written, an IPv6 reference with its brackets.
    fn host_written(&self) -> &str {
        let (start, end) = self.host_at;
        self.text
            .get(usize::from(start)..usize::from(end))
            .unwrap_or(&self.host)
    }

    /// The value of a URI parameter: `Some(None)` for a flag like `lr`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        host_ip(&self.host)
    }

    /// The socket address the URI names when its host is an IP literal
    /// (default port 5060, or 5061 for sips: RFC 3261 19.1.2).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let default = if self.is_secure() { 5061 } else { 5060 };
        Some(SocketAddr::new(self.ip()?, self.port.unwrap_or(default)))
    }

    /// The canonical address-of-record `scheme:user@host` (RFC 3261 10.3
    /// step 5: "converting it to the canonical form ... sip:user@domain";
    /// port and parameters dropped).
    pub fn aor(&self) -> String {
        match &self.user {
            Some(u) => format!("{}:{}@{}", self.scheme, unescape(u), self.host),
            None => format!("{}:{}", self.scheme, self.host),
        }
    }

    /// The `rsip` form, without URI headers. Hosts go in as written; IPv6
    /// references as bracketed names because `rsip`'s `Host::IpAddr`
    /// prints IPv6 without brackets.
    pub fn to_rsip(&self) -> rsip::Uri {
        let host = match self.host_kind() {
            Host::V4(a) => rsip::Host::IpAddr(a.into()),
            _ => rsip::Host::Domain(self.host_written().into()),
        };
        rsip::Uri {
            scheme: Some(if self.is_secure() {
                rsip::Scheme::Sips
            } else {
                rsip::Scheme::Sip
            }),
            auth: self.user.as_ref().map(|user| Auth {
                user: user.clone(),
                password: self.password().map(Into::into),
            }),
            host_with_port: HostWithPort {
                host,
                port: self.port.map(Port::from),
            },
            params: self
                .params
                .iter()
                .map(|(n, v)| {
                    Param::try_from((n.as_str(), v.as_deref())).unwrap_or_else(|_| {
                        Param::Other(n.as_str().into(), v.as_deref().map(Into::into))
                    })
                })
                .collect(),
            headers: Vec::new(),
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads a SIP or SIPS Request-URI into `rsip`'s type, refusing URI
/// headers (a Request-URI must not carry them, RFC 3261 19.1.1 table 1).
pub fn parse_request_uri(uri: &str) -> Result<rsip::Uri, UriError> {
    let parsed = SipUri::parse(uri)?;
    if parsed.headers.is_some() {
        return Err(UriError::HeadersInRequestUri);
    }
    Ok(parsed.to_rsip())
}

/// The host text of a `host[:port]` that is not an IPv6 reference.
fn hostport_host(hostport: &str) -> &str {
    hostport.split_once(':').map_or(hostport, |(h, _)| h)
}

/// userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"; the
/// user part comes back (the password is read from the text on demand).
fn read_userinfo(userinfo: &str) -> Result<String, UriError> {
    let (user, password) = match userinfo.split_once(':') {
        Some((user, pw)) => (user, Some(pw)),
        None => (userinfo, None),
    };
    if user.is_empty() {
        return Err(UriError::EmptyUser);
    }
    // user = 1*( unreserved / escaped / user-unreserved )
    check_chars(user, "user part", |b| {
        is_unreserved(b) || b"&=+$,;?/".contains(&b)
    })?;
    // password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
    if let Some(pw) = password {
        check_chars(pw, "password", |b| {
            is_unreserved(b) || b"&=+$,".contains(&b)
        })?;
    }
    Ok(user.into())
}

/// uri-parameter = pname [ "=" pvalue ], both 1*paramchar.
fn read_param(p: &str) -> Result<(String, Option<String>), UriError> {
    let paramchar = |b: u8| is_unreserved(b) || b"[]/:&+$".contains(&b);
    let (name, value) = match p.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (p, None),
    };
    if name.is_empty() {
        return Err(UriError::EmptyParamName);
    }
    check_chars(name, "parameter", paramchar)?;
    if let Some(v) = value {
        if v.is_empty() {
            return Err(UriError::EmptyParamValue(name.into()));
        }
        check_chars(v, "parameter value", paramchar)?;
    }
    Ok((name.into(), value.map(Into::into)))
}

/// headers = "?" header *( "&" header ), header = hname "=" hvalue
fn check_headers(headers: &str) -> Result<(), UriError> {
    let hchar = |b: u8| is_unreserved(b) || b"[]/?:+$".contains(&b);
    for header in headers.split('&') {
        let (name, value) = header
            .split_once('=')
            .ok_or_else(|| UriError::HeaderWithoutEquals(header.into()))?;
        if name.is_empty() {
            return Err(UriError::EmptyHeaderName);
        }
        check_chars(name, "header name", hchar)?;
        check_chars(value, "header value", hchar)?;
    }
    Ok(())
}
