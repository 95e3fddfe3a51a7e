//! Semantic checks on the merged raw config, producing a `Config`.
//!
//! Every problem is collected (not just the first) with the path of the key
//! it concerns; `config::resolve` turns the path into file:line:column.

use super::locate::{KeyPath, Target};
use super::raw::*;
use super::*;
use crate::sensor::bme280::{Bme280Config, Chip, Mode, Standby};
use crate::sensor::iio::{IioChannel, IioConfig, IioType};
use crate::sensor::sht3x::{Repeatability, Sht3xConfig};
use crate::sensor::sim::{SimChannel, SimConfig};
use crate::sensor::{SensorConfig, SensorKind};
use crate::units::Unit;

/// Highest sysfs GPIO number accepted (global numbering; boards with
/// dynamically numbered chips start at 512).
pub const MAX_GPIO: u32 = 4095;
/// Channels × samples per packet: keeps a packet of 4-byte samples near
/// 1 KB, under the 1280-byte IPv6 minimum MTU with headers.
pub const MAX_SAMPLES_PER_PACKET_TOTAL: u32 = 256;
/// Highest I2C bus number (`/dev/i2c-N`).
pub const MAX_I2C_BUS: u32 = 1023;

const TLS_MISSING: &str = "`sips:` needs TLS, which this agent does not speak; use `sip:`";

struct V {
    diags: Vec<Diag>,
}

impl V {
    fn err(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diags.push(Diag {
            path,
            target: Target::Value,
            message: message.into(),
        });
    }

    fn err_key(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diags.push(Diag {
            path,
            target: Target::Key,
            message: message.into(),
        });
    }

    fn uri(&mut self, path: KeyPath, text: &str, need_user: bool) -> Option<SipUri> {
        match SipUri::parse(text) {
            Err(why) => {
                self.err(path, format!("`{text}` is not a SIP URI: {why}"));
                None
            }
            Ok(u) if u.is_secure() => {
                self.err(path, TLS_MISSING);
                None
            }
            Ok(u) if need_user && u.user().is_none() => {
                self.err(
                    path,
                    format!("`{text}` has no user part; expected e.g. sip:sensor-0001@example.net"),
                );
                None
            }
            Ok(u) => Some(u),
        }
    }

    fn opt_uri(&mut self, path: KeyPath, text: &Option<String>) -> Option<SipUri> {
        text.as_deref().and_then(|t| self.uri(path, t, false))
    }

    fn range(&mut self, path: KeyPath, v: u32, lo: u32, hi: u32, what: &str) -> bool {
        if v < lo || v > hi {
            self.err(path, format!("{what} must be {lo} to {hi}, got {v}"));
            return false;
        }
        true
    }

    fn name(&mut self, path: KeyPath, name: &str, what: &str) -> bool {
        let ok = name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
        if !ok {
            self.err(
                path,
                format!(
                    "{what} `{name}` must be 1-32 characters of a-z, 0-9, `_` or `-`, starting with a letter"
                ),
            );
        }
        ok
    }
}

