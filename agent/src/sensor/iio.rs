//! Industrial I/O sensors through sysfs: chips bound to kernel drivers by
//! the device-tree overlays (bme280, ads1015, ...).
//!
//! Files and units follow the kernel's IIO sysfs ABI
//! (Documentation/ABI/testing/sysfs-bus-iio): a channel is either
//! processed (`in_X_input`, already in the ABI unit) or raw (`in_X_raw`,
//! to be turned into the ABI unit as `(raw + offset) * scale`, with
//! `in_X_scale` / `in_X_offset` or the type-wide `in_<type>_scale`).
//! The ABI units (milli-degrees, kPa, millivolts, ...) are then converted
//! to the channel's SenML unit.

use super::{ChannelSpec, Reading, Sensor, SensorError};
use crate::units::Unit;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A checked `iio` sensor entry.
#[derive(Debug, Clone, PartialEq)]
pub struct IioConfig {
    /// The device's `name` (e.g. `bme280`), or `iio:deviceN`.
    pub device: String,
    pub channels: Vec<IioChannel>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IioChannel {
    /// The sysfs prefix: `in_temp`, `in_voltage0`, `in_accel_x`.
    pub attr: String,
    pub name: String,
    pub unit: Unit,
    pub scale: f64,
    /// Factor from the IIO ABI unit to `unit`.
    pub to_unit: f64,
}

impl IioConfig {
    pub fn channel_specs(&self, sensor: &str) -> Vec<ChannelSpec> {
        self.channels
            .iter()
            .map(|c| ChannelSpec::qualified(sensor, &c.name, c.unit, c.scale))
            .collect()
    }
}

/// The channel type of a sysfs prefix and what the ABI says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IioType {
    /// `temp`, `voltage`, `humidityrelative`, ...
    pub name: String,
}

/// (type, SenML unit, factor from the ABI unit, default scale).
const KNOWN_TYPES: &[(&str, Unit, f64, f64)] = &[
    // milli degrees Celsius
    ("temp", Unit::CELSIUS, 1e-3, 0.01),
    // kilopascal
    ("pressure", Unit::PASCAL, 1e3, 0.1),
    // milli percent
    ("humidityrelative", Unit::RELATIVE_HUMIDITY, 1e-3, 0.01),
    // millivolts
    ("voltage", Unit::VOLT, 1e-3, 0.001),
    // milliamps
    ("current", Unit::AMPERE, 1e-3, 0.001),
    // lux
    ("illuminance", Unit::LUX, 1.0, 0.01),
    // m/s^2
    ("accel", Unit::METER_PER_SQUARE_SECOND, 1.0, 0.001),
    // Gauss
    ("magn", Unit::TESLA, 1e-4, 1e-7),
];

impl IioType {
    /// The type of `in_<type>[<index>][_<modifier>]`, or `None` when the
    /// prefix does not have that shape.
    pub fn from_attr(attr: &str) -> Option<IioType> {
        let rest = attr.strip_prefix("in_")?;
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        let ok_chars = rest
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
        (!name.is_empty() && ok_chars && attr.len() <= 64).then_some(IioType { name })
    }

    fn known(&self) -> Option<&'static (&'static str, Unit, f64, f64)> {
        KNOWN_TYPES.iter().find(|k| k.0 == self.name)
    }

    /// The SenML unit the ABI unit converts to, for known types.
    pub fn unit(&self) -> Option<Unit> {
        self.known().map(|k| k.1)
    }

    /// Factor from the ABI unit to `unit()`; 1 for unknown types (their
    /// values go out as the kernel reports them).
    pub fn to_unit(&self) -> f64 {
        self.known().map_or(1.0, |k| k.2)
    }

    pub fn default_scale(&self) -> f64 {
        self.known().map_or(1.0, |k| k.3)
    }
}

/// What `probe` and `open` learn about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IioDeviceInfo {
    /// `iio:device0`
    pub id: String,
    pub dir: PathBuf,
    /// Contents of its `name` file.
    pub name: String,
    /// Channel prefixes that have an `_input` or `_raw` file, sorted.
    pub channels: Vec<String>,
}

