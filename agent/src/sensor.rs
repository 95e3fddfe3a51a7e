//! Sensors: one trait, one backend per kernel interface.
//!
//! A backend is opened from its `SensorConfig` (which checks the chip is
//! the one configured) and then read on its own I/O thread (`runner`),
//! never on the real-time sender's. Reads block; a failed open or read is
//! a typed `SensorError` that the runner reports and retries with back-off.

pub mod bme280;
pub mod i2c;
pub mod iio;
pub mod runner;
pub mod sht3x;
pub mod sim;

use crate::units::Unit;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One channel a sensor reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    /// `sensor.channel`, unique in the agent; the stream's channel name.
    pub name: String,
    /// SenML unit of the value (RFC 8428 section 12.1).
    pub unit: Unit,
    /// Value of one integer step on the wire: the sample sent is
    /// `round(value / scale)`.
    pub scale: f64,
}

impl ChannelSpec {
    /// A channel named `sensor.channel`.
    pub fn qualified(sensor: &str, channel: &str, unit: Unit, scale: f64) -> ChannelSpec {
        ChannelSpec {
            name: format!("{sensor}.{channel}"),
            unit,
            scale,
        }
    }
}

/// One measurement of all of a sensor's channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When the measurement was taken (CLOCK_MONOTONIC).
    pub at: Instant,
    /// In the order of `Sensor::channels`, in the channel's unit; `None`
    /// for a channel this measurement could not provide.
    pub values: Vec<Option<f64>>,
}

/// A sensor the agent can read.
pub trait Sensor: Send {
    /// The channels `read` reports, in order.
    fn channels(&self) -> &[ChannelSpec];

    /// Take one measurement. Blocks for as long as the bus or chip needs;
    /// called only from the sensor's own I/O thread.
    fn read(&mut self) -> Result<Reading, SensorError>;
}

/// Why a sensor could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error("cannot open {what}: {source}")]
    Open {
        what: String,
        source: std::io::Error,
    },
    #[error("{bus} address 0x{address:02x}: {source}")]
    Bus {
        bus: String,
        address: u8,
        source: std::io::Error,
    },
    #[error(
        "{bus} address 0x{address:02x}: chip ID 0x{found:02x}, expected 0x{expected:02x} ({chip})"
    )]
    WrongChip {
        bus: String,
        address: u8,
        chip: &'static str,
        expected: u8,
        found: u8,
    },
    #[error(
        "{bus} address 0x{address:02x}: CRC mismatch in {what} (got 0x{got:02x}, computed 0x{computed:02x})"
    )]
    Crc {
        bus: String,
        address: u8,
        what: &'static str,
        got: u8,
        computed: u8,
    },
    #[error("{what} not ready after {waited:?}")]
    Timeout { what: String, waited: Duration },
    #[error("IIO device `{device}` not found under {}", root.display())]
    NoDevice { device: String, root: PathBuf },
    #[error("{}: {message}", path.display())]
    Sysfs { path: PathBuf, message: String },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

/// A checked sensor entry of the config.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorConfig {
    pub name: String,
    /// Time between two reads.
    pub interval: Duration,
    pub kind: SensorKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SensorKind {
    Simulated(sim::SimConfig),
    Bme280(bme280::Bme280Config),
    Sht3x(sht3x::Sht3xConfig),
    Iio(iio::IioConfig),
}

/// Where the backends find the kernel's interfaces; tests point these at
/// temporary directories and fake buses.
#[derive(Clone)]
pub struct SensorEnv {
    /// `/sys` on a device.
    pub sysfs_root: PathBuf,
    pub i2c: Arc<dyn i2c::I2cOpener>,
}

impl std::fmt::Debug for SensorEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorEnv")
            .field("sysfs_root", &self.sysfs_root)
            .finish_non_exhaustive()
    }
}

impl SensorEnv {
    /// The real kernel interfaces under `sysfs_root` and `dev_root`.
    pub fn system(sysfs_root: PathBuf, dev_root: PathBuf) -> Self {
        SensorEnv {
            sysfs_root,
            i2c: Arc::new(i2c::LinuxI2cOpener { dev_root }),
        }
    }
}

impl SensorConfig {
    /// The channels this sensor reports, known without opening it (the
    /// SDP offer lists them even while a chip is unplugged).
    pub fn channels(&self) -> Vec<ChannelSpec> {
        match &self.kind {
            SensorKind::Simulated(c) => c.channel_specs(&self.name),
            SensorKind::Bme280(c) => c.channel_specs(&self.name),
            SensorKind::Sht3x(c) => c.channel_specs(&self.name),
            SensorKind::Iio(c) => c.channel_specs(&self.name),
        }
    }

    /// Open the backend and check the hardware is what is configured.
    pub fn open(&self, env: &SensorEnv) -> Result<Box<dyn Sensor>, SensorError> {
        let channels = self.channels();
        Ok(match &self.kind {
            SensorKind::Simulated(c) => {
                Box::new(sim::Simulated::new(c.clone(), channels).with_interval(self.interval))
            }
            SensorKind::Bme280(c) => {
                Box::new(bme280::Bme280::open(c, env.i2c.open(c.bus)?, channels)?)
            }
            SensorKind::Sht3x(c) => {
                Box::new(sht3x::Sht3x::open(c, env.i2c.open(c.bus)?, channels)?)
            }
            SensorKind::Iio(c) => Box::new(iio::Iio::open(c, &env.sysfs_root, channels)?),
        })
    }

