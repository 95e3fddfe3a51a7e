//! Throw-away certificate authorities for TLS tests: a CA made in the
//! test, and leaf certificates it signs for host names or IP addresses
//! (PEM texts, as the configurations read them from files).

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate: String,
    pub private_key: String,
}

/// A self-signed CA that issues leaf certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA whose subject is `name`. Panics only if rcgen cannot make
    /// keys, which a test cannot recover from anyway.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
        Self { issuer }
    }

    /// The CA certificate, PEM: what a peer's `ca_file` holds.
    pub fn certificate_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names`: each one that parses as an IP address becomes an
    /// IP subject-alternative name, the others DNS names.
    pub fn issue(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf parameters");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        Issued {
            certificate: cert.pem(),
            private_key: key.serialize_pem(),
        }
    }
}
