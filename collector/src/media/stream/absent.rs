//! Instants a samples packet carries without any reading, sans-I/O.
//!
//! docs/protocol.md 5.2: 0x80000000 is "no reading for this channel at
//! this instant", stored as missing; an instant with no reading on any
//! channel has no row to store it in. 5.3 counts such values as "no data
//! at the source". So a run of them becomes a `source` gap: without one the
//! hole is unexplained in the stored history, indistinguishable from a
//! sample received and lost (found in e2e s17 under CPU load: the agent's
//! sensor thread, starved past its `stale_after`, had no fresh reading, and
//! three instants went out empty).
//!
//! Runs are merged across packets while the instants follow on, so a
//! sensor that stops answering for an hour is a few gaps, not one per
//! packet: a run is written when a reading comes again, when the instants
//! stop following on (reordering, a new description), when it spans
//! [`PIECE_NS`], and when the stream ends.

use crate::storage::{Gap, GapCause, SensorId, SessionId};

/// An open run is written at least this often (in sample time), so a
/// sensor that stays silent leaves explained history behind it.
pub const PIECE_NS: i64 = 10_000_000_000;

/// Consecutive instants without a reading, first to last, `step_ns` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsentRun {
    pub session: SessionId,
    pub first_ns: i64,
    pub last_ns: i64,
    pub step_ns: i64,
    pub instants: i64,
}

impl AbsentRun {
    /// The run as a gap: bounded by the instants next to it (the sample
    /// before and after, as every gap is), missing exactly its instants.
    pub fn gap(&self, sensor: SensorId) -> Gap {
        Gap {
            sensor,
            session: Some(self.session),
            from_ns: self.first_ns.saturating_sub(self.step_ns),
            to_ns: self.last_ns.saturating_add(self.step_ns),
            samples: self.instants,
            cause: GapCause::Source,
        }
    }

    /// Whether `ns` is the instant `step_ns` after `at`, within half a
    /// step (instants timed by sender reports round to the nanosecond).
    fn next_after(at: i64, ns: i64, step_ns: i64) -> bool {
        (ns - at.saturating_add(step_ns)).abs() <= step_ns / 2
    }
}

/// The open run of one source of a stream.
#[derive(Debug, Default, Clone)]
pub struct AbsentRuns {
    open: Option<AbsentRun>,
}

impl AbsentRuns {
    /// Instant `ns` (of `session`, instants `step_ns` apart) came without
    /// a reading; the runs this closes go to `out`, to be stored.
    pub fn absent(&mut self, session: SessionId, ns: i64, step_ns: i64, out: &mut Vec<AbsentRun>) {
        let step_ns = step_ns.max(1);
        if let Some(run) = self.open.as_mut()
            && run.session == session
            && run.step_ns == step_ns
        {
            if AbsentRun::next_after(run.last_ns, ns, step_ns) {
                run.last_ns = ns;
                run.instants += 1;
            } else if AbsentRun::next_after(ns, run.first_ns, step_ns) {
                // A reordered packet just before the run.
                run.first_ns = ns;
                run.instants += 1;
            } else {
                out.extend(self.open.take());
            }
        } else {
            out.extend(self.open.take());
        }
        let run = self.open.get_or_insert(AbsentRun {
            session,
            first_ns: ns,
            last_ns: ns,
            step_ns,
            instants: 1,
        });
        if run.last_ns.saturating_sub(run.first_ns) >= PIECE_NS {
            // The next absent instant starts a run bounded by this one.
            out.extend(self.open.take());
        }
    }

    /// Instant `ns` came with a reading: a run before it is over (a
    /// reading older than the run, reordered, leaves it open).
    pub fn present(&mut self, ns: i64, out: &mut Vec<AbsentRun>) {
        if self.open.is_some_and(|run| ns > run.last_ns) {
            out.extend(self.open.take());
        }
    }

    /// The stream (or the packet, for sources whose packets are not in
    /// instant order) ends.
    pub fn close(&mut self, out: &mut Vec<AbsentRun>) {
        out.extend(self.open.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: SessionId = SessionId(7);
    const STEP: i64 = 20_000_000;

    fn at(k: i64) -> i64 {
        1_000_000_000_000 + k * STEP
    }

    /// Feeds instants `k` (true: with a reading) and closes.
    fn runs(instants: &[(i64, bool)]) -> Vec<(i64, i64, i64)> {
        let mut r = AbsentRuns::default();
        let mut out = Vec::new();
        for &(k, present) in instants {
            if present {
                r.present(at(k), &mut out);
            } else {
                r.absent(S, at(k), STEP, &mut out);
            }
        }
        r.close(&mut out);
        out.iter()
            .map(|run| {
                let g = run.gap(SensorId(1));
                assert_eq!(g.cause, GapCause::Source);
                (
                    (g.from_ns - at(0)) / STEP,
                    (g.to_ns - at(0)) / STEP,
                    g.samples,
                )
            })
            .collect()
    }

    #[test]
    fn a_run_of_empty_instants_is_one_gap_bounded_by_its_neighbours() {
        let got = runs(&[(1, true), (2, false), (3, false), (4, true), (5, false)]);
        assert_eq!(got, vec![(1, 4, 2), (4, 6, 1)]);
    }

    #[test]
    fn instants_with_readings_make_no_gap() {
        assert!(runs(&[(1, true), (2, true), (3, true)]).is_empty());
    }

    #[test]
    fn a_reordered_instant_joins_the_run_it_borders_or_starts_its_own() {
        // 3 arrives before 2, both empty: one run.
        assert_eq!(
            runs(&[(1, true), (3, false), (2, false), (4, true)]),
            vec![(1, 4, 2)]
        );
        // An older reading arriving late leaves the run open.
        assert_eq!(
            runs(&[(3, false), (1, true), (4, false), (5, true)]),
            vec![(2, 5, 2)]
        );
        // An empty instant far from the run: two runs.
        assert_eq!(
            runs(&[(3, false), (9, false), (10, true)]),
            vec![(2, 4, 1), (8, 10, 1)]
        );
    }

    #[test]
    fn a_new_session_or_rate_closes_the_run() {
        let mut r = AbsentRuns::default();
        let mut out = Vec::new();
        r.absent(S, at(1), STEP, &mut out);
        r.absent(SessionId(8), at(2), STEP, &mut out);
        r.absent(SessionId(8), at(3), STEP / 2, &mut out);
        r.close(&mut out);
        let sessions: Vec<_> = out.iter().map(|r| (r.session, r.instants)).collect();
        assert_eq!(sessions, vec![(S, 1), (SessionId(8), 1), (SessionId(8), 1)]);
    }

    #[test]
    fn a_long_silence_is_written_in_pieces_that_cover_each_instant_once() {
        let n = 2 * PIECE_NS / STEP + 5;
        let instants: Vec<(i64, bool)> = (1..=n).map(|k| (k, false)).collect();
        let got = runs(&instants);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got.iter().map(|g| g.2).sum::<i64>(), n);
        // Each piece starts at the last instant of the one before.
        for w in got.windows(2) {
            assert_eq!(w[1].0, w[0].1 - 1);
        }
    }

    #[test]
    fn instants_timed_by_sender_reports_may_be_a_nanosecond_off() {
        let mut r = AbsentRuns::default();
        let mut out = Vec::new();
        r.absent(S, at(1), STEP, &mut out);
        r.absent(S, at(2) + 1, STEP, &mut out);
        r.absent(S, at(3) - 1, STEP, &mut out);
        r.close(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].instants, 3);
    }
}