    /// A reading older than this is stale: the sender marks the samples
    /// missing rather than repeat an old value forever.
    pub fn stale_after(&self) -> Duration {
        self.interval * 3
    }

    /// The type as written in the config.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            SensorKind::Simulated(_) => "simulated",
            SensorKind::Bme280(c) => match c.chip {
                bme280::Chip::Bme280 => "bme280",
                bme280::Chip::Bmp280 => "bmp280",
            },
            SensorKind::Sht3x(_) => "sht3x",
            SensorKind::Iio(_) => "iio",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::bme280::fake::FakeBme280;
    use crate::sensor::bme280::{Bme280Config, Calibration, Chip, Mode, RawSample, Standby};
    use crate::sensor::i2c::fake::FakeOpener;
    use crate::sensor::sht3x::fake::FakeSht3x;

    fn env(sysfs: &std::path::Path, opener: &FakeOpener) -> SensorEnv {
        SensorEnv {
            sysfs_root: sysfs.to_owned(),
            i2c: Arc::new(opener.clone()),
        }
    }

    #[test]
    fn open_builds_each_backend_with_the_configured_channels() {
        let dir = tempfile::tempdir().unwrap();
        let opener = FakeOpener::new();
        let cal = Calibration {
            t1: 27504,
            t2: 26435,
            t3: -1000,
            p1: 36477,
            ..Calibration::default()
        };
        let raw = RawSample {
            adc_p: 415_148,
            adc_t: 519_888,
            adc_h: 0x8000,
        };
        opener.bus(1).attach(0x77, FakeBme280::new(0x60, &cal, raw));
        opener.bus(1).attach(0x45, FakeSht3x::new(0x6666, 0x8000));
        iio::fake::device(dir.path(), 0, "lm75", &[("in_temp_input", "21500")]);
        let env = env(dir.path(), &opener);

        let sim = sim::SimConfig {
            seed: 5,
            channels: vec![sim::SimChannel {
                name: "w".into(),
                unit: Unit::VOLT,
                scale: 0.001,
                offset: 0.0,
                amplitude: 1.0,
                period: Duration::from_millis(100),
                noise: 0.0,
            }],
        };
        let cases = vec![
            SensorConfig {
                name: "sim".into(),
                interval: Duration::from_millis(7),
                kind: SensorKind::Simulated(sim.clone()),
            },
            SensorConfig {
                name: "env".into(),
                interval: Duration::from_secs(1),
                kind: SensorKind::Bme280(Bme280Config {
                    chip: Chip::Bme280,
                    bus: 1,
                    address: 0x77,
                    mode: Mode::Normal,
                    oversampling: 1,
                    filter: 0,
                    standby: Standby::Ms0_5,
                }),
            },
            SensorConfig {
                name: "rh".into(),
                interval: Duration::from_secs(1),
                kind: SensorKind::Sht3x(sht3x::Sht3xConfig {
                    bus: 1,
                    address: 0x45,
                    repeatability: sht3x::Repeatability::Low,
                }),
            },
            SensorConfig {
                name: "board".into(),
                interval: Duration::from_secs(2),
                kind: SensorKind::Iio(iio::IioConfig {
                    device: "lm75".into(),
                    channels: vec![iio::IioChannel {
                        attr: "in_temp".into(),
                        name: "t".into(),
                        unit: Unit::CELSIUS,
                        scale: 0.01,
                        to_unit: 1e-3,
                    }],
                }),
            },
        ];
        let mut firsts = Vec::new();
        for c in &cases {
            let mut s = c.open(&env).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(s.channels(), c.channels().as_slice(), "{}", c.name);
            let r = s.read().unwrap();
            assert_eq!(r.values.len(), c.channels().len());
            firsts.push(r.values[0].unwrap());
            if c.name == "sim" {
                // Sample 1 at the configured 7 ms, not at some default.
                let second = s.read().unwrap().values[0].unwrap();
                assert_eq!(second, sim.value(0, 1, Duration::from_millis(7)));
            }
        }
        assert_eq!(firsts[0], sim.value(0, 0, Duration::from_millis(7)));
        assert_eq!(firsts[1], 25.08);
        assert!((firsts[2] - 25.0).abs() < 0.01);
        assert_eq!(firsts[3], 21.5);
        let types: Vec<&str> = cases.iter().map(SensorConfig::type_name).collect();
        assert_eq!(types, ["simulated", "bme280", "sht3x", "iio"]);
        assert_eq!(cases[3].stale_after(), Duration::from_secs(6));
    }

    #[test]
    fn open_reports_a_missing_bus() {
        let dir = tempfile::tempdir().unwrap();
        let c = SensorConfig {
            name: "rh".into(),
            interval: Duration::from_secs(1),
            kind: SensorKind::Sht3x(sht3x::Sht3xConfig {
                bus: 3,
                address: 0x44,
                repeatability: sht3x::Repeatability::High,
            }),
        };
        let err = c.open(&env(dir.path(), &FakeOpener::new())).err().unwrap();
        assert_eq!(err.to_string(), "cannot open /dev/i2c-3: entity not found");
    }
}
