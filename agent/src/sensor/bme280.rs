//! Bosch BME280 (temperature, pressure, humidity) and BMP280 (no humidity)
//! in I2C userspace, for images without the kernel's bmp280 driver.
//!
//! Register map, calibration layout and the integer compensation follow
//! the BME280 datasheet (BST-BME280-DS002), sections 4.2.2, 4.2.3, 5.3
//! and 5.4; the BMP280 shares the temperature and pressure part.

use super::i2c::I2cBus;
use super::{ChannelSpec, Reading, Sensor, SensorError};
use crate::units::Unit;
use std::time::{Duration, Instant};

const REG_CALIB_TP: u8 = 0x88; // 0x88..=0xA1: dig_T1..dig_P9, 0xA0 unused, dig_H1
const REG_CALIB_H: u8 = 0xe1; // 0xE1..=0xE7: dig_H2..dig_H6
pub const REG_ID: u8 = 0xd0;
const REG_RESET: u8 = 0xe0;
const REG_CTRL_HUM: u8 = 0xf2;
const REG_STATUS: u8 = 0xf3;
const REG_CTRL_MEAS: u8 = 0xf4;
const REG_CONFIG: u8 = 0xf5;
const REG_DATA: u8 = 0xf7; // press[3], temp[3], hum[2]

const RESET_WORD: u8 = 0xb6;
const STATUS_MEASURING: u8 = 1 << 3;
const STATUS_IM_UPDATE: u8 = 1 << 0;
const MODE_FORCED: u8 = 0b01;
const MODE_NORMAL: u8 = 0b11;

/// Chip IDs in register 0xD0 (BME280 DS 5.4.1; BMP280 DS 4.3.1).
pub const ID_BME280: u8 = 0x60;
pub const ID_BMP280: u8 = 0x58;

/// Which of the two chips is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chip {
    Bme280,
    Bmp280,
}

impl Chip {
    pub fn id(self) -> u8 {
        match self {
            Chip::Bme280 => ID_BME280,
            Chip::Bmp280 => ID_BMP280,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Chip::Bme280 => "BME280",
            Chip::Bmp280 => "BMP280",
        }
    }

    fn has_humidity(self) -> bool {
        self == Chip::Bme280
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One measurement per read, then the chip sleeps (DS 3.3.3).
    Forced,
    /// The chip measures continuously; a read takes the latest result.
    Normal,
}

/// Normal-mode standby time t_sb (DS 5.4.6, table 27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standby {
    Ms0_5,
    Ms62_5,
    Ms125,
    Ms250,
    Ms500,
    Ms1000,
    Ms10,
    Ms20,
}

impl Standby {
    pub const ALL_MS: [f64; 8] = [0.5, 62.5, 125.0, 250.0, 500.0, 1000.0, 10.0, 20.0];

    pub fn from_ms(ms: f64) -> Option<Standby> {
        use Standby::*;
        let all = [Ms0_5, Ms62_5, Ms125, Ms250, Ms500, Ms1000, Ms10, Ms20];
        Self::ALL_MS.iter().position(|m| *m == ms).map(|i| all[i])
    }

    /// The 3-bit t_sb code (its position in the table).
    fn code(self) -> u8 {
        self as u8
    }
}

/// A checked `bme280` / `bmp280` sensor entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Bme280Config {
    pub chip: Chip,
    pub bus: u32,
    pub address: u8,
    pub mode: Mode,
    /// 1, 2, 4, 8 or 16, applied to every quantity.
    pub oversampling: u8,
    /// IIR filter coefficient: 0 (off), 2, 4, 8 or 16.
    pub filter: u8,
    pub standby: Standby,
}

impl Bme280Config {
    pub fn channel_specs(&self, sensor: &str) -> Vec<ChannelSpec> {
        let mut v = vec![
            ChannelSpec::qualified(sensor, "temperature", Unit::CELSIUS, 0.01),
            ChannelSpec::qualified(sensor, "pressure", Unit::PASCAL, 0.1),
        ];
        if self.chip.has_humidity() {
            v.push(ChannelSpec::qualified(
                sensor,
                "humidity",
                Unit::RELATIVE_HUMIDITY,
                0.01,
            ));
        }
        v
    }

    /// osrs_x code for the oversampling (DS 5.4.3): x1 -> 1 ... x16 -> 5.
    fn osrs(&self) -> u8 {
        match self.oversampling {
            1 => 1,
            2 => 2,
            4 => 3,
            8 => 4,
            _ => 5,
        }
    }

    /// filter code (DS 5.4.6): off -> 0, 2 -> 1 ... 16 -> 4.
    fn filter_code(&self) -> u8 {
        match self.filter {
            0 => 0,
            2 => 1,
            4 => 2,
            8 => 3,
            _ => 4,
        }
    }

