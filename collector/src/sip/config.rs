//! The `sip:` and `media:` sections of the collector's configuration.
//!
//! ```yaml
//! sip:
//!   bind: 0.0.0.0:5060              # SIP over UDP and TCP
//!   advertise: 203.0.113.5          # address in Via, Contact and SDP (default: see below)
//!   domain: example.net             # digest realm and registrar domain
//!   identity: sip:collector@example.net
//!   registrar: true                 # embedded registrar (off with Kamailio/OpenSIPS)
//!   credentials_file: /etc/sipsensor/credentials.yaml
//!   trusted_peers: [127.0.0.1/32]   # need no digest (a proxy that authenticated)
//!   outbound_proxy: sip:proxy.example.net   # calls to sensors go through it
//!   register:                       # with an external registrar: register ourselves
//!     registrar: sip:example.net
//!     aor: sip:collector@example.net
//!     username: collector           # password: this user's entry in credentials_file
//!     expires: 600
//!   calling:                        # answers the sensors' digest challenges
//!     username: collector           # password: this user's entry in credentials_file
//!   control_socket: /run/sipsensor/collector.sock
//!   receive_buffer_bytes: 4194304   # SIP UDP socket (SO_RCVBUF)
//!   tls: {certificate: ..., private_key: ..., ca_file: ...}   # see [`streams`]
//!   connections: {max_per_source: 64, idle_timeout_secs: 300} # TCP and TLS
//! media:
//!   rtp_bind: 0.0.0.0:16384         # RTP here, RTCP on the next port
//!   receive_buffer_bytes: 8388608
//!   receive_priority: 10            # SCHED_FIFO of the receive thread; 0: normal
//!   max_streams: 20000
//!   hold_before_sr_packets: 600
//!   max_clock_step_ms: 2000         # sender reports that move the timeline more are refused
//!   max_clock_offset_s: 60          # ... and those this far from our clock
//!   silence_timeout_s: 10           # a stream silent this long is ended (BYE)
//! ```
//!
//! Without a `sip:` section the collector runs storage, HTTP and export
//! only (a web node in front of a shared PostgreSQL, for example).

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use sipsensor_protocol::{MediaSecurity, SipUri, SrtpPolicy, UriError};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;

mod streams;

pub use streams::{ConnectionLimits, SipTlsConfig};

/// Where `call` and `set-rate` reach a running collector by default.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/sipsensor/collector.sock";

/// A `sip:` URI of the configuration: protocol's one [`SipUri`] (RFC 3261
/// 19.1), checked while the YAML parser still points at it so the error
/// names its line and column. `sips:` is refused: a configured hop over
/// TLS is written `sip:host;transport=tls` (RFC 3263 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUriText(SipUri);

/// Why a configured URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigUriError {
    #[error("{0:?} is not a sip: URI")]
    NotSip(String),
    #[error("{text:?} is not a usable sip: URI: {source}")]
    Invalid { text: String, source: UriError },
}

impl SipUriText {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Reads `sip:[user@]host[:port][;params]`, the syntax the stack accepts.
    pub fn parse(text: &str) -> Result<SipUriText, ConfigUriError> {
        let t = text.trim();
        if !t.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("sip:")) {
            return Err(ConfigUriError::NotSip(t.to_owned()));
        }
        SipUri::parse(t)
            .map(SipUriText)
            .map_err(|source| ConfigUriError::Invalid {
                text: t.to_owned(),
                source,
            })
    }

    /// The user part, if any.
    pub fn user(&self) -> Option<&str> {
        self.0.user.as_deref()
    }
}

impl<'de> Deserialize<'de> for SipUriText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SipUriText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sip: URI")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SipUriText, E> {
                SipUriText::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A combination of `sip:` keys that cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipConfigError {
    #[error("sip: `register` is for an external registrar; set `registrar: false` with it")]
    RegisterWithRegistrar,
    #[error("sip.register: the AOR has no user part; give `username`")]
    NoRegisterUser,
    #[error("sip.register needs `credentials_file` (it holds the collector's password)")]
    NoCredentialsFile,
    #[error("sip.domain {0:?} is not a host name")]
    BadDomain(String),
    #[error("sip.calling needs `credentials_file` (it holds the collector's password)")]
    NoCallingCredentialsFile,
    #[error(
        "sip.calling.username {calling:?} differs from sip.register's user {register:?}: \
         the collector answers challenges as one user"
    )]
    TwoDigestUsers { calling: String, register: String },
    #[error("sip.tls: `require_client_certificate` needs `ca_file`, the CA that signs them")]
    ClientCertificateWithoutCa,
}

