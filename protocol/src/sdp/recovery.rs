//! Acknowledgement, repair and backfill in SDP (docs/protocol.md 11.1):
//! the sample-instant header extension (`a=extmap`, RFC 8285 5), RTX
//! (`rtx/<clock>` with `apt` and `rtx-time`, RFC 4588 8.1) with generic
//! NACK (`a=rtcp-fb:<pt> nack`, RFC 4585 4.2), and the backfill format
//! (`sensor-backfill/<clock>` with its `mark`, `oldest` and `max-rate`).
//!
//! Each is on only when both SDPs carry it: an answerer that does not
//! know these lines ignores them (RFC 3264 6, RFC 8866 5.13) and leaves
//! them out of its answer, so a peer without them keeps streaming as
//! before. Lines of these features that do not parse turn the feature off
//! for the session rather than refusing the stream.

use super::model::{Attribute, Media};
use super::stream::StreamDescription;
use super::terms::Role;
use crate::rtp::SAMPLE_INSTANT_URI;
use std::time::Duration;

/// rtpmap encoding name of RTX (RFC 4588 8.1).
pub const ENCODING_RTX: &str = "rtx";
/// rtpmap encoding name of the backfill format.
pub const ENCODING_BACKFILL: &str = "sensor-backfill";
/// The `a=extmap` ID an offer gives the sample instant when it is free.
pub const DEFAULT_INSTANT_ID: u8 = 1;

/// What one side supports and states about recovery, for its offer or
/// its answer. `Default` is nothing: the SDP of a peer without recovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverySupport {
    /// Sends (agent) or reads (collector) the sample instant extension.
    pub instant: bool,
    pub rtx: Option<RtxSupport>,
    /// Backfill needs the sample instant: it is offered only with it.
    pub backfill: Option<BackfillSupport>,
}

/// RTX and NACK, as one side states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtxSupport {
    /// Sender: how long it keeps packets; receiver: how long it is
    /// willing to wait (informative). RFC 4588 8.1 `rtx-time`, in ms.
    pub rtx_time: Duration,
    /// The sender's RTX SSRC, announced with `a=ssrc` and `a=ssrc-group:FID`
    /// (RFC 5576 4.2) next to the live one.
    pub ssrc: Option<u32>,
}

/// Backfill, as one side states it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSupport {
    /// Collector: its committed-through mark for this sensor, ns since the
    /// Unix epoch; 0 when it holds nothing.
    pub mark: Option<u64>,
    /// Agent: the oldest instant its spool holds, if it holds any.
    pub oldest: Option<u64>,
    /// Collector: the highest backfill byte rate it takes.
    pub max_rate: Option<u64>,
    /// Agent: the backfill stream's SSRC (`a=ssrc`).
    pub ssrc: Option<u32>,
}

/// What an exchange agreed, with the peer's statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgreedRecovery {
    /// The `a=extmap` ID of the sample instant, when both use it.
    pub instant_id: Option<u8>,
    pub rtx: Option<AgreedRtx>,
    pub backfill: Option<AgreedBackfill>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreedRtx {
    /// `(apt, rtx payload type)` pairs.
    pub payload_types: Vec<(u8, u8)>,
    /// The sender's `rtx-time`.
    pub rtx_time: Duration,
    /// The sender's RTX SSRC, when announced.
    pub ssrc: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreedBackfill {
    pub payload_type: u8,
    /// The receiver's committed-through mark (0: none).
    pub mark: u64,
    /// The sender's oldest spooled instant.
    pub oldest: Option<u64>,
    /// The receiver's rate cap.
    pub max_rate: Option<u64>,
    /// The sender's backfill SSRC.
    pub ssrc: Option<u32>,
}

/// The recovery lines of one SDP, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Stated {
    instant_id: Option<u8>,
    rtx: Vec<(u8, u8, Option<Duration>)>,
    nack: Vec<u8>,
    backfill: Option<(u8, BackfillSupport)>,
    rtx_ssrc: Option<u32>,
}

/// `a=fmtp:<pt> k=v;...` parameters of one payload type.
fn fmtp_params<'a>(media: &'a Media, pt: u8) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    media
        .attribute_values("fmtp")
        .filter_map(move |v| {
            let (p, rest) = v.split_once(' ')?;
            (p.parse::<u8>().ok()? == pt).then_some(rest)
        })
        .flat_map(|rest| rest.split(';'))
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim(), v.trim()))
        })
}

/// Payload types of the m= line whose rtpmap names `encoding`.
fn formats_named<'a>(media: &'a Media, encoding: &'a str) -> impl Iterator<Item = u8> + 'a {
    media.attribute_values("rtpmap").filter_map(move |v| {
        let (p, rest) = v.split_once(' ')?;
        let pt = p.parse::<u8>().ok()?;
        let enc = rest.trim().split('/').next()?;
        (enc.eq_ignore_ascii_case(encoding) && media.formats.iter().any(|f| f == p)).then_some(pt)
    })
}

