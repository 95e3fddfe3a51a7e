//! `cargo +nightly fuzz run fleet_body`: the fleet-update body.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fleet_body::run(data));
