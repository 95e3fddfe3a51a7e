//! What each fuzz target does with one input. Shared by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/`) and by `protocol/tests/fuzz_corpus.rs`,
//! which replays every corpus file through the same code in `cargo test`.

pub mod fleet_body;
pub mod payload_parse;
pub mod registrar;
pub mod rtcp_parse;
pub mod rtp_parse;
pub mod sdp_parse;
pub mod sip_inspect;
pub mod sip_response;
pub mod sip_uri;
pub mod srtp_unprotect;
pub mod stream_framer;
pub mod user_agent;

/// A harness: runs one input, panics if it finds a bug.
pub type Harness = fn(&[u8]);

/// Target name (= its corpus directory under `fuzz/corpus/`) and harness.
#[allow(dead_code)] // each fuzz binary uses one entry
pub const TARGETS: &[(&str, Harness)] = &[
    ("sip_inspect", sip_inspect::run),
    ("sdp_parse", sdp_parse::run),
    ("rtp_parse", rtp_parse::run),
    ("rtcp_parse", rtcp_parse::run),
    ("payload_parse", payload_parse::run),
    ("sip_uri", sip_uri::run),
    ("stream_framer", stream_framer::run),
    ("sip_response", sip_response::run),
    ("registrar", registrar::run),
    ("user_agent", user_agent::run),
    ("srtp_unprotect", srtp_unprotect::run),
    ("fleet_body", fleet_body::run),
];
