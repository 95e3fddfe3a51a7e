//! A site's throw-away PKI for the TLS scenarios: one CA made in the test,
//! certificates for 127.0.0.1 that it signs for Kamailio and the
//! collector, and the CA file the agent and both of them trust, all in a
//! temporary directory.

use crate::collector::CollectorTls;
use sipsensor_testkit::KamailioTls;
use sipsensor_testkit::pki::TestCa;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

#[derive(Debug)]
pub struct SitePki {
    ca: TestCa,
    dir: TempDir,
}

impl SitePki {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-e2e-pki-")
            .tempdir()
            .unwrap_or_else(|e| panic!("PKI directory: {e}"));
        let pki = Self {
            ca: TestCa::new("sipsensor e2e site CA"),
            dir,
        };
        pki.write("ca.pem", &pki.ca.certificate_pem());
        pki
    }

    /// The CA certificate every party trusts (the agent's `sip.ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Kamailio's certificate and key (for 127.0.0.1) and the CA.
    pub fn kamailio(&self) -> KamailioTls {
        let (certificate, private_key) = self.issue("kamailio");
        KamailioTls {
            certificate,
            private_key,
            ca_file: self.ca_file(),
        }
    }

    /// The collector's `sip.tls` files (for 127.0.0.1).
    pub fn collector(&self) -> CollectorTls {
        let (certificate, private_key) = self.issue("collector");
        CollectorTls {
            certificate,
            private_key,
            ca_file: self.ca_file(),
        }
    }

    /// A leaf for 127.0.0.1: its certificate and key files.
    fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let leaf = self.ca.issue(&["127.0.0.1"]);
        (
            self.write(&format!("{name}.crt"), &leaf.certificate),
            self.write(&format!("{name}.key"), &leaf.private_key),
        )
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

impl Default for SitePki {
    fn default() -> Self {
        Self::new()
    }
}

/// Kamailio's tls module is a package of its own (Debian
/// `kamailio-tls-modules`): `false` (skip) without it, a failure in CI.
pub fn require_kamailio_tls() -> bool {
    let present = [
        "/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so",
        "/usr/lib/aarch64-linux-gnu/kamailio/modules/tls.so",
        "/usr/lib/kamailio/modules/tls.so",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if !present {
        assert!(
            !sipsensor_testkit::in_ci(),
            "kamailio-tls-modules is not installed"
        );
        eprintln!("skipping: kamailio-tls-modules is not installed");
    }
    present
}
