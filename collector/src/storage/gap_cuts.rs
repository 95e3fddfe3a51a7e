//! How stored samples and expired ranges change stored gaps (issue 15),
//! as plain arithmetic both backends apply inside their transactions.
//!
//! A gap `(from_ns, to_ns)` says the `samples` instants strictly between
//! the two bounding instants are missing. Its own spacing,
//! `(to_ns - from_ns) / (samples + 1)`, tells how many instants any piece
//! of it misses, without a look-up of the session's rate; rounding absorbs
//! the jitter between the collector's wall-clock mapping of the bounds and
//! the agent's stamps of the samples that fill it.

use crate::storage::{Gap, GapCause, Reading, ReadingSource, SensorId};
use std::collections::BTreeMap;

/// Gaps starting before a range that are looked at for overlap. Gaps of one
/// sensor do not overlap each other (one stream, one gap finder), so the
/// last one starting before a range is the only one reaching into it; a
/// few more tolerate the rare overlap of two sessions' break gaps.
pub(crate) const PROBE_BEFORE: i64 = 4;

/// Missing instants in the piece `(a, b)` of `g`, by the gap's spacing.
fn piece_missing(g: &Gap, a: i64, b: i64) -> i64 {
    let span = i128::from(g.to_ns) - i128::from(g.from_ns);
    if span <= 0 || g.samples <= 0 || b <= a {
        return 0;
    }
    let slots = (i128::from(b) - i128::from(a)) * (i128::from(g.samples) + 1);
    // round(slots / span) instants apart, so one less lies strictly between.
    let apart = (2 * slots + span) / (2 * span);
    i64::try_from((apart - 1).clamp(0, i128::from(g.samples))).unwrap_or(0)
}

/// What is left of `g` once the instants in `stored` (ascending) are
/// stored: the pieces between them that still miss instants. `None` when
/// no stored instant lies strictly inside, so the gap stays as it is.
pub(crate) fn cut_by_stored(g: &Gap, stored: &[i64]) -> Option<Vec<Gap>> {
    let inside: Vec<i64> = stored
        .iter()
        .copied()
        .filter(|&t| t > g.from_ns && t < g.to_ns)
        .collect();
    if inside.is_empty() {
        return None;
    }
    let mut pieces = Vec::new();
    let mut from = g.from_ns;
    for t in inside.into_iter().chain(std::iter::once(g.to_ns)) {
        if t <= from {
            continue;
        }
        let samples = piece_missing(g, from, t);
        if samples > 0 {
            pieces.push(Gap {
                from_ns: from,
                to_ns: t,
                samples,
                ..*g
            });
        }
        from = t;
    }
    Some(pieces)
}

/// The spacing of `g`'s instants, 0 when it misses none.
fn spacing(g: &Gap) -> i64 {
    if g.samples <= 0 || g.to_ns <= g.from_ns {
        return 0;
    }
    let span = i128::from(g.to_ns) - i128::from(g.from_ns);
    i64::try_from(span / (i128::from(g.samples) + 1)).unwrap_or(0)
}

/// `g` against an expired range (instants strictly between `after` and
/// `before` are gone; the agent still has `before`): the pieces of `g`
/// outside it, keeping their cause, and the instants of `g` inside it.
/// A piece outside keeps the bound instant as missing, so its own bound is
/// the nominal instant next to it. `None` when `g` is not fillable or does
/// not reach into the range.
pub(crate) fn split_for_expiry(g: &Gap, after: i64, before: i64) -> Option<(Vec<Gap>, i64)> {
    if !g.cause.is_fillable() || g.to_ns <= after || g.from_ns >= before {
        return None;
    }
    let step = spacing(g);
    let mut outside = Vec::new();
    let mut kept = 0;
    if g.from_ns < after {
        let to_ns = after.saturating_add(step).min(g.to_ns);
        let samples = piece_missing(g, g.from_ns, to_ns);
        kept += samples;
        if samples > 0 {
            outside.push(Gap {
                to_ns,
                samples,
                ..*g
            });
        }
    }
    if before < g.to_ns {
        let from_ns = before.saturating_sub(step).max(g.from_ns);
        let samples = piece_missing(g, from_ns, g.to_ns);
        kept += samples;
        if samples > 0 {
            outside.push(Gap {
                from_ns,
                samples,
                ..*g
            });
        }
    }
    Some((outside, (g.samples - kept).max(0)))
}