pub fn devices_dir(sysfs_root: &Path) -> PathBuf {
    sysfs_root.join("bus/iio/devices")
}

/// Every IIO device under `sysfs_root`, by index.
pub fn list_devices(sysfs_root: &Path) -> std::io::Result<Vec<IioDeviceInfo>> {
    let dir = devices_dir(sysfs_root);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        let Some(index) = id
            .strip_prefix("iio:device")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue; // triggers, buffers
        };
        let path = entry.path();
        let name = std::fs::read_to_string(path.join("name"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        out.push((index, device_info(id, path, name)));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, d)| d).collect())
}

fn device_info(id: String, dir: PathBuf, name: String) -> IioDeviceInfo {
    let mut channels: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let f = e.file_name().to_string_lossy().into_owned();
            let prefix = f
                .strip_suffix("_input")
                .or_else(|| f.strip_suffix("_raw"))?;
            IioType::from_attr(prefix).map(|_| prefix.to_owned())
        })
        .collect();
    channels.sort();
    channels.dedup();
    IioDeviceInfo {
        id,
        dir,
        name,
        channels,
    }
}

/// The device a config names: `iio:deviceN` directly, else the first
/// device (lowest index) whose `name` matches. Indexes change when a
/// driver is unbound and bound again, so this runs on every (re)open.
pub fn find_device(sysfs_root: &Path, device: &str) -> Result<IioDeviceInfo, SensorError> {
    let not_found = || SensorError::NoDevice {
        device: device.to_owned(),
        root: devices_dir(sysfs_root),
    };
    let all = list_devices(sysfs_root).map_err(|source| SensorError::Open {
        what: devices_dir(sysfs_root).display().to_string(),
        source,
    })?;
    all.into_iter()
        .find(|d| d.id == device || d.name == device)
        .ok_or_else(not_found)
}

#[derive(Debug)]
enum Source {
    /// `in_X_input`, in the ABI unit.
    Processed(PathBuf),
    /// `in_X_raw`, `(raw + offset) * scale` is the ABI unit.
    Raw {
        path: PathBuf,
        scale: f64,
        offset: f64,
    },
}

/// An open IIO device.
#[derive(Debug)]
pub struct Iio {
    device: IioDeviceInfo,
    sources: Vec<(Source, f64)>,
    channels: Vec<ChannelSpec>,
}

fn read_number(path: &Path) -> Result<f64, SensorError> {
    let text = std::fs::read_to_string(path).map_err(|source| SensorError::Open {
        what: path.display().to_string(),
        source,
    })?;
    text.trim().parse::<f64>().map_err(|_| SensorError::Sysfs {
        path: path.to_owned(),
        message: format!("expected a number, read `{}`", text.trim()),
    })
}

/// `in_voltage0` -> `in_voltage`: the type-wide attribute prefix.
fn type_prefix(ty: &IioType) -> String {
    format!("in_{}", ty.name)
}

/// The channel's own attribute, else the type-wide one, else `default`.
fn shared_attr(
    dir: &Path,
    attr: &str,
    ty: &IioType,
    what: &str,
    default: f64,
) -> Result<f64, SensorError> {
    for p in [
        dir.join(format!("{attr}_{what}")),
        dir.join(format!("{}_{what}", type_prefix(ty))),
    ] {
        if p.exists() {
            return read_number(&p);
        }
    }
    Ok(default)
}

