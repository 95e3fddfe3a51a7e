//! A sensor's timeline as ranges (issue 15: "export, API and page show
//! live, backfilled and missing ranges distinctly"): what is stored, how
//! it came, and what is missing and why.
//!
//! Both backends run the one query of [`COVERAGE_SQL`]: a bounded scan of
//! the readings' primary key `(sensor_id, ts_ns)` from the window's start,
//! the stored gaps found by two index seeks, and the runs ("gaps and
//! islands") formed by window functions. This module turns its rows into
//! [`Coverage`], with the continuation that bounds every answer.

use crate::storage::{GapCause, SensorId, Storage, StorageError};
use serde::{Deserialize, Serialize};

/// Readings one answer reads at most (the API's and the export's
/// [`CoverageQuery::scan_limit`]). The window functions cost about 3 µs a
/// reading on SQLite (0.13 s of CPU for 50,000, measured with SQLite
/// 3.40; the scan alone is a tenth of that), so an answer stays well
/// under a second on a busy small machine; a day at 10 Hz takes 18.
pub const COVERAGE_SCAN_LIMIT: u32 = 50_000;

/// What a range of a sensor's timeline holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageKind {
    /// Readings that came in the live stream as sent.
    Live,
    /// Readings of the live stream of which at least one was lost and
    /// resent (RFC 4588 retransmission); [`CoverageRange::resent`] says how
    /// many.
    Resent,
    /// Readings sent from the agent's spool after an interruption.
    Backfilled,
    /// A stored gap; [`CoverageRange::cause`] says why.
    Missing,
}

impl CoverageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CoverageKind::Live => "live",
            CoverageKind::Resent => "resent",
            CoverageKind::Backfilled => "backfilled",
            CoverageKind::Missing => "missing",
        }
    }
}

/// One range. A range of readings holds the instants `from_ns..=to_ns`
/// (its first and last stored instant); a missing range lies strictly
/// between `from_ns` and `to_ns`, the stored instants around it, as a
/// [`Gap`](crate::storage::Gap) does. So a missing range abuts the
/// readings on either side; two ranges of readings side by side hold
/// consecutive instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CoverageRange {
    pub kind: CoverageKind,
    pub from_ns: i64,
    pub to_ns: i64,
    /// Stored instants (a range of readings) or missing ones (a gap).
    pub instants: i64,
    /// Of the stored instants, those that were resent.
    pub resent: i64,
    /// Why instants are missing (missing ranges only).
    pub cause: Option<GapCause>,
}

impl CoverageRange {
    /// The instant a continuation starts at, just past this range.
    fn end_for_continuation(&self) -> i64 {
        match self.kind {
            // Its last instant is stored: the next answer starts after it.
            CoverageKind::Live | CoverageKind::Resent | CoverageKind::Backfilled => {
                self.to_ns.saturating_add(1)
            }
            // A gap overlaps a window only if it ends past the window's start.
            CoverageKind::Missing => self.to_ns,
        }
    }

    /// Whether `next` can be the rest of this range, cut by an answer's
    /// scan limit: both live-stream readings, or both backfilled.
    fn same_run(&self, next: &CoverageRange) -> bool {
        let stream = |k| matches!(k, CoverageKind::Live | CoverageKind::Resent);
        (stream(self.kind) && stream(next.kind))
            || (self.kind == CoverageKind::Backfilled && next.kind == CoverageKind::Backfilled)
    }

    /// Joins the first range of a continuation to this one, the last of
    /// the answer before, when it is the same run cut by the scan limit.
    /// Returns `next` back when it is another range.
    pub fn join(&mut self, next: CoverageRange) -> Option<CoverageRange> {
        if !self.same_run(&next) || next.from_ns <= self.to_ns {
            return Some(next);
        }
        self.to_ns = next.to_ns;
        self.instants += next.instants;
        self.resent += next.resent;
        if self.resent > 0 {
            self.kind = CoverageKind::Resent;
        }
        None
    }
}

