//! The simulated sensor's waveform, recomputed: which reading a stored
//! value is, and the check that stored samples are exactly what the agent
//! generated.
//!
//! The agent samples and holds: at each stream instant it sends the
//! sensor thread's latest reading, so a stored value is reading `k` of the
//! waveform for some `k`, and `k` never goes back in time. The waveform's
//! noise makes nearly every reading's value unique, so the value tells `k`.

use crate::collector::StoredSample;
use sipsensor_agent::sensor::sim::SimConfig;
use sipsensor_protocol::{ChannelSpec, MISSING_SAMPLE, Unit};
use std::collections::HashMap;
use std::time::Duration;

/// Readings recomputed (enough for several minutes at 50 ms).
const READINGS: u64 = 20_000;

#[derive(Debug)]
pub struct Waveform {
    raws: Vec<i32>,
    by_raw: HashMap<i64, Vec<u64>>,
    interval: Duration,
}

/// A stored sample with the reading it carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matched {
    pub ts_ns: i64,
    pub reading: u64,
}

impl Waveform {
    /// Channel 0 of `sim` read every `interval`, as the wire carries it
    /// (scale 10^-3, the agent's `scale: 0.001`).
    pub fn new(sim: &SimConfig, interval: Duration) -> Self {
        Self::with_readings(sim, interval, READINGS)
    }

    /// Like [`Waveform::new`] with `readings` recomputed (a long run).
    pub fn with_readings(sim: &SimConfig, interval: Duration, readings: u64) -> Self {
        let spec = ChannelSpec {
            name: "sim.wave".into(),
            unit: Unit::from_symbol("V").unwrap_or_else(|| panic!("V is a SenML unit")),
            scale: -3,
        };
        let raws: Vec<i32> = (0..readings)
            .map(|k| spec.to_raw(sim.value(0, k, interval)))
            .collect();
        let mut by_raw: HashMap<i64, Vec<u64>> = HashMap::new();
        for (k, raw) in raws.iter().enumerate() {
            by_raw.entry(i64::from(*raw)).or_default().push(k as u64);
        }
        Self {
            raws,
            by_raw,
            interval,
        }
    }

    pub fn raw(&self, reading: u64) -> Option<i32> {
        usize::try_from(reading)
            .ok()
            .and_then(|k| self.raws.get(k).copied())
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Match every stored sample (time order) to the reading it carries:
    /// each value must be one the waveform generated, bit for bit, and
    /// the readings must never go back. Errors name the first offender.
    pub fn match_samples(&self, samples: &[StoredSample]) -> Result<Vec<Matched>, String> {
        let mut sorted: Vec<&StoredSample> = samples
            .iter()
            .filter(|s| s.raw != i64::from(MISSING_SAMPLE))
            .collect();
        sorted.sort_by_key(|s| s.ts_ns);
        let mut out = Vec::with_capacity(sorted.len());
        let mut at = 0u64;
        for s in sorted {
            let candidates = self.by_raw.get(&s.raw).ok_or_else(|| {
                format!("stored value {} at {} was never generated", s.raw, s.ts_ns)
            })?;
            let k = candidates
                .iter()
                .copied()
                .find(|k| *k >= at)
                .ok_or_else(|| {
                    format!(
                        "stored value {} at {} is reading {candidates:?}, before reading {at} \
                         stored earlier",
                        s.raw, s.ts_ns
                    )
                })?;
            at = k;
            out.push(Matched {
                ts_ns: s.ts_ns,
                reading: k,
            });
        }
        Ok(out)
    }
}

/// Steps between consecutive samples longer than `longer_than_ns`:
/// (index of the sample before, length in ns).
pub fn holes(matched: &[Matched], longer_than_ns: i64) -> Vec<(usize, i64)> {
    matched
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i, w[1].ts_ns - w[0].ts_ns))
        .filter(|(_, d)| *d > longer_than_ns)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sipsensor_agent::sensor::sim::SimChannel;
    use sipsensor_agent::units::Unit as AgentUnit;

    pub(crate) fn sim() -> SimConfig {
        SimConfig {
            seed: 9,
            channels: vec![SimChannel {
                name: "wave".into(),
                unit: AgentUnit::from_symbol("V").unwrap(),
                scale: 0.001,
                offset: 0.0,
                amplitude: 1000.0,
                period: Duration::from_secs(3),
                noise: 1000.0,
            }],
        }
    }

    fn stored(ts_ns: i64, raw: i32) -> StoredSample {
        StoredSample {
            ts_ns,
            session: 1,
            channel: 0,
            seq: 0,
            index: 0,
            raw: i64::from(raw),
            source: "live".into(),
        }
    }

    #[test]
    fn matches_held_readings_and_refuses_foreign_or_backward_values() {
        let w = Waveform::new(&sim(), Duration::from_millis(50));
        let r = |k| w.raw(k).unwrap();
        // Readings 5, 5 (held), 6, 8 (one skipped): all generated, in order.
        let ok = [
            stored(0, r(5)),
            stored(1, r(5)),
            stored(2, r(6)),
            stored(3, r(8)),
        ];
        let m = w.match_samples(&ok).unwrap();
        assert_eq!(
            m.iter().map(|m| m.reading).collect::<Vec<_>>(),
            [5, 5, 6, 8]
        );
        assert_eq!(holes(&m, 0), [(0, 1), (1, 1), (2, 1)]);
        assert!(holes(&m, 1).is_empty());
        // A value one step off is not the waveform's.
        let off = [stored(0, r(5) + 1)];
        assert!(w.match_samples(&off).is_err());
        // Reading 8 then reading 6: time went back.
        let back = [stored(0, r(8)), stored(1, r(6))];
        assert!(w.match_samples(&back).is_err());
    }
}
