//! The one library in sipsensor that speaks SIP, SDP and RTP/RTCP.
//!
//! Everything here is sans-I/O: state machines take messages and the current
//! time as values and hand back what to send and when to wake them. Sockets,
//! clocks and threads live in thin tokio shells (`sipsensor-runtime`, the
//! agent's and the collector's), so every RFC rule is tested without a
//! socket.

mod ids;
mod payload;
mod rtcp;
mod rtp;
mod sdp;
mod sip;

#[cfg(test)]
mod test_clock;

// The modules are private: this list is the crate's API, by area, so the
// programs need not know the module tree. It holds the names they use and
// every type a public signature reaches. Generic names (`parse`, `Role`,
// `Verdict`, `Frame`) get the area in their name here.

// Fleet updates over SIP (docs/protocol.md 12): the subscription body,
// a module of its own so its names (`fleet::EVENT`, `fleet::CONTENT_TYPE`)
// read as they are meant.
pub mod fleet;

// Random identifiers (tags, branches, SSRCs).
pub use ids::IdGenerator;

// Sensor payloads inside RTP (docs/protocol.md "Payload").
pub use payload::{
    DecodeError as PayloadDecodeError, EncodeError as PayloadEncodeError, EventBatch, EventOutbox,
    EventRecord, Events, MISSING as MISSING_SAMPLE, OutboxConfig, Payload, Samples, TickTime,
    decode as decode_payload, encode_events, encode_samples,
};

// RTP (RFC 3550) and RTCP (RFC 3550 section 6).
pub use rtcp::{
    AckPacer, App as RtcpApp, AppError as BackfillAppError, BACKFILL_APP_NAME, BackfillMessage,
    Bye as RtcpBye, CompoundWriter, Nack, NtpTime, ReceiverReport, ReportBlock, RtcpBuildError,
    RtcpConfig, RtcpError, RtcpPacket, RtcpScheduler, SdesChunk, SdesItem, SenderReport, SrMapping,
    parse_compound as parse_rtcp_compound, receiver_report_compound, round_trip_time,
    sender_report_compound,
};
pub use rtp::{
    BackfillCursor, BackfillPace, BackfillPacer, ByteRate, ExtensionError, HeaderExtension,
    MAX_KEPT_PACKET, NackConfig, NackScheduler, ONE_BYTE_PROFILE,
    ReceiverStats as RtpReceiverStats, RetransmitHistory, RtpError, RtpPacket, RtpReceiver,
    RtpSender, RtxConfig, RtxError, SAMPLE_INSTANT_LEN, SAMPLE_INSTANT_URI, SampleInstant,
    SendError as RtpSendError, SrtpContext, SrtpError, Verdict as RtpVerdict, parse as parse_rtp,
    parse_rtx, write_one_byte as write_header_extension, write_rtx_payload,
};

// SDP offer/answer for sensor streams (RFC 3264, RFC 4566).
pub use sdp::{
    Agreed, AgreedBackfill, AgreedRecovery, AgreedRtx, AnswerPolicy, Attribute as SdpAttribute,
    BackfillSupport, Bandwidth as SdpBandwidth, ChannelSpec, Connection as SdpConnection,
    CryptoAttribute, Direction as MediaDirection, ENCODING_BACKFILL, ENCODING_RTX, EventFormat,
    LocalMedia, LocalSdp, MEDIA as SDP_MEDIA, Media as SdpMedia, MediaSecurity, NegotiationError,
    Origin as SdpOrigin, PROTO as SDP_PROTO, PROTO_SAVP as SDP_PROTO_SAVP, ReceivePolicy,
    RecoverySupport, RemoteMedia, Role as StreamRole, RtxSupport, SampleFormat, SdesError, Sdp,
    SdpError, SrtpKey, SrtpKeys, SrtpPolicy, SrtpRefusal, SrtpSuite, StreamConfigs,
    StreamDescription, StreamError, Timing as SdpTiming, Unit, agreed_recovery,
    answer as answer_offer, answer_with_recovery, apply_answer, offer as make_offer,
    offer_with_recovery, parse as parse_sdp, parse_str as parse_sdp_str,
};

// SIP messages (RFC 3261 section 7): `rsip`'s types, so the apps need no
// `rsip` of their own, and the checks every received message goes through
// first (RFC 3261 8.2, RFC 4475).
pub use sip::message::{
    Frame as MessageFrame, Inbound as InboundMessage, InspectConfig, MAX_STREAM_MESSAGE,
    MessageError, encode as encode_message, frame_stream as frame_message,
    inspect as inspect_message,
};
pub use sip::prelude;
pub use sip::{Header, Method, Request, Response, StatusCode, headers};

// SIP addressing and transport (RFC 3261 sections 18, 19).
pub use sip::ipv6::to_wire as ipv6_to_wire;
pub use sip::locate::{LiteralsOnly, LocateError, Resolver};
pub use sip::transport::via::{ViaParm, bottom_via};
pub use sip::transport::{
    DEFAULT_MAX_MESSAGE_SIZE, Destination, Frame as StreamFrame, FrameError,
    PING as KEEPALIVE_PING, PONG as KEEPALIVE_PONG, Reflexive, ResponseRoute, StreamFramer,
    ViaError, reflexive_address, response_route,
};
pub use sip::uri::{Host as SipHost, SipUri, UriError};
pub use sip::{LocalEndpoint, Target, Transport};

// SIP digest authentication (RFC 3261 22, RFC 7616).
pub use sip::digest::{
    Algorithm as DigestAlgorithm, AuthFailure as DigestAuthFailure, AuthenticatedUser,
    ChallengeKind, CredentialStore, DigestClient, DigestError, DigestServer, Ha1, HashFunction,
    InMemoryCredentials, Password, ServerConfig as DigestServerConfig, ServerSecret, StoredSecret,
    WallClock,
};

pub use sip::digest::AuthFailure;

// SIP registration, both ends (RFC 3261 section 10).
pub use sip::registrar::{AorPolicy, Binding, LocationService, Registrar, RegistrarConfig};
pub use sip::registration::{
    ConfigError as RegistrationConfigError, ConfigProblem as RegistrationConfigProblem,
    FailureReason, Mismatch as RegistrationMismatch, Outbound as RegistrationOutbound,
    RegistrationConfig, RegistrationError, RegistrationEvent, RegistrationState,
};

// The SIP user agent: transactions, dialogs, sessions (RFC 3261 8, 12, 13,
// 17).
pub use sip::dialog::DialogError;
pub use sip::response::response_to;
pub use sip::timers::TimerConfig as SipTimerConfig;
pub use sip::transaction::{ClientId, ServerId, TransactionError};
pub use sip::ua::{
    EndReason, Output as UaOutput, Role as CallRole, SessionId, SessionState, UaConfig, UaError,
    UaEvent, UserAgent,
};

// Event subscriptions in the user agent (RFC 6665): fleet updates
// (docs/protocol.md 12.1) ride on them.
pub use sip::ua::{
    BodyCheck, DEFAULT_MAX_SUBSCRIPTIONS, EventPackage, MIN_EXPIRES as MIN_SUBSCRIPTION_EXPIRES,
    NotifyState, SubscriptionEnd, SubscriptionEvent, SubscriptionId, SubscriptionState,
    SubscriptionStatus, TerminatedReason,
};
