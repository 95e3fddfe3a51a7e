//! The simulated waveform: a deterministic value per (seed, channel, tick),
//! so a test recomputes every stored sample from its timestamp.

/// The raw fixed-point value of `channel` at sample-clock `tick`: a
/// sawtooth of period 1000 ticks with a per-channel offset and a seed-mixed
/// phase. Never [`sipsensor_protocol::MISSING_SAMPLE`].
pub fn raw(seed: u64, channel: usize, tick: u64) -> i32 {
    let phase = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54; // 0..1024
    let t = tick.wrapping_add(phase) % 1000;
    let base = (channel as i64 % 16) * 10_000;
    (base + t as i64 * 7 - 3500) as i32
}

/// The tick of a stored sample from its timestamp, for a stream whose tick
/// 0 is at `start_ns` on a `clock_hz` clock (rounded to the nearest tick).
pub fn tick_at(start_ns: i64, clock_hz: u32, ts_ns: i64) -> Option<u64> {
    let d = i128::from(ts_ns) - i128::from(start_ns);
    if d < 0 {
        return None;
    }
    let ticks = (d * i128::from(clock_hz) + 500_000_000) / 1_000_000_000;
    u64::try_from(ticks).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        assert_eq!(raw(1, 0, 5), raw(1, 0, 5));
        assert_ne!(raw(1, 0, 5), raw(1, 1, 5));
        assert_ne!(raw(1, 0, 5), raw(1, 0, 6));
        assert_ne!(raw(1, 0, 5), raw(2, 0, 5));
        assert_eq!(tick_at(1_000, 10, 1_000 + 300_000_001), Some(3));
        assert_eq!(tick_at(1_000, 10, 0), None);
    }
}
