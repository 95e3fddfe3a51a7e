//! This side's and the peer's media transport as SDP carries it: address,
//! ports, direction, SSRC.

use super::model::{Attribute, Connection, Media, Sdp, addr_type};
use super::sdes::CryptoAttribute;
use super::stream::StreamDescription;
use super::terms::{MEDIA, MediaSecurity, NegotiationError, PROTO, PROTO_SAVP};
use std::net::SocketAddr;

/// Stream direction attributes (RFC 8866 6.7 and RFC 3264 5.1/6.1), seen
/// from the side that wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Media-level attribute first, then session level; sendrecv when
    /// neither says (RFC 8866 6.7).
    pub(super) fn of(sdp: &Sdp, media: &Media) -> Direction {
        let pick = |has: &dyn Fn(&str) -> bool| {
            [
                Direction::SendOnly,
                Direction::RecvOnly,
                Direction::Inactive,
                Direction::SendRecv,
            ]
            .into_iter()
            .find(|d| has(d.attribute()))
        };
        pick(&|n| media.has_flag(n))
            .or_else(|| pick(&|n| sdp.has_flag(n)))
            .unwrap_or(Direction::SendRecv)
    }

    pub(super) fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub(super) fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// This side's media transport, written into its SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Where this side receives RTP (the collector). For a sendonly stream
    /// (the agent) RFC 3264 5.1 makes it the address whose port + 1 takes
    /// RTCP; the agent also sends its RTP from it (symmetric RTP, RFC 4961).
    pub rtp: SocketAddr,
    /// The RTCP address when it is not `rtp` port + 1 (RFC 3605).
    pub rtcp: Option<SocketAddr>,
    /// The sender's SSRC, signalled with `a=ssrc` (RFC 5576 4.1) so the
    /// receiver validates the source from the first packet.
    pub ssrc: Option<u32>,
    /// The RTCP CNAME to pair with `ssrc`.
    pub cname: Option<String>,
    /// Whether this side offers and takes SRTP.
    pub security: MediaSecurity,
}

impl LocalMedia {
    pub fn new(rtp: SocketAddr) -> Self {
        Self {
            rtp,
            rtcp: None,
            ssrc: None,
            cname: None,
            security: MediaSecurity::default(),
        }
    }
}

/// Where the peer's RTP and RTCP go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
}

/// This side's sensor `m=` section: `RTP/SAVP` with its `a=crypto` lines
/// when `crypto` has any (RFC 4568 5.1), `RTP/AVP` otherwise.
pub(super) fn sensor_media(
    desc: &StreamDescription,
    local: &LocalMedia,
    direction: Direction,
    crypto: &[CryptoAttribute],
) -> Media {
    let (formats, attrs) = desc.to_media_parts();
    let proto = if crypto.is_empty() { PROTO } else { PROTO_SAVP };
    let mut m = Media::new(MEDIA, local.rtp.port(), proto, formats);
    // Dropped again by `LocalSdp::stamp` when equal to the session c=.
    m.connections.push(Connection::for_ip(local.rtp.ip()));
    m.attributes = attrs;
    if let Some(rtcp) = local.rtcp
        && (rtcp.ip() != local.rtp.ip()
            || u32::from(rtcp.port()) != u32::from(local.rtp.port()) + 1)
    {
        // RFC 3605 section 2.1.
        m.attributes.push(Attribute::value(
            "rtcp",
            format!("{} IN {} {}", rtcp.port(), addr_type(rtcp.ip()), rtcp.ip()),
        ));
    }
    if let (Some(ssrc), Some(cname)) = (local.ssrc, &local.cname) {
        // RFC 5576 section 4.1.
        m.attributes
            .push(Attribute::value("ssrc", format!("{ssrc} cname:{cname}")));
    }
    for c in crypto {
        m.attributes.push(Attribute::value("crypto", c.value()));
    }
    m.attributes.push(Attribute::flag(direction.attribute()));
    m
}

/// The peer's RTP/RTCP addresses for a media section; `None` on hold
/// (RFC 3264 8.4: c= 0.0.0.0 in old offers).
pub(super) fn remote_of(sdp: &Sdp, m: &Media) -> Result<Option<RemoteMedia>, NegotiationError> {
    let conn = sdp
        .connection_for(m)
        .ok_or_else(|| NegotiationError::Address("no c= line".into()))?;
    let ip = conn
        .ip()
        .ok_or_else(|| NegotiationError::Address(format!("{conn} is not a unicast IP literal")))?;
    if ip.is_unspecified() {
        return Ok(None);
    }
    let rtp = SocketAddr::new(ip, m.port);
    // RFC 3605 2.1: `a=rtcp:<port> [IN IP4 <addr>]`; else port + 1
    // (RFC 3550 11).
    let rtcp = match m.attribute_values("rtcp").next() {
        Some(v) => {
            let mut f = v.split(' ').filter(|f| !f.is_empty());
            let port = f
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| NegotiationError::Address(format!("a=rtcp:{v}")))?;
            let addr = match (f.next(), f.next(), f.next()) {
                (Some(net), Some(ty), Some(a)) => Connection {
                    net_type: net.into(),
                    addr_type: ty.into(),
                    address: a.into(),
                }
                .ip()
                .ok_or_else(|| NegotiationError::Address(format!("a=rtcp:{v}")))?,
                _ => ip,
            };
            SocketAddr::new(addr, port)
        }
        None => SocketAddr::new(ip, m.port.wrapping_add(1)),
    };
    Ok(Some(RemoteMedia { rtp, rtcp }))
}

/// `a=ssrc:<id> cname:<value>` (RFC 5576 4.1): the first SSRC and its CNAME.
pub(super) fn remote_ssrc(m: &Media) -> (Option<u32>, Option<String>) {
    for v in m.attribute_values("ssrc") {
        let (id, rest) = v.split_once(' ').unwrap_or((v, ""));
        if let Ok(id) = id.parse::<u32>() {
            let cname = rest.strip_prefix("cname:").map(str::to_string);
            return (Some(id), cname);
        }
    }
    (None, None)
}
