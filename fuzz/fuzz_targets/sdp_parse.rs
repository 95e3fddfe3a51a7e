//! `cargo +nightly fuzz run sdp_parse`: the SDP parser.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sdp_parse::run(data));
