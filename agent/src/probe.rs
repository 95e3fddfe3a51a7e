//! `sipsensor-agent probe`: what is plugged in, and a config snippet for it.
//!
//! Scans every `/dev/i2c-N` at the addresses of the chips the agent knows,
//! identifying each by its ID register (or, for the ID-less SHT3x, by a
//! status word with a valid CRC); lists IIO devices and exported GPIOs.
//! Addresses a kernel driver has bound are reported, not touched.

use crate::sensor::bme280::{ID_BME280, ID_BMP280, REG_ID};
use crate::sensor::i2c::I2cOpener;
use crate::sensor::iio::{self, IioDeviceInfo, IioType};
use crate::sensor::sht3x::{CMD_READ_STATUS, crc8};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where to look.
#[derive(Clone)]
pub struct ProbeEnv {
    pub sysfs_root: PathBuf,
    pub dev_root: PathBuf,
    pub i2c: Arc<dyn I2cOpener>,
}

impl std::fmt::Debug for ProbeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeEnv")
            .field("sysfs_root", &self.sysfs_root)
            .field("dev_root", &self.dev_root)
            .finish_non_exhaustive()
    }
}

/// A chip found on an I2C bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChipKind {
    Bme280,
    Bmp280,
    Bme680,
    Sht3x,
    Ads1x15,
}

