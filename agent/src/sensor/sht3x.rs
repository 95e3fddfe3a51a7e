//! Sensirion SHT3x (SHT30/31/35) temperature and humidity in I2C userspace.
//!
//! The chip has no registers and no ID: it takes 16-bit commands and
//! answers with 16-bit words, each followed by a CRC-8. Commands, timings,
//! CRC and conversion follow the SHT3x-DIS datasheet, sections 4.3 - 4.13.

use super::i2c::I2cBus;
use super::{ChannelSpec, Reading, Sensor, SensorError};
use crate::units::Unit;
use std::time::{Duration, Instant};

/// Single shot, clock stretching disabled (DS 4.3, table 9).
const CMD_MEASURE_HIGH: [u8; 2] = [0x24, 0x00];
const CMD_MEASURE_MEDIUM: [u8; 2] = [0x24, 0x0b];
const CMD_MEASURE_LOW: [u8; 2] = [0x24, 0x16];
/// DS 4.11: read the status register.
pub const CMD_READ_STATUS: [u8; 2] = [0xf3, 0x2d];
/// DS 4.9: soft reset.
const CMD_SOFT_RESET: [u8; 2] = [0x30, 0xa2];
/// DS table 4: soft reset time, max.
const RESET_TIME: Duration = Duration::from_micros(1500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeatability {
    Low,
    Medium,
    High,
}

impl Repeatability {
    fn command(self) -> [u8; 2] {
        match self {
            Repeatability::Low => CMD_MEASURE_LOW,
            Repeatability::Medium => CMD_MEASURE_MEDIUM,
            Repeatability::High => CMD_MEASURE_HIGH,
        }
    }

    /// Maximum measurement duration (DS table 4).
    pub fn measurement_time(self) -> Duration {
        Duration::from_millis(match self {
            Repeatability::Low => 4,
            Repeatability::Medium => 6,
            Repeatability::High => 15,
        })
    }
}

/// A checked `sht3x` sensor entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Sht3xConfig {
    pub bus: u32,
    pub address: u8,
    pub repeatability: Repeatability,
}

impl Sht3xConfig {
    pub fn channel_specs(&self, sensor: &str) -> Vec<ChannelSpec> {
        vec![
            ChannelSpec::qualified(sensor, "temperature", Unit::CELSIUS, 0.01),
            ChannelSpec::qualified(sensor, "humidity", Unit::RELATIVE_HUMIDITY, 0.01),
        ]
    }
}

/// CRC-8 of DS 4.12: polynomial 0x31, init 0xFF, no reflection, no final XOR.
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0xffu8;
    for b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x31
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// DS 4.13: T = -45 + 175 · S_T / (2^16 - 1) °C.
pub fn temperature(raw: u16) -> f64 {
    -45.0 + 175.0 * f64::from(raw) / 65535.0
}

/// DS 4.13: RH = 100 · S_RH / (2^16 - 1) %.
pub fn humidity(raw: u16) -> f64 {
    100.0 * f64::from(raw) / 65535.0
}

/// An open SHT3x.
pub struct Sht3x {
    bus: Box<dyn I2cBus>,
    config: Sht3xConfig,
    channels: Vec<ChannelSpec>,
}