impl Iio {
    pub fn open(
        config: &IioConfig,
        sysfs_root: &Path,
        channels: Vec<ChannelSpec>,
    ) -> Result<Iio, SensorError> {
        let device = find_device(sysfs_root, &config.device)?;
        let mut sources = Vec::new();
        for c in &config.channels {
            let ty = IioType::from_attr(&c.attr).ok_or_else(|| SensorError::Invalid {
                what: c.attr.clone(),
                message: "not an IIO channel prefix".into(),
            })?;
            let input = device.dir.join(format!("{}_input", c.attr));
            let raw = device.dir.join(format!("{}_raw", c.attr));
            let source = if input.exists() {
                Source::Processed(input)
            } else if raw.exists() {
                Source::Raw {
                    path: raw,
                    scale: shared_attr(&device.dir, &c.attr, &ty, "scale", 1.0)?,
                    offset: shared_attr(&device.dir, &c.attr, &ty, "offset", 0.0)?,
                }
            } else {
                return Err(SensorError::Sysfs {
                    path: device.dir.clone(),
                    message: format!(
                        "device `{}` has no {0}_input or {0}_raw (it has: {})",
                        c.attr,
                        device.channels.join(", ")
                    ),
                });
            };
            sources.push((source, c.to_unit));
        }
        Ok(Iio {
            device,
            sources,
            channels,
        })
    }

    pub fn device(&self) -> &IioDeviceInfo {
        &self.device
    }
}

impl Sensor for Iio {
    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        let mut values = Vec::with_capacity(self.sources.len());
        for (source, to_unit) in &self.sources {
            let abi = match source {
                Source::Processed(p) => read_number(p)?,
                Source::Raw {
                    path,
                    scale,
                    offset,
                } => (read_number(path)? + offset) * scale,
            };
            values.push(Some(abi * to_unit));
        }
        Ok(Reading {
            at: Instant::now(),
            values,
        })
    }
}

/// Lays out a fake `/sys/bus/iio/devices` for tests.
pub mod fake {
    use std::path::{Path, PathBuf};

    /// Create `iio:device<index>` with a `name` and the given files.
    pub fn device(sysfs_root: &Path, index: u32, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = super::devices_dir(sysfs_root).join(format!("iio:device{index}"));
        std::fs::create_dir_all(&dir).ok();
        std::fs::write(dir.join("name"), format!("{name}\n")).ok();
        for (f, v) in files {
            std::fs::write(dir.join(f), format!("{v}\n")).ok();
        }
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chan(attr: &str, name: &str) -> IioChannel {
        let ty = IioType::from_attr(attr).unwrap();
        IioChannel {
            attr: attr.into(),
            name: name.into(),
            unit: ty.unit().unwrap_or(Unit::RATIO),
            scale: ty.default_scale(),
            to_unit: ty.to_unit(),
        }
    }

    fn open(root: &Path, device: &str, chans: Vec<IioChannel>) -> Result<Iio, SensorError> {
        let cfg = IioConfig {
            device: device.into(),
            channels: chans,
        };
        let specs = cfg.channel_specs("s");
        Iio::open(&cfg, root, specs)
    }

    #[test]
    fn attr_types() {
        assert_eq!(IioType::from_attr("in_temp").unwrap().name, "temp");
        assert_eq!(IioType::from_attr("in_voltage0").unwrap().name, "voltage");
        assert_eq!(IioType::from_attr("in_accel_x").unwrap().name, "accel");
        assert_eq!(
            IioType::from_attr("in_voltage0-voltage1").unwrap().name,
            "voltage"
        );
        assert_eq!(
            IioType::from_attr("in_humidityrelative").unwrap().unit(),
            Some(Unit::RELATIVE_HUMIDITY)
        );
        assert_eq!(IioType::from_attr("in_proximity0").unwrap().unit(), None);
        for bad in [
            "temp",
            "in_",
            "in_0",
            "in_Temp",
            "out_voltage0",
            "in_temp/x",
        ] {
            assert_eq!(IioType::from_attr(bad), None, "{bad}");
        }
    }

    #[test]
    fn processed_channels_convert_abi_units_to_senml() {
        let dir = tempfile::tempdir().unwrap();
        fake::device(
            dir.path(),
            0,
            "bme280",
            &[
                ("in_temp_input", "25080"),
                ("in_pressure_input", "100.653253906"),
                ("in_humidityrelative_input", "45123"),
            ],
        );
        let mut s = open(
            dir.path(),
            "bme280",
            vec![
                chan("in_temp", "temperature"),
                chan("in_pressure", "pressure"),
                chan("in_humidityrelative", "humidity"),
            ],
        )
        .unwrap();
        let r = s.read().unwrap();
        let v: Vec<f64> = r.values.iter().map(|x| x.unwrap()).collect();
        assert!((v[0] - 25.08).abs() < 1e-9);
        assert!((v[1] - 100_653.253906).abs() < 1e-6);
        assert!((v[2] - 45.123).abs() < 1e-9);
        assert_eq!(s.channels()[0].name, "s.temperature");
        assert_eq!(s.channels()[1].unit, Unit::PASCAL);
    }

    #[test]
    fn raw_channels_use_own_or_shared_scale_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        fake::device(dir.path(), 0, "other", &[]);
        fake::device(
            dir.path(),
            3,
            "ads1015",
            &[
                ("in_voltage0_raw", "1000"),
                ("in_voltage1_raw", "-200"),
                ("in_voltage_scale", "0.125"),
                ("in_voltage1_scale", "2"),
                ("in_temp_raw", "100"),
                ("in_temp_offset", "-50"),
                ("in_temp_scale", "500"),
            ],
        );
        let mut s = open(
            dir.path(),
            "ads1015",
            vec![
                chan("in_voltage0", "a0"),
                chan("in_voltage1", "a1"),
                chan("in_temp", "t"),
            ],
        )
        .unwrap();
        assert_eq!(s.device().id, "iio:device3");
        let v: Vec<f64> = s
            .read()
            .unwrap()
            .values
            .iter()
            .map(|x| x.unwrap())
            .collect();
        assert!((v[0] - 0.125).abs() < 1e-12, "{v:?}"); // 1000 * 0.125 mV
        assert!((v[1] + 0.4).abs() < 1e-12, "{v:?}"); // -200 * 2 mV
        assert!((v[2] - 25.0).abs() < 1e-12, "{v:?}"); // (100-50)*500 m°C
        // By id as well as by name.
        assert!(open(dir.path(), "iio:device3", vec![chan("in_temp", "t")]).is_ok());
    }

