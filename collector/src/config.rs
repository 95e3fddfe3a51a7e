//! The collector's configuration file (YAML, strict: an unknown key, a wrong
//! type or an impossible value is an error naming the file, line and column).
//!
//! ```yaml
//! storage:
//!   url: sqlite:///var/lib/sipsensor/collector.db
//! retention:
//!   days: 90
//! http:
//!   bind: 0.0.0.0:8080
//!   token_file: /etc/sipsensor/http-token   # needed beyond loopback
//! sip:
//!   bind: 0.0.0.0:5060
//!   registrar: true
//!   credentials_file: /etc/sipsensor/credentials.yaml
//!   trusted_peers: [198.51.100.10/32]         # a proxy that authenticates
//! policy:
//!   mode: cap
//!   max_rate_hz: 100
//!   max_channels: 8
//! ```

use crate::storage::StorageUrl;
use crate::storage::sqlite::IntegrityCheck;
use crate::storage::writer::WriterConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the collector looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/sipsensor/collector.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// serde_yaml's message carries the line and column.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub storage: StorageConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default, deserialize_with = "sip_section")]
    pub sip: SipConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub update: crate::update::config::UpdateConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite:///path/file.db` or `postgres://user@host/db`.
    #[serde(deserialize_with = "storage_url")]
    pub url: StorageUrl,
    /// Wait before received rows are committed, 1..=1000 ms, while commits
    /// are fast.
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: FlushMs,
    /// Longest wait, 1..=1000 ms: under load (thousands of streams) the
    /// writer stretches the interval up to this, as commits cost per stream.
    /// A crash loses at most this much (and a commit in progress).
    #[serde(default = "default_max_flush_ms")]
    pub max_flush_interval_ms: FlushMs,
    /// Most rows per transaction.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: NonZeroUsize,
    /// Rows held in memory while the store fails (full disk, server down).
    #[serde(default = "default_max_pending")]
    pub max_pending_rows: NonZeroUsize,
    /// Check of an existing SQLite file at start: `quick` (reads every
    /// page, about a second per GB), `full` (also cross-checks indexes) or
    /// `header` (instant; damage deeper in the file shows when it is read).
    #[serde(default)]
    pub integrity_check: IntegrityCheck,
    /// A new SQLite file is created 0640 and given to this group (a backup
    /// job's); without it, 0600.
    #[serde(default)]
    pub group: Option<String>,
}

/// Flush interval in ms, 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushMs(u64);

impl TryFrom<u64> for FlushMs {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if (1..=1000).contains(&v) {
            Ok(FlushMs(v))
        } else {
            Err(format!(
                "flush intervals are 1..=1000 ms (a crash may lose at most one second), got {v}"
            ))
        }
    }
}

/// Checks values while the YAML parser still points at them, so the error
/// carries the value's own line and column (a `try_from` check after
/// deserialising would report the enclosing mapping).
mod checked {
    use serde::de::{self, Deserializer, Visitor};
    use std::fmt;

    struct Checked<F>(&'static str, F);

    impl<'de, T, F> Visitor<'de> for Checked<F>
    where
        F: FnOnce(f64) -> Result<T, String>,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            (self.1)(v as f64).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            (self.1)(v as f64).map_err(E::custom)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            (self.1)(v).map_err(E::custom)
        }
    }

    pub fn number<'de, D, T>(
        d: D,
        expecting: &'static str,
        check: impl FnOnce(f64) -> Result<T, String>,
    ) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
    {
        d.deserialize_any(Checked(expecting, check))
    }

    struct CheckedStr<F>(&'static str, F);

    impl<'de, T, F> Visitor<'de> for CheckedStr<F>
    where
        F: FnOnce(&str) -> Result<T, String>,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.1)(v).map_err(E::custom)
        }
    }

    pub fn string<'de, D, T>(
        d: D,
        expecting: &'static str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
    {
        d.deserialize_str(CheckedStr(expecting, check))
    }
}

impl<'de> Deserialize<'de> for FlushMs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked::number(d, "milliseconds, 1..=1000", |v| {
            if v.fract() != 0.0 || v < 0.0 {
                return Err(format!("flush intervals are whole milliseconds, got {v}"));
            }
            FlushMs::try_from(v as u64)
        })
    }
}

fn storage_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StorageUrl, D::Error> {
    checked::string(d, "a storage URL", |s| {
        s.parse::<StorageUrl>().map_err(|e| e.to_string())
    })
}

impl FlushMs {
    pub fn get(self) -> u64 {
        self.0
    }
}

