//! `cargo +nightly fuzz run stream_framer`: the SIP stream framer (TCP/TLS).
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::stream_framer::run(data));