/// SIP side: the user agent, the embedded registrar, who may open sessions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// Whether SIP runs: true when the config file has a `sip:` section.
    #[serde(skip)]
    pub enabled: bool,
    /// Local address for SIP over UDP and TCP (port 0: a free one).
    #[serde(default = "default_sip_bind")]
    pub bind: SocketAddr,
    /// The address written into Via, Contact and SDP. Default: `bind`'s
    /// address, or when that is a wildcard, the first non-loopback address
    /// of the machine (127.0.0.1 if there is none).
    #[serde(default)]
    pub advertise: Option<IpAddr>,
    /// The SIP domain: digest realm, and the domain the embedded registrar
    /// serves (besides the advertised address). Default: the advertised
    /// address, with realm `sipsensor`.
    #[serde(default)]
    pub domain: Option<String>,
    /// Our address of record, the From of calls to sensors. Default:
    /// `sip:collector@<domain or advertised address>`.
    #[serde(default)]
    pub identity: Option<SipUriText>,
    /// Run the embedded registrar (off when Kamailio or OpenSIPS registers).
    #[serde(default = "default_true")]
    pub registrar: bool,
    /// Digest credentials of the sensors (and of the collector towards an
    /// external registrar); see `docs/configuration.md` "credentials file".
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Peers whose requests need no authentication (a proxy in front that
    /// authenticated the sensor).
    #[serde(default)]
    pub trusted_peers: Vec<IpNet>,
    /// Every call to a sensor goes through this proxy (loose route);
    /// defaults to `register.registrar` when registering externally.
    #[serde(default)]
    pub outbound_proxy: Option<SipUriText>,
    /// Register this collector with an external registrar.
    #[serde(default)]
    pub register: Option<RegisterConfig>,
    /// The credential calls to sensors carry when a sensor challenges
    /// them. Default: `register`'s user, if any.
    #[serde(default)]
    pub calling: Option<CallingCredential>,
    /// Unix socket for `sipsensor-collector call` and `set-rate`.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Kernel receive buffer of the SIP UDP socket: it holds a burst of
    /// sensors registering and calling together (the system default holds
    /// about 90 datagrams; the rest would wait for a retransmission).
    #[serde(default = "default_sip_rcvbuf")]
    pub receive_buffer_bytes: u32,
    /// SIP over TLS beside UDP and TCP; none without this section.
    #[serde(default)]
    pub tls: Option<SipTlsConfig>,
    /// Caps and timeouts of SIP over TCP and TLS.
    #[serde(default)]
    pub connections: ConnectionLimits,
}

/// Who the collector is when a sensor challenges its INVITE (issue #14:
/// a sensor takes calls only from its proxy's flow or from a caller that
/// answers its digest challenge, RFC 3261 22.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallingCredential {
    /// Digest user name; its password is this user's entry in the
    /// credentials file. The sensors list it in `sip.callers`.
    pub username: String,
}

/// The collector's own registration with an external registrar.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// The registrar's URI, e.g. `sip:example.net` or `sip:10.0.0.2:5060`.
    pub registrar: SipUriText,
    /// The address of record registered, e.g. `sip:collector@example.net`.
    pub aor: SipUriText,
    /// Digest username; its password is this user's entry in the
    /// credentials file. Default: the AOR's user part.
    #[serde(default)]
    pub username: Option<String>,
    /// Requested binding lifetime, seconds.
    #[serde(default = "default_expires")]
    pub expires: NonZeroU32,
}

