//! What each fuzz target does with one input. Shared by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/`) and by `protocol/tests/fuzz_corpus.rs`,
//! which replays every corpus file through the same code in `cargo test`.

pub mod sip_inspect;

/// A harness: runs one input, panics if it finds a bug.
pub type Harness = fn(&[u8]);

/// Target name (= its corpus directory under `fuzz/corpus/`) and harness.
#[allow(dead_code)] // each fuzz binary uses one entry
pub const TARGETS: &[(&str, Harness)] = &[("sip_inspect", sip_inspect::run)];
