//! The one library in sipsensor that speaks SIP, SDP and RTP/RTCP.
//!
//! Everything here is sans-I/O: state machines take messages and the current
//! time as values and hand back what to send and when to wake them. Sockets,
//! clocks and threads live in thin tokio shells (`sipsensor-runtime`, the
//! agent's and the collector's), so every RFC rule is tested without a
//! socket.

pub mod ids;
pub mod payload;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod sip;

#[cfg(test)]
mod test_clock;

// The names the agent, the collector and the load generator use, by area,
// so they need not know the module tree. Generic names (`parse`, `Role`,
// `Verdict`) get the area in their name here. The socket shells
// (`sip::transport::net`, `sip::ua::driver`) are not here: they are moving
// to their own crate.

// Random identifiers (tags, branches, SSRCs).
pub use ids::IdGenerator;

// Sensor payloads inside RTP (docs/protocol.md "Payload").
pub use payload::{
    EventOutbox, EventRecord, Events, MISSING as MISSING_SAMPLE, OutboxConfig, Payload, Samples,
    TickTime, decode as decode_payload, encode_events, encode_samples,
};

// RTP (RFC 3550) and RTCP (RFC 3550 section 6).
pub use rtcp::{
    CompoundWriter, NtpTime, ReceiverReport, ReportBlock, RtcpConfig, RtcpPacket, RtcpScheduler,
    SenderReport, SrMapping, parse_compound as parse_rtcp_compound, receiver_report_compound,
    round_trip_time, sender_report_compound,
};
pub use rtp::{RtpPacket, RtpReceiver, RtpSender, Verdict as RtpVerdict, parse as parse_rtp};

// SDP offer/answer for sensor streams (RFC 3264, RFC 4566).
pub use sdp::{
    Agreed, AnswerPolicy, ChannelSpec, Direction as MediaDirection, EventFormat, LocalMedia,
    LocalSdp, MEDIA as SDP_MEDIA, NegotiationError, PROTO as SDP_PROTO, ReceivePolicy, RemoteMedia,
    Role as StreamRole, SampleFormat, Sdp, StreamConfigs, StreamDescription, StreamError, Unit,
    answer as answer_offer, apply_answer, offer as make_offer, parse as parse_sdp,
};

// SIP messages (RFC 3261 section 7), `rsip`'s types, so the apps need no
// `rsip` of their own.
pub use sip::prelude;
pub use sip::{Header, Method, Request, Response, StatusCode, headers};

// SIP addressing and transport (RFC 3261 sections 18, 19).
pub use sip::locate::{LiteralsOnly, Resolver};
pub use sip::uri::{SipUri, UriError};
pub use sip::{LocalEndpoint, Target, Transport};

// SIP digest authentication (RFC 3261 22, RFC 7616).
pub use sip::digest::{
    CredentialStore, DigestError, Ha1, HashFunction, InMemoryCredentials, Password,
    ServerConfig as DigestServerConfig, ServerSecret, StoredSecret, WallClock,
};

// SIP registration, both ends (RFC 3261 section 10).
pub use sip::registrar::{AorPolicy, Binding, Registrar, RegistrarConfig};
pub use sip::registration::{FailureReason, RegistrationConfig, RegistrationEvent};

// The SIP user agent: transactions, dialogs, sessions (RFC 3261 8, 12, 13,
// 17).
pub use sip::response::response_to;
pub use sip::transaction::ServerId;
pub use sip::ua::{EndReason, Role as CallRole, SessionId, UaConfig, UaError, UaEvent, UserAgent};