/// The ranges of one sensor's timeline in `[from_ns, to_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoverageQuery {
    pub sensor: SensorId,
    pub from_ns: i64,
    pub to_ns: i64,
    /// At most this many ranges.
    pub limit: u32,
    /// At most this many readings are read; what lies beyond is left to
    /// the continuation, so an answer's cost is bounded whatever the rate.
    pub scan_limit: u32,
}

/// An answer: ranges in time order, and where to continue when there are
/// more. The first range of a continuation may be the rest of the last
/// range here (cut by the scan limit): [`CoverageRange::join`] puts them
/// together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub ranges: Vec<CoverageRange>,
    /// Ask again with this as `from_ns` (same `to_ns`) for the rest.
    pub next_from_ns: Option<i64>,
}

/// Hands every range of `q`'s window to `each`, in time order: asks again
/// at each continuation and joins the ranges the scan limit cut, so a
/// range comes whole however many answers it took. Returns the number of
/// answers.
pub async fn each_coverage_range<E: From<StorageError>>(
    store: &dyn Storage,
    mut q: CoverageQuery,
    mut each: impl FnMut(CoverageRange) -> Result<(), E>,
) -> Result<u64, E> {
    // The last range of an answer waits: the next answer may go on with it.
    let mut held: Option<CoverageRange> = None;
    let mut answers = 0;
    loop {
        let answer = store.coverage(&q).await?;
        answers += 1;
        for r in answer.ranges {
            match held.as_mut() {
                Some(h) => {
                    if let Some(next) = h.join(r) {
                        each(std::mem::replace(h, next))?;
                    }
                }
                None => held = Some(r),
            }
        }
        match answer.next_from_ns {
            // Each continuation starts past the one before: the loop ends.
            Some(next) if next > q.from_ns => q.from_ns = next,
            _ => break,
        }
    }
    if let Some(last) = held {
        each(last)?;
    }
    Ok(answers)
}

/// The query of both backends, with `$1` sensor, `$2` from, `$3` to,
/// `$4` scan limit, `$5` ranges to return (one past the limit, to know
/// whether there are more). SQLite takes the same text with `?` for `$`.
///
/// Runs: readings in instant order, grouped while their class stays the
/// same (0: the live stream, live or resent; 2: backfilled); each stored
/// gap is a run of its own and separates the readings around it. A gap
/// starting at a stored instant sorts after it. Gaps are read where the
/// scan read readings: the few starting before the window
/// (`PROBE_BEFORE`, as the gap cuts do) and those starting before the
/// instant the scan stopped at.
pub(crate) const COVERAGE_SQL: &str = "
WITH scanned AS (
    SELECT ts_ns, source FROM samples
    WHERE sensor_id = $1 AND ts_ns >= $2 AND ts_ns < $3
    ORDER BY ts_ns LIMIT $4
),
bound AS (
    SELECT CASE WHEN count(*) = $4 THEN max(ts_ns) ELSE $3 END AS end_ns FROM scanned
),
near AS (
    SELECT from_ns, to_ns, samples, cause FROM gaps
    WHERE sensor_id = $1 AND from_ns >= $2 AND from_ns < (SELECT end_ns FROM bound)
    UNION ALL
    SELECT * FROM (SELECT from_ns, to_ns, samples, cause FROM gaps
                   WHERE sensor_id = $1 AND from_ns < $2
                   ORDER BY from_ns DESC LIMIT 4) AS probed
    WHERE to_ns > $2
),
points AS (
    SELECT ts_ns AS t, 0 AS o,
           CASE WHEN source = 2 THEN 2 ELSE 0 END AS class,
           CASE WHEN source = 1 THEN 1 ELSE 0 END AS resent,
           NULL AS gap_to, NULL AS missing, NULL AS cause
    FROM scanned
    UNION ALL
    SELECT from_ns, 1, -1, 0, to_ns, samples, cause FROM near
),
marked AS (
    SELECT t, o, class, resent, gap_to, missing, cause,
           CASE WHEN class = -1 OR coalesce(lag(class) OVER w, -2) <> class
                THEN 1 ELSE 0 END AS starts
    FROM points
    WINDOW w AS (ORDER BY t, o, gap_to)
),
runs AS (
    SELECT t, class, resent, gap_to, missing, cause,
           sum(starts) OVER (ORDER BY t, o, gap_to ROWS UNBOUNDED PRECEDING) AS run
    FROM marked
)
SELECT CAST(min(class) AS BIGINT), min(t), max(coalesce(gap_to, t)),
       CAST(count(*) AS BIGINT), CAST(sum(resent) AS BIGINT),
       CAST(max(missing) AS BIGINT), max(cause)
