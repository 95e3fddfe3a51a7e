//! A simulated sensor: a sine wave plus seeded noise per channel.
//!
//! Every value is a pure function of (seed, channel, sample index, sample
//! period), computed with additions and multiplications only (no libm), so
//! a test, the collector or another machine recomputes bit for bit what
//! the agent generated.

use super::{ChannelSpec, Reading, Sensor, SensorError};
use crate::units::Unit;
use std::time::{Duration, Instant};

/// A checked `simulated` sensor entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    pub channels: Vec<SimChannel>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimChannel {
    pub name: String,
    pub unit: Unit,
    pub scale: f64,
    pub offset: f64,
    pub amplitude: f64,
    pub period: Duration,
    /// Uniform noise in [-noise, +noise).
    pub noise: f64,
}

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix(mix(mix(a ^ 0x9e37_79b9_7f4a_7c15) ^ b) ^ c)
}

/// A u64 as a float in [0, 1), exactly (53 bits).
fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

const TAU: f64 = std::f64::consts::TAU;
const PI: f64 = std::f64::consts::PI;
const FRAC_PI_2: f64 = std::f64::consts::FRAC_PI_2;

/// sin(x) using only IEEE-exact operations (+, -, *, /, round), so every
/// platform gives the same bits. Error below 1e-11 after reduction to
/// [-π/2, π/2] (Taylor series to x^17).
pub fn det_sin(x: f64) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    let mut r = x - TAU * (x / TAU).round(); // [-π, π]
    if r > FRAC_PI_2 {
        r = PI - r;
    } else if r < -FRAC_PI_2 {
        r = -PI - r;
    }
    let r2 = r * r;
    // Horner on the odd Taylor terms: r - r^3/3! + ... - r^15/15! + r^17/17!
    let mut acc = 1.0 / 355_687_428_096_000.0; // 1/17!
    for k in [15u32, 13, 11, 9, 7, 5, 3] {
        let fact = (1..=k).map(f64::from).product::<f64>();
        let sign = if (k / 2) % 2 == 0 { 1.0 } else { -1.0 };
        acc = sign / fact + r2 * acc;
    }
    r * (1.0 + r2 * acc)
}

impl SimConfig {
    pub fn channel_specs(&self, sensor: &str) -> Vec<ChannelSpec> {
        self.channels
            .iter()
            .map(|c| ChannelSpec::qualified(sensor, &c.name, c.unit, c.scale))
            .collect()
    }

    /// The value of `channel` at sample `index`, samples being
    /// `sample_period` apart: offset + amplitude·sin(2π·t/period + phase)
    /// + noise, with the phase and the noise drawn from the seed.
    pub fn value(&self, channel: usize, index: u64, sample_period: Duration) -> f64 {
        let Some(c) = self.channels.get(channel) else {
            return f64::NAN;
        };
        let ch = channel as u64;
        let phase = TAU * unit_interval(hash3(self.seed, ch, u64::MAX));
        let period_ns = c.period.as_nanos().max(1) as f64;
        // Position in the period from integers, so long runs keep precision.
        let step_ns = sample_period.as_nanos();
        let pos_ns = (u128::from(index) * step_ns) % c.period.as_nanos().max(1);
        let angle = TAU * (pos_ns as f64 / period_ns) + phase;
        let noise = if c.noise > 0.0 {
            c.noise * (2.0 * unit_interval(hash3(self.seed, ch, index)) - 1.0)
        } else {
            0.0
        };
        c.offset + c.amplitude * det_sin(angle) + noise
    }
}

/// The simulated sensor as read by an I/O thread: read `k` returns sample
/// `k` of the waveform at the sensor's interval.
#[derive(Debug)]
pub struct Simulated {
    config: SimConfig,
    channels: Vec<ChannelSpec>,
    interval: Duration,
    next: u64,
}

impl Simulated {
    pub fn new(config: SimConfig, channels: Vec<ChannelSpec>) -> Self {
        Simulated {
            config,
            channels,
            interval: Duration::from_millis(10),
            next: 0,
        }
    }

