//! What the agent can send, in the protocol's terms: the configured stream
//! as a [`StreamDescription`] (docs/protocol.md section 2), whether it is
//! offered and taken with SRTP, and what it states of acknowledgement,
//! repair and backfill (docs/protocol.md 11.1).

use std::time::Duration;

use sipsensor_protocol::{
    BackfillSupport, ChannelSpec as WireChannel, EventFormat, MediaSecurity, RecoverySupport,
    RtxSupport, SampleFormat, StreamDescription,
};

use crate::config::Config;
use crate::units::decimal_exponent;

/// Payload types of the two formats (docs/protocol.md section 2).
pub const SAMPLES_PT: u8 = 96;
pub const EVENTS_PT: u8 = 97;

/// How long live packets are kept for RTX: the SDP's `rtx-time` (RFC 4588
/// 8.1). Several collector retry intervals (200 ms, docs/protocol.md 11.5)
/// and round trips fit in it.
pub const RTX_TIME: Duration = Duration::from_secs(3);

/// The SSRCs of the agent's extra streams (docs/protocol.md 11.1): RTX
/// (RFC 4588 8.3) and backfill. Fixed for the agent's life, like the live
/// one, so every SDP announces the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoverySsrcs {
    pub rtx: u32,
    pub backfill: u32,
}

/// What the agent's SDP offers and accepts of docs/protocol.md 11: the
/// sample instant and NACK + RTX always; backfill only with a spool
/// (`spool` is `None` when it is off), stating its oldest instant.
pub fn recovery_support(ssrcs: RecoverySsrcs, spool: Option<Option<i64>>) -> RecoverySupport {
    RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: RTX_TIME,
            ssrc: Some(ssrcs.rtx),
        }),
        backfill: spool.map(|oldest| BackfillSupport {
            oldest: oldest.and_then(|t| u64::try_from(t).ok()),
            ssrc: Some(ssrcs.backfill),
            ..BackfillSupport::default()
        }),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("channel {channel}: scale {scale} is not a power of ten")]
    Scale { channel: String, scale: String },
    #[error("stream: {0}")]
    Invalid(#[from] sipsensor_protocol::StreamError),
}

/// Whether streams are SRTP: `media.srtp`, and whether the SIP flow the
/// SDP travels on is TLS (SDES keys only ever go over secure signalling).
pub fn security(config: &Config, signalling_secure: bool) -> MediaSecurity {
    MediaSecurity {
        srtp: config.media.srtp_policy(signalling_secure),
        signalling_secure,
    }
}

/// The stream the configuration describes, at full rate: the clock runs at
/// the sample rate (period 1), so a collector lowers the rate by raising
/// the period without changing the clock (docs/protocol.md 3.4).
pub fn capabilities(config: &Config) -> Result<StreamDescription, MediaError> {
    let channels = config
        .stream
        .channels
        .iter()
        .map(|c| {
            let spec = &c.spec;
            Ok(WireChannel {
                name: spec.name.clone(),
                unit: spec.unit,
                scale: decimal_exponent(spec.scale).ok_or_else(|| MediaError::Scale {
                    channel: spec.name.clone(),
                    scale: spec.scale.to_string(),
                })?,
            })
        })
        .collect::<Result<Vec<_>, MediaError>>()?;
    let samples = (!channels.is_empty()).then(|| SampleFormat {
        payload_type: SAMPLES_PT,
        period: 1,
        samples_per_packet: u8::try_from(config.stream.samples_per_packet).unwrap_or(u8::MAX),
        channels,
    });
    let inputs: Vec<String> = config.gpio.inputs.iter().map(|i| i.name.clone()).collect();
    let events = (!inputs.is_empty()).then_some(EventFormat {
        payload_type: EVENTS_PT,
        inputs,
    });
    let description = StreamDescription {
        clock_rate: config.stream.rate_hz,
        config: 1,
        samples,
        events,
    };
    description.validate()?;
    Ok(description)
}
