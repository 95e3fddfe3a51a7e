//! Late rows: readings resent (RFC 4588) or backfilled (docs/protocol.md
//! 11.5, 11.6), kept apart from the live ones so that they never cost
//! live data (11.6: "the backfill rate is limited so it never delays live
//! data", on the collector's side too).
//!
//! Sans-I/O: the writer task tells it what arrived, what a commit took,
//! and asks how many late rows the next commit may carry. The rules:
//!
//! - a commit carries every live row due, and late rows only up to what
//!   keeps the commit within [`LateRows::budget`] at the commit time per
//!   row measured so far (at least [`LATE_FLOOR`], so a backfill always
//!   moves);
//! - at most `limit` late rows wait; beyond, new ones are refused, and a
//!   live row that needs memory takes it from the newest late rows;
//! - refused late rows are not lost: nothing of them is committed, so the
//!   collector's mark stops before them and the agent sends them again
//!   (11.7 steps 6 and 7).
//!
//! [`LateRows::waiting`] is shared with the receive thread, which refuses
//! backfill packets before decoding them while the queue is full.

use crate::storage::Reading;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Late rows a commit may always carry, however slow commits are.
pub const LATE_FLOOR: usize = 1_000;

#[derive(Debug)]
pub(super) struct LateRows {
    rows: VecDeque<Reading>,
    limit: usize,
    /// Longest a commit with late rows in it should take.
    budget: Duration,
    /// Commit time per row, smoothed; `None` before the first commit.
    per_row: Option<Duration>,
    /// `rows.len()`, for the receive thread.
    waiting: Arc<AtomicUsize>,
}

/// A share of the writer's memory as the receive thread sees it: the
/// late rows' queue, or all rows not yet written.
#[derive(Debug, Clone)]
pub struct Room {
    waiting: Arc<AtomicUsize>,
    limit: usize,
}

impl Room {
    pub(super) fn new(waiting: Arc<AtomicUsize>, limit: usize) -> Self {
        Room { waiting, limit }
    }

    /// Whether rows are taken now: when not, the receive thread refuses
    /// their packets before it costs any decoding, so the stream sees
    /// them missing.
    pub fn open(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) < self.limit
    }
}

impl LateRows {
    pub fn new(limit: usize, budget: Duration) -> Self {
        LateRows {
            rows: VecDeque::new(),
            limit: limit.max(1),
            budget,
            per_row: None,
            waiting: Arc::default(),
        }
    }

