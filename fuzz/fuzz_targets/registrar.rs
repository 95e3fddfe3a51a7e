//! `cargo +nightly fuzz run registrar`: the registrar on a stranger's REGISTER.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::registrar::run(data));
