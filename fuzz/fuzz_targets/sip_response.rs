//! `cargo +nightly fuzz run sip_response`: what a client reads from a response (digest challenge, Via).
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sip_response::run(data));
