//! What the collector asks of a stream (docs/protocol.md 3): its policy on
//! an agent's offer, and the offers it makes itself (calling a sensor, a
//! re-INVITE that changes the rate).

use super::control::WantedStream;
use crate::config::{Policy, PolicyMode};
use sipsensor_protocol::{
    AnswerPolicy, ChannelSpec, EventFormat, LocalMedia, LocalSdp, NegotiationError, ReceivePolicy,
    SDP_MEDIA, SDP_PROTO, SDP_PROTO_SAVP, SampleFormat, Sdp, StreamDescription, StreamError,
    StreamRole, Unit, answer_offer, make_offer,
};
use std::net::SocketAddr;

mod recovery;

pub use recovery::{collector_support, with_backfill_mark};

/// Payload types of the collector's own offers (docs/protocol.md 2).
const SAMPLES_PT: u8 = 96;
const EVENTS_PT: u8 = 97;

/// The configured policy applied to one offered stream.
pub fn receive_policy(policy: &Policy, offered: &StreamDescription) -> ReceivePolicy {
    let mut p = ReceivePolicy::default();
    if policy.mode == PolicyMode::Cap {
        p.max_rate_hz = policy.max_rate_hz.map(|r| r.get());
        if let (Some(max), Some(s)) = (policy.max_channels, &offered.samples) {
            let keep = usize::try_from(max.get()).unwrap_or(usize::MAX);
            if s.channels.len() > keep {
                // The first channels the agent lists are the ones it puts first.
                p.channels = Some(
                    s.channels
                        .iter()
                        .take(keep)
                        .map(|c| c.name.clone())
                        .collect(),
                );
            }
        }
    }
    p
}

/// The first sensor stream of an SDP (the full offer an agent made), plain
/// or SRTP.
pub fn sensor_description(sdp: &Sdp) -> Option<StreamDescription> {
    sdp.media
        .iter()
        .filter(|m| {
            m.port != 0
                && m.media == SDP_MEDIA
                && (m.proto == SDP_PROTO || m.proto == SDP_PROTO_SAVP)
        })
        .find_map(|m| StreamDescription::from_media(m).ok().flatten())
}

/// `full` narrowed by `policy` exactly as an answer to it would be
/// (docs/protocol.md 3.1): the collector asks a sensor for what it would
/// accept from it.
pub fn narrowed(
    full: &StreamDescription,
    policy: &ReceivePolicy,
) -> Result<StreamDescription, NegotiationError> {
    let anywhere = LocalMedia::new(SocketAddr::from(([192, 0, 2, 1], 9)));
    let mut origin = LocalSdp::with_session_id("-", anywhere.rtp.ip(), 1);
    let offer = make_offer(full, StreamRole::Sender, &anywhere, &mut origin)?;
    let (_, agreed) = answer_offer(
        &offer,
        &AnswerPolicy::Receive(policy.clone()),
        &anywhere,
        &mut origin,
    )?;
    Ok(agreed.description)
}

/// Why the stream asked for on the command line, or a rate change, cannot
/// be offered. The text is the control client's reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WantedError {
    #[error("rate {0} Hz is not a positive number")]
    Rate(f64),
    #[error("{0:?} is not a SenML unit")]
    Unit(String),
    #[error("the stream has no sampled channels")]
    NoSampledChannels,
    #[error("{hz} Hz is too slow for a {clock} Hz clock")]
    TooSlow { hz: f64, clock: f64 },
    #[error("{0}")]
    Invalid(#[source] StreamError),
}

/// A description from the command line, for a sensor never seen.
pub fn wanted_description(w: &WantedStream) -> Result<StreamDescription, WantedError> {
    let samples = if w.channels.is_empty() {
        None
    } else {
        let rate = w.rate_hz.unwrap_or(f64::from(w.clock_hz));
        if !(rate.is_finite() && rate > 0.0) {
            return Err(WantedError::Rate(rate));
        }
        let period = (f64::from(w.clock_hz) / rate).round().max(1.0);
        let channels = w
            .channels
            .iter()
            .map(|c| {
                Ok(ChannelSpec {
                    name: c.name.clone(),
                    unit: Unit::from_symbol(&c.unit)
                        .ok_or_else(|| WantedError::Unit(c.unit.clone()))?,
                    scale: c.scale,
                })
            })
            .collect::<Result<Vec<_>, WantedError>>()?;
        Some(SampleFormat {
            payload_type: SAMPLES_PT,
            period: period as u32,
            samples_per_packet: w.samples_per_packet.unwrap_or(1),
            channels,
        })
    };
    let events = (!w.inputs.is_empty()).then(|| EventFormat {
        payload_type: EVENTS_PT,
        inputs: w.inputs.clone(),
    });
    let desc = StreamDescription {
        clock_rate: w.clock_hz,
        config: 1,
        samples,
        events,
    };
    desc.validate().map_err(WantedError::Invalid)?;
    Ok(desc)
}