fn default_sip_bind() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 5060))
}
fn default_true() -> bool {
    true
}
fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}
fn default_sip_rcvbuf() -> u32 {
    4 << 20
}
fn default_expires() -> NonZeroU32 {
    NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN)
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            enabled: false,
            bind: default_sip_bind(),
            advertise: None,
            domain: None,
            identity: None,
            registrar: true,
            credentials_file: None,
            trusted_peers: Vec::new(),
            outbound_proxy: None,
            register: None,
            calling: None,
            control_socket: default_control_socket(),
            receive_buffer_bytes: default_sip_rcvbuf(),
            tls: None,
            connections: ConnectionLimits::default(),
        }
    }
}

impl SipConfig {
    /// Checks what serde cannot: combinations of keys.
    pub fn check(&self) -> Result<(), SipConfigError> {
        if self.registrar && self.register.is_some() {
            return Err(SipConfigError::RegisterWithRegistrar);
        }
        if let Some(r) = &self.register
            && r.username.is_none()
            && r.aor.user().is_none()
        {
            return Err(SipConfigError::NoRegisterUser);
        }
        if self.register.is_some() && self.credentials_file.is_none() {
            return Err(SipConfigError::NoCredentialsFile);
        }
        if self.calling.is_some() && self.credentials_file.is_none() {
            return Err(SipConfigError::NoCallingCredentialsFile);
        }
        if let (Some(calling), Some(register)) = (&self.calling, self.register_username())
            && calling.username != register
        {
            return Err(SipConfigError::TwoDigestUsers {
                calling: calling.username.clone(),
                register,
            });
        }
        if let Some(d) = &self.domain
            && (d.is_empty() || d.chars().any(|c| c.is_whitespace() || c == '"'))
        {
            return Err(SipConfigError::BadDomain(d.clone()));
        }
        if let Some(tls) = &self.tls
            && tls.require_client_certificate
            && tls.ca_file.is_none()
        {
            return Err(SipConfigError::ClientCertificateWithoutCa);
        }
        Ok(())
    }

    /// The digest user the collector answers challenges as: `calling`'s,
    /// else our registration's.
    pub fn digest_username(&self) -> Option<String> {
        self.calling
            .as_ref()
            .map(|c| c.username.clone())
            .or_else(|| self.register_username())
    }

    /// The digest username of our own registration.
    pub fn register_username(&self) -> Option<String> {
        let r = self.register.as_ref()?;
        r.username
            .clone()
            .or_else(|| r.aor.user().map(str::to_string))
    }
}

/// RTP/RTCP reception.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// RTP arrives here for every session; RTCP on the next port. Port 0
    /// picks a free even/odd pair.
    #[serde(default = "default_rtp_bind")]
    pub rtp_bind: SocketAddr,
    /// Kernel receive buffer of each of the two sockets (SO_RCVBUF): it
    /// absorbs bursts while the receive thread is busy.
    #[serde(default = "default_rcvbuf")]
    pub receive_buffer_bytes: u32,
    /// SCHED_FIFO priority of the receive thread (1-99), so it drains the
    /// sockets ahead of everything else on a busy machine; 0 leaves it at
    /// normal priority.
    #[serde(default = "default_receive_priority")]
    pub receive_priority: RealtimePriority,
    /// Streams received at once; INVITEs beyond get 503.
    #[serde(default = "default_max_streams")]
    pub max_streams: NonZeroU32,
    /// Packets of one stream held until its first RTCP sender report gives
    /// them a wall-clock time (the agent sends one at once); beyond, the
    /// oldest are given up and stored as an overload gap.
    #[serde(default = "default_hold")]
    pub hold_before_sr_packets: NonZeroU32,
    /// A sender report whose NTP/RTP pairing moves the stream's timeline
    /// by more than this from the previous report's is refused (it would
    /// re-time every later sample), unless it lands this close to the
    /// collector's own clock with its RTP timestamp advanced as ours did
    /// (an agent's clock stepped by NTP).
    #[serde(default = "default_max_clock_step_ms")]
    pub max_clock_step_ms: NonZeroU32,
    /// A sender report whose NTP time is further than this from the
    /// collector's clock is refused: the first of a session has nothing
    /// else to be checked against.
    #[serde(default = "default_max_clock_offset_s")]
    pub max_clock_offset_s: NonZeroU32,
    /// Acknowledgement, repair and backfill (docs/protocol.md 11) in our
    /// SDP. Off, the collector's SDP and streams are those of a collector
    /// that knows nothing of section 11 (for a peer that mishandles it).
    #[serde(default = "default_true")]
    pub recovery: bool,
    /// The highest backfill rate (docs/protocol.md 11.6) taken from one
    /// sensor, bytes per second with RTP headers: the SDP's `max-rate`.
    #[serde(default = "default_backfill_max_rate")]
    pub backfill_max_rate: NonZeroU32,
    /// A stream from which nothing authenticated (RTP or RTCP of its
    /// source) arrived for this long is ended: BYE to the agent, the
    /// session record closed. A killed agent sends no BYE.
    #[serde(default = "default_silence_timeout_s")]
    pub silence_timeout_s: NonZeroU32,
    /// SRTP (RFC 3711, keys by SDES, RFC 4568); `None`: required when the
    /// signalling is secure, optional otherwise.
    #[serde(default)]
    pub srtp: Option<SrtpMode>,
}

