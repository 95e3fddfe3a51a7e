//! `cargo +nightly fuzz run sip_inspect`: the SIP message entry point.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sip_inspect::run(data));
