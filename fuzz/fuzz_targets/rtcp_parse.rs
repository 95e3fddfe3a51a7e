//! `cargo +nightly fuzz run rtcp_parse`: the RTCP compound parser.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::rtcp_parse::run(data));
