//! The config file as serde reads it: types and defaults, nothing more.
//!
//! Every struct denies unknown fields and every field has a default (or is
//! an `Option`), so each file can be type-checked on its own, with
//! serde_yaml's line and column, before files are merged. Whether a
//! required key is present, and whether values make sense together, is
//! checked on the merged result in `validate`.
//!
//! Sensors are one flat struct with a `type` key rather than a serde enum:
//! serde_yaml 0.9 spells enums as YAML tags (`!bme280`), and an internally
//! tagged enum loses the line and column of errors inside it. Keys that do
//! not belong to a sensor's type are rejected in `validate`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub identity: RawIdentity,
    pub sip: RawSip,
    pub stream: RawStream,
    pub sensors: Vec<RawSensor>,
    pub gpio: RawGpio,
    pub realtime: RawRealtime,
    pub media: RawMedia,
    pub logging: RawLogging,
    pub status: RawStatus,
    pub spool: RawSpool,
    pub update: super::update::RawUpdate,
    pub secrets_file: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            identity: RawIdentity::default(),
            sip: RawSip::default(),
            stream: RawStream::default(),
            sensors: Vec::new(),
            gpio: RawGpio::default(),
            realtime: RawRealtime::default(),
            media: RawMedia::default(),
            logging: RawLogging::default(),
            status: RawStatus::default(),
            spool: RawSpool::default(),
            update: super::update::RawUpdate::default(),
            secrets_file: DEFAULT_SECRETS_FILE.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentity {
    pub aor: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawTransport {
    Udp,
    Tcp,
    /// The default: SIP in clear text is an opt-in (`udp`, `tcp`) that
    /// the agent warns about at start.
    #[default]
    Tls,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSip {
    pub registrar: Option<String>,
    pub outbound_proxy: Option<String>,
    pub collector: Option<String>,
    pub transport: RawTransport,
    pub bind: String,
    /// Accept incoming SIP; off: calls come only over the agent's own TCP
    /// or TLS connection to its registrar. Default: off over TLS (the
    /// agent accepts no TLS, so a listener would be clear text), on
    /// otherwise.
    pub listen: Option<bool>,
    pub expires: u32,
    pub username: Option<String>,
    /// Digest users that may call the sensor; passwords in the secrets file.
    pub callers: Vec<String>,
    /// Realm of the agent's challenges; default: the AOR's host.
    pub caller_realm: Option<String>,
    pub callers_allow_md5: bool,
    /// Calls arriving on the agent's own TCP/TLS connection to its proxy
    /// are trusted.
    pub trust_proxy_flow: bool,
    /// PEM CA bundle the registrar's / proxy's TLS certificate must chain
    /// to (`transport: tls`).
    pub ca_file: String,
    /// Optional client certificate (PEM chain) and its key, for a proxy
    /// that requires one.
    pub certificate: Option<String>,
    pub private_key: Option<String>,
}

impl Default for RawSip {
    fn default() -> Self {
        RawSip {
            registrar: None,
            outbound_proxy: None,
            collector: None,
            transport: RawTransport::Tls,
            bind: "0.0.0.0:5060".into(),
            listen: None,
            expires: 3600,
            username: None,
            callers: Vec::new(),
            caller_realm: None,
            callers_allow_md5: false,
            trust_proxy_flow: true,
            ca_file: DEFAULT_CA_FILE.into(),
            certificate: None,
            private_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStream {
    pub rate: u32,
    pub samples_per_packet: u32,
    pub channels: Vec<String>,
}

impl Default for RawStream {
    fn default() -> Self {
        RawStream {
            rate: 10,
            samples_per_packet: 1,
            channels: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawSensorType {
    Simulated,
    Bme280,
    Bmp280,
    Sht3x,
    Iio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawBmeMode {
    Forced,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawRepeatability {
    Low,
    Medium,
    High,
}

/// One entry of `sensors:`. Which keys apply depends on `type`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSensor {
    #[serde(rename = "type")]
    pub kind: RawSensorType,
    pub name: String,
    #[serde(default)]
    pub interval_ms: Option<u32>,
    #[serde(default)]
    pub bus: Option<u32>,
    #[serde(default)]
    pub address: Option<u32>,
    #[serde(default)]
    pub mode: Option<RawBmeMode>,
    #[serde(default)]
    pub oversampling: Option<u32>,
    #[serde(default)]
    pub filter: Option<u32>,
    #[serde(default)]
    pub standby_ms: Option<f64>,
    #[serde(default)]
    pub repeatability: Option<RawRepeatability>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub channels: Option<Vec<RawChannel>>,
}

/// One entry of a sensor's `channels:` (iio and simulated sensors).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    pub name: String,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub scale: Option<f64>,
    #[serde(default)]
    pub attr: Option<String>,
    #[serde(default)]
    pub offset: Option<f64>,
    #[serde(default)]
    pub amplitude: Option<f64>,
    #[serde(default)]
    pub period_ms: Option<u32>,
    #[serde(default)]
    pub noise: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGpio {
    pub inputs: Vec<RawGpioInput>,
    pub status_led: Option<RawLed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawEdge {
    Rising,
    Falling,
    #[default]
    Both,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGpioInput {
    pub name: String,
    pub pin: u32,
    #[serde(default)]
    pub edge: RawEdge,
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u32,
    #[serde(default)]
    pub active_low: bool,
}

fn default_debounce_ms() -> u32 {
    20
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLed {
    pub pin: u32,
    #[serde(default)]
    pub active_low: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRealtime {
    pub priority: u32,
    pub cpu: Option<u32>,
}

impl Default for RawRealtime {
    fn default() -> Self {
        RawRealtime {
            priority: 50,
            cpu: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMedia {
    pub srtp: Option<RawSrtp>,
    pub peer_timeout_ms: u32,
}

impl Default for RawMedia {
    fn default() -> Self {
        RawMedia {
            srtp: None,
            peer_timeout_ms: u32::try_from(crate::session::liveness::PEER_TIMEOUT.as_millis())
                .unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawSrtp {
    Required,
    Optional,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogging {
    pub level: RawLevel,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStatus {
    pub socket: String,
}

impl Default for RawStatus {
    fn default() -> Self {
        RawStatus {
            socket: crate::status::DEFAULT_SOCKET.into(),
        }
    }
}

/// The `spool` section; `super::spool` checks it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSpool {
    pub enabled: bool,
    pub dir: String,
    /// `None`: a week at the stream's rate (`default_max_bytes`).
    pub max_bytes: Option<u64>,
    /// A number and a unit: `s`, `m`, `h` or `d`.
    pub max_age: String,
    pub fsync_interval_ms: u32,
    pub backfill_rate: u64,
}

impl Default for RawSpool {
    fn default() -> Self {
        RawSpool {
            enabled: true,
            dir: DEFAULT_SPOOL_DIR.into(),
            max_bytes: None,
            max_age: DEFAULT_SPOOL_MAX_AGE.into(),
            fsync_interval_ms: DEFAULT_SPOOL_FSYNC_INTERVAL_MS,
            backfill_rate: DEFAULT_BACKFILL_RATE,
        }
    }
}

/// The secrets file: root-only, never merged with the others.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    #[serde(default)]
    pub password: Option<String>,
    /// Passwords of the callers named in `sip.callers`.
    #[serde(default)]
    pub callers: std::collections::BTreeMap<String, String>,
}

/// Where the image provisions the site's CA (docs/security.md).
pub const DEFAULT_CA_FILE: &str = "/etc/sipsensor/ca.pem";
pub const DEFAULT_SECRETS_FILE: &str = "/etc/sipsensor/secrets.yaml";

/// On the image `/var/lib/sipsensor` is the data partition's `state/`;
/// the image's agent.yaml names the partition's own `spool/`.
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/sipsensor/spool";
pub const DEFAULT_SPOOL_MAX_AGE: &str = "7d";
/// A power cut loses at most this much; each sync is one small write to
/// the card, so not much less.
pub const DEFAULT_SPOOL_FSYNC_INTERVAL_MS: u32 = 1000;
/// Backfill after an outage at most this fast (bytes/s, RTP headers
/// included; the collector's `max-rate` may lower it): 128 kbit/s, so an
/// hour of 3 channels × 100 Hz (about 1.3 kB/s of packets) catches up in
/// about five minutes on a link that carries the live stream ten times.
pub const DEFAULT_BACKFILL_RATE: u64 = 16_000;
