//! RFC 3261 timer values (section 17.1.1.1 and Table 4).

use std::time::Duration;

/// The base timer values a UA is configured with. Everything else derives
/// from these three (RFC 3261 Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; default 500 ms (17.1.1.1).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses; default 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network; default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// Timers B, F, H and the 2xx-retransmission give-up: 64*T1.
    pub fn transaction_timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D on an unreliable transport: at least 32 s (17.1.1.2).
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t1 * 64)
        }
    }

    /// Timers I and K: T4 on unreliable transports, zero on reliable ones.
    pub fn timer_t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64*T1 on unreliable transports, zero on reliable ones.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.transaction_timeout()
        }
    }

    /// Next retransmission interval after `current`, doubling and capped at
    /// T2 (timers E and G, 17.1.2.2 and 17.2.1).
    pub fn backoff(&self, current: Duration) -> Duration {
        (current * 2).min(self.t2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_derived_values_match_table_4() {
        let t = TimerConfig::default();
        assert_eq!(t.transaction_timeout(), Duration::from_secs(32));
        assert_eq!(t.timer_d(false), Duration::from_secs(32));
        assert_eq!(t.timer_d(true), Duration::ZERO);
        assert_eq!(t.timer_j(false), Duration::from_secs(32));
        assert_eq!(t.timer_t4_or_zero(false), Duration::from_secs(5));
    }

    #[test]
    fn backoff_doubles_up_to_t2() {
        let t = TimerConfig::default();
        let mut d = t.t1;
        let mut seen = vec![];
        for _ in 0..6 {
            seen.push(d.as_millis());
            d = t.backoff(d);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn timer_d_follows_a_large_t1() {
        let t = TimerConfig {
            t1: Duration::from_secs(1),
            ..TimerConfig::default()
        };
        assert_eq!(t.timer_d(false), Duration::from_secs(64));
    }
}
