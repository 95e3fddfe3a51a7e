//! The one clock read of the crate's unit tests.
//!
//! `Instant` has no constructor, so a test needs one real instant to build
//! its times on. Every test takes this same base, read once per test
//! process, and builds every time as an offset from it: the code under test
//! only ever sees the times the test passes in, never the clock.

use std::sync::OnceLock;
use std::time::Instant;

/// The virtual clock's zero, shared by every unit test of the crate.
pub(crate) fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}
