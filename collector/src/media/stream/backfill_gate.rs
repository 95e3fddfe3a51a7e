//! Which backfill packets (docs/protocol.md 11.6) a stream takes while the
//! storage writer defers late rows, sans-I/O.
//!
//! A refused packet leaves a hole: the collector's mark stops before it,
//! and the agent, its mark unmoved for its ack timeout, goes back to the
//! mark and sends again from there (11.7 step 6). Until it does, the
//! packets it sends beyond the hole are refused too, though the writer may
//! have room again: stored, they would sit past the hole, hold no mark up,
//! and come again as duplicates when the agent goes back. So each
//! stream's backfill is stored in order, and the room storage has goes to
//! packets that move a mark.

/// One stream's gate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct BackfillGate {
    /// First instant of the oldest packet refused since the agent last
    /// went back to it.
    hole_ns: Option<u64>,
}

impl BackfillGate {
    /// Whether the packet whose first instant is `first_ns` is taken;
    /// `room`: the writer takes late rows now.
    pub fn admit(&mut self, first_ns: u64, room: bool) -> bool {
        if self.hole_ns.is_some_and(|hole| first_ns > hole) {
            return false;
        }
        if !room {
            self.hole_ns = Some(self.hole_ns.map_or(first_ns, |h| h.min(first_ns)));
            return false;
        }
        self.hole_ns = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_room_every_packet_is_taken() {
        let mut g = BackfillGate::default();
        assert!((0..10).all(|t| g.admit(t * 100, true)));
    }

    #[test]
    fn after_a_refusal_only_the_agent_going_back_opens_it_again() {
        let mut g = BackfillGate::default();
        assert!(g.admit(100, true));
        assert!(!g.admit(200, false), "no room: refused, a hole at 200");
        // Room again, but the agent sends on beyond the hole: refused.
        assert!(!g.admit(300, true));
        assert!(!g.admit(400, true));
        // It goes back to its mark (before the hole): taken, and on.
        assert!(g.admit(150, true));
        assert!(g.admit(200, true));
        assert!(g.admit(300, true));
    }

    #[test]
    fn going_back_while_still_full_keeps_the_oldest_hole() {
        let mut g = BackfillGate::default();
        assert!(!g.admit(500, false));
        assert!(!g.admit(300, false), "went back, still no room");
        // The hole is now at 300: a packet at 400 is beyond it.
        assert!(!g.admit(400, true));
        assert!(g.admit(300, true));
    }
}
