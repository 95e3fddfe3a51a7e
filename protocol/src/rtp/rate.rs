//! A byte-rate limit as a token bucket, sans-I/O: time is passed in. The
//! RTX responder and the backfill pacer both spend from one (docs/protocol.md
//! 11.5, 11.7), so neither can send more than its configured rate whatever
//! a peer asks for.

use std::time::{Duration, Instant};

/// At most `rate` bytes per second on average, and `burst` bytes at once.
#[derive(Debug, Clone)]
pub struct ByteRate {
    /// Bytes per second; 0 sends nothing.
    rate: u64,
    burst: u64,
    /// Available bytes, scaled by 10⁹ (byte-nanoseconds) so refills are
    /// exact integer arithmetic at any rate.
    credit: u128,
    updated: Instant,
}

const NANOS: u128 = 1_000_000_000;

impl ByteRate {
    /// A full bucket at `now` (an empty one at rate 0).
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            credit: if rate == 0 {
                0
            } else {
                u128::from(burst) * NANOS
            },
            updated: now,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        self.updated = self.updated.max(now);
        let cap = u128::from(self.burst) * NANOS;
        self.credit = (self.credit + elapsed.as_nanos() * u128::from(self.rate)).min(cap);
    }

    /// When `len` bytes may go: `now` if already, else the instant the
    /// bucket will hold them; `None` when they never will (rate 0, or more
    /// than the burst).
    pub fn ready_at(&mut self, len: usize, now: Instant) -> Option<Instant> {
        self.refill(now);
        let need = u128::try_from(len).ok()? * NANOS;
        if need > u128::from(self.burst) * NANOS || (self.rate == 0 && need > self.credit) {
            return None;
        }
        if need <= self.credit {
            return Some(now);
        }
        let wait = (need - self.credit).div_ceil(u128::from(self.rate));
        Some(now + Duration::from_nanos(u64::try_from(wait).ok()?))
    }

    /// Spends `len` bytes if the bucket holds them; `false` otherwise.
    pub fn try_spend(&mut self, len: usize, now: Instant) -> bool {
        if self.ready_at(len, now) != Some(now) {
            return false;
        }
        self.credit -= len as u128 * NANOS;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock::base;

    #[test]
    fn never_more_than_rate_times_time_plus_the_burst() {
        let t0 = base();
        let mut r = ByteRate::new(1000, 200, t0);
        let mut sent = 0u64;
        // Try to send 100-byte packets every millisecond for 10 s.
        for ms in 0..10_000u64 {
            if r.try_spend(100, t0 + Duration::from_millis(ms)) {
                sent += 100;
            }
        }
        assert!(sent <= 1000 * 10 + 200, "sent {sent}");
        assert!(sent >= 1000 * 10 - 100, "the rate is also reached: {sent}");
    }

    #[test]
    fn ready_at_is_exactly_when_the_credit_suffices() {
        let t0 = base();
        let mut r = ByteRate::new(1000, 100, t0);
        assert!(r.try_spend(100, t0));
        let at = r.ready_at(50, t0).unwrap();
        assert_eq!(at, t0 + Duration::from_millis(50));
        assert!(!r.try_spend(50, at - Duration::from_nanos(1)));
        assert!(r.try_spend(50, at));
        assert_eq!(r.ready_at(101, at), None, "larger than the burst");
        let mut off = ByteRate::new(0, 100, t0);
        assert_eq!(off.ready_at(1, t0 + Duration::from_secs(9)), None);
    }
}
