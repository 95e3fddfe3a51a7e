//! What each fuzz target does with one input. Shared by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/`) and by `protocol/tests/fuzz_corpus.rs`,
//! which replays every corpus file through the same code in `cargo test`.

pub mod payload_parse;
pub mod rtcp_parse;
pub mod rtp_parse;
pub mod sdp_parse;
pub mod sip_inspect;
pub mod srtp_unprotect;

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
    ("srtp_unprotect", srtp_unprotect::run),
];
