//! SIP over TLS (RFC 3261 section 26, RFC 5630) on rustls with the ring
//! provider: the certificates and keys read from PEM files, and the
//! handshakes that turn a TCP stream into a TLS one. Everything after the
//! handshake (framing, connection reuse, caps, idle timeouts) is the
//! stream transport's, shared with plain TCP.

use super::NetError;
use super::halves::{Reader, Writer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why certificates or keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no PEM certificate in it")]
    NoCertificate(String),
    #[error("{0}: no PEM private key in it")]
    NoPrivateKey(String),
    #[error("{what}: {source}")]
    Pem {
        what: String,
        source: rustls::pki_types::pem::Error,
    },
    /// Also when the key does not belong to the certificate.
    #[error("{what}: {source}")]
    Rustls { what: String, source: rustls::Error },
    #[error("{what}: {reason}")]
    Verifier { what: String, reason: String },
}

/// The crypto this build ships: ring (no OpenSSL, no cmake; it builds for
/// armv7 with the gcc cross toolchain). rustls deprecates it for lacking
/// post-quantum key exchange, which only aws-lc-rs offers.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM text, in order (leaf first for a chain).
pub fn certificates_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.to_owned()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM text.
pub fn private_key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey(what.to_owned()),
        source => TlsError::Pem {
            what: what.to_owned(),
            source,
        },
    })
}

fn roots(ca_pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates_from_pem(ca_pem, what)? {
        store.add(cert).map_err(|source| TlsError::Rustls {
            what: what.to_owned(),
            source,
        })?;
    }
    Ok(store)
}

/// PEM texts of a certificate chain and its key.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub certificate: &'a [u8],
    pub private_key: &'a [u8],
}

/// A listener's configuration: its chain and key, and, when `client_ca` is
/// given, a client certificate signed by that CA required of every peer.
pub fn server_config_from_pem(
    identity: Identity<'_>,
    client_ca: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates_from_pem(identity.certificate, "certificate")?;
    let key = private_key_from_pem(identity.private_key, "private key")?;
    let rustls_err = |what: &str| {
        let what = what.to_owned();
        move |source| TlsError::Rustls { what, source }
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("protocol versions"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca, "client CA")?),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Verifier {
                what: "client CA".into(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // with_single_cert also checks that the key is the certificate's.
    let config = builder
        .with_single_cert(chain, key)
        .map_err(rustls_err("certificate and private key"))?;
    Ok(Arc::new(config))
}

/// A client's configuration: servers verified against `ca` (the site's CA,
/// not the system's store), with an optional certificate of our own.
pub fn client_config_from_pem(
    ca: &[u8],
    identity: Option<Identity<'_>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "protocol versions".into(),
            source,
        })?
        .with_root_certificates(roots(ca, "CA file")?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder
            .with_client_auth_cert(
                certificates_from_pem(identity.certificate, "client certificate")?,
                private_key_from_pem(identity.private_key, "client private key")?,
            )
            .map_err(|source| TlsError::Rustls {
                what: "client certificate and private key".into(),
                source,
            })?,
    };
    Ok(Arc::new(config))
}

/// Paths of a chain and its key, as a configuration names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// [`server_config_from_pem`] on files; `check-config` calls it to see
/// that they are readable and that the key matches.
pub fn server_config(
    identity: &IdentityFiles,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certificate = read(&identity.certificate)?;
    let private_key = read(&identity.private_key)?;
    let ca = client_ca.map(read).transpose()?;
    server_config_from_pem(
        Identity {
            certificate: &certificate,
            private_key: &private_key,
        },
        ca.as_deref(),
    )
    .map_err(|e| match &e {
        TlsError::NoPrivateKey(_) => relabel(e, &identity.private_key),
        TlsError::NoCertificate(w) if w == "certificate" => relabel(e, &identity.certificate),
        _ => e,
    })
}

/// [`client_config_from_pem`] on files.
pub fn client_config(
    ca_file: &Path,
    identity: Option<&IdentityFiles>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let ca = read(ca_file)?;
    let files = identity
        .map(|i| Ok::<_, TlsError>((read(&i.certificate)?, read(&i.private_key)?)))
        .transpose()?;
    client_config_from_pem(
        &ca,
        files.as_ref().map(|(certificate, private_key)| Identity {
            certificate,
            private_key,
        }),
    )
    .map_err(|e| match &e {
        TlsError::NoCertificate(w) if w == "CA file" => relabel(e, ca_file),
        _ => e,
    })
}

