//! A throw-away CA and the collector's certificate for 127.0.0.1 signed by
//! it, written to a directory: the demo's and the SRTP load run's sensors
//! check the collector against the CA as a site's boards check theirs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The PKI's files.
#[derive(Debug, Clone)]
pub struct ThrowAwayPki {
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// Why the PKI could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{what}: {source}")]
    Certificate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `text` readable by its owner only (a private key, credentials).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

impl ThrowAwayPki {
    /// Makes the CA and the certificate; writes `demo-ca.pem`,
    /// `collector.crt` and `collector.key` (0600) into `dir`.
    pub fn write(dir: &Path) -> Result<ThrowAwayPki, PkiError> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let failed = |what: &'static str| move |source| PkiError::Certificate { what, source };
        let mut authority = CertificateParams::new(Vec::<String>::new()).map_err(failed("CA"))?;
        authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        authority
            .distinguished_name
            .push(DnType::CommonName, "sipsensor demo CA (throw-away)");
        let authority_key = KeyPair::generate().map_err(failed("CA key"))?;
        let issuer = CertifiedIssuer::self_signed(authority, authority_key)
            .map_err(failed("CA certificate"))?;
        // An IP address in the name list becomes an IP subject-alternative
        // name: the sensors call sip:...@127.0.0.1 and verify that address.
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .map_err(failed("collector certificate"))?;
        let server_key = KeyPair::generate().map_err(failed("collector key"))?;
        let server_certificate = server
            .signed_by(&server_key, &issuer)
            .map_err(failed("collector certificate"))?;
        let pki = ThrowAwayPki {
            ca: dir.join("demo-ca.pem"),
            certificate: dir.join("collector.crt"),
            private_key: dir.join("collector.key"),
        };
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| PkiError::Write { path, source }
        };
        std::fs::write(&pki.ca, issuer.pem()).map_err(io(&pki.ca))?;
        std::fs::write(&pki.certificate, server_certificate.pem()).map_err(io(&pki.certificate))?;
        write_private(&pki.private_key, &server_key.serialize_pem())
            .map_err(io(&pki.private_key))?;
        Ok(pki)
    }
}
