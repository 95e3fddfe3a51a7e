"""The agent's simulated sensor, recomputed (agent/src/sensor/sim.rs).

Every sample is a pure function of (seed, channel, sample index, sample
period) made of IEEE-exact operations, so Python's doubles give the same
bits; `check_stored` matches what the collector stored against it.
"""

import math
from functools import reduce

MASK = (1 << 64) - 1
TAU = 2 * math.pi
PI = math.pi
FRAC_PI_2 = math.pi / 2
# 1/k! for the odd Taylor terms, as the agent computes them (a product of
# f64 in order, then a division).
_FACT = {k: reduce(lambda a, b: a * b, [float(i) for i in range(1, k + 1)], 1.0)
         for k in (3, 5, 7, 9, 11, 13, 15)}


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _hash3(a, b, c):
    return _mix(_mix(_mix(a ^ 0x9E3779B97F4A7C15) ^ b) ^ c)


def _unit_interval(x):
    return (x >> 11) * (1.0 / float(1 << 53))


def _round_half_away(x):
    """Rust's f64::round."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def det_sin(x):
    if not math.isfinite(x):
        return 0.0
    r = x - TAU * _round_half_away(x / TAU)
    if r > FRAC_PI_2:
        r = PI - r
    elif r < -FRAC_PI_2:
        r = -PI - r
    r2 = r * r
    acc = 1.0 / 355687428096000.0
    for k in (15, 13, 11, 9, 7, 5, 3):
        sign = 1.0 if (k // 2) % 2 == 0 else -1.0
        acc = sign / _FACT[k] + r2 * acc
    return r * (1.0 + r2 * acc)


def value(seed, channel, index, sample_period_ns, offset, amplitude, period_ns, noise=0.0):
    """SimConfig::value: offset + amplitude·sin(2π·t/period + phase) + noise."""
    phase = TAU * _unit_interval(_hash3(seed, channel, MASK))
    pos_ns = (index * sample_period_ns) % max(period_ns, 1)
    angle = TAU * (pos_ns / float(max(period_ns, 1))) + phase
    n = noise * (2.0 * _unit_interval(_hash3(seed, channel, index)) - 1.0) if noise > 0 else 0.0
    return offset + amplitude * det_sin(angle) + n


def check_stored(raws, scale, window=20, start_limit=400_000, **wave):
    """Match stored raw samples (oldest first) against the waveform.

    Each raw value must be the waveform's value at a sample index, the
    indices never going back: the first sample is searched among the first
    `start_limit` indices (about 11 h at 10 Hz) with its 10 successors
    confirming the start, later ones within `window` indices of the last
    match (a slow read may repeat or skip a sample). Returns the indices;
    raises AssertionError naming the first value that is not on it."""
    def raw_at(k):
        return value(index=k, **wave) / scale

    def matches(k, raw):
        return abs(raw_at(k) - raw) <= 0.5 + 1e-6

    head = raws[:11]
    start = None
    for k in range(start_limit):
        if not matches(k, head[0]):
            continue
        j, ok = k, True
        for raw in head[1:]:
            nxt = next((c for c in range(j, j + window) if matches(c, raw)), None)
            if nxt is None:
                ok = False
                break
            j = nxt
        if ok:
            start = k
            break
    if start is None:
        raise AssertionError(f"the first stored samples {head} are not on the simulated "
                             f"waveform {wave}")
    indices = [start]
    for i, raw in enumerate(raws[1:], start=1):
        k = next((c for c in range(indices[-1], indices[-1] + window) if matches(c, raw)), None)
        if k is None:
            raise AssertionError(f"stored sample {i} (raw {raw}) is not on the waveform after "
                                 f"index {indices[-1]} (expected about "
                                 f"{raw_at(indices[-1] + 1):.2f})")
        indices.append(k)
    return indices