pub(super) fn validate(raw: &RawConfig) -> Result<Config, Vec<Diag>> {
    let mut v = V { diags: Vec::new() };
    let root = KeyPath::root();

    let identity = identity(&mut v, &raw.identity, &root.key("identity"));
    let sensors = sensors(&mut v, &raw.sensors, &root.key("sensors"));
    let gpio = gpio(&mut v, &raw.gpio, &root.key("gpio"), &raw.sensors);
    let stream = stream(&mut v, &raw.stream, &root.key("stream"), &sensors);
    if raw.sensors.is_empty() && raw.gpio.inputs.is_empty() {
        v.err_key(
            root.key("sensors"),
            "nothing to stream: add an entry under `sensors:` or `gpio.inputs:`",
        );
    }
    let sip = sip(&mut v, &raw.sip, &root.key("sip"), identity.as_ref());

    let rt = &raw.realtime;
    let rtp = root.key("realtime");
    v.range(
        rtp.key("priority"),
        rt.priority,
        1,
        99,
        "SCHED_FIFO priority",
    );
    if let Some(cpu) = rt.cpu {
        v.range(rtp.key("cpu"), cpu, 0, 1023, "CPU index");
    }

    let socket = PathBuf::from(&raw.status.socket);
    // sun_path holds 108 bytes including the terminating NUL.
    if !socket.is_absolute() || raw.status.socket.len() > 107 {
        v.err(
            root.key("status").key("socket"),
            format!(
                "`{}` must be an absolute path of at most 107 bytes",
                raw.status.socket
            ),
        );
    }
    if !Path::new(&raw.secrets_file).is_absolute() {
        v.err(
            root.key("secrets_file"),
            format!("`{}` must be an absolute path", raw.secrets_file),
        );
    }

    let level = match raw.logging.level {
        RawLevel::Error => LogLevel::Error,
        RawLevel::Warn => LogLevel::Warn,
        RawLevel::Info => LogLevel::Info,
        RawLevel::Debug => LogLevel::Debug,
        RawLevel::Trace => LogLevel::Trace,
    };

    match (identity, sip, stream) {
        (Some(identity), Some(sip), Some(stream)) if v.diags.is_empty() => Ok(Config {
            identity,
            sip,
            stream,
            sensors: sensors.into_iter().flatten().collect(),
            gpio,
            realtime: RealtimeConfig {
                priority: u8::try_from(rt.priority).unwrap_or(50),
                cpu: rt.cpu.and_then(|c| u16::try_from(c).ok()),
            },
            logging: LoggingConfig { level },
            status: StatusConfig { socket },
            sources: Vec::new(),
        }),
        _ => Err(v.diags),
    }
}

fn identity(v: &mut V, raw: &RawIdentity, path: &KeyPath) -> Option<Identity> {
    if let Some(d) = &raw.display_name
        && (d.chars().count() > 64 || d.chars().any(char::is_control))
    {
        v.err(
            path.key("display_name"),
            "must be at most 64 characters without control characters",
        );
    }
    let Some(aor) = &raw.aor else {
        v.err(
            path.key("aor"),
            "missing: the sensor's address of record, e.g. `aor: sip:sensor-0001@example.net`",
        );
        return None;
    };
    let aor = v.uri(path.key("aor"), aor, true)?;
    Some(Identity {
        aor,
        display_name: raw.display_name.clone(),
    })
}

fn sip(v: &mut V, raw: &RawSip, path: &KeyPath, identity: Option<&Identity>) -> Option<SipConfig> {
    let registrar = v.opt_uri(path.key("registrar"), &raw.registrar);
    let outbound_proxy = v.opt_uri(path.key("outbound_proxy"), &raw.outbound_proxy);
    let collector = v.opt_uri(path.key("collector"), &raw.collector);
    let trusted_callers: Vec<SipUri> = raw
        .trusted_callers
        .iter()
        .enumerate()
        .filter_map(|(i, t)| v.uri(path.key("trusted_callers").index(i), t, false))
        .collect();
    let mut trusted_proxies = Vec::new();
    for (i, t) in raw.trusted_proxies.iter().enumerate() {
        match parse_net(t) {
            Some(n) => trusted_proxies.push(n),
            None => v.err(
                path.key("trusted_proxies").index(i),
                format!("`{t}` is not an IP address or network (e.g. 203.0.113.10 or 10.0.0.0/8)"),
            ),
        }
    }
    if raw.collector.is_none() && raw.trusted_callers.is_empty() && raw.trusted_proxies.is_empty() {
        v.err_key(
            path.clone(),
            "nobody to stream to: set `collector` (the agent calls it) or \
             `trusted_callers` / `trusted_proxies` (they call the agent)",
        );
    }
    let bind = match raw.bind.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            v.err(
                path.key("bind"),
                format!(
                    "`{}` is not an address:port (e.g. 0.0.0.0:5060 or [::]:5060)",
                    raw.bind
                ),
            );
            None
        }
    };
    // RFC 3261 10.2.1: 0 would mean "remove the binding".
    v.range(
        path.key("expires"),
        raw.expires,
        60,
        86400,
        "registration expiry (seconds)",
    );
    let username = match &raw.username {
        Some(u) => {
            if u.is_empty()
                || u.len() > 64
                || u.chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '"')
            {
                v.err(
                    path.key("username"),
                    "must be 1-64 characters without spaces, quotes or control characters",
                );
            }
            Some(u.clone())
        }
        None => identity.and_then(|i| i.aor.user().map(str::to_owned)),
    };
    let transport = match raw.transport {
        RawTransport::Udp => Transport::Udp,
        RawTransport::Tcp => Transport::Tcp,
    };
    Some(SipConfig {
        registrar,
        outbound_proxy,
        collector,
        transport,
        bind: bind?,
        expires: Duration::from_secs(u64::from(raw.expires)),
        username: username?,
        password: None,
        trusted_callers,
        trusted_proxies,
    })
}