/// The re-offer that changes the rate of `current` to at most `hz`
/// (docs/protocol.md 3.3, 3.4): the period a multiple of what the agent
/// offered (`full`, when known), the rest unchanged, `cfg` + 1.
pub fn with_rate(
    current: &StreamDescription,
    full: Option<&StreamDescription>,
    hz: f64,
) -> Result<StreamDescription, WantedError> {
    let Some(cur) = &current.samples else {
        return Err(WantedError::NoSampledChannels);
    };
    if !(hz.is_finite() && hz > 0.0) {
        return Err(WantedError::Rate(hz));
    }
    let base = full
        .filter(|f| f.clock_rate == current.clock_rate)
        .and_then(|f| f.samples.as_ref())
        .map_or(cur.period, |s| s.period)
        .max(1);
    let clock = f64::from(current.clock_rate);
    let mut k = (clock / (f64::from(base) * hz) - 1e-9).ceil().max(1.0);
    while clock / (f64::from(base) * k) > hz * (1.0 + 1e-12) {
        k += 1.0;
    }
    let period = f64::from(base) * k;
    if period > f64::from(i32::MAX) {
        return Err(WantedError::TooSlow { hz, clock });
    }
    let mut next = current.clone();
    if let Some(s) = next.samples.as_mut() {
        s.period = period as u32;
    }
    let next = next.next_config_after(current);
    next.validate().map_err(WantedError::Invalid)?;
    Ok(next)
}

/// One line for logs and replies.
pub fn summary(desc: &StreamDescription) -> String {
    let mut parts = Vec::new();
    if let (Some(s), Some(rate)) = (&desc.samples, desc.sample_rate_hz()) {
        let names: Vec<&str> = s.channels.iter().map(|c| c.name.as_str()).collect();
        parts.push(format!("{} at {} Hz", names.join(", "), trim(rate)));
    }
    if let Some(e) = &desc.events {
        parts.push(format!("events of {}", e.inputs.join(", ")));
    }
    format!("{} (cfg {})", parts.join("; "), desc.config)
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PositiveRate;
    use std::num::NonZeroU32;

    pub(super) fn full() -> StreamDescription {
        wanted_description(&WantedStream {
            clock_hz: 100,
            rate_hz: Some(10.0),
            samples_per_packet: Some(5),
            channels: vec![
                "temperature:Cel:-2".parse().unwrap(),
                "humidity:%RH:-1".parse().unwrap(),
                "pressure:Pa:0".parse().unwrap(),
            ],
            inputs: vec!["door".into()],
        })
        .unwrap()
    }

    #[test]
    fn policy_caps_rate_and_channels() {
        let p = Policy {
            mode: PolicyMode::Cap,
            max_rate_hz: Some(PositiveRate::try_from(4.0).unwrap()),
            max_channels: NonZeroU32::new(2),
        };
        let rp = receive_policy(&p, &full());
        let d = narrowed(&full(), &rp).unwrap();
        let s = d.samples.unwrap();
        assert_eq!(s.channels.len(), 2);
        assert_eq!(s.channels[1].name, "humidity");
        // 100 / (10 k) <= 4: k = 3, 3.33 Hz.
        assert_eq!(s.period, 30);
        assert_eq!(d.events.unwrap().inputs, vec!["door".to_string()]);
        assert_eq!(
            receive_policy(&Policy::default(), &full()),
            ReceivePolicy::default()
        );
    }

    #[test]
    fn rate_changes_bump_cfg_and_keep_the_offered_period_grid() {
        let f = full();
        let half = with_rate(&f, Some(&f), 5.0).unwrap();
        assert_eq!(half.samples.as_ref().unwrap().period, 20);
        assert_eq!(half.config, 2);
        // Back up to the full rate from a slowed stream.
        let back = with_rate(&half, Some(&f), 10.0).unwrap();
        assert_eq!(back.samples.as_ref().unwrap().period, 10);
        assert_eq!(back.config, 3);
        // Faster than the sensor can go: its own rate.
        assert_eq!(with_rate(&f, Some(&f), 1000.0).unwrap().config, 1);
        assert!(with_rate(&f, None, 0.0).is_err());
        assert_eq!(
            summary(&half),
            "temperature, humidity, pressure at 5 Hz; events of door (cfg 2)"
        );
    }

    #[test]
    fn an_srtp_offer_is_a_sensor_offer_too() {
        let anywhere = LocalMedia::new(SocketAddr::from(([192, 0, 2, 1], 9)));
        let mut origin = LocalSdp::with_session_id("-", anywhere.rtp.ip(), 1);
        let mut sdp = make_offer(&full(), StreamRole::Sender, &anywhere, &mut origin).unwrap();
        sdp.media[0].proto = SDP_PROTO_SAVP.into();
        assert_eq!(sensor_description(&sdp), Some(full()));
        sdp.media[0].proto = "UDP/TLS/RTP/SAVP".into();
        assert_eq!(sensor_description(&sdp), None);
    }

    #[test]
    fn wanted_streams_are_checked() {
        let mut w = WantedStream {
            clock_hz: 10,
            channels: vec!["t:Cel:-2".parse().unwrap()],
            ..WantedStream::default()
        };
        assert_eq!(wanted_description(&w).unwrap().samples.unwrap().period, 1);
        w.channels[0].unit = "furlongs".into();
        assert!(
            wanted_description(&w)
                .unwrap_err()
                .to_string()
                .contains("SenML")
        );
        w.channels.clear();
        assert!(wanted_description(&w).is_err(), "nothing asked for");
    }
}
