"""history.py, the power-cut test's reading of a stored history. Runs
without root or QEMU."""

import unittest

import history
import waveform
from history import Hole, Outage

STEP = 100_000_000
FSYNC = 1_000_000_000
WAVE = dict(seed=7, channel=0, sample_period_ns=STEP, offset=21.5, amplitude=2.0,
            period_ns=60_000_000_000)
# A history of test 6 on a 10 Hz grid (s: seconds on the guest's clock):
# live from 0 to 20 s, the collector stopped at 20 s, the power cut at
# 30 s, the board on again at 100 s, sampling again from 130 s.
S = 1_000_000_000
OUTAGE = Outage(collector_stopped_ns=20 * S, cut_ns=30 * S, powered_ns=100 * S,
                clock_error_ns=50_000_000)


def run_rows(first_ns, count, source_at):
    """A run of the agent: COUNT samples from FIRST_NS, readings from 0."""
    return [{"ts_ns": first_ns + k * STEP, "source": source_at(first_ns + k * STEP),
             "raw": waveform.quantize(waveform.value(index=k, **WAVE), 0.01)}
            for k in range(count)]


def outage_history(synced_through_ns=30 * S - 600_000_000):
    """(rows, gaps) of a complete backfill: the first run stored up to the
    last sync before the cut, the time off a source gap."""
    first = run_rows(0, synced_through_ns // STEP + 1,
                     lambda ts: "live" if ts < 20 * S else "backfilled")
    second = run_rows(130 * S, 200, lambda ts: "backfilled" if ts < 140 * S else "live")
    gaps = [gap(first[-1]["ts_ns"], 130 * S, "source")]
    return first + second, gaps


def check(rows, gaps):
    return history.check_power_cut(rows, gaps, OUTAGE, STEP, FSYNC,
                                   lambda raws: waveform.check_stored(raws, 0.01, **WAVE))


def gap(from_ns, to_ns, cause):
    return {"from_ns": from_ns, "to_ns": to_ns, "cause": cause}


class History(unittest.TestCase):
    def test_holes_are_steps_of_one_and_a_half_or_more(self):
        instants = [0, STEP, 2 * STEP + STEP // 2 - 1, 5 * STEP, 6 * STEP]
        self.assertEqual(history.holes(instants, STEP), [Hole(2 * STEP + STEP // 2 - 1, 5 * STEP)])
        self.assertEqual(Hole(STEP, 5 * STEP).instants(STEP), 3)
        # A stamp a millisecond off (an SR re-anchoring a starved guest)
        # is no hole.
        self.assertEqual(history.holes([0, STEP + 1_000_000, 2 * STEP], STEP), [])

    def test_a_sample_under_two_stamps_is_duplicated(self):
        self.assertEqual(history.duplicated([0, STEP, STEP + STEP // 3, 2 * STEP], STEP), 1)
        self.assertEqual(history.duplicated([0, STEP, 2 * STEP], STEP), 0)

    def test_the_hole_across_an_instant(self):
        instants = [0, STEP, 10 * STEP, 11 * STEP, 20 * STEP]
        self.assertEqual(history.hole_across(instants, 5 * STEP, STEP), Hole(STEP, 10 * STEP))
        self.assertEqual(history.hole_across(instants, 15 * STEP, STEP), Hole(11 * STEP, 20 * STEP))
        self.assertIsNone(history.hole_across(instants, 10 * STEP + 1, STEP))

    def test_a_gap_accounts_for_a_hole_only_with_its_cause_and_span(self):
        hole = Hole(STEP, 10 * STEP)
        source = gap(STEP, 10 * STEP, "source")
        self.assertEqual(history.gap_for(hole, [source], ("source",), STEP), source)
        self.assertIsNone(history.gap_for(hole, [gap(STEP, 10 * STEP, "session_break")],
                                          ("source",), STEP))
        # One that covers only part of the hole does not account for it.
        self.assertIsNone(history.gap_for(hole, [gap(STEP, 5 * STEP, "source")],
                                          ("source",), STEP))

    def test_the_clock_offset_from_the_shortest_round_trip(self):
        readings = [(1_000, 5_600, 2_000), (10_000, 15_050, 10_100), (20_000, 26_000, 23_000)]
        self.assertEqual(history.clock_offset(readings), (5_000, 50))

    def test_a_power_cut_backfilled_as_the_protocol_says(self):
        rows, gaps = outage_history()
        figures = check(rows, gaps)
        self.assertEqual(figures.lost_ns, 600_000_000)
        self.assertEqual(figures.off, Hole(30 * S - 600_000_000, 130 * S))
        self.assertEqual(figures.spooled_only, 94)
        self.assertEqual(figures.backfilled, 95 + 100)
        self.assertEqual(figures.stored, len(rows))

    def test_more_lost_before_the_cut_than_the_fsync_interval_fails(self):
        rows, gaps = outage_history(synced_through_ns=30 * S - 1_200_000_000)
        with self.assertRaisesRegex(AssertionError, "1200 ms before the power cut lost"):
            check(rows, gaps)

    def test_the_time_off_stored_as_a_fillable_gap_fails(self):
        rows, gaps = outage_history()
        gaps = [dict(gaps[0], cause="session_break")]
        with self.assertRaisesRegex(AssertionError, "no source gap spans the power cut"):
            check(rows, gaps)

    def test_a_sample_under_two_stamps_or_a_hole_fails(self):
        rows, gaps = outage_history()
        twice = rows[:50] + [dict(rows[50], ts_ns=rows[50]["ts_ns"] + 1)] + rows[50:]
        with self.assertRaisesRegex(AssertionError, "under two stamps"):
            check(twice, gaps)
        with self.assertRaisesRegex(AssertionError, "holes nothing accounts for"):
            check(rows[:50] + rows[55:], gaps)

    def test_a_value_off_the_waveform_fails(self):
        rows, gaps = outage_history()
        rows[250] = dict(rows[250], raw=rows[250]["raw"] + 1)
        with self.assertRaisesRegex(AssertionError, "not on the waveform"):
            check(rows, gaps)

    def test_what_was_spooled_must_come_by_backfill(self):
        rows, gaps = outage_history()
        rows = [dict(r, source="live") for r in rows]
        with self.assertRaisesRegex(AssertionError, "other than by backfill"):
            check(rows, gaps)


if __name__ == "__main__":
    unittest.main()