fn parse_net(text: &str) -> Option<IpNet> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some(IpNet { addr, prefix })
}

fn stream(
    v: &mut V,
    raw: &RawStream,
    path: &KeyPath,
    sensors: &[Option<SensorConfig>],
) -> Option<StreamConfig> {
    let rate_ok = v.range(path.key("rate"), raw.rate, 1, 10_000, "sample rate (Hz)");
    let spp_ok = v.range(
        path.key("samples_per_packet"),
        raw.samples_per_packet,
        1,
        1000,
        "samples per packet",
    );
    if rate_ok && spp_ok {
        // Packet interval between 1 ms and 5 s.
        let interval_us = u64::from(raw.samples_per_packet) * 1_000_000 / u64::from(raw.rate);
        if !(1_000..=5_000_000).contains(&interval_us) {
            v.err(
                path.key("samples_per_packet"),
                format!(
                    "{} samples at {} Hz make a packet every {} ms; it must be 1 ms to 5 s",
                    raw.samples_per_packet,
                    raw.rate,
                    interval_us as f64 / 1000.0
                ),
            );
        }
    }
    // All channels of all sensors, by qualified name.
    let mut all = Vec::new();
    for (si, s) in sensors.iter().enumerate() {
        if let Some(s) = s {
            for (ci, spec) in s.channels().into_iter().enumerate() {
                all.push(StreamChannel {
                    sensor: si,
                    channel: ci,
                    spec,
                });
            }
        }
    }
    let channels = if raw.channels.is_empty() {
        all
    } else {
        let mut chosen: Vec<StreamChannel> = Vec::new();
        for (i, name) in raw.channels.iter().enumerate() {
            let p = path.key("channels").index(i);
            match all.iter().find(|c| &c.spec.name == name) {
                _ if chosen.iter().any(|c| &c.spec.name == name) => {
                    v.err(p, format!("`{name}` is listed twice"))
                }
                Some(c) => chosen.push(c.clone()),
                None if sensors.iter().any(Option::is_none) => {} // reported there
                None => {
                    let known: Vec<&str> = all.iter().map(|c| c.spec.name.as_str()).collect();
                    v.err(
                        p,
                        format!(
                            "no channel `{name}`; expected `sensor.channel`, one of: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        chosen
    };
    let n = u32::try_from(channels.len()).unwrap_or(u32::MAX);
    if spp_ok && n.saturating_mul(raw.samples_per_packet) > MAX_SAMPLES_PER_PACKET_TOTAL {
        v.err(
            path.key("samples_per_packet"),
            format!(
                "{n} channels × {} samples = {} values per packet; at most {MAX_SAMPLES_PER_PACKET_TOTAL} fit",
                raw.samples_per_packet,
                n.saturating_mul(raw.samples_per_packet)
            ),
        );
    }
    Some(StreamConfig {
        rate_hz: raw.rate,
        samples_per_packet: raw.samples_per_packet,
        channels,
    })
}

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

fn present_sensor_keys(s: &RawSensor) -> Vec<&'static str> {
    let mut k = Vec::new();
    let mut add = |name: &'static str, present: bool| {
        if present {
            k.push(name);
        }
    };
    add("bus", s.bus.is_some());
    add("address", s.address.is_some());
    add("mode", s.mode.is_some());
    add("oversampling", s.oversampling.is_some());
    add("filter", s.filter.is_some());
    add("standby_ms", s.standby_ms.is_some());
    add("repeatability", s.repeatability.is_some());
    add("device", s.device.is_some());
    add("seed", s.seed.is_some());
    add("channels", s.channels.is_some());
    k
}

fn present_channel_keys(c: &RawChannel) -> Vec<&'static str> {
    let mut k = Vec::new();
    let mut add = |name: &'static str, present: bool| {
        if present {
            k.push(name);
        }
    };
    add("unit", c.unit.is_some());
    add("scale", c.scale.is_some());
    add("attr", c.attr.is_some());
    add("offset", c.offset.is_some());
    add("amplitude", c.amplitude.is_some());
    add("period_ms", c.period_ms.is_some());
    add("noise", c.noise.is_some());
    k
}

fn sensors(v: &mut V, raw: &[RawSensor], path: &KeyPath) -> Vec<Option<SensorConfig>> {
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
        for key in present_sensor_keys(s) {
            if !sensor_keys(s.kind).contains(&key) {
                v.err_key(
                    p.key(key),
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
        RawSensorType::Bme280 | RawSensorType::Bmp280 => {
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
        RawSensorType::Sht3x => {
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
        RawSensorType::Simulated => {
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
        RawSensorType::Iio => {
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
                            format!("missing: the kernel's unit of `{attr}` is not known; give a SenML `unit`"),
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
    }
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
        for key in present_channel_keys(c) {
            if !channel_keys(s.kind).contains(&key) {
                v.err_key(
                    cp.key(key),
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
    if scale.is_finite() && scale > 0.0 {
        Some(scale)
    } else {
        v.err(
            p.key("scale"),
            format!("scale (the value of one integer step) must be > 0, got {scale}"),
        );
        None
    }
}

fn gpio(v: &mut V, raw: &RawGpio, path: &KeyPath, sensors: &[RawSensor]) -> GpioConfig {
    let mut inputs = Vec::new();
    let mut pins: Vec<(u32, KeyPath)> = Vec::new();
    for (i, g) in raw.inputs.iter().enumerate() {
        let p = path.key("inputs").index(i);
        v.name(p.key("name"), &g.name, "input name");
        if raw.inputs[..i].iter().any(|o| o.name == g.name) {
            v.err(
                p.key("name"),
                format!("input name `{}` is used twice", g.name),
            );
        }
        if sensors.iter().any(|s| s.name == g.name) {
            v.err(
                p.key("name"),
                format!(
                    "`{}` is also a sensor's name; events and channels share names",
                    g.name
                ),
            );
        }
        if v.range(p.key("pin"), g.pin, 0, MAX_GPIO, "GPIO number") {
            if let Some((_, other)) = pins.iter().find(|(pin, _)| *pin == g.pin) {
                v.err(
                    p.key("pin"),
                    format!("GPIO {} is already used by {other}", g.pin),
                );
            }
            pins.push((g.pin, p.clone()));
        }
        v.range(
            p.key("debounce_ms"),
            g.debounce_ms,
            0,
            10_000,
            "debounce time (ms)",
        );
        inputs.push(GpioInputConfig {
            name: g.name.clone(),
            pin: g.pin,
            edge: match g.edge {
                RawEdge::Rising => Edge::Rising,
                RawEdge::Falling => Edge::Falling,
                RawEdge::Both => Edge::Both,
            },
            debounce: Duration::from_millis(u64::from(g.debounce_ms)),
            active_low: g.active_low,
        });
    }
    let status_led = raw.status_led.as_ref().and_then(|l| {
        let p = path.key("status_led");
        if !v.range(p.key("pin"), l.pin, 0, MAX_GPIO, "GPIO number") {
            return None;
        }
        if let Some((_, other)) = pins.iter().find(|(pin, _)| *pin == l.pin) {
            v.err(
                p.key("pin"),
                format!("GPIO {} is already used by {other}", l.pin),
            );
        }
        Some(LedConfig {
            pin: l.pin,
            active_low: l.active_low,
        })
    });
    GpioConfig { inputs, status_led }
}
