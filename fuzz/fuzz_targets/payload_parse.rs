//! `cargo +nightly fuzz run payload_parse`: the sensor payload decoder.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::payload_parse::run(data));