impl std::fmt::Debug for Sht3x {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sht3x")
            .field("bus", &self.bus.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sht3x {
    /// Reset the chip and read its status register: with no ID register,
    /// a status word with a valid CRC is what says an SHT3x is there.
    pub fn open(
        config: &Sht3xConfig,
        bus: Box<dyn I2cBus>,
        channels: Vec<ChannelSpec>,
    ) -> Result<Sht3x, SensorError> {
        let mut s = Sht3x {
            bus,
            config: config.clone(),
            channels,
        };
        s.command(CMD_SOFT_RESET)?;
        std::thread::sleep(RESET_TIME);
        s.command(CMD_READ_STATUS)?;
        let mut buf = [0u8; 3];
        s.read_raw(&mut buf)?;
        s.word(&buf, "status register")?;
        Ok(s)
    }

    fn err(&self, source: std::io::Error) -> SensorError {
        SensorError::Bus {
            bus: self.bus.name().to_owned(),
            address: self.config.address,
            source,
        }
    }

    fn command(&mut self, cmd: [u8; 2]) -> Result<(), SensorError> {
        let a = self.config.address;
        self.bus.write(a, &cmd).map_err(|e| self.err(e))
    }

    fn read_raw(&mut self, buf: &mut [u8]) -> Result<(), SensorError> {
        let a = self.config.address;
        self.bus.read(a, buf).map_err(|e| self.err(e))
    }

    /// A 16-bit word and its CRC (DS 4.4).
    fn word(&self, b: &[u8], what: &'static str) -> Result<u16, SensorError> {
        let computed = crc8(&b[..2]);
        if computed != b[2] {
            return Err(SensorError::Crc {
                bus: self.bus.name().to_owned(),
                address: self.config.address,
                what,
                got: b[2],
                computed,
            });
        }
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

impl Sensor for Sht3x {
    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        self.command(self.config.repeatability.command())?;
        let limit = self.config.repeatability.measurement_time();
        std::thread::sleep(limit);
        // Without clock stretching the chip NACKs a read until the
        // measurement is done (DS 4.5); give it the same time again, and
        // a few tries whatever the clock says (a busy board may oversleep).
        let start = Instant::now();
        let mut buf = [0u8; 6];
        let mut tries = 0u32;
        loop {
            tries += 1;
            match self.read_raw(&mut buf) {
                Ok(()) => break,
                Err(e) if start.elapsed() >= limit && tries >= 5 => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        let at = Instant::now();
        let t = self.word(&buf[0..3], "temperature")?;
        let rh = self.word(&buf[3..6], "humidity")?;
        Ok(Reading {
            at,
            values: vec![Some(temperature(t)), Some(humidity(rh))],
        })
    }
}

/// A fake SHT3x for tests.
pub mod fake {
    use super::*;
    use crate::sensor::i2c::fake::FakeDevice;
    use std::io;

    #[derive(Debug, Clone)]
    pub struct FakeSht3x {
        pub raw_t: u16,
        pub raw_rh: u16,
        pub status: u16,
        /// Reads NACKed after a measure command before data is ready.
        pub not_ready_reads: u32,
        /// Corrupt the CRC of the temperature word.
        pub bad_crc: bool,
        pending: Option<[u8; 2]>,
        not_ready_left: u32,
        pub measurements: u32,
    }

    impl FakeSht3x {
        pub fn new(raw_t: u16, raw_rh: u16) -> Self {
            FakeSht3x {
                raw_t,
                raw_rh,
                status: 0x8010,
                not_ready_reads: 0,
                bad_crc: false,
                pending: None,
                not_ready_left: 0,
                measurements: 0,
            }
        }
    }

    fn with_crc(w: u16) -> [u8; 3] {
        let b = w.to_be_bytes();
        [b[0], b[1], crc8(&b)]
    }

    impl FakeDevice for FakeSht3x {
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            match data {
                [0x24, _] => {
                    self.measurements += 1;
                    self.not_ready_left = self.not_ready_reads;
                    self.pending = Some([data[0], data[1]]);
                }
                [0xf3, 0x2d] => self.pending = Some(CMD_READ_STATUS),
                [0x30, 0xa2] => self.pending = None,
                _ => return Err(io::Error::from_raw_os_error(nix::libc::EIO)),
            }
            Ok(())
        }

        fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
            let nack = || io::Error::from_raw_os_error(nix::libc::ENXIO);
            match self.pending {
                Some(CMD_READ_STATUS) => {
                    let w = with_crc(self.status);
                    let n = buf.len().min(3);
                    buf[..n].copy_from_slice(&w[..n]);
                }
                Some(_) if self.not_ready_left > 0 => {
                    self.not_ready_left -= 1;
                    return Err(nack());
                }
                Some(_) => {
                    let mut t = with_crc(self.raw_t);
                    if self.bad_crc {
                        t[2] ^= 0xff;
                    }
                    let rh = with_crc(self.raw_rh);
                    let all = [t[0], t[1], t[2], rh[0], rh[1], rh[2]];
                    let n = buf.len().min(6);
                    buf[..n].copy_from_slice(&all[..n]);
                }
                None => return Err(nack()),
            }
            self.pending = None;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeSht3x;
    use super::*;
    use crate::sensor::i2c::fake::FakeBus;

    #[test]
    fn crc_matches_the_datasheet_example() {
        // DS 4.12, table 19: CRC(0xBEEF) = 0x92.
        assert_eq!(crc8(&[0xbe, 0xef]), 0x92);
        assert_eq!(crc8(&[0x00, 0x00]), 0x81);
    }

    #[test]
    fn conversion_endpoints() {
        assert_eq!(temperature(0), -45.0);
        assert_eq!(temperature(65535), 130.0);
        assert_eq!(humidity(65535), 100.0);
        assert!((temperature(0x6666) - 25.0).abs() < 0.01);
    }

    fn cfg() -> Sht3xConfig {
        Sht3xConfig {
            bus: 1,
            address: 0x44,
            repeatability: Repeatability::Low,
        }
    }

    fn open(bus: &FakeBus) -> Result<Sht3x, SensorError> {
        Sht3x::open(&cfg(), Box::new(bus.clone()), cfg().channel_specs("rh"))
    }

    #[test]
    fn reads_temperature_and_humidity_and_waits_for_a_slow_chip() {
        let bus = FakeBus::new("/dev/i2c-1");
        let mut chip = FakeSht3x::new(0x6666, 0x8000);
        chip.not_ready_reads = 2;
        bus.attach(0x44, chip);
        let mut s = open(&bus).unwrap();
        let r = s.read().unwrap();
        assert!((r.values[0].unwrap() - temperature(0x6666)).abs() < 1e-12);
        assert!((r.values[1].unwrap() - 50.000_762_951_094_835).abs() < 1e-9);
        let names: Vec<_> = s.channels().iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, ["rh.temperature", "rh.humidity"]);
    }

    #[test]
    fn crc_errors_and_silence_are_typed_errors() {
        let bus = FakeBus::new("/dev/i2c-1");
        assert!(matches!(open(&bus), Err(SensorError::Bus { .. })));
        let mut chip = FakeSht3x::new(1, 2);
        chip.bad_crc = true;
        bus.attach(0x44, chip);
        let mut s = open(&bus).unwrap();
        let err = s.read().unwrap_err();
        assert!(
            matches!(
                err,
                SensorError::Crc {
                    what: "temperature",
                    ..
                }
            ),
            "{err}"
        );
        bus.set_answering(0x44, false);
        assert!(matches!(s.read(), Err(SensorError::Bus { .. })));
    }

    #[test]
    fn a_chip_that_never_finishes_times_out_with_the_bus_error() {
        let bus = FakeBus::new("/dev/i2c-1");
        let mut chip = FakeSht3x::new(1, 2);
        chip.not_ready_reads = u32::MAX;
        bus.attach(0x44, chip);
        let mut s = open(&bus).unwrap();
        // Returns (after the measurement time and the same again).
        assert!(matches!(s.read(), Err(SensorError::Bus { .. })));
    }
}