/// `media.srtp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    Required,
    Optional,
    Off,
}

impl MediaConfig {
    /// What offers and answers do about SRTP. SDES keys only ever travel
    /// over secure signalling (the SDP carries them in clear).
    pub fn security(&self, signalling_secure: bool) -> MediaSecurity {
        let srtp = match self.srtp {
            Some(SrtpMode::Required) => SrtpPolicy::Required,
            Some(SrtpMode::Optional) => SrtpPolicy::Optional,
            Some(SrtpMode::Off) => SrtpPolicy::Off,
            None if signalling_secure => SrtpPolicy::Required,
            None => SrtpPolicy::Optional,
        };
        MediaSecurity {
            srtp,
            signalling_secure,
        }
    }
}

fn default_rtp_bind() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 16384))
}
fn default_rcvbuf() -> u32 {
    8 << 20
}
fn default_receive_priority() -> RealtimePriority {
    RealtimePriority(10)
}

/// A SCHED_FIFO priority, 1-99, or 0 for none; refused while parsing
/// otherwise, with the YAML position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealtimePriority(pub u8);

impl<'de> Deserialize<'de> for RealtimePriority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u8::deserialize(d)?;
        if v > 99 {
            return Err(de::Error::custom(format!(
                "SCHED_FIFO priority must be 1 to 99 (0: none), got {v}"
            )));
        }
        Ok(RealtimePriority(v))
    }
}

