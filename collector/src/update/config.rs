//! The `update:` section of the collector's configuration
//! (docs/collector-configuration.md).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_BUNDLE_DIR: &str = "/var/lib/sipsensor/bundles";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// Address of the HTTPS bundle server; no server when absent. It uses
    /// `sip.tls`'s certificate and key.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Where `update publish` puts bundles and the server reads them.
    #[serde(default = "default_bundle_dir")]
    pub bundle_dir: PathBuf,
    /// The CA certificates (PEM) a bundle's signature must chain to at
    /// publish time: the sensors' RAUC keyring.
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// `https://host:port` at which sensors reach `listen` (the host as
    /// the certificate names it); wants carry `<url>/bundles/<sha256>.raucb`.
    #[serde(default)]
    pub url: Option<String>,
}

fn default_bundle_dir() -> PathBuf {
    PathBuf::from(DEFAULT_BUNDLE_DIR)
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            listen: None,
            bundle_dir: default_bundle_dir(),
            keyring: None,
            url: None,
        }
    }
}

impl UpdateConfig {
    /// The URL of a published bundle a want names (12.4), when `url` is set.
    pub fn bundle_url(&self, sha256: &str) -> Option<String> {
        self.url
            .as_deref()
            .map(|base| format!("{}/bundles/{sha256}.raucb", base.trim_end_matches('/')))
    }
}
