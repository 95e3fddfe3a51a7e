//! Replays every file of every fuzz corpus (`fuzz/corpus/<target>/`)
//! through the same harness the cargo-fuzz target runs, so `cargo test`
//! keeps every input that ever mattered (seeds and fixed crashers) passing
//! without a nightly toolchain.
//!
//! Bounded: corpus files are small (the fuzzer's default max_len is 4 KiB)
//! and each is read whole only if under 1 MiB.

#[path = "../../fuzz/harness/mod.rs"]
mod harness;

use std::path::PathBuf;

const MAX_FILE: u64 = 1 << 20;

#[test]
fn every_fuzz_corpus_file_runs_clean() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for (target, run) in harness::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        files.sort();
        files.retain(|f| f.is_file());
        assert!(!files.is_empty(), "{target}: empty corpus");
        let mut failed = Vec::new();
        for file in &files {
            let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(u64::MAX);
            assert!(
                len <= MAX_FILE,
                "{}: corpus files stay small",
                file.display()
            );
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // Name the input that trips the harness instead of stopping at it.
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failed.push(file.display().to_string());
            }
        }
        assert!(failed.is_empty(), "{target}: harness failed on {failed:?}");
        println!("{target}: {} corpus files ran clean", files.len());
        total += files.len();
    }
    println!("fuzz corpora: {total} files");
}