    #[test]
    fn missing_device_channel_and_unplug_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(dir.path(), "bme280", vec![chan("in_temp", "t")]).unwrap_err();
        assert!(matches!(err, SensorError::NoDevice { .. }), "{err}");
        let dev = fake::device(dir.path(), 0, "bme280", &[("in_temp_input", "1")]);
        let err = open(dir.path(), "bme280", vec![chan("in_pressure", "p")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("has no in_pressure_input or in_pressure_raw (it has: in_temp)"),
            "{err}"
        );
        let mut s = open(dir.path(), "bme280", vec![chan("in_temp", "t")]).unwrap();
        std::fs::write(dev.join("in_temp_input"), "garbage\n").unwrap();
        assert!(matches!(s.read(), Err(SensorError::Sysfs { .. })));
        std::fs::remove_dir_all(&dev).unwrap();
        assert!(matches!(s.read(), Err(SensorError::Open { .. })));
    }

    #[test]
    fn lists_devices_in_index_order_with_their_channels() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_devices(dir.path()).unwrap().is_empty());
        fake::device(
            dir.path(),
            10,
            "b",
            &[("in_temp_raw", "1"), ("in_temp_scale", "1")],
        );
        fake::device(
            dir.path(),
            2,
            "a",
            &[
                ("in_voltage0_raw", "1"),
                ("in_voltage1_raw", "1"),
                ("sampling_frequency", "1"),
            ],
        );
        std::fs::create_dir_all(devices_dir(dir.path()).join("trigger0")).unwrap();
        let all = list_devices(dir.path()).unwrap();
        let summary: Vec<_> = all
            .iter()
            .map(|d| (d.id.as_str(), d.name.as_str(), d.channels.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "iio:device2",
                    "a",
                    vec!["in_voltage0".to_owned(), "in_voltage1".to_owned()]
                ),
                ("iio:device10", "b", vec!["in_temp".to_owned()]),
            ]
        );
    }
}
