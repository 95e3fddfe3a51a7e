//! `cargo +nightly fuzz run user_agent`: the user agent on a stranger's messages.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::user_agent::run(data));