fn read(media: &Media) -> Stated {
    let mut s = Stated {
        // RFC 8285 5: `a=extmap:<id>[/<direction>] <uri> [<attributes>]`.
        instant_id: media.attribute_values("extmap").find_map(|v| {
            let mut f = v.split_whitespace();
            let id = f.next()?.split('/').next()?.parse::<u8>().ok()?;
            (f.next()? == SAMPLE_INSTANT_URI && (1..=14).contains(&id)).then_some(id)
        }),
        ..Stated::default()
    };
    for pt in formats_named(media, ENCODING_RTX) {
        let mut apt = None;
        let mut rtx_time = None;
        for (k, v) in fmtp_params(media, pt) {
            match k {
                "apt" => apt = v.parse::<u8>().ok(),
                "rtx-time" => rtx_time = v.parse::<u64>().ok().map(Duration::from_millis),
                _ => {}
            }
        }
        // RFC 4588 8.1: apt is required; without it the RTX format is unusable.
        if let Some(apt) = apt {
            s.rtx.push((apt, pt, rtx_time));
        }
    }
    // RFC 4585 4.2: `a=rtcp-fb:<pt>|* nack`.
    for v in media.attribute_values("rtcp-fb") {
        let mut f = v.split_whitespace();
        let (Some(pt), Some("nack"), None) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if pt == "*" {
            s.nack
                .extend(media.formats.iter().filter_map(|f| f.parse::<u8>().ok()));
        } else if let Ok(pt) = pt.parse::<u8>() {
            s.nack.push(pt);
        }
    }
    if let Some(pt) = formats_named(media, ENCODING_BACKFILL).next() {
        let mut b = BackfillSupport::default();
        let mut valid = true;
        for (k, v) in fmtp_params(media, pt) {
            let n = v.parse::<u64>().ok();
            valid &= n.is_some() || !matches!(k, "mark" | "oldest" | "max-rate");
            match k {
                "mark" => b.mark = n,
                "oldest" => b.oldest = n,
                "max-rate" => b.max_rate = n,
                _ => {}
            }
        }
        if valid {
            s.backfill = Some((pt, b));
        }
    }
    // RFC 5576 4.2: `a=ssrc-group:FID <primary> <rtx>`.
    s.rtx_ssrc = media.attribute_values("ssrc-group").find_map(|v| {
        let mut f = v.split_whitespace();
        (f.next()? == "FID").then_some(())?;
        f.next()?;
        f.next()?.parse::<u32>().ok()
    });
    s
}

/// The backfill stream's SSRC: an `a=ssrc` line that is neither the
/// first (live) one nor the RTX one.
fn backfill_ssrc(media: &Media, rtx: Option<u32>) -> Option<u32> {
    media
        .attribute_values("ssrc")
        .filter_map(|v| v.split(' ').next()?.parse::<u32>().ok())
        .skip(1)
        .find(|s| Some(*s) != rtx)
}

/// The lowest dynamic payload types the description does not use.
fn free_payload_types(desc: &StreamDescription) -> impl Iterator<Item = u8> {
    let used = [
        desc.samples.as_ref().map(|s| s.payload_type),
        desc.events.as_ref().map(|e| e.payload_type),
    ];
    (96..=127u8).filter(move |pt| !used.contains(&Some(*pt)))
}

/// The lines an offer adds for `support`, choosing payload types the
/// description leaves free.
pub(super) fn offer_terms(desc: &StreamDescription, support: &RecoverySupport) -> Stated {
    let mut free = free_payload_types(desc);
    let mut s = Stated::default();
    if support.instant {
        s.instant_id = Some(DEFAULT_INSTANT_ID);
    }
    if let Some(r) = &support.rtx {
        let originals = [
            desc.samples.as_ref().map(|f| f.payload_type),
            desc.events.as_ref().map(|f| f.payload_type),
        ];
        for apt in originals.into_iter().flatten() {
            if let Some(pt) = free.next() {
                s.rtx.push((apt, pt, Some(r.rtx_time)));
                s.nack.push(apt);
            }
        }
        s.rtx_ssrc = r.ssrc;
    }
    if let (Some(b), true) = (&support.backfill, support.instant)
        && let Some(pt) = free.next()
    {
        s.backfill = Some((pt, b.clone()));
    }
    s
}

/// What an answerer keeps of an offer: each feature both support, with
/// the offer's numbers and its own statements.
pub(super) fn answer_terms(offered: &Media, support: &RecoverySupport) -> Stated {
    let theirs = read(offered);
    let mut s = Stated::default();
    if support.instant {
        s.instant_id = theirs.instant_id;
    }
    if let Some(r) = &support.rtx {
        for &(apt, pt, _) in &theirs.rtx {
            if theirs.nack.contains(&apt) {
                s.rtx.push((apt, pt, Some(r.rtx_time)));
                s.nack.push(apt);
            }
        }
        if !s.rtx.is_empty() {
            s.rtx_ssrc = r.ssrc;
        }
    }
    if let (Some(b), Some((pt, _)), Some(_)) = (&support.backfill, &theirs.backfill, s.instant_id) {
        s.backfill = Some((*pt, b.clone()));
    }
    s
}

