//! Offer/answer for sensor streams (RFC 3264, docs/protocol.md "Offer/answer").
//!
//! The agent is the media sender ([`Role::Sender`]), the collector the
//! receiver ([`Role::Receiver`]). Either may offer: the agent in its
//! INVITE (or in a 2xx to an INVITE without SDP) and in re-INVITEs; the
//! collector in re-INVITEs that change rate or channels.

use super::model::{Attribute, Connection, Media, Origin, Sdp, addr_type};
use super::stream::{EventFormat, SampleFormat, StreamDescription, StreamError};
use crate::sip::ids::IdGenerator;
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// The transport of every sensor stream (RFC 3551 profile).
pub const PROTO: &str = "RTP/AVP";
/// The media type of every sensor stream.
pub const MEDIA: &str = "application";

/// Which end of the stream this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The agent: sends samples.
    Sender,
    /// The collector: receives them.
    Receiver,
}

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
    fn of(sdp: &Sdp, media: &Media) -> Direction {
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

    fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    fn receives(self) -> bool {
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
}

impl LocalMedia {
    pub fn new(rtp: SocketAddr) -> Self {
        Self {
            rtp,
            rtcp: None,
            ssrc: None,
            cname: None,
        }
    }
}

/// Where the peer's RTP and RTCP go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
}

/// The outcome of a completed offer/answer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    pub description: StreamDescription,
    /// This side's direction: `SendOnly` for a streaming agent, `RecvOnly`
    /// for a collector, `Inactive` while on hold.
    pub direction: Direction,
    /// The peer's transport; `None` when it is on hold (RFC 3264 8.4).
    pub remote: Option<RemoteMedia>,
    /// The peer's SSRC and CNAME from `a=ssrc`, when given.
    pub remote_ssrc: Option<u32>,
    pub remote_cname: Option<String>,
}

impl Agreed {
    /// Whether RTP should flow now.
    pub fn is_active(&self) -> bool {
        self.direction != Direction::Inactive && self.remote.is_some()
    }
}

/// How the collector narrows an offered stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceivePolicy {
    /// Sampled channels to keep, by name (case-insensitive); `None` keeps all.
    pub channels: Option<Vec<String>>,
    /// Event inputs to keep; `None` keeps all.
    pub inputs: Option<Vec<String>>,
    /// Highest sample rate taken. The answer multiplies the offered period
    /// by the smallest integer that brings the rate to or below this.
    pub max_rate_hz: Option<f64>,
    /// Samples per packet wanted instead of the offered number.
    pub samples_per_packet: Option<u8>,
}

/// How to answer an offer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerPolicy {
    /// The collector answering the agent: take what is offered, narrowed.
    Receive(ReceivePolicy),
    /// The agent answering the collector: send what was asked for within
    /// what the device can produce.
    Send { capabilities: StreamDescription },
}

