//! Offer/answer for sensor streams (RFC 3264, docs/protocol.md "Offer/answer").
//!
//! The agent is the media sender ([`Role::Sender`]), the collector the
//! receiver ([`Role::Receiver`]). Either may offer: the agent in its
//! INVITE (or in a 2xx to an INVITE without SDP) and in re-INVITEs; the
//! collector in re-INVITEs that change rate or channels.

use super::keying::{agreed_keys, answer_crypto, offer_crypto};
use super::model::{Media, Sdp};
use super::narrow::{check_answer, narrow_for_receiver, narrow_for_sender};
use super::origin::LocalSdp;
use super::recovery::{self, AgreedRecovery, RecoverySupport};
use super::sdes::SrtpKeys;
use super::stream::StreamDescription;
use super::terms::{MEDIA, NegotiationError, PROTO, PROTO_SAVP, ReceivePolicy, Role};
use super::transport::{Direction, LocalMedia, RemoteMedia, remote_of, remote_ssrc, sensor_media};

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
    /// The SRTP keys when the stream is `RTP/SAVP`; `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
}

impl Agreed {
    /// Whether RTP should flow now.
    pub fn is_active(&self) -> bool {
        self.direction != Direction::Inactive && self.remote.is_some()
    }
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

/// The offer for a stream (RFC 3264 section 5). The agent offers
/// `sendonly`, the collector `recvonly`; `RTP/SAVP` with fresh keys when
/// `local.security` asks for SRTP.
pub fn offer(
    desc: &StreamDescription,
    role: Role,
    local: &LocalMedia,
    origin: &mut LocalSdp,
) -> Result<Sdp, NegotiationError> {
    offer_with_recovery(desc, role, local, &RecoverySupport::default(), origin)
}

/// [`offer`] with the acknowledgement, repair and backfill lines this
/// side supports (docs/protocol.md 11.1).
pub fn offer_with_recovery(
    desc: &StreamDescription,
    role: Role,
    local: &LocalMedia,
    support: &RecoverySupport,
    origin: &mut LocalSdp,
) -> Result<Sdp, NegotiationError> {
    desc.validate()?;
    let direction = match role {
        Role::Sender => Direction::SendOnly,
        Role::Receiver => Direction::RecvOnly,
    };
    let crypto = offer_crypto(local.security)?;
    let mut media = sensor_media(desc, local, direction, &crypto);
    let terms = recovery::offer_terms(desc, support);
    recovery::write(
        &mut media,
        &terms,
        desc.clock_rate,
        local.ssrc,
        local.cname.as_deref(),
    );
    Ok(origin.stamp(vec![media]))
}

/// The offerer's view of what recovery an exchange agreed (docs/protocol.md
/// 11.1), once [`apply_answer`] accepted the answer: nothing when either
/// SDP lacks it.
pub fn agreed_recovery(offer: &Sdp, answer: &Sdp, role: Role) -> AgreedRecovery {
    let Ok((index, _)) = find_sensor(offer) else {
        return AgreedRecovery::default();
    };
    match (offer.media.get(index), answer.media.get(index)) {
        (Some(o), Some(a)) if a.port != 0 => recovery::agree(o, a, role),
        _ => AgreedRecovery::default(),
    }
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
            Some(desc) if m.proto == PROTO || m.proto == PROTO_SAVP => return Ok((i, desc)),
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
    answer_with_recovery(offer, policy, local, &RecoverySupport::default(), origin)
        .map(|(sdp, agreed, _)| (sdp, agreed))
}

/// [`answer`] that also answers the offer's recovery lines with what
/// `support` allows, and says what was agreed (docs/protocol.md 11.1).
pub fn answer_with_recovery(
    offer: &Sdp,
    policy: &AnswerPolicy,
    local: &LocalMedia,
    support: &RecoverySupport,
    origin: &mut LocalSdp,
) -> Result<(Sdp, Agreed, AgreedRecovery), NegotiationError> {
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
    let srtp = answer_crypto(m, local.security)?;
    // RFC 3264 6.1: the answer's direction mirrors the offer's.
    let direction = match (role, offered_dir) {
        (_, Direction::Inactive) => Direction::Inactive,
        (Role::Receiver, d) if d.sends() => Direction::RecvOnly,
        (Role::Sender, d) if d.receives() => Direction::SendOnly,
        (Role::Receiver, d) => return Err(NegotiationError::Direction(d.attribute(), "receiving")),
        (Role::Sender, d) => return Err(NegotiationError::Direction(d.attribute(), "sending")),
    };
    let mut media = Vec::with_capacity(offer.media.len());
    let mut recovered = AgreedRecovery::default();
    for (i, om) in offer.media.iter().enumerate() {
        if i == index {
            let crypto: Vec<_> = srtp.iter().map(|(ours, _)| ours.clone()).collect();
            let mut ours = sensor_media(&agreed_desc, local, direction, &crypto);
            let terms = recovery::answer_terms(om, support);
            recovery::write(
                &mut ours,
                &terms,
                agreed_desc.clock_rate,
                local.ssrc,
                local.cname.as_deref(),
            );
            recovered = recovery::agree(&ours, om, role);
            media.push(ours);
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
        srtp: srtp.map(|(_, keys)| keys),
    };
    Ok((sdp, agreed, recovered))
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
    if am.media != MEDIA || (am.proto != PROTO && am.proto != PROTO_SAVP) {
        return Err(NegotiationError::NotSensorPeer(format!(
            "answered with {} {}",
            am.media, am.proto
        )));
    }
    let got = StreamDescription::from_media(am)?.ok_or_else(|| {
        NegotiationError::NotSensorPeer("the answer lists no sensor format".into())
    })?;
    check_answer(&offered, &got, role)?;
    let srtp = agreed_keys(&offer.media[index], am)?;
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
        srtp,
    })
}
