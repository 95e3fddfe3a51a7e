//! What every offer/answer step shares (RFC 3264, docs/protocol.md
//! "Offer/answer"): the stream's transport and media type, which end this
//! side is, the collector's narrowing policy and the errors. It sits below
//! `negotiate`, `narrow` and `transport` so their imports run one way.

use super::stream::StreamError;
use thiserror::Error;

/// The transport of a plain sensor stream (RFC 3551 profile).
pub const PROTO: &str = "RTP/AVP";
/// The transport of an SRTP sensor stream (RFC 3711 12).
pub const PROTO_SAVP: &str = "RTP/SAVP";
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

/// Whether streams are protected with SRTP (RFC 3711) keyed by SDES
/// (RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Only SRTP: plain offers get 488, and nothing is offered without
    /// secure signalling.
    Required,
    /// SRTP when the signalling is secure, plain RTP otherwise.
    Optional,
    /// Plain RTP only: SRTP offers get 488.
    #[default]
    Off,
}

/// What decides whether a stream is offered or accepted with SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaSecurity {
    pub srtp: SrtpPolicy,
    /// Whether the SDP travels over signalling that no one else can read
    /// (SIP over TLS). SDES keys are in the SDP in clear (RFC 4568 8.3),
    /// so none are written or taken without it.
    pub signalling_secure: bool,
}

impl MediaSecurity {
    /// Whether an offer made now is an SRTP one.
    pub(super) fn offers_srtp(self) -> Result<bool, NegotiationError> {
        match (self.srtp, self.signalling_secure) {
            (SrtpPolicy::Off, _) | (SrtpPolicy::Optional, false) => Ok(false),
            (_, true) => Ok(true),
            (SrtpPolicy::Required, false) => Err(NegotiationError::Srtp(SrtpRefusal::Insecure)),
        }
    }
}

/// Why a stream's SRTP offer or answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpRefusal {
    #[error("SRTP keys are never sent or taken over signalling that is not secure")]
    Insecure,
    #[error("SRTP is required and the stream is offered in plain RTP")]
    Required,
    #[error("SRTP is turned off")]
    Off,
    #[error("no acceptable a=crypto: {0}")]
    NoAcceptableCrypto(String),
    #[error("a=crypto tag {0} appears twice")]
    DuplicateTag(u32),
    #[error("the answer's a=crypto does not match an offered one: {0}")]
    AnswerMismatch(String),
}

/// Why an offer cannot be accepted or an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NegotiationError {
    #[error("malformed SDP: {0}")]
    Sdp(#[from] super::parse::SdpError),
    #[error("no sensor stream offered ({0})")]
    NoSensorStream(String),
    #[error("sensor stream over {0}, only {PROTO} and {PROTO_SAVP} are supported")]
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
    #[error("SRTP: {0}")]
    Srtp(#[from] SrtpRefusal),
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
            NegotiationError::Transport(_) | NegotiationError::Srtp(_) => 302,
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