fn default_max_streams() -> NonZeroU32 {
    NonZeroU32::new(20_000).unwrap_or(NonZeroU32::MIN)
}
/// About 16 times a 3-channel 100 Hz live stream: an hour's outage is
/// backfilled in a few minutes, and 1,000 sensors backfilling at once
/// stay near 20 MB/s.
fn default_backfill_max_rate() -> NonZeroU32 {
    NonZeroU32::new(20_000).unwrap_or(NonZeroU32::MIN)
}
fn default_hold() -> NonZeroU32 {
    NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN)
}
fn default_max_clock_step_ms() -> NonZeroU32 {
    NonZeroU32::new(2000).unwrap_or(NonZeroU32::MIN)
}
fn default_max_clock_offset_s() -> NonZeroU32 {
    NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN)
}
fn default_silence_timeout_s() -> NonZeroU32 {
    NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN)
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_bind: default_rtp_bind(),
            receive_buffer_bytes: default_rcvbuf(),
            receive_priority: default_receive_priority(),
            max_streams: default_max_streams(),
            hold_before_sr_packets: default_hold(),
            max_clock_step_ms: default_max_clock_step_ms(),
            max_clock_offset_s: default_max_clock_offset_s(),
            recovery: true,
            backfill_max_rate: default_backfill_max_rate(),
            silence_timeout_s: default_silence_timeout_s(),
            srtp: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_srtp_follows_the_signalling_unless_configured() {
        let media: MediaConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(media.security(true).srtp, SrtpPolicy::Required);
        assert_eq!(media.security(false).srtp, SrtpPolicy::Optional);
        assert!(!media.security(false).signalling_secure);
        let off: MediaConfig = serde_yaml::from_str("srtp: off").unwrap();
        assert_eq!(off.security(true).srtp, SrtpPolicy::Off);
        assert!(serde_yaml::from_str::<MediaConfig>("srtp: sometimes").is_err());
    }

    #[test]
    fn uri_syntax() {
        assert!(SipUriText::parse("sip:collector@example.net").is_ok());
        assert!(SipUriText::parse("sip:10.0.0.2:5060;transport=tcp").is_ok());
        assert!(SipUriText::parse("sips:x@example.net").is_err());
        assert!(SipUriText::parse("sip:").is_err());
        assert!(SipUriText::parse("sip:a@").is_err());
        assert!(SipUriText::parse("sip:a b@c").is_err());
        assert_eq!(
            SipUriText::parse("sip:s1@example.net").unwrap().user(),
            Some("s1")
        );
        assert_eq!(SipUriText::parse("sip:example.net").unwrap().user(), None);
    }

    fn sip(yaml: &str) -> Result<SipConfig, String> {
        let c: SipConfig = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        c.check().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_and_combinations() {
        let c = sip("{}").unwrap();
        assert!(c.registrar);
        assert_eq!(c.bind, "0.0.0.0:5060".parse().unwrap());
        assert_eq!(c.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
        let e =
            sip("register: {registrar: 'sip:example.net', aor: 'sip:c@example.net'}").unwrap_err();
        assert!(e.contains("registrar: false"), "{e}");
        let e = sip(
            "registrar: false\nregister: {registrar: 'sip:example.net', aor: 'sip:c@example.net'}",
        )
        .unwrap_err();
        assert!(e.contains("credentials_file"), "{e}");
        let c = sip("registrar: false\ncredentials_file: /x\nregister: {registrar: 'sip:example.net', aor: 'sip:c@example.net'}").unwrap();
        assert_eq!(c.register_username().as_deref(), Some("c"));
        assert_eq!(c.register.unwrap().expires.get(), 600);
        let e = sip("identity: 'mailto:x'").unwrap_err();
        assert!(e.contains("not a sip: URI") && e.contains("line 1"), "{e}");
        let e = sip("domain: 'a b'").unwrap_err();
        assert!(e.contains("not a host name"), "{e}");
    }

    #[test]
    fn the_calling_credential_is_one_user_from_the_credentials_file() {
        let e = sip("calling: {username: collector}").unwrap_err();
        assert!(e.contains("credentials_file"), "{e}");
        let c = sip("credentials_file: /x\ncalling: {username: collector}").unwrap();
        assert_eq!(c.digest_username().as_deref(), Some("collector"));
        assert_eq!(c.register_username(), None);
        let reg = "registrar: false\ncredentials_file: /x\n\
                   register: {registrar: 'sip:example.net', aor: 'sip:c@example.net'}\n";
        assert_eq!(sip(reg).unwrap().digest_username().as_deref(), Some("c"));
        let e = sip(&format!("{reg}calling: {{username: other}}")).unwrap_err();
        assert!(e.contains("one user"), "{e}");
        assert!(sip("calling: {username: c, password: x}").is_err());
    }

    #[test]
    fn media_defaults() {
        let m: MediaConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(m.rtp_bind.port(), 16384);
        assert_eq!(m.max_streams.get(), 20_000);
        let e = serde_yaml::from_str::<MediaConfig>("max_streams: 0").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert_eq!(m.receive_priority, RealtimePriority(10));
        let m: MediaConfig = serde_yaml::from_str("receive_priority: 0").unwrap();
        assert_eq!(m.receive_priority, RealtimePriority(0));
        let e = serde_yaml::from_str::<MediaConfig>("\nreceive_priority: 100").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("must be 1 to 99") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn shipped_scale_out_config_is_valid() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/collector");
        let c = crate::config::Config::load(&root.join("collector-scale-out.yaml")).unwrap();
        assert!(c.sip.enabled && !c.sip.registrar);
        assert_eq!(c.sip.register_username().as_deref(), Some("collector1"));
        assert_eq!(c.media.rtp_bind.port(), 16384);
        let creds = super::super::credentials::Credentials::parse(
            &std::fs::read_to_string(root.join("credentials.yaml")).unwrap(),
            std::path::Path::new("credentials.yaml"),
            "sensors.example.org",
        )
        .unwrap();
        assert!(creds.password("collector1").is_some());
    }
}
