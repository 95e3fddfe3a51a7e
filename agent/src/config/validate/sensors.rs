//! Checks of the `sensors:` entries: keys by type, I2C addresses, chip
//! options, channels and units.

use super::V;
use crate::config::locate::KeyPath;
use crate::config::raw::*;
use crate::sensor::bme280::{Bme280Config, Chip, Mode, Standby};
use crate::sensor::iio::{IioChannel, IioConfig, IioType};
use crate::sensor::sht3x::{Repeatability, Sht3xConfig};
use crate::sensor::sim::{SimChannel, SimConfig};
use crate::sensor::{SensorConfig, SensorKind};
use crate::units::{Unit, decimal_exponent};
use std::time::Duration;

/// Highest I2C bus number (`/dev/i2c-N`).
pub const MAX_I2C_BUS: u32 = 1023;

/// The keys each sensor type takes besides `type`, `name` and `interval_ms`.
pub fn sensor_keys(kind: RawSensorType) -> &'static [&'static str] {
    match kind {
        RawSensorType::Simulated => &["seed", "channels"],
        RawSensorType::Bme280 | RawSensorType::Bmp280 => &[
            "bus",
            "address",
            "mode",
            "oversampling",
            "filter",
            "standby_ms",
        ],
        RawSensorType::Sht3x => &["bus", "address", "repeatability"],
        RawSensorType::Iio => &["device", "channels"],
    }
}

/// The keys a channel entry takes, by sensor type.
pub fn channel_keys(kind: RawSensorType) -> &'static [&'static str] {
    match kind {
        RawSensorType::Simulated => &[
            "name",
            "unit",
            "scale",
            "offset",
            "amplitude",
            "period_ms",
            "noise",
        ],
        RawSensorType::Iio => &["name", "unit", "scale", "attr"],
        _ => &[],
    }
}

pub fn type_name(kind: RawSensorType) -> &'static str {
    match kind {
        RawSensorType::Simulated => "simulated",
        RawSensorType::Bme280 => "bme280",
        RawSensorType::Bmp280 => "bmp280",
        RawSensorType::Sht3x => "sht3x",
        RawSensorType::Iio => "iio",
    }
}

