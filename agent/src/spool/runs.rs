//! Where the agent's earlier runs ended inside the spool: between one
//! run's last durable record and the next run's first, the agent was not
//! running (a restart, a reboot, a power cut) and sampled nothing, and
//! backfill reports that range unsampled (docs/protocol.md 11.7 step 4).
//! Recorded at each open, as the newest instant the spool holds once a
//! torn tail is cut, so the boundary is known however the run ended and
//! however many restarts the spool spans; a gap between records is not
//! taken for one (a failed write or a skipped sample also leaves one).
//!
//! A small text file beside the segments, one instant (ns) a line,
//! oldest first, replaced whole (written aside, then renamed) so a power
//! cut leaves the old list or the new one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

pub(super) const FILE: &str = "runs";
/// Ends kept at most; past it the oldest goes (its downtime then stays a
/// gap at the collector until the spool drops it).
pub(super) const MAX_RUN_ENDS: usize = 64;

/// The run ends recorded in `dir`, with `run_end` (the run that just
/// ended, `None` when the spool holds nothing) added. Ends at or below
/// `released` (the collector's mark) are dropped but the newest of them:
/// the mark may lie inside its downtime, while any older one lies before
/// that run's start, which the collector holds. The file is rewritten
/// when the list changed; a failure is logged and costs only the reports.
pub(super) fn note_run_end(dir: &Path, run_end: Option<i64>, released: i64) -> Vec<i64> {
    let recorded = read(dir);
    let mut ends = recorded.clone();
    if let Some(end) = run_end
        && ends.last().is_none_or(|last| *last < end)
    {
        ends.push(end);
    }
    let passed = ends.iter().filter(|e| **e <= released).count();
    ends.drain(..passed.saturating_sub(1));
    ends.drain(..ends.len().saturating_sub(MAX_RUN_ENDS));
    if ends != recorded
        && let Err(e) = write(dir, &ends)
    {
        tracing::warn!(
            "spool: cannot write {}: {e}; the time the agent was not running is not reported as unsampled, and the collector keeps it as a gap",
            dir.join(FILE).display()
        );
    }
    ends
}

/// The recorded ends, oldest first; an unreadable line is skipped.
fn read(dir: &Path) -> Vec<i64> {
    let Ok(text) = fs::read_to_string(dir.join(FILE)) else {
        return Vec::new();
    };
    let mut ends: Vec<i64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    ends.sort_unstable();
    ends.dedup();
    ends
}

fn write(dir: &Path, ends: &[i64]) -> io::Result<()> {
    let text: String = ends.iter().map(|e| format!("{e}\n")).collect();
    let aside = dir.join(format!("{FILE}.new"));
    let mut f = File::create(&aside)?;
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    fs::rename(&aside, dir.join(FILE))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_open_adds_the_run_end_once_and_the_list_survives() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        assert_eq!(note_run_end(dir.path(), None, i64::MIN), Vec::<i64>::new());
        assert_eq!(note_run_end(dir.path(), Some(100), i64::MIN), [100]);
        // A run that spooled nothing ends where the previous one did.
        assert_eq!(note_run_end(dir.path(), Some(100), i64::MIN), [100]);
        assert_eq!(note_run_end(dir.path(), Some(250), i64::MIN), [100, 250]);
        assert_eq!(read(dir.path()), [100, 250]);
    }

    #[test]
    fn ends_the_mark_passed_go_but_the_newest_of_them() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        for end in [100, 200, 300] {
            note_run_end(dir.path(), Some(end), i64::MIN);
        }
        // The mark at 250: the downtime after 200 may still hold it.
        assert_eq!(note_run_end(dir.path(), Some(400), 250), [200, 300, 400]);
        assert_eq!(read(dir.path()), [200, 300, 400]);
    }

    #[test]
    fn the_list_is_bounded_and_a_torn_line_is_skipped() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let many: String = (1..=100).map(|e| format!("{e}\n")).collect();
        fs::write(dir.path().join(FILE), format!("{many}12x")).expect("write");
        let ends = note_run_end(dir.path(), Some(1000), i64::MIN);
        assert_eq!(ends.len(), MAX_RUN_ENDS);
        assert_eq!(ends.last(), Some(&1000));
        assert_eq!(ends.first(), Some(&(100 - MAX_RUN_ENDS as i64 + 2)));
    }
}