    pub fn room(&self) -> Room {
        Room::new(self.waiting.clone(), self.limit)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn publish(&self) {
        self.waiting.store(self.rows.len(), Ordering::Relaxed);
    }

    /// Queues `rows` as far as `limit` and `free` (rows the writer's
    /// memory bound still allows) go; returns how many were refused.
    pub fn offer(&mut self, rows: Vec<Reading>, free: usize) -> usize {
        let room = self.limit.saturating_sub(self.rows.len()).min(free);
        let refused = rows.len().saturating_sub(room);
        self.rows.extend(rows.into_iter().take(room));
        self.publish();
        refused
    }

    /// Gives up to `n` rows' memory to live rows, newest late rows first
    /// (the oldest are nearest the mark); returns how many were given up.
    pub fn evict(&mut self, n: usize) -> usize {
        let k = n.min(self.rows.len());
        self.rows.truncate(self.rows.len() - k);
        self.publish();
        k
    }

    /// How many late rows a commit carrying `live` rows may take.
    pub fn quota(&self, live: usize) -> usize {
        let Some(per_row) = self.per_row.filter(|d| !d.is_zero()) else {
            return LATE_FLOOR;
        };
        let affordable = self.budget.as_nanos() / per_row.as_nanos();
        let affordable = usize::try_from(affordable).unwrap_or(usize::MAX);
        affordable.saturating_sub(live).max(LATE_FLOOR)
    }

    /// Takes the oldest `n` late rows for a commit.
    pub fn take(&mut self, n: usize) -> Vec<Reading> {
        let k = n.min(self.rows.len());
        let taken = self.rows.drain(..k).collect();
        self.publish();
        taken
    }

    /// Rows of a commit that failed go back before the others.
    pub fn put_back(&mut self, rows: Vec<Reading>) {
        for r in rows.into_iter().rev() {
            self.rows.push_front(r);
        }
        self.publish();
    }

    /// A commit of `rows` rows took `took`: the time per row, smoothed
    /// over about four commits (one slow commit halves nothing at once).
    pub fn on_commit(&mut self, rows: usize, took: Duration) {
        let Ok(n) = u32::try_from(rows.max(1)) else {
            return;
        };
        let sample = took / n;
        self.per_row = Some(match self.per_row {
            None => sample,
            Some(p) => (p * 3 + sample) / 4,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{ReadingSource, SensorId, SessionId};

    fn rows(from: i64, n: i64) -> Vec<Reading> {
        (from..from + n)
            .map(|t| Reading {
                session: SessionId(1),
                sensor: SensorId(1),
                seq: t,
                index: 0,
                ts_ns: t,
                raws: vec![Some(t)],
                source: ReadingSource::Backfilled,
            })
            .collect()
    }

    fn instants(v: &[Reading]) -> Vec<i64> {
        v.iter().map(|r| r.ts_ns).collect()
    }

    #[test]
    fn before_any_commit_the_quota_is_the_floor() {
        let late = LateRows::new(10_000, Duration::from_millis(250));
        assert_eq!(late.quota(0), LATE_FLOOR);
        assert_eq!(late.quota(1_000_000), LATE_FLOOR);
    }

    #[test]
    fn the_quota_is_what_the_budget_leaves_after_the_live_rows() {
        let mut late = LateRows::new(10_000, Duration::from_millis(250));
        // 100,000 rows in 250 ms: 2.5 µs a row, so 100,000 rows fit.
        late.on_commit(100_000, Duration::from_millis(250));
        assert_eq!(late.quota(0), 100_000);
        assert_eq!(late.quota(40_000), 60_000);
        // Live rows alone fill the budget: the floor still goes.
        assert_eq!(late.quota(150_000), LATE_FLOOR);
    }

    #[test]
    fn slower_commits_shrink_the_quota_smoothly() {
        let mut late = LateRows::new(10_000, Duration::from_millis(250));
        late.on_commit(100_000, Duration::from_millis(250));
        // Four times slower (the core is busy): the estimate moves a
        // quarter of the way per commit, and the quota falls each time.
        let mut last = late.quota(0);
        for _ in 0..8 {
            late.on_commit(100_000, Duration::from_secs(1));
            let q = late.quota(0);
            assert!(q < last, "{q} after {last}");
            last = q;
        }
        assert!(last < 30_000, "{last}");
        assert!(last >= 25_000, "{last}");
    }

    #[test]
    fn beyond_the_limit_or_the_free_memory_rows_are_refused() {
        let mut late = LateRows::new(100, Duration::from_millis(250));
        let room = late.room();
        assert_eq!(late.offer(rows(0, 60), usize::MAX), 0);
        assert!(room.open());
        assert_eq!(late.offer(rows(60, 60), usize::MAX), 20);
        assert_eq!(late.len(), 100);
        assert!(!room.open(), "a full queue closes the room");
        // The oldest are kept: they are nearest the mark.
        assert_eq!(instants(&late.take(3)), vec![0, 1, 2]);
        assert!(room.open());
        assert_eq!(late.offer(rows(200, 10), 2), 8, "only 2 rows of memory");
    }

    #[test]
    fn live_rows_take_memory_from_the_newest_late_rows() {
        let mut late = LateRows::new(100, Duration::from_millis(250));
        late.offer(rows(0, 10), usize::MAX);
        assert_eq!(late.evict(4), 4);
        assert_eq!(instants(&late.take(100)), (0..6).collect::<Vec<_>>());
        assert_eq!(late.evict(4), 0, "nothing left to give");
    }

    #[test]
    fn a_failed_commit_puts_its_rows_back_in_front_in_order() {
        let mut late = LateRows::new(100, Duration::from_millis(250));
        late.offer(rows(0, 10), usize::MAX);
        let first = late.take(4);
        late.put_back(first);
        assert_eq!(instants(&late.take(100)), (0..10).collect::<Vec<_>>());
    }
}
