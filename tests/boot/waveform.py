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


def quantize(value, scale):
    """The raw integer the agent sends: round(value / scale), half away
    from zero (protocol/src/sdp/stream.rs)."""
    return int(_round_half_away(value / scale))


def check_stored(raws, scale, **wave):
    """Match stored raw samples (oldest first) exactly against the waveform.

    The agent's sender takes the newest read of the sensor thread at each
    tick of the stream clock (sample and hold), so under load a read may be
    sent twice or skipped: from one stored sample to the next the read
    index advances by 1, or by 0 or 2. Every raw value must be exactly the
    waveform's value at its index. The first index is searched over one
    period of the waveform (it repeats exactly); of the starts that explain
    every sample, the one with the most steps of exactly 1 wins.
    Returns the indices; raises AssertionError naming the first sample no
    start explains."""
    period = max(wave["period_ns"] // wave["sample_period_ns"], 1)
    cache = {}

    def raw_at(k):
        k %= period
        if k not in cache:
            cache[k] = quantize(value(index=k, **wave), scale)
        return cache[k]

    best, best_ones, furthest = None, -1, (0, None)
    for start in range(period):
        if raw_at(start) != raws[0]:
            continue
        indices = [start]
        for i, raw in enumerate(raws[1:], start=1):
            k = next((indices[-1] + d for d in (1, 0, 2) if raw_at(indices[-1] + d) == raw), None)
            if k is None:
                if i > furthest[0]:
                    furthest = (i, indices[-1])
                break
            indices.append(k)
        else:
            ones = sum(1 for a, b in zip(indices, indices[1:]) if b - a == 1)
            if ones > best_ones:
                best, best_ones = indices, ones
    if best is None:
        i, last = furthest
        if last is None:
            raise AssertionError(f"the first stored sample (raw {raws[0]}) is not on the "
                                 f"simulated waveform {wave}")
        raise AssertionError(f"stored sample {i} (raw {raws[i]}) is not on the waveform after "
                             f"index {last} (expected {raw_at(last + 1)})")
    return best