/// Instants strictly between `after` and `before` at `rate_hz`: the size of
/// an expired range no stored gap described.
pub(crate) fn instants_between(after: i64, before: i64, rate_hz: f64) -> i64 {
    if before <= after || !(rate_hz.is_finite() && rate_hz > 0.0) {
        return 0;
    }
    let apart = ((before - after) as f64 * rate_hz / 1e9).round();
    (apart as i64 - 1).max(0)
}

/// Per sensor, the span of a batch's readings that arrived late (resent or
/// backfilled): the stored gaps overlapping it may shrink. Live readings
/// fill nothing: the gap finder reports a gap only after its grace time,
/// when the live packets that could fill it are past.
pub(crate) fn late_spans(readings: &[Reading]) -> Vec<(SensorId, i64, i64)> {
    let mut spans: BTreeMap<SensorId, (i64, i64)> = BTreeMap::new();
    for r in readings.iter().filter(|r| r.source != ReadingSource::Live) {
        let e = spans.entry(r.sensor).or_insert((r.ts_ns, r.ts_ns));
        e.0 = e.0.min(r.ts_ns);
        e.1 = e.1.max(r.ts_ns);
    }
    spans.into_iter().map(|(s, (lo, hi))| (s, lo, hi)).collect()
}

/// Candidate gaps, deduplicated by key, and of a cause that can be cut:
/// every cause, because no gap may cover a stored instant.
pub(crate) fn dedup(mut gaps: Vec<Gap>) -> Vec<Gap> {
    gaps.sort_by_key(|g| (g.sensor, g.from_ns, g.to_ns));
    gaps.dedup_by_key(|g| (g.sensor, g.from_ns, g.to_ns));
    gaps
}

/// The committed mark from the start of a sensor's oldest fillable gap
/// and its newest stored instant: everything through the earlier of the
/// two is stored or gone for good.
pub(crate) fn committed_mark(oldest_fillable: Option<i64>, newest: Option<i64>) -> Option<i64> {
    match (oldest_fillable, newest) {
        (Some(g), Some(n)) => Some(g.min(n)),
        (g, n) => g.or(n),
    }
}

/// Why an unsampled range is refused: samples of it are stored.
pub(crate) fn unsampled_but_stored(sensor: SensorId, after: i64, before: i64) -> String {
    format!(
        "sensor {} declared ({after}, {before}) unsampled, but samples of it are stored",
        sensor.0
    )
}

/// The gap recorded for a range the agent declared (`cause`: expired, or
/// source for a range it never sampled): the instants the overlapped gaps
/// missed there, or, when none described the range, the count at the
/// sensor's rate. `None` when that count is known to be 0: no instant lies
/// strictly between the bounds (docs/protocol.md 11.7: the unsampled range
/// from the last backfilled instant to the first live one, one step apart,
/// at each backfill's end), so no gap is stored where nothing was missed.
/// An unknown rate keeps the range, counted as 0.
pub(crate) fn declared_gap(
    sensor: SensorId,
    (after, before): (i64, i64),
    cause: GapCause,
    overlapped_missing: Option<i64>,
    rate_hz: Option<f64>,
) -> Option<Gap> {
    let samples = match (overlapped_missing, rate_hz) {
        (Some(n), _) => n,
        (None, Some(r)) => instants_between(after, before, r),
        (None, None) => -1,
    };
    (samples != 0).then_some(Gap {
        sensor,
        session: None,
        from_ns: after,
        to_ns: before,
        samples: samples.max(0),
        cause,
    })
}

#[cfg(test)]
mod tests;
