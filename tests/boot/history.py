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