/// Why an offer cannot be accepted or an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NegotiationError {
    #[error("malformed SDP: {0}")]
    Sdp(#[from] super::parse::SdpError),
    #[error("no sensor stream offered ({0})")]
    NoSensorStream(String),
    #[error("sensor stream over {0}, only {PROTO} is supported")]
    Transport(String),
    #[error("sensor stream description: {0}")]
    Stream(#[from] StreamError),
    #[error("none of the offered channels or inputs is wanted")]
    NothingSelected,
    #[error("sample rate cannot be brought below the limit: {0}")]
    Rate(&'static str),
    #[error("direction {0} does not fit a {1} sensor stream")]
    Direction(&'static str, &'static str),
    #[error("connection address unusable: {0}")]
    Address(String),
    #[error("the peer declined the sensor stream (port 0)")]
    Declined,
    #[error("the peer cannot take sensor streams: {0}")]
    NotSensorPeer(String),
    #[error("the answer does not fit the offer: {0}")]
    AnswerMismatch(&'static str),
}

impl NegotiationError {
    /// The SIP status to reject an offer with: 400 when the SDP cannot be
    /// parsed (RFC 3261 21.4.1), 488 otherwise (RFC 3261 21.4.26).
    pub fn status_code(&self) -> u16 {
        match self {
            NegotiationError::Sdp(_) => 400,
            _ => 488,
        }
    }

    /// The Warning code (RFC 3261 20.43) that says why.
    pub fn warning_code(&self) -> u16 {
        match self {
            NegotiationError::Sdp(_) => 399,
            NegotiationError::NoSensorStream(_) | NegotiationError::NothingSelected => 304,
            NegotiationError::Transport(_) => 302,
            NegotiationError::Stream(e) => e.warning_code(),
            NegotiationError::Rate(_) => 305,
            NegotiationError::Address(_) => 301,
            _ => 399,
        }
    }

    /// A Warning header value, `<code> <agent> "<text>"` (RFC 3261 20.43),
    /// with the text escaped as a quoted-string (RFC 3261 25.1).
    pub fn warning_header(&self, warn_agent: &str) -> String {
        let mut text = String::new();
        for c in self.to_string().chars() {
            match c {
                '"' | '\\' => {
                    text.push('\\');
                    text.push(c);
                }
                c if c.is_control() => text.push(' '),
                c => text.push(c),
            }
        }
        format!("{} {warn_agent} \"{text}\"", self.warning_code())
    }

    /// True when the peer simply does not do sensor streams (a phone): the
    /// agent reports this and backs off instead of retrying at once.
    pub fn peer_cannot_take_sensor_streams(&self) -> bool {
        matches!(
            self,
            NegotiationError::Declined
                | NegotiationError::NotSensorPeer(_)
                | NegotiationError::NoSensorStream(_)
        )
    }
}

/// This side's `o=` line across a session: the session id stays, the
/// version goes up by one whenever the SDP changes (RFC 3264 section 8).
#[derive(Debug, Clone)]
pub struct LocalSdp {
    username: String,
    session_id: u64,
    version: u64,
    address: IpAddr,
    last: Option<Sdp>,
}

impl LocalSdp {
    /// A fresh origin with a random session id (RFC 8866 5.2: unique).
    pub fn new(username: &str, address: IpAddr, ids: &mut IdGenerator) -> Self {
        let id = (u64::from(ids.u32()) << 31) | u64::from(ids.u32() >> 1);
        Self::with_session_id(username, address, id)
    }

    /// An origin with a given session id (RFC 8866 5.2 suggests an NTP
    /// timestamp; any unique number will do).
    pub fn with_session_id(username: &str, address: IpAddr, id: u64) -> Self {
        Self {
            username: if username.is_empty() || username.contains(' ') {
                "-".into()
            } else {
                username.into()
            },
            session_id: id,
            version: 1,
            address,
            last: None,
        }
    }

    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Wraps media sections into a complete SDP with the right version.
    pub fn stamp(&mut self, media: Vec<Media>) -> Sdp {
        let origin = Origin {
            username: self.username.clone(),
            session_id: self.session_id,
            session_version: self.version,
            net_type: "IN".into(),
            addr_type: addr_type(self.address).into(),
            address: self.address.to_string(),
        };
        let mut sdp = Sdp::new(origin, "sipsensor");
        sdp.connection = Some(Connection::for_ip(self.address));
        sdp.media = media;
        drop_redundant_c(&mut sdp);
        if let Some(last) = &self.last
            && !last.same_session_as(&sdp)
        {
            self.version += 1;
            sdp.origin.session_version = self.version;
        }
        self.last = Some(sdp.clone());
        sdp
    }
}

fn sensor_media(desc: &StreamDescription, local: &LocalMedia, direction: Direction) -> Media {
    let (formats, attrs) = desc.to_media_parts();
    let mut m = Media::new(MEDIA, local.rtp.port(), PROTO, formats);
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
    m.attributes.push(Attribute::flag(direction.attribute()));
    m
}

/// Removes a media-level c= equal to the session-level one.
fn drop_redundant_c(sdp: &mut Sdp) {
    let session = sdp.connection.clone();
    for m in &mut sdp.media {
        if m.connections.len() == 1 && Some(&m.connections[0]) == session.as_ref() {
            m.connections.clear();
        }
    }
}

/// The offer for a stream (RFC 3264 section 5). The agent offers
/// `sendonly`, the collector `recvonly`.
pub fn offer(
    desc: &StreamDescription,
    role: Role,
    local: &LocalMedia,
    origin: &mut LocalSdp,
) -> Result<Sdp, NegotiationError> {
    desc.validate()?;
    let direction = match role {
        Role::Sender => Direction::SendOnly,
        Role::Receiver => Direction::RecvOnly,
    };
    let media = sensor_media(desc, local, direction);
    Ok(origin.stamp(vec![media]))
}

/// The first `m=` section that carries a sensor format, with its index.
fn find_sensor(sdp: &Sdp) -> Result<(usize, StreamDescription), NegotiationError> {
    let mut seen = Vec::new();
    for (i, m) in sdp.media.iter().enumerate() {
        if m.port == 0 {
            seen.push(format!("{} (disabled)", m.media));
            continue;
        }
        if m.media != MEDIA {
            seen.push(format!("{} {}", m.media, m.proto));
            continue;
        }
        match StreamDescription::from_media(m)? {
            Some(desc) if m.proto == PROTO => return Ok((i, desc)),
            Some(_) => return Err(NegotiationError::Transport(m.proto.clone())),
            None => seen.push(format!("{} {} without a sensor format", m.media, m.proto)),
        }
    }
    if seen.is_empty() {
        seen.push("no media at all".into());
    }
    Err(NegotiationError::NoSensorStream(seen.join(", ")))
}

/// The peer's RTP/RTCP addresses for a media section; `None` on hold
/// (RFC 3264 8.4: c= 0.0.0.0 in old offers).
fn remote_of(sdp: &Sdp, m: &Media) -> Result<Option<RemoteMedia>, NegotiationError> {
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
fn remote_ssrc(m: &Media) -> (Option<u32>, Option<String>) {
    for v in m.attribute_values("ssrc") {
        let (id, rest) = v.split_once(' ').unwrap_or((v, ""));
        if let Ok(id) = id.parse::<u32>() {
            let cname = rest.strip_prefix("cname:").map(str::to_string);
            return (Some(id), cname);
        }
    }
    (None, None)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u32, b: u32) -> Option<u32> {
    let (a, b) = (u64::from(a), u64::from(b));
    u32::try_from(a / gcd(a, b).max(1) * b).ok()
}

/// The period the receiver's rate cap leads to: the offered period times
/// the smallest k with `clock / (period * k) <= max_rate`.
fn capped_period(clock: u32, period: u32, max_rate: f64) -> Result<u32, NegotiationError> {
    if !(max_rate.is_finite() && max_rate > 0.0) {
        return Err(NegotiationError::Rate("the cap is not a positive number"));
    }
    let exact = f64::from(clock) / (f64::from(period) * max_rate);
    let mut k = (exact - 1e-9).ceil().max(1.0);
    // Guard against rounding just below the cap's boundary.
    while f64::from(clock) / (f64::from(period) * k) > max_rate * (1.0 + 1e-12) {
        k += 1.0;
    }
    let p = f64::from(period) * k;
    if p > f64::from(i32::MAX) {
        return Err(NegotiationError::Rate("the period would exceed 2^31 ticks"));
    }
    Ok(p as u32)
}

fn keep(wanted: &Option<Vec<String>>, name: &str) -> bool {
    wanted
        .as_ref()
        .is_none_or(|w| w.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

fn narrow_for_receiver(
    offered: &StreamDescription,
    policy: &ReceivePolicy,
) -> Result<StreamDescription, NegotiationError> {
    let samples = match &offered.samples {
        Some(s) => {
            let channels: Vec<_> = s
                .channels
                .iter()
                .filter(|c| keep(&policy.channels, &c.name))
                .cloned()
                .collect();
            if channels.is_empty() {
                None
            } else {
                let period = match policy.max_rate_hz {
                    Some(cap) => capped_period(offered.clock_rate, s.period, cap)?,
                    None => s.period,
                };
                Some(SampleFormat {
                    payload_type: s.payload_type,
                    period,
                    samples_per_packet: policy.samples_per_packet.unwrap_or(s.samples_per_packet),
                    channels,
                })
            }
        }
        None => None,
    };
    let events = offered.events.as_ref().and_then(|e| {
        let inputs: Vec<_> = e
            .inputs
            .iter()
            .filter(|n| keep(&policy.inputs, n))
            .cloned()
            .collect();
        (!inputs.is_empty()).then_some(EventFormat {
            payload_type: e.payload_type,
            inputs,
        })
    });
    if samples.is_none() && events.is_none() {
        return Err(NegotiationError::NothingSelected);
    }
    Ok(StreamDescription {
        clock_rate: offered.clock_rate,
        config: offered.config,
        samples,
        events,
    })
}

fn narrow_for_sender(
    asked: &StreamDescription,
    cap: &StreamDescription,
) -> Result<StreamDescription, NegotiationError> {
    if asked.clock_rate != cap.clock_rate {
        return Err(StreamError::ClockMismatch {
            samples: cap.clock_rate,
            events: asked.clock_rate,
        }
        .into());
    }
    let samples = match (&asked.samples, &cap.samples) {
        (Some(a), Some(c)) => {
            // Asked-for order, our units and scales.
            let channels: Vec<_> = a
                .channels
                .iter()
                .filter_map(|want| {
                    c.channels
                        .iter()
                        .find(|have| have.name.eq_ignore_ascii_case(&want.name))
                })
                .cloned()
                .collect();
            if channels.is_empty() {
                None
            } else {
                // A multiple of both: what was asked and what we can sample.
                let period = lcm(a.period, c.period)
                    .ok_or(NegotiationError::Rate("no common sample period"))?;
                Some(SampleFormat {
                    payload_type: a.payload_type,
                    period,
                    samples_per_packet: a.samples_per_packet,
                    channels,
                })
            }
        }
        _ => None,
    };
    let events = match (&asked.events, &cap.events) {
        (Some(a), Some(c)) => {
            let inputs: Vec<_> = a
                .inputs
                .iter()
                .filter(|n| c.inputs.iter().any(|h| h.eq_ignore_ascii_case(n)))
                .cloned()
                .collect();
            (!inputs.is_empty()).then_some(EventFormat {
                payload_type: a.payload_type,
                inputs,
            })
        }
        _ => None,
    };
    if samples.is_none() && events.is_none() {
        return Err(NegotiationError::NothingSelected);
    }
    Ok(StreamDescription {
        clock_rate: asked.clock_rate,
        config: asked.config,
        samples,
        events,
    })
}

/// Answers an offer (RFC 3264 section 6): one answer `m=` per offered one,
/// the first sensor stream accepted (narrowed by `policy`), every other
/// stream rejected with port 0.
pub fn answer(
    offer: &Sdp,
    policy: &AnswerPolicy,
    local: &LocalMedia,
    origin: &mut LocalSdp,
) -> Result<(Sdp, Agreed), NegotiationError> {
    let (index, offered) = find_sensor(offer)?;
    let m = &offer.media[index];
    let offered_dir = Direction::of(offer, m);
    let remote = remote_of(offer, m)?;
    if let Some(r) = remote
        && r.rtp.is_ipv4() != local.rtp.is_ipv4()
    {
        return Err(NegotiationError::Address(format!(
            "the offer uses {} and this side {}",
            r.rtp.ip(),
            local.rtp.ip()
        )));
    }
    let (role, agreed_desc) = match policy {
        AnswerPolicy::Receive(p) => (Role::Receiver, narrow_for_receiver(&offered, p)?),
        AnswerPolicy::Send { capabilities } => {
            (Role::Sender, narrow_for_sender(&offered, capabilities)?)
        }
    };
    agreed_desc.validate()?;
    // RFC 3264 6.1: the answer's direction mirrors the offer's.
    let direction = match (role, offered_dir) {
        (_, Direction::Inactive) => Direction::Inactive,
        (Role::Receiver, d) if d.sends() => Direction::RecvOnly,
        (Role::Sender, d) if d.receives() => Direction::SendOnly,
        (Role::Receiver, d) => return Err(NegotiationError::Direction(d.attribute(), "receiving")),
        (Role::Sender, d) => return Err(NegotiationError::Direction(d.attribute(), "sending")),
    };
    let mut media = Vec::with_capacity(offer.media.len());
    for (i, om) in offer.media.iter().enumerate() {
        if i == index {
            media.push(sensor_media(&agreed_desc, local, direction));
        } else {
            // RFC 3264 6: rejected streams keep their place, with port 0.
            media.push(Media::new(&om.media, 0, &om.proto, om.formats.clone()));
        }
    }
    let sdp = origin.stamp(media);
    let (remote_ssrc, remote_cname) = remote_ssrc(m);
    let agreed = Agreed {
        description: agreed_desc,
        direction,
        remote,
        remote_ssrc,
        remote_cname,
    };
    Ok((sdp, agreed))
}

/// The offerer's side of the exchange: checks the answer against the offer
/// and returns what was agreed (RFC 3264 section 7).
pub fn apply_answer(offer: &Sdp, answer: &Sdp, role: Role) -> Result<Agreed, NegotiationError> {
    let (index, offered) = find_sensor(offer)?;
    if answer.media.len() != offer.media.len() {
        // RFC 3264 6: exactly one answer m= per offered m=.
        return Err(NegotiationError::NotSensorPeer(format!(
            "{} media sections answered for {} offered",
            answer.media.len(),
            offer.media.len()
        )));
    }
    let am = &answer.media[index];
    if am.port == 0 {
        return Err(NegotiationError::Declined);
    }
    if am.media != MEDIA || am.proto != PROTO {
        return Err(NegotiationError::NotSensorPeer(format!(
            "answered with {} {}",
            am.media, am.proto
        )));
    }
    let got = StreamDescription::from_media(am)?.ok_or_else(|| {
        NegotiationError::NotSensorPeer("the answer lists no sensor format".into())
    })?;
    check_answer(&offered, &got, role)?;
    let answered_dir = Direction::of(answer, am);
    let direction = match (role, answered_dir) {
        (_, Direction::Inactive) => Direction::Inactive,
        (Role::Sender, d) if d.receives() => Direction::SendOnly,
        (Role::Receiver, d) if d.sends() => Direction::RecvOnly,
        (_, d) => return Err(NegotiationError::Direction(d.attribute(), "answered")),
    };
    let offered_dir = Direction::of(offer, &offer.media[index]);
    let direction = if offered_dir == Direction::Inactive {
        Direction::Inactive
    } else {
        direction
    };
    let (remote_ssrc, remote_cname) = remote_ssrc(am);
    Ok(Agreed {
        description: got,
        direction,
        remote: remote_of(answer, am)?,
        remote_ssrc,
        remote_cname,
    })
}

/// The answer may only narrow the offer (docs/protocol.md "Answer rules").
fn check_answer(
    offered: &StreamDescription,
    got: &StreamDescription,
    role: Role,
) -> Result<(), NegotiationError> {
    use NegotiationError::AnswerMismatch as M;
    if got.clock_rate != offered.clock_rate {
        return Err(M("the clock rate changed"));
    }
    if got.config != offered.config {
        return Err(M("the cfg number changed"));
    }
    match (&offered.samples, &got.samples) {
        (_, None) => {}
        (None, Some(_)) => return Err(M("samples were not offered")),
        (Some(o), Some(g)) => {
            if g.payload_type != o.payload_type {
                return Err(M("the samples payload type changed"));
            }
            if !g.period.is_multiple_of(o.period) {
                return Err(M("the period is not a multiple of the offered one"));
            }
            for c in &g.channels {
                let Some(oc) = o
                    .channels
                    .iter()
                    .find(|oc| oc.name.eq_ignore_ascii_case(&c.name))
                else {
                    return Err(M("a channel was not offered"));
                };
                // The sender defines units and scales; a receiver's answer
                // must repeat them.
                if role == Role::Sender && (oc.unit != c.unit || oc.scale != c.scale) {
                    return Err(M("a channel's unit or scale changed"));
                }
            }
        }
    }
    match (&offered.events, &got.events) {
        (_, None) => {}
        (None, Some(_)) => return Err(M("events were not offered")),
        (Some(o), Some(g)) => {
            if g.payload_type != o.payload_type {
                return Err(M("the events payload type changed"));
            }
            if !g
                .inputs
                .iter()
                .all(|n| o.inputs.iter().any(|m| m.eq_ignore_ascii_case(n)))
            {
                return Err(M("an input was not offered"));
            }
        }
    }
    Ok(())
}

impl StreamDescription {
    /// This description with the config number a re-offer must carry: one
    /// more than `current`'s when anything else differs, the same otherwise.
    pub fn next_config_after(mut self, current: &StreamDescription) -> Self {
        self.config = current.config;
        if &self != current {
            self.config = current.config.wrapping_add(1);
        }
        self
    }
}