    /// Maximum measurement time (DS 9.1, appendix B):
    /// 1.25 + 2.3·T_osr + (2.3·P_osr + 0.575) + (2.3·H_osr + 0.575) ms.
    pub fn max_measurement_time(&self) -> Duration {
        let osr = f64::from(self.oversampling);
        let mut us = 1250.0 + 2300.0 * osr + 2300.0 * osr + 575.0;
        if self.chip.has_humidity() {
            us += 2300.0 * osr + 575.0;
        }
        Duration::from_micros(us.ceil() as u64)
    }
}

/// Trimming parameters read from the chip (DS 4.2.2, table 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Calibration {
    pub t1: u16,
    pub t2: i16,
    pub t3: i16,
    pub p1: u16,
    pub p2: i16,
    pub p3: i16,
    pub p4: i16,
    pub p5: i16,
    pub p6: i16,
    pub p7: i16,
    pub p8: i16,
    pub p9: i16,
    pub h1: u8,
    pub h2: i16,
    pub h3: u8,
    pub h4: i16,
    pub h5: i16,
    pub h6: i8,
}

impl Calibration {
    /// Decode 0x88..=0xA1 (26 bytes) and 0xE1..=0xE7 (7 bytes).
    pub fn from_registers(tp: &[u8; 26], h: &[u8; 7]) -> Calibration {
        let u = |i: usize| u16::from_le_bytes([tp[i], tp[i + 1]]);
        let s = |i: usize| i16::from_le_bytes([tp[i], tp[i + 1]]);
        Calibration {
            t1: u(0),
            t2: s(2),
            t3: s(4),
            p1: u(6),
            p2: s(8),
            p3: s(10),
            p4: s(12),
            p5: s(14),
            p6: s(16),
            p7: s(18),
            p8: s(20),
            p9: s(22),
            h1: tp[25],
            h2: i16::from_le_bytes([h[0], h[1]]),
            h3: h[2],
            // dig_H4 = 0xE4[11:4] | 0xE5[3:0]; dig_H5 = 0xE6[11:4] | 0xE5[7:4]
            h4: (i16::from(h[3] as i8) << 4) | i16::from(h[4] & 0x0f),
            h5: (i16::from(h[5] as i8) << 4) | i16::from(h[4] >> 4),
            h6: h[6] as i8,
        }
    }

    /// The inverse, for fakes of the chip.
    pub fn to_registers(&self) -> ([u8; 26], [u8; 7]) {
        let mut tp = [0u8; 26];
        let words: [[u8; 2]; 12] = [
            self.t1.to_le_bytes(),
            self.t2.to_le_bytes(),
            self.t3.to_le_bytes(),
            self.p1.to_le_bytes(),
            self.p2.to_le_bytes(),
            self.p3.to_le_bytes(),
            self.p4.to_le_bytes(),
            self.p5.to_le_bytes(),
            self.p6.to_le_bytes(),
            self.p7.to_le_bytes(),
            self.p8.to_le_bytes(),
            self.p9.to_le_bytes(),
        ];
        for (i, w) in words.iter().enumerate() {
            tp[2 * i..2 * i + 2].copy_from_slice(w);
        }
        tp[25] = self.h1;
        let h2 = self.h2.to_le_bytes();
        let h = [
            h2[0],
            h2[1],
            self.h3,
            (self.h4 >> 4) as u8,
            ((self.h4 & 0x0f) as u8) | (((self.h5 & 0x0f) as u8) << 4),
            (self.h5 >> 4) as u8,
            self.h6 as u8,
        ];
        (tp, h)
    }

    /// DS 4.2.3 `BME280_compensate_T_int32`: (temperature in 0.01 °C,
    /// t_fine). Intermediates in i64: the datasheet's i32 arithmetic would
    /// overflow on a corrupt reading, and the result is the same otherwise.
    pub fn compensate_t(&self, adc_t: i32) -> (i32, i32) {
        let adc = i64::from(adc_t);
        let t1 = i64::from(self.t1);
        let var1 = (((adc >> 3) - (t1 << 1)) * i64::from(self.t2)) >> 11;
        let d = (adc >> 4) - t1;
        let var2 = (((d * d) >> 12) * i64::from(self.t3)) >> 14;
        let t_fine = clamp_i32(var1 + var2);
        let t = (i64::from(t_fine) * 5 + 128) >> 8;
        (clamp_i32(t), t_fine)
    }

