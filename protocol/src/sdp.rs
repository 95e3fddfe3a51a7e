//! SDP (RFC 8866) and the sensor-stream offer/answer (RFC 3264).
//!
//! [`parse`] reads any session description into [`Sdp`]; [`StreamDescription`]
//! is what a sensor stream's `m=` section says; [`offer`], [`answer`] and
//! [`apply_answer`] run the exchange. The format itself is specified in
//! `docs/protocol.md`.
//!
//! Why not a crate: `sdp` (webrtc-rs) rejects whole descriptions over one
//! unknown `m=` protocol (e.g. `TCP/MSRP`) where RFC 3264 6 wants that
//! stream answered with port 0, pulls in `url`/`idna` for `u=`, and has no
//! size limits; `webrtc-sdp` (Mozilla) drops attributes it does not know,
//! which would lose this format's own `a=sensor-channel` lines.

mod attributes;
mod keying;
mod model;
mod narrow;
mod negotiate;
mod origin;
mod parse;
mod recovery;
mod sdes;
mod stream;
mod terms;
mod transport;
mod units;

pub use model::{Attribute, Bandwidth, Connection, Media, Origin, Sdp, Timing};
pub use negotiate::{
    Agreed, AnswerPolicy, agreed_recovery, answer, answer_with_recovery, apply_answer, offer,
    offer_with_recovery,
};
pub use origin::LocalSdp;
pub use parse::{SdpError, parse};
pub use recovery::{
    AgreedBackfill, AgreedRecovery, AgreedRtx, BackfillSupport, ENCODING_BACKFILL, ENCODING_RTX,
    RecoverySupport, RtxSupport,
};
pub use sdes::{CryptoAttribute, SdesError, SrtpKey, SrtpKeys, SrtpSuite};
pub use stream::{
    ChannelSpec, EventFormat, MAX_CHANNELS, SampleFormat, StreamConfigs, StreamDescription,
    StreamError,
};
pub use terms::{
    MEDIA, MediaSecurity, NegotiationError, PROTO, PROTO_SAVP, ReceivePolicy, Role, SrtpPolicy,
    SrtpRefusal,
};
pub use transport::{Direction, LocalMedia, RemoteMedia};
pub use units::Unit;

/// [`parse`] for text.
pub fn parse_str(input: &str) -> Result<Sdp, SdpError> {
    parse(input.as_bytes())
}

#[cfg(test)]
mod tests;
