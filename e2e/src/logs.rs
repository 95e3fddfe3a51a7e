//! The logs of a process a scenario starts, kills and starts again: one
//! file per start (a relaunch must not truncate what the first start
//! said), read back together, and printed when a scenario fails.
//!
//! The files live in the process's temporary directory, so whoever owns
//! that directory stops the process and prints the logs from its own
//! `Drop`, before the directory goes: a `ChildGuard` dropped after it
//! found nothing to print (CI printed empty agent and collector logs).

use std::path::{Path, PathBuf};

/// Lines of each start's log quoted when a scenario fails (as many as
/// the testkit's `ChildGuard` quotes of a running one).
const TAIL_LINES: usize = 80;

#[derive(Debug)]
pub(crate) struct StartLogs {
    dir: PathBuf,
    stem: &'static str,
    starts: u32,
}

impl StartLogs {
    pub(crate) fn new(dir: &Path, stem: &'static str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            stem,
            starts: 0,
        }
    }

    /// The file of the next start.
    pub(crate) fn next_start(&mut self) -> PathBuf {
        self.starts += 1;
        self.path(self.starts)
    }

    fn path(&self, start: u32) -> PathBuf {
        self.dir.join(format!("{}-{start}.log", self.stem))
    }

    fn read(&self, start: u32) -> String {
        std::fs::read(self.path(start))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// What the latest start wrote.
    pub(crate) fn latest(&self) -> String {
        self.read(self.starts)
    }

    /// Every line of every start so far.
    pub(crate) fn all(&self) -> String {
        (1..=self.starts)
            .map(|n| self.read(n))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(crate) fn starts(&self) -> u32 {
        self.starts
    }

    /// The last lines of starts 1 to `through`, each under a heading.
    pub(crate) fn tails(&self, name: &str, through: u32) -> String {
        (1..=through.min(self.starts))
            .map(|n| {
                let log = self.read(n);
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
                format!(
                    "--- {name}, start {n}: last {} of {} lines of {} ---\n{}\n--- end ---",
                    tail.len(),
                    lines.len(),
                    self.path(n).display(),
                    tail.join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_keeps_its_own_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut logs = StartLogs::new(dir.path(), "agent");
        std::fs::write(logs.next_start(), "first start\n").expect("write");
        std::fs::write(logs.next_start(), "second start\n").expect("write");
        assert_eq!(logs.latest(), "second start\n");
        assert_eq!(logs.all(), "first start\n\nsecond start\n");
        let tails = logs.tails("agent a", 2);
        assert!(
            tails.contains("agent a, start 1: last 1 of 1 lines"),
            "{tails}"
        );
        assert!(tails.contains("first start") && tails.contains("second start"));
        let earlier = logs.tails("agent a", 1);
        assert!(earlier.contains("first start") && !earlier.contains("second start"));
    }
}