/// The optional keys an entry sets (non-null after serde), read from the
/// serde types so a new field cannot escape the per-type check.
fn present_keys<T: serde::Serialize>(entry: &T, always: &[&str]) -> Vec<String> {
    match serde_yaml::to_value(entry) {
        Ok(serde_yaml::Value::Mapping(m)) => m
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .filter_map(|(k, _)| k.as_str().map(str::to_owned))
            .filter(|k| !always.contains(&k.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn sensors(v: &mut V, raw: &[RawSensor], path: &KeyPath) -> Vec<Option<SensorConfig>> {
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let p = path.index(i);
        let before = v.diags.len();
        v.name(p.key("name"), &s.name, "sensor name");
        if raw[..i].iter().any(|o| o.name == s.name) {
            v.err(
                p.key("name"),
                format!("sensor name `{}` is used twice", s.name),
            );
        }
        for key in present_keys(s, &["type", "name", "interval_ms"]) {
            if !sensor_keys(s.kind).contains(&key.as_str()) {
                v.err_key(
                    p.key(&key),
                    format!(
                        "not a key of a `{}` sensor; it takes: type, name, interval_ms, {}",
                        type_name(s.kind),
                        sensor_keys(s.kind).join(", ")
                    ),
                );
            }
        }
        let kind = sensor_kind(v, s, &p);
        let default_interval = match s.kind {
            RawSensorType::Simulated => 10,
            _ => 1000,
        };
        let interval_ms = s.interval_ms.unwrap_or(default_interval);
        if v.range(
            p.key("interval_ms"),
            interval_ms,
            1,
            3_600_000,
            "read interval (ms)",
        ) {
            if let Some(SensorKind::Bme280(b)) = &kind {
                let need = b.max_measurement_time();
                if b.mode == Mode::Forced && Duration::from_millis(u64::from(interval_ms)) < need {
                    v.err(
                        p.key("interval_ms"),
                        format!(
                            "a forced-mode measurement at this oversampling takes up to {} ms",
                            need.as_millis()
                        ),
                    );
                }
            }
            if let Some(SensorKind::Sht3x(c)) = &kind {
                let need = c.repeatability.measurement_time();
                if Duration::from_millis(u64::from(interval_ms)) < need {
                    v.err(
                        p.key("interval_ms"),
                        format!("a measurement takes up to {} ms", need.as_millis()),
                    );
                }
            }
        }
        if v.diags.len() > before {
            out.push(None);
            continue;
        }
        out.push(kind.map(|kind| SensorConfig {
            name: s.name.clone(),
            interval: Duration::from_millis(u64::from(interval_ms)),
            kind,
        }));
    }
    out
}

fn required<T: Copy>(v: &mut V, p: &KeyPath, key: &str, val: Option<T>, kind: &str) -> Option<T> {
    if val.is_none() {
        v.err(
            p.key(key),
            format!("missing: a `{kind}` sensor needs `{key}`"),
        );
    }
    val
}

fn i2c_bus(v: &mut V, p: &KeyPath, bus: Option<u32>, kind: &str) -> Option<u32> {
    let bus = required(v, p, "bus", bus, kind)?;
    v.range(
        p.key("bus"),
        bus,
        0,
        MAX_I2C_BUS,
        "I2C bus number (/dev/i2c-N)",
    )
    .then_some(bus)
}

fn i2c_address(
    v: &mut V,
    p: &KeyPath,
    addr: Option<u32>,
    allowed: &[u8],
    chip: &str,
) -> Option<u8> {
    let a = addr.unwrap_or(u32::from(allowed[0]));
    let list: Vec<String> = allowed.iter().map(|a| format!("0x{a:02x}")).collect();
    match u8::try_from(a) {
        Ok(a) if allowed.contains(&a) => Some(a),
        _ => {
            let what = if (0x08..=0x77).contains(&a) {
                format!("a {chip} answers only at {}", list.join(" or "))
            } else {
                "7-bit I2C addresses are 0x08 to 0x77".to_owned()
            };
            v.err(
                p.key("address"),
                format!("bad I2C address 0x{a:02x}: {what}"),
            );
            None
        }
    }
}

fn sensor_kind(v: &mut V, s: &RawSensor, p: &KeyPath) -> Option<SensorKind> {
    let tn = type_name(s.kind);
    match s.kind {
        RawSensorType::Bme280 | RawSensorType::Bmp280 => bosch(v, s, p, tn),
        RawSensorType::Sht3x => sht3x(v, s, p, tn),
        RawSensorType::Simulated => simulated(v, s, p),
        RawSensorType::Iio => iio(v, s, p),
    }
}

/// A `bme280` / `bmp280` entry.
fn bosch(v: &mut V, s: &RawSensor, p: &KeyPath, tn: &str) -> Option<SensorKind> {
    let bus = i2c_bus(v, p, s.bus, tn);
    let address = i2c_address(v, p, s.address, &[0x76, 0x77], tn);
    let mode = match s.mode.unwrap_or(RawBmeMode::Forced) {
        RawBmeMode::Forced => Mode::Forced,
        RawBmeMode::Normal => Mode::Normal,
    };
    let oversampling = s.oversampling.unwrap_or(1);
    if ![1, 2, 4, 8, 16].contains(&oversampling) {
        v.err(
            p.key("oversampling"),
            format!("oversampling must be 1, 2, 4, 8 or 16, got {oversampling}"),
        );
    }
    let filter = s.filter.unwrap_or(0);
    if ![0, 2, 4, 8, 16].contains(&filter) {
        v.err(
            p.key("filter"),
            format!("IIR filter coefficient must be 0 (off), 2, 4, 8 or 16, got {filter}"),
        );
    }
    let standby = match s.standby_ms {
        Some(_) if mode == Mode::Forced => {
            v.err_key(
                p.key("standby_ms"),
                "applies only with `mode: normal` (forced mode measures on each read)",
            );
            None
        }
        Some(ms) if s.kind == RawSensorType::Bmp280 && (ms == 10.0 || ms == 20.0) => {
            // BMP280 DS 3.6.3: its codes 6 and 7 mean 2000 and 4000 ms.
            v.err(p.key("standby_ms"), format!("{ms} ms is a BME280 standby time; a BMP280 takes 0.5, 62.5, 125, 250, 500 or 1000"));
            None
        }
        Some(ms) => {
            let sb = Standby::from_ms(ms);
            if sb.is_none() {
                v.err(
                    p.key("standby_ms"),
                    format!(
                        "standby must be one of {} ms, got {ms}",
                        Standby::ALL_MS.map(|m| m.to_string()).join(", ")
                    ),
                );
            }
            sb
        }
        None => Some(Standby::Ms62_5),
    };
    Some(SensorKind::Bme280(Bme280Config {
        chip: if s.kind == RawSensorType::Bme280 {
            Chip::Bme280
        } else {
            Chip::Bmp280
        },
        bus: bus?,
        address: address?,
        mode,
        oversampling: u8::try_from(oversampling).ok()?,
        filter: u8::try_from(filter).ok()?,
        standby: standby?,
    }))
}

/// An `sht3x` entry.
fn sht3x(v: &mut V, s: &RawSensor, p: &KeyPath, tn: &str) -> Option<SensorKind> {
    let bus = i2c_bus(v, p, s.bus, tn);
    let address = i2c_address(v, p, s.address, &[0x44, 0x45], tn);
    let repeatability = match s.repeatability.unwrap_or(RawRepeatability::High) {
        RawRepeatability::Low => Repeatability::Low,
        RawRepeatability::Medium => Repeatability::Medium,
        RawRepeatability::High => Repeatability::High,
    };
    Some(SensorKind::Sht3x(Sht3xConfig {
        bus: bus?,
        address: address?,
        repeatability,
    }))
}

/// A `simulated` entry.
fn simulated(v: &mut V, s: &RawSensor, p: &KeyPath) -> Option<SensorKind> {
    let channels = channels(v, s, p)?;
    let mut out = Vec::new();
    for (i, c) in channels.iter().enumerate() {
        let cp = p.key("channels").index(i);
        let Some(unit_text) = &c.unit else {
            v.err(
                cp.key("unit"),
                "missing: a simulated channel needs a SenML `unit`",
            );
            continue;
        };
        let Some(unit) = unit(v, cp.key("unit"), unit_text) else {
            continue;
        };
        let scale = scale(v, &cp, c.scale.unwrap_or(0.001));
        let period_ms = c.period_ms.unwrap_or(10_000);
        v.range(cp.key("period_ms"), period_ms, 1, 86_400_000, "period (ms)");
        let noise = c.noise.unwrap_or(0.0);
        if !(noise.is_finite() && noise >= 0.0) {
            v.err(cp.key("noise"), format!("noise must be ≥ 0, got {noise}"));
        }
        for (key, x) in [("offset", c.offset), ("amplitude", c.amplitude)] {
            if x.is_some_and(|x| !x.is_finite()) {
                v.err(cp.key(key), "must be a finite number");
            }
        }
        out.push(SimChannel {
            name: c.name.clone(),
            unit,
            scale: scale?,
            offset: c.offset.unwrap_or(0.0),
            amplitude: c.amplitude.unwrap_or(1.0),
            period: Duration::from_millis(u64::from(period_ms)),
            noise,
        });
    }
    Some(SensorKind::Simulated(SimConfig {
        seed: s.seed.unwrap_or(1),
        channels: out,
    }))
}

/// An `iio` entry.
fn iio(v: &mut V, s: &RawSensor, p: &KeyPath) -> Option<SensorKind> {
    let device = match &s.device {
        Some(d) if !d.is_empty() && !d.contains('/') => Some(d.clone()),
        Some(d) => {
            v.err(
                p.key("device"),
                format!("`{d}` is not an IIO device name (e.g. bme280 or iio:device0)"),
            );
            None
        }
        None => {
            v.err(
                p.key("device"),
                "missing: an `iio` sensor needs `device` (its name file, or iio:deviceN)",
            );
            None
        }
    };
    let channels = channels(v, s, p)?;
    let mut out = Vec::new();
    for (i, c) in channels.iter().enumerate() {
        let cp = p.key("channels").index(i);
        let Some(attr) = &c.attr else {
            v.err(
                cp.key("attr"),
                "missing: the sysfs channel prefix, e.g. `attr: in_temp` or `in_voltage0`",
            );
            continue;
        };
        let Some(ty) = IioType::from_attr(attr) else {
            v.err(
                cp.key("attr"),
                format!(
                    "`{attr}` is not an IIO input channel prefix (in_<type>[<index>][_<modifier>])"
                ),
            );
            continue;
        };
        let unit = match (&c.unit, ty.unit()) {
            (Some(u), known) => {
                let Some(u) = unit(v, cp.key("unit"), u) else {
                    continue;
                };
                if known.is_some_and(|k| k != u) {
                    v.err(
                        cp.key("unit"),
                        format!(
                            "`{attr}` is converted to {}; other units are not supported",
                            known.map_or("", Unit::symbol)
                        ),
                    );
                    continue;
                }
                u
            }
            (None, Some(k)) => k,
            (None, None) => {
                v.err(
                    cp.key("unit"),
                    format!(
                        "missing: the kernel's unit of `{attr}` is not known; give a SenML `unit`"
                    ),
                );
                continue;
            }
        };
        let Some(scale) = scale(v, &cp, c.scale.unwrap_or(ty.default_scale())) else {
            continue;
        };
        out.push(IioChannel {
            attr: attr.clone(),
            name: c.name.clone(),
            unit,
            scale,
            to_unit: ty.to_unit(),
        });
    }
    Some(SensorKind::Iio(IioConfig {
        device: device?,
        channels: out,
    }))
}

fn channels<'a>(v: &mut V, s: &'a RawSensor, p: &KeyPath) -> Option<&'a [RawChannel]> {
    let tn = type_name(s.kind);
    let Some(channels) = s.channels.as_deref() else {
        v.err(
            p.key("channels"),
            format!("missing: a `{tn}` sensor needs `channels`"),
        );
        return None;
    };
    if channels.is_empty() {
        v.err(p.key("channels"), "needs at least one channel");
        return None;
    }
    for (i, c) in channels.iter().enumerate() {
        let cp = p.key("channels").index(i);
        v.name(cp.key("name"), &c.name, "channel name");
        if channels[..i].iter().any(|o| o.name == c.name) {
            v.err(
                cp.key("name"),
                format!("channel name `{}` is used twice", c.name),
            );
        }
        for key in present_keys(c, &["name"]) {
            if !channel_keys(s.kind).contains(&key.as_str()) {
                v.err_key(
                    cp.key(&key),
                    format!(
                        "not a key of a `{tn}` channel; it takes: {}",
                        channel_keys(s.kind).join(", ")
                    ),
                );
            }
        }
    }
    Some(channels)
}

fn unit(v: &mut V, p: KeyPath, text: &str) -> Option<Unit> {
    let u = Unit::from_symbol(text);
    if u.is_none() {
        v.err(
            p,
            format!(
                "`{text}` is not a SenML unit symbol (RFC 8428 section 12.1), e.g. Cel, Pa, %RH, V, lx, m/s2, count"
            ),
        );
    }
    u
}

fn scale(v: &mut V, p: &KeyPath, scale: f64) -> Option<f64> {
    // The stream carries the scale as a decimal exponent
    // (docs/protocol.md 2.3), so only powers of ten can be sent.
    if decimal_exponent(scale).is_some() {
        Some(scale)
    } else {
        v.err(
            p.key("scale"),
            format!(
                "scale (the value of one integer step) must be a power of ten such as 0.01 or 1, got {scale}"
            ),
        );
        None
    }
}
