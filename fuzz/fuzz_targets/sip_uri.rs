//! `cargo +nightly fuzz run sip_uri`: SIP URIs.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sip_uri::run(data));
