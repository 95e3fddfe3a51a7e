//! A session description as data (RFC 8866 section 5), and its wire form.
//!
//! Fields whose syntax this project never interprets (`i=`, `u=`, `e=`,
//! `p=`, `r=`, `z=`, `k=`) are kept as text so a description survives a
//! parse/serialize round trip unchanged.

use std::fmt;
use std::net::IpAddr;

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
/// (RFC 8866 5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

/// `c=<nettype> <addrtype> <connection-address>` (RFC 8866 5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    /// As written, including any multicast `/ttl/count` suffix.
    pub address: String,
}

impl Connection {
    /// An `IN IP4`/`IN IP6` connection for a unicast address.
    pub fn for_ip(ip: IpAddr) -> Self {
        Self {
            net_type: "IN".into(),
            addr_type: addr_type(ip).into(),
            address: ip.to_string(),
        }
    }

    /// The unicast IP address, when this is `IN IP4`/`IN IP6` and the
    /// address is a literal (not a FQDN, RFC 8866 5.7) without a multicast
    /// suffix. Multicast and names give `None`: sensor streams are unicast.
    pub fn ip(&self) -> Option<IpAddr> {
        if self.net_type != "IN" {
            return None;
        }
        let ip: IpAddr = self.address.parse().ok()?;
        match (self.addr_type.as_str(), ip) {
            ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
            _ => None,
        }
    }
}

/// `IP4` or `IP6` for an address (RFC 8866 5.7 `addrtype`).
pub fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// `b=<bwtype>:<bandwidth>` (RFC 8866 5.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    pub bw_type: String,
    pub bandwidth: u64,
}

/// `t=<start-time> <stop-time>` with its `r=` lines (RFC 8866 5.9, 5.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
    pub repeats: Vec<String>,
}

/// `a=<attribute-name>[:<attribute-value>]` (RFC 8866 5.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute, `a=name`.
    pub fn flag(name: &str) -> Self {
        Self {
            name: name.into(),
            value: None,
        }
    }

    /// A value attribute, `a=name:value`.
    pub fn value(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

/// One `m=` section (RFC 8866 5.14) with its media-level lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub media: String,
    pub port: u16,
    /// The `/<number of ports>` of the m= line, when present.
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub title: Option<String>,
    pub connections: Vec<Connection>,
    pub bandwidths: Vec<Bandwidth>,
    pub key: Option<String>,
    pub attributes: Vec<Attribute>,
}

impl Media {
    /// A section with no media-level lines yet.
    pub fn new(media: &str, port: u16, proto: &str, formats: Vec<String>) -> Self {
        Self {
            media: media.into(),
            port,
            port_count: None,
            proto: proto.into(),
            formats,
            title: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
        }
    }

    /// The values of every `a=<name>:...` line, in order.
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        attribute_values(&self.attributes, name)
    }

    /// Whether a property attribute such as `a=sendonly` is present.
    pub fn has_flag(&self, name: &str) -> bool {
        has_flag(&self.attributes, name)
    }
}

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub origin: Origin,
    pub session_name: String,
    pub information: Option<String>,
    pub uri: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub connection: Option<Connection>,
    pub bandwidths: Vec<Bandwidth>,
    pub timings: Vec<Timing>,
    pub time_zones: Option<String>,
    pub key: Option<String>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
}

impl Sdp {
    /// A minimal description: `v=0`, the origin, `s=`, `t=0 0` (RFC 8866
    /// 5.9: an unbounded session), no media.
    pub fn new(origin: Origin, session_name: &str) -> Self {
        Self {
            origin,
            session_name: session_name.into(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timings: vec![Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            }],
            time_zones: None,
            key: None,
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// The serialized form; same as `to_string()`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Whether a session-level property attribute is present.
    pub fn has_flag(&self, name: &str) -> bool {
        has_flag(&self.attributes, name)
    }

    /// The connection that applies to a media section: its own first `c=`
    /// or else the session-level one (RFC 8866 5.7).
    pub fn connection_for<'a>(&'a self, media: &'a Media) -> Option<&'a Connection> {
        media.connections.first().or(self.connection.as_ref())
    }

    /// The description with the origin's version ignored: two SDPs that
    /// compare equal here describe the same session (RFC 3264 section 8).
    pub fn same_session_as(&self, other: &Sdp) -> bool {
        let mut a = self.clone();
        a.origin.session_version = other.origin.session_version;
        &a == other
    }
}

fn attribute_values<'a>(
    attrs: &'a [Attribute],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    attrs
        .iter()
        .filter(move |a| a.name == name)
        .filter_map(|a| a.value.as_deref())
}

fn has_flag(attrs: &[Attribute], name: &str) -> bool {
    attrs.iter().any(|a| a.name == name)
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        )
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

fn line(f: &mut fmt::Formatter<'_>, kind: char, value: &dyn fmt::Display) -> fmt::Result {
    // RFC 8866 5: every line ends in CRLF.
    write!(f, "{kind}={value}\r\n")
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = match self.port_count {
            Some(n) => format!("{}/{n}", self.port),
            None => self.port.to_string(),
        };
        let m = format!(
            "{} {port} {} {}",
            self.media,
            self.proto,
            self.formats.join(" ")
        );
        line(f, 'm', &m)?;
        if let Some(t) = &self.title {
            line(f, 'i', t)?;
        }
        for c in &self.connections {
            line(f, 'c', c)?;
        }
        for b in &self.bandwidths {
            line(f, 'b', &format_args!("{}:{}", b.bw_type, b.bandwidth))?;
        }
        if let Some(k) = &self.key {
            line(f, 'k', k)?;
        }
        for a in &self.attributes {
            line(f, 'a', a)?;
        }
        Ok(())
    }
}

impl fmt::Display for Sdp {
    /// Lines in the order RFC 8866 section 5 prescribes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        line(f, 'v', &0)?;
        line(f, 'o', &self.origin)?;
        line(f, 's', &self.session_name)?;
        if let Some(i) = &self.information {
            line(f, 'i', i)?;
        }
        if let Some(u) = &self.uri {
            line(f, 'u', u)?;
        }
        for e in &self.emails {
            line(f, 'e', e)?;
        }
        for p in &self.phones {
            line(f, 'p', p)?;
        }
        if let Some(c) = &self.connection {
            line(f, 'c', c)?;
        }
        for b in &self.bandwidths {
            line(f, 'b', &format_args!("{}:{}", b.bw_type, b.bandwidth))?;
        }
        for t in &self.timings {
            line(f, 't', &format_args!("{} {}", t.start, t.stop))?;
            for r in &t.repeats {
                line(f, 'r', r)?;
            }
        }
        if let Some(z) = &self.time_zones {
            line(f, 'z', z)?;
        }
        if let Some(k) = &self.key {
            line(f, 'k', k)?;
        }
        for a in &self.attributes {
            line(f, 'a', a)?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}
