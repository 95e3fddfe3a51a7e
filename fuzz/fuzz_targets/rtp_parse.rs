//! `cargo +nightly fuzz run rtp_parse`: the RTP parser.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::rtp_parse::run(data));