impl ChipKind {
    fn label(&self) -> &'static str {
        match self {
            ChipKind::Bme280 => "BME280 (temperature, pressure, humidity)",
            ChipKind::Bmp280 => "BMP280 (temperature, pressure)",
            ChipKind::Bme680 => {
                "BME680 (not supported in userspace; use its kernel driver and an iio sensor)"
            }
            ChipKind::Sht3x => "SHT3x (temperature, humidity)",
            ChipKind::Ads1x15 => {
                "ADS1015/ADS1115 ADC (enable its kernel driver with the ads1115 overlay, then use an iio sensor)"
            }
        }
    }

    /// The config `type` when the agent drives it in userspace.
    fn config_type(&self) -> Option<&'static str> {
        match self {
            ChipKind::Bme280 => Some("bme280"),
            ChipKind::Bmp280 => Some("bmp280"),
            ChipKind::Sht3x => Some("sht3x"),
            ChipKind::Bme680 | ChipKind::Ads1x15 => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum I2cFinding {
    Chip {
        bus: u32,
        address: u8,
        kind: ChipKind,
        evidence: String,
    },
    /// A kernel driver owns the address; its readings are in IIO or hwmon.
    KernelBound {
        bus: u32,
        address: u8,
        driver: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioInfo {
    pub number: u32,
    pub direction: String,
    pub value: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub buses: Vec<u32>,
    pub i2c: Vec<I2cFinding>,
    pub iio: Vec<IioDeviceInfo>,
    pub gpios: Vec<GpioInfo>,
    /// Problems that did not stop the scan (a bus that cannot be opened).
    pub problems: Vec<String>,
}

/// I2C buses present as `/dev/i2c-N`, sorted.
pub fn i2c_buses(dev_root: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(dev_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("i2c-")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The driver bound to bus/address, if any (`/sys/bus/i2c/devices/N-00AA`).
fn kernel_driver(sysfs_root: &Path, bus: u32, address: u8) -> Option<String> {
    let dev = sysfs_root.join(format!("bus/i2c/devices/{bus}-{address:04x}"));
    if !dev.exists() {
        return None;
    }
    let driver = std::fs::read_link(dev.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let name = std::fs::read_to_string(dev.join("name"))
        .ok()
        .map(|s| s.trim().to_owned());
    Some(driver.or(name).unwrap_or_else(|| "unknown".into()))
}

/// Scan everything.
pub fn probe(env: &ProbeEnv) -> Findings {
    let mut f = Findings {
        buses: i2c_buses(&env.dev_root),
        ..Findings::default()
    };
    for &bus in &f.buses.clone() {
        let mut b = match env.i2c.open(bus) {
            Ok(b) => b,
            Err(e) => {
                f.problems.push(e.to_string());
                continue;
            }
        };
        for address in [0x76u8, 0x77, 0x44, 0x45, 0x48, 0x49, 0x4a, 0x4b] {
            if let Some(driver) = kernel_driver(&env.sysfs_root, bus, address) {
                f.i2c.push(I2cFinding::KernelBound {
                    bus,
                    address,
                    driver,
                });
                continue;
            }
            let found = match address {
                0x76 | 0x77 => {
                    let mut id = [0u8];
                    b.read_registers(address, REG_ID, &mut id)
                        .ok()
                        .and_then(|()| {
                            let kind = match id[0] {
                                ID_BME280 => ChipKind::Bme280,
                                // 0x56/0x57 are BMP280 samples (BMP280 DS 4.3.1).
                                ID_BMP280 | 0x56 | 0x57 => ChipKind::Bmp280,
                                0x61 => ChipKind::Bme680,
                                _ => return None,
                            };
                            Some((kind, format!("chip ID 0x{:02x} in register 0xd0", id[0])))
                        })
                }
                0x44 | 0x45 => {
                    let mut st = [0u8; 3];
                    (b.write(address, &CMD_READ_STATUS).is_ok()
                        && b.read(address, &mut st).is_ok()
                        && crc8(&st[..2]) == st[2])
                        .then(|| {
                            (
                                ChipKind::Sht3x,
                                format!(
                                    "status word 0x{:02x}{:02x} with a valid CRC",
                                    st[0], st[1]
                                ),
                            )
                        })
                }
                _ => {
                    // ADS1x15 config register (0x01) resets to 0x8583
                    // (ADS1115 DS 9.6.3).
                    let mut cfg = [0u8; 2];
                    (b.read_registers(address, 0x01, &mut cfg).is_ok() && cfg == [0x85, 0x83]).then(
                        || {
                            (
                                ChipKind::Ads1x15,
                                "config register at its reset value 0x8583".into(),
                            )
                        },
                    )
                }
            };
            if let Some((kind, evidence)) = found {
                f.i2c.push(I2cFinding::Chip {
                    bus,
                    address,
                    kind,
                    evidence,
                });
            }
        }
    }
    match iio::list_devices(&env.sysfs_root) {
        Ok(d) => f.iio = d,
        Err(e) => f.problems.push(format!("IIO devices: {e}")),
    }
    f.gpios = exported_gpios(&env.sysfs_root);
    f
}

fn exported_gpios(sysfs_root: &Path) -> Vec<GpioInfo> {
    let mut v: Vec<GpioInfo> = std::fs::read_dir(sysfs_root.join("class/gpio"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let number: u32 = e.file_name().to_str()?.strip_prefix("gpio")?.parse().ok()?;
            let dir = e.path();
            let read = |f: &str| {
                std::fs::read_to_string(dir.join(f))
                    .ok()
                    .map(|s| s.trim().to_owned())
            };
            Some(GpioInfo {
                number,
                direction: read("direction").unwrap_or_else(|| "?".into()),
                value: read("value").and_then(|v| v.parse().ok()),
            })
        })
        .collect();
    v.sort_by_key(|g| g.number);
    v
}

/// A config name from free text: a-z, 0-9, `_`, at most 32 characters.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "s_");
    }
    out.truncate(32);
    out
}

/// A channel name for an IIO attribute prefix.
fn channel_name(attr: &str) -> String {
    match attr {
        "in_temp" => "temperature".into(),
        "in_pressure" => "pressure".into(),
        "in_humidityrelative" => "humidity".into(),
        a => sanitize(a.strip_prefix("in_").unwrap_or(a)),
    }
}

/// The findings as a person reads them, then a `sensors:`/`gpio:` snippet
/// that `check-config` accepts once identity and SIP are filled in.
pub fn render(f: &Findings) -> String {
    let mut o = String::new();
    let mut names: Vec<String> = Vec::new();
    let mut unique = |base: String| {
        let mut n = base.clone();
        let mut i = 2;
        while names.contains(&n) {
            n = format!("{base}_{i}");
            i += 1;
        }
        names.push(n.clone());
        n
    };
    let _ = writeln!(
        o,
        "I2C buses: {}",
        if f.buses.is_empty() {
            "none".into()
        } else {
            f.buses
                .iter()
                .map(|b| format!("/dev/i2c-{b}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let mut snippet = String::new();
    for finding in &f.i2c {
        match finding {
            I2cFinding::Chip {
                bus,
                address,
                kind,
                evidence,
            } => {
                let _ = writeln!(
                    o,
                    "  i2c-{bus} 0x{address:02x}: {} [{evidence}]",
                    kind.label()
                );
                if let Some(t) = kind.config_type() {
                    let name = unique(format!("{t}_{bus}_{address:02x}"));
                    let _ = writeln!(
                        snippet,
                        "  - type: {t}\n    name: {name}\n    bus: {bus}\n    address: 0x{address:02x}"
                    );
                }
            }
            I2cFinding::KernelBound {
                bus,
                address,
                driver,
            } => {
                let _ = writeln!(
                    o,
                    "  i2c-{bus} 0x{address:02x}: in use by kernel driver `{driver}` (see IIO devices)"
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "IIO devices:{}",
        if f.iio.is_empty() { " none" } else { "" }
    );
    for d in &f.iio {
        let _ = writeln!(o, "  {} `{}`: {}", d.id, d.name, d.channels.join(", "));
        let known: Vec<&String> = d
            .channels
            .iter()
            .filter(|c| IioType::from_attr(c).and_then(|t| t.unit()).is_some())
            .collect();
        if known.is_empty() {
            continue;
        }
        let name = unique(sanitize(&d.name));
        let device = if f.iio.iter().filter(|x| x.name == d.name).count() > 1 {
            d.id.clone()
        } else {
            d.name.clone()
        };
        let _ = writeln!(
            snippet,
            "  - type: iio\n    name: {name}\n    device: \"{device}\"\n    channels:"
        );
        let mut cnames: Vec<String> = Vec::new();
        for attr in &d.channels {
            let unit = IioType::from_attr(attr).and_then(|t| t.unit());
            match unit {
                Some(u) => {
                    let mut cn = channel_name(attr);
                    if cnames.contains(&cn) {
                        cn = sanitize(attr);
                    }
                    cnames.push(cn.clone());
                    let _ = writeln!(
                        snippet,
                        "      - {{attr: {attr}, name: {cn}}}  # {}",
                        u.description()
                    );
                }
                None => {
                    let _ = writeln!(
                        snippet,
                        "      # - {{attr: {attr}, name: {}, unit: ?}}  # unit unknown: give a SenML unit",
                        channel_name(attr)
                    );
                }
            }
        }
    }
    let _ = writeln!(
        o,
        "Exported GPIOs:{}",
        if f.gpios.is_empty() { " none" } else { "" }
    );
    let mut gpio = String::new();
    for g in &f.gpios {
        let _ = writeln!(
            o,
            "  GPIO {}: {}, value {}",
            g.number,
            g.direction,
            g.value.map_or("?".into(), |v| v.to_string())
        );
        if g.direction == "in" {
            let _ = writeln!(
                gpio,
                "  #   - {{name: gpio{0}, pin: {0}}}  # exported input",
                g.number
            );
        }
    }
    for p in &f.problems {
        let _ = writeln!(o, "problem: {p}");
    }
    let _ = writeln!(
        o,
        "\n# Config snippet for /etc/sipsensor/agent.yaml (check with `sipsensor-agent check-config`):"
    );
    if snippet.is_empty() {
        let _ = writeln!(o, "# (no supported sensor found)");
    } else {
        let _ = write!(o, "sensors:\n{snippet}");
    }
    if !gpio.is_empty() {
        let _ = write!(o, "# gpio:\n#   inputs:\n{gpio}");
    }
    o
}

#[cfg(test)]
mod tests;