FROM runs GROUP BY run ORDER BY run LIMIT $5";

/// The number of gaps starting before a window that the query looks at;
/// `COVERAGE_SQL` spells it out, this keeps the two in step.
const _: () = assert!(crate::storage::gap_cuts::PROBE_BEFORE == 4);

/// A row of [`COVERAGE_SQL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunRow {
    pub class: i64,
    pub from_ns: i64,
    pub to_ns: i64,
    pub count: i64,
    pub resent: i64,
    pub missing: Option<i64>,
    pub cause: Option<String>,
}

/// A run whose class or cause the query cannot have produced.
#[derive(Debug, thiserror::Error)]
#[error("coverage run of class {class} with cause {cause:?}")]
pub(crate) struct BadRun {
    class: i64,
    cause: Option<String>,
}

/// `$5` of the query: one more than the limit.
pub(crate) fn rows_to_fetch(q: &CoverageQuery) -> i64 {
    i64::from(q.limit) + 1
}

fn range_of(row: RunRow) -> Result<CoverageRange, BadRun> {
    let bad = |row: RunRow| BadRun {
        class: row.class,
        cause: row.cause,
    };
    let kind = match row.class {
        0 if row.resent > 0 => CoverageKind::Resent,
        0 => CoverageKind::Live,
        2 => CoverageKind::Backfilled,
        -1 => CoverageKind::Missing,
        _ => return Err(bad(row)),
    };
    let cause = match (kind, row.cause.as_deref().map(GapCause::parse)) {
        (CoverageKind::Missing, Some(Some(c))) => Some(c),
        (CoverageKind::Missing, _) => return Err(bad(row)),
        _ => None,
    };
    Ok(CoverageRange {
        kind,
        from_ns: row.from_ns,
        to_ns: row.to_ns,
        instants: if kind == CoverageKind::Missing {
            row.missing.unwrap_or(0)
        } else {
            row.count
        },
        resent: row.resent,
        cause,
    })
}

/// The answer from the query's rows: at most `q.limit` ranges, and a
/// continuation when the limit cut them or the scan read `q.scan_limit`
/// readings (the last range may then go on).
pub(crate) fn assemble(rows: Vec<RunRow>, q: &CoverageQuery) -> Result<Coverage, BadRun> {
    let mut ranges = rows
        .into_iter()
        .map(range_of)
        .collect::<Result<Vec<_>, _>>()?;
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let cut_by_limit = ranges.len() > limit;
    ranges.truncate(limit);
    let read: i64 = ranges
        .iter()
        .filter(|r| r.kind != CoverageKind::Missing)
        .map(|r| r.instants)
        .sum();
    let cut_by_scan = read >= i64::from(q.scan_limit);
    let next_from_ns = match ranges.last() {
        Some(last) if cut_by_limit || cut_by_scan => {
            Some(last.end_for_continuation()).filter(|&n| n < q.to_ns)
        }
        _ => None,
    };
    Ok(Coverage {
        ranges,
        next_from_ns,
    })
}

#[cfg(test)]
mod tests;
