//! `sip.tls` (SIP over TLS, RFC 3261 section 26, RFC 5630) and
//! `sip.connections` (the caps and timeouts of SIP over TCP and TLS).
//!
//! ```yaml
//! sip:
//!   tls:
//!     bind: 0.0.0.0:5061                 # RFC 3261 26.1: 5061 for TLS
//!     certificate: /etc/sipsensor/tls/collector.crt   # PEM chain, leaf first
//!     private_key: /etc/sipsensor/tls/collector.key
//!     ca_file: /etc/sipsensor/tls/ca.crt # verifies the servers we connect to
//!     require_client_certificate: false  # true: clients need one from ca_file
//!   connections:
//!     max_open: 1024                     # per transport (TCP; TLS)
//!     max_per_source: 64                 # accepted from one IP address
//!     idle_timeout_secs: 300             # no complete message for this long
//!     tls_handshake_timeout_secs: 10
//! ```

use serde::Deserialize;
use sipsensor_runtime::sip_transport::tls::{self, IdentityFiles, TlsError};
use sipsensor_runtime::sip_transport::{NetConfig, TlsConfig};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

/// SIP over TLS: a listener, and the CA that outgoing connections trust.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipTlsConfig {
    #[serde(default = "default_tls_bind")]
    pub bind: SocketAddr,
    /// PEM certificate chain of the listener, leaf first.
    pub certificate: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// PEM CA certificates: a server we connect to must chain to one
    /// (without it, TLS only answers on connections peers opened). With
    /// `require_client_certificate`, clients must too.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub require_client_certificate: bool,
}

fn default_tls_bind() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 5061))
}

impl SipTlsConfig {
    /// Reads the files: the runtime's TLS settings, or why not (unreadable
    /// file, no certificate or key in it, a key that is not the
    /// certificate's). `check-config` and the start both call it.
    pub fn load(&self) -> Result<TlsConfig, TlsError> {
        let identity = IdentityFiles {
            certificate: self.certificate.clone(),
            private_key: self.private_key.clone(),
        };
        let client_ca = self
            .ca_file
            .as_deref()
            .filter(|_| self.require_client_certificate);
        let server = tls::server_config(&identity, client_ca)?;
        let client = self
            .ca_file
            .as_deref()
            .map(|ca| tls::client_config(ca, None))
            .transpose()?;
        Ok(TlsConfig {
            bind: Some(self.bind),
            server: Some(server),
            client,
            server_name: None,
        })
    }
}

/// Caps and timeouts of SIP over TCP and TLS, so idle or slow peers cannot
/// take every descriptor (issue 14, finding 5).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Open connections per transport, handshakes included.
    #[serde(default = "default_max_open")]
    pub max_open: NonZeroU32,
    /// Of those, accepted from one IP address.
    #[serde(default = "default_max_per_source")]
    pub max_per_source: NonZeroU32,
    /// A connection that brings no complete message or keep-alive for this
    /// long, and that we send nothing on, is closed.
    #[serde(default = "default_idle_secs")]
    pub idle_timeout_secs: NonZeroU32,
    #[serde(default = "default_handshake_secs")]
    pub tls_handshake_timeout_secs: NonZeroU32,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}
fn default_max_open() -> NonZeroU32 {
    nonzero(1024)
}
fn default_max_per_source() -> NonZeroU32 {
    nonzero(64)
}
fn default_idle_secs() -> NonZeroU32 {
    nonzero(300)
}
fn default_handshake_secs() -> NonZeroU32 {
    nonzero(10)
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_open: default_max_open(),
            max_per_source: default_max_per_source(),
            idle_timeout_secs: default_idle_secs(),
            tls_handshake_timeout_secs: default_handshake_secs(),
        }
    }
}

impl ConnectionLimits {
    /// These limits on the network's settings.
    pub fn apply(&self, net: &mut NetConfig) {
        let secs = |n: NonZeroU32| Duration::from_secs(u64::from(n.get()));
        let count = |n: NonZeroU32| usize::try_from(n.get()).unwrap_or(usize::MAX);
        net.max_connections = count(self.max_open);
        net.max_connections_per_source = count(self.max_per_source);
        net.tcp_idle_timeout = secs(self.idle_timeout_secs);
        net.tls_handshake_timeout = secs(self.tls_handshake_timeout_secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_testkit::pki::TestCa;

    #[test]
    fn defaults_match_the_runtimes_and_apply() {
        let limits: ConnectionLimits = serde_yaml::from_str("{}").unwrap();
        assert_eq!(limits, ConnectionLimits::default());
        let mut net = NetConfig::default();
        let before = net.clone();
        limits.apply(&mut net);
        assert_eq!(
            (
                net.max_connections,
                net.max_connections_per_source,
                net.tcp_idle_timeout,
                net.tls_handshake_timeout
            ),
            (
                before.max_connections,
                before.max_connections_per_source,
                before.tcp_idle_timeout,
                before.tls_handshake_timeout
            )
        );
        let limits: ConnectionLimits =
            serde_yaml::from_str("max_per_source: 2\nidle_timeout_secs: 30").unwrap();
        limits.apply(&mut net);
        assert_eq!(net.max_connections_per_source, 2);
        assert_eq!(net.tcp_idle_timeout, Duration::from_secs(30));
        assert!(serde_yaml::from_str::<ConnectionLimits>("max_open: 0").is_err());
    }

    #[test]
    fn load_reads_the_files_and_refuses_a_foreign_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("site CA");
        let issued = ca.issue(&["collector.example.net"]);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let yaml = format!(
            "certificate: {}\nprivate_key: {}\nca_file: {}",
            write("c.pem", &issued.certificate).display(),
            write("k.pem", &issued.private_key).display(),
            write("ca.pem", &ca.certificate_pem()).display(),
        );
        let config: SipTlsConfig = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(config.bind, "0.0.0.0:5061".parse().unwrap());
        let loaded = config.load().unwrap();
        assert!(loaded.server.is_some() && loaded.client.is_some());
        // Another certificate's key: refused before any peer sees it.
        let foreign = ca.issue(&["other"]).private_key;
        let config = SipTlsConfig {
            private_key: write("foreign.pem", &foreign),
            ..config
        };
        let err = config.load().unwrap_err();
        assert!(matches!(err, TlsError::Rustls { .. }), "{err}");
        let config = SipTlsConfig {
            private_key: dir.path().join("missing.pem"),
            ..config
        };
        assert!(
            config
                .load()
                .unwrap_err()
                .to_string()
                .contains("missing.pem")
        );
    }
}