/// Name the file in an error that only said which role it played.
fn relabel(error: TlsError, path: &Path) -> TlsError {
    let path = path.display().to_string();
    match error {
        TlsError::NoCertificate(_) => TlsError::NoCertificate(path),
        TlsError::NoPrivateKey(_) => TlsError::NoPrivateKey(path),
        other => other,
    }
}

/// What the network needs for TLS: a listener's and a client's
/// configuration (either may be absent: the agent only connects out).
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// Listening address (RFC 3261 26.1: 5061 by custom); `None`: connect
    /// out only, and receive on those connections (RFC 5923).
    pub bind: Option<SocketAddr>,
    /// Required when `bind` is set.
    pub server: Option<Arc<ServerConfig>>,
    /// Required to open connections; without it TLS only answers.
    pub client: Option<Arc<ClientConfig>>,
    /// The name a server's certificate must carry when the caller named
    /// none for its address (see [`Network::set_tls_server_name`]); without
    /// it, the certificate must carry the IP address.
    ///
    /// [`Network::set_tls_server_name`]: super::Network::set_tls_server_name
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// A listener on `bind` (when given) serving `identity`, and a client
    /// trusting `ca`, from PEM texts in memory.
    pub fn from_pem(
        bind: Option<SocketAddr>,
        identity: Identity<'_>,
        ca: &[u8],
    ) -> Result<Self, TlsError> {
        Ok(Self {
            bind,
            server: Some(server_config_from_pem(identity, None)?),
            client: Some(client_config_from_pem(ca, None)?),
            server_name: None,
        })
    }
}

/// The handshakes of one TLS transport.
pub(crate) struct Handshaker {
    acceptor: Option<TlsAcceptor>,
    connector: Option<TlsConnector>,
    default_name: Option<ServerName<'static>>,
    names: Mutex<HashMap<IpAddr, ServerName<'static>>>,
    timeout: Duration,
}

impl std::fmt::Debug for Handshaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshaker")
            .field("server", &self.acceptor.is_some())
            .field("client", &self.connector.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Handshaker {
    pub(crate) fn new(config: &TlsConfig, timeout: Duration) -> Result<Self, NetError> {
        let default_name = config.server_name.as_deref().map(server_name).transpose()?;
        Ok(Self {
            acceptor: config.server.clone().map(TlsAcceptor::from),
            connector: config.client.clone().map(TlsConnector::from),
            default_name,
            names: Mutex::default(),
            timeout,
        })
    }

    pub(crate) fn can_listen(&self) -> bool {
        self.acceptor.is_some()
    }

    pub(crate) fn set_name(&self, ip: IpAddr, name: &str) -> Result<(), NetError> {
        let name = server_name(name)?;
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ip, name);
        Ok(())
    }

    fn name_for(&self, ip: IpAddr) -> ServerName<'static> {
        let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names
            .get(&ip)
            .or(self.default_name.as_ref())
            .cloned()
            .unwrap_or_else(|| ServerName::IpAddress(ip.into()))
    }

    /// The server side of a handshake.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<(Reader, Writer), NetError> {
        let acceptor = self.acceptor.as_ref().ok_or(NetError::NoTlsServer)?;
        self.bounded(peer, acceptor.accept(tcp)).await
    }

    /// The client side: the server's certificate must chain to the CA and
    /// name the host (RFC 5922 section 7; an IP address when no name is known).
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<(Reader, Writer), NetError> {
        let connector = self.connector.as_ref().ok_or(NetError::NoTlsClient)?;
        let name = self.name_for(peer.ip());
        self.bounded(peer, connector.connect(name, tcp)).await
    }

    /// A handshake within the handshake timeout, split into halves.
    async fn bounded<S>(
        &self,
        peer: SocketAddr,
        handshake: impl Future<Output = std::io::Result<S>>,
    ) -> Result<(Reader, Writer), NetError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let tls = tokio::time::timeout(self.timeout, handshake)
            .await
            .map_err(|_| NetError::HandshakeTimeout {
                peer,
                timeout: self.timeout,
            })?
            .map_err(|source| NetError::Handshake { peer, source })?;
        let (reader, writer) = tokio::io::split(tls);
        Ok((Box::new(reader), Box::new(writer)))
    }
}

fn server_name(name: &str) -> Result<ServerName<'static>, NetError> {
    ServerName::try_from(name.to_owned()).map_err(|_| NetError::BadServerName(name.to_owned()))
}

#[cfg(test)]
mod tests;
