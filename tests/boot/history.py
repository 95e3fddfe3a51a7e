"""A sensor's stored history around a power cut, instant by instant
(issue #15, test 6; the process half is e2e s18, whose checks this follows).

The agent stamps its sampling instants `base + n × step` on its wall clock
(docs/protocol.md 11.2), so a complete run of the agent is stored as
instants one step apart: a missing sample shows as a step of two or more,
one sample stored under two stamps as a step under half. The collector
keeps a key once (11.3), so a copy under the same stamp cannot show.
The agent's wall clock is the guest's: `clock_offset` relates it to the
host's, where the test takes the time of the cut.
"""

from dataclasses import dataclass

# Causes of stored gaps that backfill may still fill: while one is
# stored, the collector's mark stays before it (collector/src/storage/model.rs
# GapCause::is_fillable) and the backfill is not done.
FILLABLE = ("loss", "session_break", "overload")


@dataclass(frozen=True)
class Hole:
    """Instants missing between two stored ones."""
    after_ns: int
    before_ns: int

    def instants(self, step_ns):
        return (self.before_ns - self.after_ns + step_ns // 2) // step_ns - 1


def holes(instants, step_ns):
    """The holes between sorted stored instants (a step of 1.5 or more)."""
    return [Hole(a, b) for a, b in zip(instants, instants[1:]) if 2 * (b - a) > 3 * step_ns]


def duplicated(instants, step_ns):
    """Sorted instants closer than half a step to the one before: one
    sample stored twice under two stamps."""
    return sum(1 for a, b in zip(instants, instants[1:]) if 2 * (b - a) < step_ns)


def gap_for(hole, gaps, causes, step_ns):
    """The stored gap of one of CAUSES that spans HOLE (give or take a
    step), or None."""
    return next((g for g in gaps if g["cause"] in causes
                 and g["from_ns"] <= hole.after_ns + step_ns
                 and g["to_ns"] >= hole.before_ns - step_ns), None)


def hole_across(instants, at_ns, step_ns):
    """The hole in sorted INSTANTS that AT_NS lies in, or None."""
    return next((h for h in holes(instants, step_ns) if h.after_ns < at_ns < h.before_ns), None)


def clock_offset(readings):
    """(offset, error) in ns of the guest's wall clock against the host's
    from (host before, guest, host after) readings: the one with the
    shortest round trip, the guest's reading taken at its middle."""
    before, guest, after = min(readings, key=lambda r: r[2] - r[0])
    return guest - (before + after) // 2, (after - before + 1) // 2


@dataclass(frozen=True)
class Outage:
    """The instants of an interruption, on the guest's clock (ns)."""
    collector_stopped_ns: int
    cut_ns: int
    powered_ns: int
    # How far the host's readings may be off the guest's clock.
    clock_error_ns: int


@dataclass(frozen=True)
class PowerCut:
    """What a power cut cost, as stored."""
    lost_ns: int
    off: Hole
    backfilled: int
    spooled_only: int
    stored: int


def check_power_cut(rows, gaps, outage, step_ns, fsync_ns, check_run):
    """Check a sensor's stored samples (ROWS, oldest first, with `ts_ns`,
    `raw`, `source`) and GAPS across OUTAGE: the collector stopped, the
    agent sampled into its spool alone, the power was cut, the board was
    powered on again. CHECK_RUN(raws) checks one run of the agent against
    its waveform. Raises AssertionError naming what is wrong."""
    instants = [r["ts_ns"] for r in rows]
    if len(set(instants)) != len(instants):
        raise AssertionError("a sample stored twice")
    if duplicated(instants, step_ns):
        raise AssertionError(f"{duplicated(instants, step_ns)} samples stored under two stamps")
    off = hole_across(instants, outage.cut_ns, step_ns)
    if off is None:
        raise AssertionError("samples stored for the time the board was off")
    # What the board sampled before the cut is stored up to the last
    # sync before it (a step more: the instant being written).
    lost = outage.cut_ns - off.after_ns
    if lost > fsync_ns + step_ns + outage.clock_error_ns:
        raise AssertionError(f"{lost / 1e6:.0f} ms before the power cut lost (fsync interval "
                             f"{fsync_ns // 1_000_000} ms)")
    if off.before_ns < outage.powered_ns - outage.clock_error_ns:
        raise AssertionError("the second run's samples start before the board was on")
    # The time the board was off is stored as what it is: not sampled
    # (docs/protocol.md 11.4 unsampled, a source gap), not a hole that
    # backfill may still fill.
    if gap_for(off, gaps, ("source",), step_ns) is None:
        raise AssertionError(f"no source gap spans the power cut {off}: gaps {gaps}")
    # Every other hole is one the agent did not sample either (its sender
    # starved past its late limit, 5.3).
    unexplained = [h for h in holes(instants, step_ns)
                   if h != off and gap_for(h, gaps, ("source",), step_ns) is None]
    if unexplained:
        raise AssertionError(f"holes nothing accounts for: {unexplained}; gaps {gaps}")
    if instants[0] + outage.clock_error_ns >= outage.collector_stopped_ns:
        raise AssertionError("nothing stored from before the collector stopped")
    # Each run of the agent exactly as sampled (its waveform starts again
    # at reading 0 after the boot).
    check_run([r["raw"] for r in rows if r["ts_ns"] <= off.after_ns])
    check_run([r["raw"] for r in rows if r["ts_ns"] >= off.before_ns])
    spooled_only = [r for r in rows
                    if outage.collector_stopped_ns + outage.clock_error_ns < r["ts_ns"]
                    < outage.cut_ns]
    if not spooled_only:
        raise AssertionError("nothing sampled after the collector stopped is stored")
    if {r["source"] for r in spooled_only} != {"backfilled"}:
        raise AssertionError("samples of while the collector was away came other than by "
                             f"backfill: {sorted({r['source'] for r in spooled_only})}")
    return PowerCut(lost_ns=lost, off=off,
                    backfilled=sum(1 for r in rows if r["source"] == "backfilled"),
                    spooled_only=len(spooled_only), stored=len(rows))
