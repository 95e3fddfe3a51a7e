//! Fresh identifiers: Via branches, tags, Call-IDs, CSeq starts.
//!
//! The generator is a value the caller owns, so tests seed it and get the
//! same identifiers every run, and nothing in the sans-I/O core reaches for
//! a global RNG.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// RFC 3261 8.1.1.7: every branch of a 3261 UA starts with this cookie.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// Source of random identifiers for one user agent.
#[derive(Debug)]
pub struct IdGenerator {
    rng: StdRng,
}

impl IdGenerator {
    /// Seeded from the operating system's entropy.
    pub fn from_entropy() -> Self {
        Self {
            rng: StdRng::from_os_rng(),
        }
    }

    /// Deterministic, for tests and reproducible simulations.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| char::from(ALPHABET[self.rng.random_range(0..ALPHABET.len())]))
            .collect()
    }

    /// A Via branch unique in space and time (8.1.1.7): magic cookie plus
    /// 80 bits of randomness.
    pub fn branch(&mut self) -> String {
        format!("{BRANCH_MAGIC_COOKIE}{}", self.token(16))
    }

    /// A From/To tag: at least 32 bits of randomness (19.3).
    pub fn tag(&mut self) -> String {
        self.token(10)
    }

    /// A globally unique Call-ID (8.1.1.4).
    pub fn call_id(&mut self, host: &str) -> String {
        format!("{}@{host}", self.token(20))
    }

    /// An initial CSeq: below 2**31 so it can grow (8.1.1.5).
    pub fn cseq_start(&mut self) -> u32 {
        self.rng.random_range(1..=0x7fff_ffff / 2)
    }

    /// A random u32 (SSRCs, RTP sequence and timestamp starts, RFC 3550 5.1).
    pub fn u32(&mut self) -> u32 {
        self.rng.random()
    }

    /// Random bytes for nonces and cnonces.
    pub fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.rng.random::<u8>()))
            .collect()
    }

    /// A float in [0, 1): jitter for back-off.
    pub fn unit(&mut self) -> f64 {
        self.rng.random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_carries_the_magic_cookie_and_is_unique() {
        let mut ids = IdGenerator::seeded(1);
        let a = ids.branch();
        let b = ids.branch();
        assert!(a.starts_with(BRANCH_MAGIC_COOKIE));
        assert_ne!(a, b);
    }

    #[test]
    fn seeded_generators_repeat() {
        let mut a = IdGenerator::seeded(7);
        let mut b = IdGenerator::seeded(7);
        assert_eq!(a.tag(), b.tag());
        assert_eq!(a.call_id("h"), b.call_id("h"));
        assert!(a.cseq_start() < 0x8000_0000);
    }
}