    /// DS 4.2.3 `BME280_compensate_P_int64`: pressure in Pa as Q24.8, or
    /// `None` when the calibration makes the division impossible or the
    /// arithmetic leaves the datasheet's 64-bit range (a corrupt reading).
    pub fn compensate_p(&self, adc_p: i32, t_fine: i32) -> Option<u32> {
        let mut var1 = i128::from(t_fine) - 128_000;
        let mut var2 = var1 * var1 * i128::from(self.p6);
        var2 += (var1 * i128::from(self.p5)) << 17;
        var2 += i128::from(self.p4) << 35;
        var1 = ((var1 * var1 * i128::from(self.p3)) >> 8) + ((var1 * i128::from(self.p2)) << 12);
        var1 = (((1i128 << 47) + var1) * i128::from(self.p1)) >> 33;
        if var1 == 0 {
            return None; // avoid division by zero (as the datasheet does)
        }
        let mut p = 1_048_576 - i128::from(adc_p);
        p = (((p << 31) - var2) * 3125) / var1;
        let var1 = (i128::from(self.p9) * (p >> 13) * (p >> 13)) >> 25;
        let var2 = (i128::from(self.p8) * p) >> 19;
        p = ((p + var1 + var2) >> 8) + (i128::from(self.p7) << 4);
        u32::try_from(p).ok()
    }

    /// DS 4.2.3 `bme280_compensate_H_int32`: humidity in %RH as Q22.10,
    /// clamped to 0..=100 %RH as the datasheet does.
    pub fn compensate_h(&self, adc_h: i32, t_fine: i32) -> u32 {
        let x = i64::from(t_fine) - 76_800;
        let a = ((i64::from(adc_h) << 14) - (i64::from(self.h4) << 20) - (i64::from(self.h5) * x)
            + 16_384)
            >> 15;
        let b = (((((x * i64::from(self.h6)) >> 10)
            * (((x * i64::from(self.h3)) >> 11) + 32_768))
            >> 10)
            + 2_097_152)
            * i64::from(self.h2)
            + 8192;
        let mut v = a * (b >> 14);
        v -= ((((v >> 15) * (v >> 15)) >> 7) * i64::from(self.h1)) >> 4;
        let v = v.clamp(0, 419_430_400);
        u32::try_from(v >> 12).unwrap_or(0)
    }
}

fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// Raw ADC words of one measurement (DS 5.4.7 - 5.4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSample {
    pub adc_p: i32,
    pub adc_t: i32,
    pub adc_h: i32,
}

/// Values reported when a measurement was skipped (DS 5.4.7 - 5.4.9).
const SKIPPED_20BIT: i32 = 0x80000;
const SKIPPED_16BIT: i32 = 0x8000;

impl RawSample {
    pub fn from_registers(d: &[u8; 8]) -> RawSample {
        let w20 = |i: usize| {
            (i32::from(d[i]) << 12) | (i32::from(d[i + 1]) << 4) | (i32::from(d[i + 2]) >> 4)
        };
        RawSample {
            adc_p: w20(0),
            adc_t: w20(3),
            adc_h: (i32::from(d[6]) << 8) | i32::from(d[7]),
        }
    }

    pub fn to_registers(&self) -> [u8; 8] {
        let p = self.adc_p;
        let t = self.adc_t;
        [
            (p >> 12) as u8,
            (p >> 4) as u8,
            ((p & 0xf) << 4) as u8,
            (t >> 12) as u8,
            (t >> 4) as u8,
            ((t & 0xf) << 4) as u8,
            (self.adc_h >> 8) as u8,
            self.adc_h as u8,
        ]
    }
}

/// Compensated values: °C, Pa, %RH (`None` when skipped or impossible).
pub fn compensate(cal: &Calibration, raw: &RawSample, humidity: bool) -> [Option<f64>; 3] {
    if raw.adc_t == SKIPPED_20BIT {
        // Pressure and humidity need t_fine from the temperature.
        return [None, None, None];
    }
    let (t, t_fine) = cal.compensate_t(raw.adc_t);
    let p = (raw.adc_p != SKIPPED_20BIT)
        .then(|| cal.compensate_p(raw.adc_p, t_fine))
        .flatten()
        .map(|q| f64::from(q) / 256.0);
    let h = (humidity && raw.adc_h != SKIPPED_16BIT)
        .then(|| f64::from(cal.compensate_h(raw.adc_h, t_fine)) / 1024.0);
    [Some(f64::from(t) / 100.0), p, h]
}

/// An open BME280/BMP280.
pub struct Bme280 {
    bus: Box<dyn I2cBus>,
    config: Bme280Config,
    calibration: Calibration,
    channels: Vec<ChannelSpec>,
}

