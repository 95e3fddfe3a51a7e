"""history.py, the power-cut test's reading of a stored history. Runs
without root or QEMU."""

import unittest

import history
from history import Hole

STEP = 100_000_000


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


if __name__ == "__main__":
    unittest.main()
