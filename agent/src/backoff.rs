//! Bounded exponential back-off with jitter, for everything the agent
//! retries (a sensor that stopped answering now; registration later).
//!
//! Jitter keeps a fleet of sensors that lost the same registrar from
//! retrying in lock-step: each delay is drawn uniformly from
//! [delay/2, delay], delay doubling from `initial` up to `max`.

use sipsensor_protocol::IdGenerator;
use std::time::Duration;

#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// The delay before the next attempt after one more failure.
    pub fn next_delay(&mut self, rng: &mut IdGenerator) -> Duration {
        let ceiling = self
            .initial
            .checked_mul(1u32.checked_shl(self.failures).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(rng.unit())
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_bound_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut rng = IdGenerator::seeded(7);
        let ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for c in ceilings {
            let c = Duration::from_secs(c);
            let d = b.next_delay(&mut rng);
            assert!(d >= c / 2 && d <= c, "{d:?} not in [{:?}, {c:?}]", c / 2);
        }
        assert_eq!(b.failures(), 9);
        for _ in 0..100 {
            assert!(b.next_delay(&mut rng) <= Duration::from_secs(60));
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut rng = IdGenerator::seeded(1);
        let delays: Vec<Duration> = (0..20)
            .map(|_| {
                Backoff::new(Duration::from_secs(10), Duration::from_secs(10)).next_delay(&mut rng)
            })
            .collect();
        let min = delays.iter().min().unwrap();
        let max = delays.iter().max().unwrap();
        assert!(*max - *min > Duration::from_secs(1), "{delays:?}");
    }
}
