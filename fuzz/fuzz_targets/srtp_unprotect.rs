//! `cargo +nightly fuzz run srtp_unprotect`: SRTP/SRTCP from the network.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::srtp_unprotect::run(data));
