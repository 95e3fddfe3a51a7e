//! The agent's configuration: YAML files merged key by key, a secrets file,
//! strict checks with file:line:column in every message.
//!
//! Load order: the main file(s) (`/etc/sipsensor/agent.yaml`), then the
//! optional override on the boot partition; a later file wins key by key
//! (`locate::merge`). The password comes from a separate root-only file.

pub mod locate;
pub mod raw;
pub mod schema;
pub mod secrets;
pub mod sip_uri;
pub mod spool;
pub mod update;
pub mod validate;

use crate::sensor::SensorConfig;
use locate::{KeyPath, Position, Target};
use serde_yaml::Value;
use sipsensor_protocol::{SrtpPolicy, Transport};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use secrets::Password;
pub use sip_uri::SipUri;

/// Where the daemon looks when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/sipsensor/agent.yaml";
/// The technician-editable override on the FAT boot partition.
pub const DEFAULT_OVERRIDE: &str = "/boot/firmware/sipsensor.yaml";

/// A checked configuration: every value is in range and consistent.
#[derive(Debug, Clone)]
pub struct Config {
    pub identity: Identity,
    pub sip: SipConfig,
    pub stream: StreamConfig,
    pub sensors: Vec<SensorConfig>,
    pub gpio: GpioConfig,
    pub realtime: RealtimeConfig,
    pub media: MediaConfig,
    pub logging: LoggingConfig,
    pub status: StatusConfig,
    /// `None`: `spool.enabled: false`.
    pub spool: Option<spool::SpoolConfig>,
    pub update: update::UpdateConfig,
    /// The files this configuration was read from, in merge order.
    pub sources: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Identity {
    /// Address of record, always with a user part.
    pub aor: SipUri,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SipConfig {
    pub registrar: Option<SipUri>,
    pub outbound_proxy: Option<SipUri>,
    pub collector: Option<SipUri>,
    pub transport: Transport,
    pub bind: SocketAddr,
    /// Accept incoming SIP (`sip.listen`); off: TCP connections of our
    /// own only, nothing listens.
    pub listen: bool,
    pub expires: Duration,
    /// Digest user name: `sip.username`, else the AOR's user part.
    pub username: String,
    /// From the secrets file; `None` when there is none.
    pub password: Option<Password>,
    /// Digest users allowed to call (`sip.callers`), with their passwords
    /// from the secrets file (filled in after it is read).
    pub callers: Vec<(String, Password)>,
    pub caller_realm: String,
    pub callers_allow_md5: bool,
    pub trust_proxy_flow: bool,
    /// What verifies the registrar/proxy over TLS; `Some` exactly when
    /// `transport` is TLS.
    pub tls: Option<SipTls>,
}

/// The files of SIP over TLS: the CA the peer's certificate must chain
/// to, and our own certificate when the proxy asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipTls {
    pub ca_file: PathBuf,
    pub identity: Option<sipsensor_runtime::sip_transport::tls::IdentityFiles>,
}

impl SipTls {
    /// The network's TLS as a client only (the agent connects out and
    /// takes its calls on that connection, RFC 5923); reads the files.
    pub fn net_config(
        &self,
    ) -> Result<
        sipsensor_runtime::sip_transport::TlsConfig,
        sipsensor_runtime::sip_transport::tls::TlsError,
    > {
        let client = sipsensor_runtime::sip_transport::tls::client_config(
            &self.ca_file,
            self.identity.as_ref(),
        )?;
        Ok(sipsensor_runtime::sip_transport::TlsConfig {
            bind: None,
            server: None,
            client: Some(client),
            server_name: None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Samples per second per channel; also the RTP clock rate.
    pub rate_hz: u32,
    pub samples_per_packet: u32,
    /// The channels offered, in stream order.
    pub channels: Vec<StreamChannel>,
}

impl StreamConfig {
    /// Time between two packets.
    pub fn packet_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.samples_per_packet)) / self.rate_hz
    }
}

/// A stream channel and where its values come from.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChannel {
    /// Index into `Config::sensors`.
    pub sensor: usize,
    /// Index into that sensor's `channels()`.
    pub channel: usize,
    pub spec: crate::sensor::ChannelSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Rising,
    Falling,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioInputConfig {
    pub name: String,
    pub pin: u32,
    pub edge: Edge,
    pub debounce: Duration,
    pub active_low: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedConfig {
    pub pin: u32,
    pub active_low: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpioConfig {
    pub inputs: Vec<GpioInputConfig>,
    pub status_led: Option<LedConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealtimeConfig {
    /// SCHED_FIFO priority, 1-99.
    pub priority: u8,
    pub cpu: Option<u16>,
}

/// How streams are protected, and how long their peer may be silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaConfig {
    /// `media.srtp`; `None`: decided by the signalling (see
    /// [`MediaConfig::srtp_policy`]).
    pub srtp: Option<SrtpPolicy>,
    /// `media.peer_timeout_ms`: no RTCP from the session's peer for this
    /// long ends the session (docs/protocol.md 6.1).
    pub peer_timeout: Duration,
}

/// Why a configuration lets signalling or samples travel in clear text;
/// the agent says so once at start (docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearText {
    /// SIP over UDP or TCP: no SDES keys may travel, so the samples are
    /// clear too.
    Signalling(Transport),
    /// TLS signalling, `media.srtp: off`.
    SamplesSrtpOff,
    /// TLS signalling, `media.srtp: optional`: plain RTP when the peer
    /// offers or answers no keys.
    SamplesSrtpOptional,
}

impl Config {
    /// What of this configuration travels in clear text, if anything.
    pub fn clear_text(&self) -> Option<ClearText> {
        if self.sip.transport != Transport::Tls {
            return Some(ClearText::Signalling(self.sip.transport));
        }
        match self.media.srtp_policy(true) {
            SrtpPolicy::Required => None,
            SrtpPolicy::Optional => Some(ClearText::SamplesSrtpOptional),
            SrtpPolicy::Off => Some(ClearText::SamplesSrtpOff),
        }
    }
}

impl MediaConfig {
    /// The SRTP policy in force: the configured one, else required when
    /// the signalling is secure (SDES keys may travel) and optional
    /// otherwise (which offers and takes plain RTP only, since no key is
    /// ever put in SDP over insecure signalling).
    pub fn srtp_policy(&self, signalling_secure: bool) -> SrtpPolicy {
        self.srtp.unwrap_or(if signalling_secure {
            SrtpPolicy::Required
        } else {
            SrtpPolicy::Optional
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggingConfig {
    pub level: LogLevel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    pub socket: PathBuf,
}

/// One problem in the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A problem with the file as a whole (permissions).
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Every problem found; `Display` puts one per line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The files to read, in merge order.
#[derive(Debug, Clone)]
pub struct ConfigFiles {
    /// Must exist.
    pub required: Vec<PathBuf>,
    /// Read after the required ones when present (the boot-partition file).
    pub optional: Vec<PathBuf>,
}

impl ConfigFiles {
    pub fn new(required: Vec<PathBuf>, optional: Vec<PathBuf>) -> Self {
        ConfigFiles { required, optional }
    }

    /// The files that exist now, in merge order.
    pub fn present(&self) -> Vec<PathBuf> {
        let mut v = self.required.clone();
        v.extend(self.optional.iter().filter(|p| p.exists()).cloned());
        v
    }
}

/// One file as read: its text and its tree.
#[derive(Debug)]
pub(crate) struct Source {
    pub path: PathBuf,
    pub text: String,
    pub value: Value,
}

/// A semantic problem before it has a file and position.
#[derive(Debug, Clone)]
pub(crate) struct Diag {
    pub path: KeyPath,
    pub target: Target,
    pub message: String,
}

/// Read, merge and check the files; then read the secrets file it names.
pub fn load(files: &ConfigFiles) -> Result<Config, ConfigErrors> {
    let (config, _) = load_with_notes(files)?;
    Ok(config)
}

/// As `load`, plus notes worth telling a technician that are not errors
/// (no secrets file, group-readable secrets).
pub fn load_with_notes(files: &ConfigFiles) -> Result<(Config, Vec<String>), ConfigErrors> {
    let sources = read_sources(&files.present())?;
    let mut merged = Value::Mapping(Default::default());
    for s in &sources {
        locate::merge(&mut merged, s.value.clone());
    }
    let last = sources.last().map(|s| s.path.clone()).unwrap_or_default();
    let raw: raw::RawConfig = serde_yaml::from_value(merged).map_err(|e| {
        // Each file type-checked alone, so only a merge of mismatched
        // shapes gets here.
        ConfigErrors(vec![ConfigError::At {
            path: last.clone(),
            line: 1,
            column: 1,
            message: format!("the merged files do not fit together: {e}"),
        }])
    })?;
    let mut config = validate::validate(&raw)
        .map_err(|diags| ConfigErrors(diags.into_iter().map(|d| resolve(&sources, d)).collect()))?;
    config.sources = sources.iter().map(|s| s.path.clone()).collect();
    if let Some(tls) = &config.sip.tls {
        // Read here so that check-config finds a missing or wrong CA file
        // before the agent fails to register.
        check_tls_files(tls).map_err(|e| ConfigErrors(vec![e]))?;
    }
    let mut notes = Vec::new();
    let secrets_path = PathBuf::from(&raw.secrets_file);
    match secrets::load(&secrets_path) {
        Ok(Some(s)) => {
            config.sip.password = s.password;
            config.sip.callers =
                callers_with_passwords(&raw.sip.callers, s.callers, &secrets_path)?;
            notes.extend(s.warnings);
        }
        Ok(None) => {
            callers_with_passwords(&raw.sip.callers, Default::default(), &secrets_path)?;
            notes.push(format!(
                "{}: not found; the agent registers without a password",
                secrets_path.display()
            ));
        }
        Err(e) => return Err(ConfigErrors(vec![e])),
    }
    Ok((config, notes))
}

/// The CA file first, on its own, so that its error names `sip.ca_file`
/// (the default path is used when the key is absent, and TLS is the
/// default transport: a reader must learn which key to set); then the
/// client certificate and key with it.
fn check_tls_files(tls: &SipTls) -> Result<(), ConfigError> {
    use sipsensor_runtime::sip_transport::tls::client_config;
    client_config(&tls.ca_file, None).map_err(|e| ConfigError::File {
        path: tls.ca_file.clone(),
        message: format!(
            "`sip.ca_file`: {e}; SIP over TLS (`sip.transport: tls`, the default) verifies the \
             registrar against this CA: put the site's CA certificate there or point \
             `sip.ca_file` at it (docs/security.md), or write `sip.transport: udp` for clear text"
        ),
    })?;
    tls.net_config().map_err(|e| ConfigError::File {
        path: tls
            .identity
            .as_ref()
            .map_or_else(|| tls.ca_file.clone(), |i| i.certificate.clone()),
        message: format!("`sip.certificate` / `sip.private_key`: {e}"),
    })?;
    Ok(())
}

/// Each caller named in `sip.callers` with its password from the secrets
/// file; a caller without one is an error (it could never get in).
fn callers_with_passwords(
    names: &[String],
    mut passwords: std::collections::BTreeMap<String, String>,
    secrets: &Path,
) -> Result<Vec<(String, Password)>, ConfigErrors> {
    names
        .iter()
        .map(|name| match passwords.remove(name) {
            Some(p) if !p.is_empty() => Ok((name.clone(), Password::new(p))),
            _ => Err(ConfigErrors(vec![ConfigError::File {
                path: secrets.to_owned(),
                message: format!(
                    "`sip.callers` names `{name}` but `callers` here has no password for it"
                ),
            }])),
        })
        .collect()
}

/// Read and parse each file; type-check it alone so errors carry its own
/// line and column.
pub(crate) fn read_sources(paths: &[PathBuf]) -> Result<Vec<Source>, ConfigErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match read_source(path) {
            Ok(s) => out.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn read_source(path: &Path) -> Result<Source, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value: Value = serde_yaml::from_str(&text).map_err(|e| yaml_error(path, &e))?;
    let value = match value {
        // An empty file or one of comments only: no overrides.
        Value::Null => Value::Mapping(Default::default()),
        Value::Mapping(m) => Value::Mapping(m),
        _ => {
            let pos = locate::locate(&text, &KeyPath::root(), Target::Value)
                .unwrap_or(Position { line: 1, column: 1 });
            return Err(ConfigError::At {
                path: path.to_owned(),
                line: pos.line,
                column: pos.column,
                message: "expected a mapping of sections (identity:, sip:, stream:, ...)".into(),
            });
        }
    };
    if !text.trim().is_empty() {
        serde_yaml::from_str::<raw::RawConfig>(&text).map_err(|e| yaml_error(path, &e))?;
    }
    Ok(Source {
        path: path.to_owned(),
        text,
        value,
    })
}

/// A serde_yaml error as `file:line:column: message`.
pub(crate) fn yaml_error(path: &Path, e: &serde_yaml::Error) -> ConfigError {
    let text = e.to_string();
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    // serde_yaml puts " at line L column C" in its message; the prefix
    // carries it now. (Other positions, like where a flow sequence began,
    // stay.)
    let mut message = text.replace(&format!(" at line {line} column {column}"), "");
    if let Some(hint) = removed_key_hint(&message) {
        message = format!("{message}; {hint}");
    }
    ConfigError::At {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// What replaces a key an older agent read, for a config written for it.
fn removed_key_hint(message: &str) -> Option<&'static str> {
    if message.contains("unknown field `trusted_callers`") {
        Some(
            "`sip.trusted_callers` was removed because a From header proves nothing: \
             name the callers in `sip.callers` with their passwords under `callers:` \
             in the secrets file (the agent challenges them), or use `transport: tcp` \
             (calls on the agent's own connection to its registrar are trusted); \
             see docs/configuration.md",
        )
    } else if message.contains("unknown field `trusted_proxies`") {
        Some(
            "`sip.trusted_proxies` was removed because a source address proves nothing \
             over UDP: use `transport: tcp` with a `registrar` (calls on the agent's own \
             connection to it are trusted), or `sip.callers` with passwords; see \
             docs/configuration.md",
        )
    } else {
        None
    }
}

/// Find the file and position a semantic problem belongs to: the last file
/// that defines the key (it won the merge); for a missing key, the nearest
/// ancestor that exists.
fn resolve(sources: &[Source], d: Diag) -> ConfigError {
    let message = if d.path.is_root() {
        d.message.clone()
    } else {
        format!("{}: {}", d.path, d.message)
    };
    let mut path = d.path.clone();
    let mut target = d.target;
    loop {
        if let Some(src) = sources
            .iter()
            .rev()
            .find(|s| locate::value_at(&s.value, &path).is_some())
        {
            let pos =
                locate::locate(&src.text, &path, target).unwrap_or(Position { line: 1, column: 1 });
            return ConfigError::At {
                path: src.path.clone(),
                line: pos.line,
                column: pos.column,
                message,
            };
        }
        match path.parent() {
            Some(p) => {
                path = p;
                target = Target::Key;
            }
            None => break,
        }
    }
    // Nothing of the path exists anywhere: point at the first file.
    let first = sources.first();
    let pos = first
        .and_then(|s| locate::locate(&s.text, &KeyPath::root(), Target::Value))
        .unwrap_or(Position { line: 1, column: 1 });
    ConfigError::At {
        path: first.map(|s| s.path.clone()).unwrap_or_default(),
        line: pos.line,
        column: pos.column,
        message,
    }
}

/// The files merged as far as they parse, ignoring the rest: for the
/// few things a daemon needs while its config is broken.
fn merged_best_effort(files: &ConfigFiles) -> Value {
    let mut merged = Value::Mapping(Default::default());
    for path in files.present() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(v @ Value::Mapping(_)) = serde_yaml::from_str::<Value>(&text) {
            locate::merge(&mut merged, v);
        }
    }
    merged
}

/// The status socket a config that may not be valid names (or the default).
pub fn socket_best_effort(files: &ConfigFiles) -> PathBuf {
    let merged = merged_best_effort(files);
    locate::value_at(&merged, &KeyPath::root().key("status").key("socket"))
        .and_then(Value::as_str)
        .unwrap_or(crate::status::DEFAULT_SOCKET)
        .into()
}

/// The secrets file a config that may not be valid names (or the default).
pub fn secrets_path_best_effort(files: &ConfigFiles) -> PathBuf {
    merged_best_effort(files)
        .get("secrets_file")
        .and_then(Value::as_str)
        .unwrap_or(raw::DEFAULT_SECRETS_FILE)
        .into()
}

/// The status LED pin of a config that may not be valid as a whole, so a
/// broken config can still be signalled on the LED.
pub fn led_best_effort(files: &ConfigFiles) -> Option<LedConfig> {
    let merged = merged_best_effort(files);
    let led = locate::value_at(&merged, &KeyPath::root().key("gpio").key("status_led"))?;
    let pin = led.get("pin")?.as_u64()?;
    let pin = u32::try_from(pin)
        .ok()
        .filter(|p| *p <= validate::MAX_GPIO)?;
    let active_low = led
        .get("active_low")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some(LedConfig { pin, active_low })
}

#[cfg(test)]
mod tests;