    /// The interval between reads, which sets the waveform's time axis.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Index of the next sample `read` returns.
    pub fn next_index(&self) -> u64 {
        self.next
    }
}

impl Sensor for Simulated {
    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        let k = self.next;
        self.next += 1;
        let values = (0..self.config.channels.len())
            .map(|c| Some(self.config.value(c, k, self.interval)))
            .collect();
        Ok(Reading {
            at: Instant::now(),
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64, noise: f64) -> SimConfig {
        SimConfig {
            seed,
            channels: vec![
                SimChannel {
                    name: "a".into(),
                    unit: Unit::CELSIUS,
                    scale: 0.01,
                    offset: 20.0,
                    amplitude: 5.0,
                    period: Duration::from_secs(10),
                    noise,
                },
                SimChannel {
                    name: "b".into(),
                    unit: Unit::VOLT,
                    scale: 0.001,
                    offset: 0.0,
                    amplitude: 1.0,
                    period: Duration::from_millis(250),
                    noise: 0.0,
                },
            ],
        }
    }

    #[test]
    fn det_sin_matches_libm_closely() {
        for i in -2000..2000 {
            let x = f64::from(i) * 0.0137;
            assert!((det_sin(x) - x.sin()).abs() < 1e-10, "x={x}");
        }
        assert_eq!(det_sin(0.0), 0.0);
        assert_eq!(det_sin(f64::NAN), 0.0);
    }

    #[test]
    fn det_sin_known_bits() {
        // Pinned bits, recorded on x86_64 (and within 2 ulp of libm, see
        // above): the armv7 build under qemu must produce the same, or
        // the collector could not recompute the agent's waveform.
        assert_eq!(det_sin(1.0).to_bits(), 0x3fea_ed54_8f09_0cee);
        assert_eq!(det_sin(-2.5).to_bits(), 0xbfe3_26af_0dcf_caaf);
    }

    #[test]
    fn values_are_a_pure_function_of_seed_and_index() {
        let a = cfg(42, 0.5);
        let b = cfg(42, 0.5);
        let p = Duration::from_millis(10);
        for k in [0, 1, 2, 999, 1 << 40] {
            assert_eq!(a.value(0, k, p).to_bits(), b.value(0, k, p).to_bits());
        }
        let other = cfg(43, 0.5);
        assert_ne!(a.value(0, 5, p), other.value(0, 5, p));
        // Noise bounded and centred.
        let mean = (0..10_000)
            .map(|k| a.value(0, k, p) - cfg(42, 0.0).value(0, k, p))
            .sum::<f64>()
            / 10_000.0;
        assert!(mean.abs() < 0.02, "{mean}");
        for k in 0..10_000 {
            let d = a.value(0, k, p) - cfg(42, 0.0).value(0, k, p);
            assert!((-0.5..0.5).contains(&d));
        }
    }

    #[test]
    fn waveform_has_the_configured_period_and_range() {
        let c = cfg(7, 0.0);
        let p = Duration::from_millis(10);
        // Channel b: 250 ms period = 25 samples.
        for k in 0..100 {
            assert_eq!(c.value(1, k, p).to_bits(), c.value(1, k + 25, p).to_bits());
            assert!(c.value(1, k, p).abs() <= 1.0);
        }
        let (lo, hi) = (0..1000)
            .map(|k| c.value(0, k, p))
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
        assert!(lo >= 15.0 && hi <= 25.0 && hi - lo > 9.9, "{lo} {hi}");
        assert!(c.value(9, 0, p).is_nan());
    }

    #[test]
    fn sensor_reads_consecutive_samples() {
        let c = cfg(3, 0.1);
        let mut s = Simulated::new(c.clone(), c.channel_specs("sim"))
            .with_interval(Duration::from_millis(100));
        for k in 0..5 {
            let r = s.read().unwrap();
            assert_eq!(r.values[0], Some(c.value(0, k, Duration::from_millis(100))));
            assert_eq!(r.values[1], Some(c.value(1, k, Duration::from_millis(100))));
        }
        assert_eq!(s.next_index(), 5);
        assert_eq!(s.channels()[1].name, "sim.b");
    }
}