/// Writes `stated` into this side's sensor `m=` section: formats on the
/// m= line, rtpmap/fmtp/rtcp-fb/extmap lines and the extra SSRCs, before
/// the direction attribute.
pub(super) fn write(
    media: &mut Media,
    stated: &Stated,
    clock_rate: u32,
    live_ssrc: Option<u32>,
    cname: Option<&str>,
) {
    let mut lines = Vec::new();
    if let Some(id) = stated.instant_id {
        lines.push(Attribute::value(
            "extmap",
            format!("{id} {SAMPLE_INSTANT_URI}"),
        ));
    }
    for &pt in &stated.nack {
        lines.push(Attribute::value("rtcp-fb", format!("{pt} nack")));
    }
    for &(apt, pt, rtx_time) in &stated.rtx {
        media.formats.push(pt.to_string());
        lines.push(Attribute::value(
            "rtpmap",
            format!("{pt} {ENCODING_RTX}/{clock_rate}"),
        ));
        let time = rtx_time.map_or(String::new(), |t| format!(";rtx-time={}", t.as_millis()));
        lines.push(Attribute::value("fmtp", format!("{pt} apt={apt}{time}")));
    }
    if let Some((pt, b)) = &stated.backfill {
        media.formats.push(pt.to_string());
        lines.push(Attribute::value(
            "rtpmap",
            format!("{pt} {ENCODING_BACKFILL}/{clock_rate}"),
        ));
        let params: Vec<String> = [
            ("mark", b.mark),
            ("oldest", b.oldest),
            ("max-rate", b.max_rate),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v?)))
        .collect();
        if !params.is_empty() {
            lines.push(Attribute::value(
                "fmtp",
                format!("{pt} {}", params.join(";")),
            ));
        }
    }
    if let (Some(cname), Some(live)) = (cname, live_ssrc) {
        if let Some(rtx) = stated.rtx_ssrc.filter(|_| !stated.rtx.is_empty()) {
            lines.push(Attribute::value("ssrc", format!("{rtx} cname:{cname}")));
            lines.push(Attribute::value("ssrc-group", format!("FID {live} {rtx}")));
        }
        if let Some(bf) = stated.backfill.as_ref().and_then(|(_, b)| b.ssrc) {
            lines.push(Attribute::value("ssrc", format!("{bf} cname:{cname}")));
        }
    }
    // Keep the direction attribute last, where `sensor_media` put it.
    let at = media.attributes.len().saturating_sub(1);
    media.attributes.splice(at..at, lines);
}

/// What both SDPs carry, with each side's statements: `role` is this
/// side's, `ours` and `theirs` the sensor sections of its own and the
/// peer's SDP (offer or answer).
pub(super) fn agree(ours: &Media, theirs: &Media, role: Role) -> AgreedRecovery {
    let (o, t) = (read(ours), read(theirs));
    let instant_id = match (o.instant_id, t.instant_id) {
        (Some(_), Some(id)) => Some(id),
        _ => None,
    };
    let (sender, receiver, sender_media) = match role {
        Role::Sender => (&o, &t, ours),
        Role::Receiver => (&t, &o, theirs),
    };
    let pairs: Vec<(u8, u8)> = o
        .rtx
        .iter()
        .filter(|(apt, pt, _)| {
            t.rtx.iter().any(|(a, p, _)| a == apt && p == pt)
                && o.nack.contains(apt)
                && t.nack.contains(apt)
        })
        .map(|(apt, pt, _)| (*apt, *pt))
        .collect();
    let rtx = (!pairs.is_empty()).then(|| AgreedRtx {
        rtx_time: sender
            .rtx
            .iter()
            .find_map(|(_, _, t)| *t)
            .unwrap_or(Duration::ZERO),
        payload_types: pairs,
        ssrc: sender.rtx_ssrc,
    });
    let backfill = match (&o.backfill, &t.backfill, instant_id) {
        (Some((pt, _)), Some((tpt, _)), Some(_)) if pt == tpt => {
            let s = sender.backfill.as_ref().map(|(_, b)| b);
            let r = receiver.backfill.as_ref().map(|(_, b)| b);
            Some(AgreedBackfill {
                payload_type: *pt,
                mark: r.and_then(|b| b.mark).unwrap_or(0),
                oldest: s.and_then(|b| b.oldest),
                max_rate: r.and_then(|b| b.max_rate),
                ssrc: backfill_ssrc(sender_media, sender.rtx_ssrc),
            })
        }
        _ => None,
    };
    AgreedRecovery {
        instant_id,
        rtx,
        backfill,
    }
}

#[cfg(test)]
mod tests;
