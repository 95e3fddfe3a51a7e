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
            SensorKind::Simulated(c) => Box::new(sim::Simulated::new(c.clone(), channels)),
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