impl std::fmt::Debug for Bme280 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bme280")
            .field("bus", &self.bus.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Bme280 {
    /// Check the chip ID, reset the chip, read its calibration and set it
    /// up in the configured mode.
    pub fn open(
        config: &Bme280Config,
        bus: Box<dyn I2cBus>,
        channels: Vec<ChannelSpec>,
    ) -> Result<Bme280, SensorError> {
        let mut s = Bme280 {
            bus,
            config: config.clone(),
            calibration: Calibration::default(),
            channels,
        };
        let mut id = [0u8];
        s.regs(REG_ID, &mut id)?;
        if id[0] != config.chip.id() {
            return Err(SensorError::WrongChip {
                bus: s.bus.name().to_owned(),
                address: config.address,
                chip: config.chip.label(),
                expected: config.chip.id(),
                found: id[0],
            });
        }
        // DS 5.4.2: soft reset, then wait until the NVM copy (im_update)
        // is done before reading calibration.
        s.write(REG_RESET, RESET_WORD)?;
        std::thread::sleep(Duration::from_millis(2));
        s.wait_status(STATUS_IM_UPDATE, Duration::from_millis(20), "reset")?;
        let mut tp = [0u8; 26];
        s.regs(REG_CALIB_TP, &mut tp)?;
        let mut h = [0u8; 7];
        if config.chip.has_humidity() {
            s.regs(REG_CALIB_H, &mut h)?;
        }
        s.calibration = Calibration::from_registers(&tp, &h);
        if s.calibration.t1 == 0 || s.calibration.p1 == 0 {
            // All-zero trimming means the NVM read failed; every value
            // would be garbage.
            return Err(SensorError::Invalid {
                what: format!("{} address 0x{:02x}", s.bus.name(), config.address),
                message: "calibration data is blank (dig_T1 or dig_P1 = 0)".into(),
            });
        }
        // DS 5.4.6: `config` is only written reliably in sleep mode, which
        // the reset left the chip in.
        let cfg = (config.standby.code() << 5) | (config.filter_code() << 2);
        s.write(REG_CONFIG, cfg)?;
        if config.mode == Mode::Normal {
            s.start(MODE_NORMAL)?;
        }
        Ok(s)
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    fn err(&self, source: std::io::Error) -> SensorError {
        SensorError::Bus {
            bus: self.bus.name().to_owned(),
            address: self.config.address,
            source,
        }
    }

    fn regs(&mut self, reg: u8, buf: &mut [u8]) -> Result<(), SensorError> {
        let a = self.config.address;
        self.bus
            .read_registers(a, reg, buf)
            .map_err(|e| self.err(e))
    }

    fn write(&mut self, reg: u8, value: u8) -> Result<(), SensorError> {
        let a = self.config.address;
        self.bus
            .write_register(a, reg, value)
            .map_err(|e| self.err(e))
    }

    /// DS 5.4.3: ctrl_hum takes effect only after a write to ctrl_meas.
    fn start(&mut self, mode: u8) -> Result<(), SensorError> {
        let osrs = self.config.osrs();
        if self.config.chip.has_humidity() {
            self.write(REG_CTRL_HUM, osrs)?;
        }
        self.write(REG_CTRL_MEAS, (osrs << 5) | (osrs << 2) | mode)
    }

    /// Poll the status register until `bit` clears, within `limit`.
    fn wait_status(&mut self, bit: u8, limit: Duration, what: &str) -> Result<(), SensorError> {
        let start = Instant::now();
        loop {
            let mut st = [0u8];
            self.regs(REG_STATUS, &mut st)?;
            if st[0] & bit == 0 {
                return Ok(());
            }
            let waited = start.elapsed();
            if waited >= limit {
                return Err(SensorError::Timeout {
                    what: format!(
                        "{} address 0x{:02x} {what}",
                        self.bus.name(),
                        self.config.address
                    ),
                    waited,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Sensor for Bme280 {
    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        if self.config.mode == Mode::Forced {
            self.start(MODE_FORCED)?;
            let t = self.config.max_measurement_time();
            std::thread::sleep(t);
            // The datasheet time is a maximum; allow the same again before
            // calling the chip hung.
            self.wait_status(STATUS_MEASURING, t, "measurement")?;
        }
        let mut d = [0u8; 8];
        let len = if self.config.chip.has_humidity() {
            8
        } else {
            6
        };
        self.regs(REG_DATA, &mut d[..len])?;
        let at = Instant::now();
        let raw = RawSample::from_registers(&d);
        let [t, p, h] = compensate(&self.calibration, &raw, self.config.chip.has_humidity());
        let mut values = vec![t, p];
        if self.config.chip.has_humidity() {
            values.push(h);
        }
        Ok(Reading { at, values })
    }
}

pub mod fake;

#[cfg(test)]
mod tests;
