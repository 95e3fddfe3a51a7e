//! What the agent can send, in the protocol's terms: the configured stream
//! as a [`StreamDescription`] (docs/protocol.md section 2), and whether it
//! is offered and taken with SRTP.

use sipsensor_protocol::{
    ChannelSpec as WireChannel, EventFormat, MediaSecurity, SampleFormat, StreamDescription,
};

use crate::config::Config;
use crate::units::decimal_exponent;

/// Payload types of the two formats (docs/protocol.md section 2).
pub const SAMPLES_PT: u8 = 96;
pub const EVENTS_PT: u8 = 97;

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
