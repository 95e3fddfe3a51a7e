//! Offer/answer for sensor streams (RFC 3264, docs/protocol.md "Offer/answer").
//!
//! The agent is the media sender ([`Role::Sender`]), the collector the
//! receiver ([`Role::Receiver`]). Either may offer: the agent in its
//! INVITE (or in a 2xx to an INVITE without SDP) and in re-INVITEs; the
//! collector in re-INVITEs that change rate or channels.

use super::model::{Media, Sdp};
use super::narrow::{check_answer, narrow_for_receiver, narrow_for_sender};
use super::origin::LocalSdp;
use super::stream::{StreamDescription, StreamError};
use super::transport::{Direction, LocalMedia, RemoteMedia, remote_of, remote_ssrc, sensor_media};
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