fn default_flush_ms() -> FlushMs {
    FlushMs(100)
}
fn default_max_flush_ms() -> FlushMs {
    FlushMs(1000)
}
fn default_batch_rows() -> NonZeroUsize {
    NonZeroUsize::new(500_000).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_pending() -> NonZeroUsize {
    NonZeroUsize::new(2_000_000).unwrap_or(NonZeroUsize::MIN)
}

impl StorageConfig {
    pub fn writer_config(&self) -> WriterConfig {
        WriterConfig {
            flush_interval: Duration::from_millis(self.flush_interval_ms.get()),
            max_flush_interval: Duration::from_millis(self.max_flush_interval_ms.get()),
            batch_rows: self.batch_rows.get(),
            max_pending_rows: self.max_pending_rows.get(),
            ..WriterConfig::default()
        }
    }

    /// Fails when `group` names no group.
    pub fn open_options(
        &self,
    ) -> Result<crate::storage::OpenOptions, crate::storage::StorageError> {
        let sqlite_group = match &self.group {
            Some(name) => Some(crate::storage::sqlite::file_mode::group_id(name)?),
            None => None,
        };
        Ok(crate::storage::OpenOptions {
            sqlite_check: self.integrity_check,
            sqlite_group,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Delete samples, events and gaps older than this many days.
    /// Absent: keep everything.
    #[serde(default)]
    pub days: Option<NonZeroU32>,
    /// How often retention runs, in seconds.
    #[serde(default = "default_retention_interval")]
    pub interval_s: NonZeroU32,
}

fn default_retention_interval() -> NonZeroU32 {
    NonZeroU32::new(3600).unwrap_or(NonZeroU32::MIN)
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            days: None,
            interval_s: default_retention_interval(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the web page, JSON API and /metrics.
    #[serde(default = "default_http_bind")]
    pub bind: SocketAddr,
    /// Host names the server answers for, besides IP addresses and
    /// `localhost` (a request naming another gets 421: DNS rebinding).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// File holding the access token; required when `bind` is not loopback.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Serve beyond loopback without a token (logs a warning at start).
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// A connection that has not sent a whole request head this long after
    /// it opened or after its last answer is closed (slow or idle clients),
    /// and so is one whose client reads nothing of its answer this long.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_s: NonZeroU32,
    /// Connections open at once; further ones are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroU32,
    /// Connections open at once from one address (one /64 for IPv6).
    #[serde(default = "default_max_per_source")]
    pub max_connections_per_source: NonZeroU32,
}

fn default_http_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_idle_timeout() -> NonZeroU32 {
    NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN)
}
fn default_max_connections() -> NonZeroU32 {
    NonZeroU32::new(512).unwrap_or(NonZeroU32::MIN)
}
fn default_max_per_source() -> NonZeroU32 {
    NonZeroU32::new(32).unwrap_or(NonZeroU32::MIN)
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: default_http_bind(),
            hosts: Vec::new(),
            token_file: None,
            allow_unauthenticated: false,
            idle_timeout_s: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_source: default_max_per_source(),
        }
    }
}

pub use crate::sip::config::{MediaConfig, SipConfig};

/// A present `sip:` section turns SIP on (see [`SipConfig::enabled`]).
fn sip_section<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SipConfig, D::Error> {
    let mut c = SipConfig::deserialize(d)?;
    c.enabled = true;
    Ok(c)
}

/// How the collector answers a stream offer (RFC 3264 offer/answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Accept rate and channels as offered.
    #[default]
    AcceptAsOffered,
    /// Answer with at most `max_rate_hz` and `max_channels`.
    Cap,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub mode: PolicyMode,
    #[serde(default)]
    pub max_rate_hz: Option<PositiveRate>,
    #[serde(default)]
    pub max_channels: Option<NonZeroU32>,
}

/// A finite rate > 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositiveRate(f64);

impl TryFrom<f64> for PositiveRate {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v.is_finite() && v > 0.0 {
            Ok(PositiveRate(v))
        } else {
            Err(format!("a rate must be a number above 0 Hz, got {v}"))
        }
    }
}

impl<'de> Deserialize<'de> for PositiveRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked::number(d, "a rate in Hz above 0", PositiveRate::try_from)
    }
}

impl PositiveRate {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Config {
    /// Parses YAML text; `path` names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Err(e) = cfg.sip.check() {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
        if cfg.storage.flush_interval_ms.get() > cfg.storage.max_flush_interval_ms.get() {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: "storage: flush_interval_ms is above max_flush_interval_ms".into(),
            });
        }
        // The Host check compares names without port (RFC 9110 7.2).
        if let Some(h) =
            cfg.http.hosts.iter().find(|h| {
                h.is_empty() || h.chars().any(|c| c == ':' || c == '/' || c.is_whitespace())
            })
        {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "http.hosts: {h:?} is not a host name (give names without scheme or port; \
                     IP addresses and localhost are always accepted)"
                ),
            });
        }
        let p = &cfg.policy;
        let limited = p.max_rate_hz.is_some() || p.max_channels.is_some();
        let problem = match p.mode {
            PolicyMode::Cap if !limited => {
                Some("policy: mode cap needs max_rate_hz or max_channels")
            }
            PolicyMode::AcceptAsOffered if limited => {
                Some("policy: max_rate_hz and max_channels apply only with mode: cap")
            }
            _ => None,
        };
        match problem {
            Some(message) => Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: message.into(),
            }),
            None => Ok(cfg),
        }
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }
}

#[cfg(test)]
mod tests;
