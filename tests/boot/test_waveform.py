"""waveform.py against the agent's own figures (agent/src/sensor/sim.rs):
the recomputation the boot tests rely on. Runs without root or QEMU."""

import struct
import unittest

import waveform


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


class Waveform(unittest.TestCase):
    def test_det_sin_known_bits(self):
        # The bit patterns agent/src/sensor/sim.rs's det_sin_known_bits pins.
        self.assertEqual(bits(waveform.det_sin(1.0)), 0x3FEAED548F090CEE)
        self.assertEqual(bits(waveform.det_sin(-2.5)), 0xBFE326AF0DCFCAAF)
        self.assertEqual(waveform.det_sin(float("nan")), 0.0)

    def test_period_and_range(self):
        wave = dict(seed=42, channel=0, sample_period_ns=10_000_000, offset=20.0,
                    amplitude=5.0, period_ns=250_000_000)
        values = [waveform.value(index=k, **wave) for k in range(50)]
        for k in range(25):
            self.assertEqual(bits(values[k]), bits(values[k + 25]))
        self.assertTrue(all(15.0 <= v <= 25.0 for v in values))
        self.assertGreater(max(values) - min(values), 9.0)

    def test_check_stored_accepts_the_waveform_and_rejects_a_wrong_value(self):
        wave = dict(seed=7, channel=0, sample_period_ns=100_000_000, offset=21.5,
                    amplitude=2.0, period_ns=60_000_000_000)
        raws = [waveform.quantize(waveform.value(index=k, **wave), 0.01)
                for k in range(300, 340)]
        self.assertEqual(waveform.check_stored(raws, 0.01, **wave), list(range(300, 340)))
        # A read sent twice and one skipped (sample and hold) are accepted...
        slow = raws[:5] + [raws[4]] + raws[5:20] + raws[21:]
        indices = waveform.check_stored(slow, 0.01, **wave)
        self.assertEqual(indices[0], 300)
        self.assertEqual(indices[-1], 339)
        # ...a value off by one raw unit is not, nor a jump of three reads.
        for broken in (raws[:20] + [raws[20] + 1] + raws[21:], raws[:20] + raws[23:]):
            with self.assertRaises(AssertionError):
                waveform.check_stored(broken, 0.01, **wave)
        # The index wraps with the waveform's period (600 samples here).
        wrapped = [waveform.quantize(waveform.value(index=k, **wave), 0.01)
                   for k in range(590, 610)]
        self.assertEqual(waveform.check_stored(wrapped, 0.01, **wave)[0], 590)

if __name__ == "__main__":
    unittest.main()
