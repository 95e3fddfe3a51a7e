//! Digest authentication for SIP: RFC 3261 section 22 with the algorithms
//! and `qop` rules of RFC 7616 as adopted for SIP by RFC 8760.
//!
//! - [`DigestClient`] answers 401/407 challenges and caches them so later
//!   requests carry credentials up front (RFC 3261 22.3).
//! - [`DigestServer`] issues stateless nonces (a timestamp and salt
//!   authenticated with HMAC-SHA-256 under a server secret, so any process
//!   sharing the secret can verify them), checks credentials against a
//!   [`CredentialStore`], and rejects replayed `nc` values.
//!
//! Supported: MD5, SHA-256, SHA-512/256 and their `-sess` variants;
//! `qop=auth` and `qop=auth-int`; the RFC 2069 form without `qop` for MD5
//! only, as a client. Passwords live in [`Password`], whose `Debug` prints
//! `***` and which has no `Display`.

mod challenge;
mod client;
pub mod hash;
pub mod params;
mod server;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use challenge::{Challenge, DigestCredentials};
pub use client::DigestClient;
pub use server::{
    AuthFailure, AuthenticatedUser, CredentialStore, DigestServer, Ha1, InMemoryCredentials,
    ServerConfig, ServerSecret, StoredSecret, WallClock,
};

use std::fmt;

/// Errors from parsing or answering authentication headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("malformed authentication header: {0}")]
    Malformed(String),
    #[error("digest parameter {0:?} is missing")]
    MissingParam(&'static str),
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("challenge offers no supported qop ({0:?})")]
    UnsupportedQop(String),
    #[error("algorithm {0} requires qop (RFC 7616 3.3)")]
    QopRequired(Algorithm),
    #[error("not a Digest challenge (scheme {0:?})")]
    NotDigest(String),
    #[error("the response carries no challenge this client can answer")]
    NoSupportedChallenge,
    #[error("credentials for realm {realm:?} were rejected: wrong username or password")]
    WrongCredentials { realm: String },
    #[error("realm {realm:?} keeps declaring fresh nonces stale; giving up")]
    TooManyStale { realm: String },
    #[error("response status {0} is not 401 or 407")]
    NotAChallenge(u16),
    #[error("server secret must be at least 16 bytes")]
    WeakSecret,
}

/// The hash function behind an algorithm (RFC 7616 section 6.1 registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashFunction {
    Md5,
    Sha256,
    Sha512_256,
}

impl HashFunction {
    /// Higher is stronger; used to pick among challenges (RFC 8760 2.4
    /// lets local policy choose; ours is "strongest first").
    pub fn strength(self) -> u8 {
        match self {
            HashFunction::Md5 => 0,
            HashFunction::Sha256 => 1,
            HashFunction::Sha512_256 => 2,
        }
    }
}

/// A digest `algorithm` value: a hash function, optionally `-sess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithm {
    pub hash: HashFunction,
    /// The `-sess` variant: HA1 also covers nonce and cnonce (RFC 7616 3.4.2).
    pub session: bool,
}

impl Algorithm {
    pub const MD5: Algorithm = Algorithm::new(HashFunction::Md5, false);
    pub const MD5_SESS: Algorithm = Algorithm::new(HashFunction::Md5, true);
    pub const SHA256: Algorithm = Algorithm::new(HashFunction::Sha256, false);
    pub const SHA256_SESS: Algorithm = Algorithm::new(HashFunction::Sha256, true);
    pub const SHA512_256: Algorithm = Algorithm::new(HashFunction::Sha512_256, false);
    pub const SHA512_256_SESS: Algorithm = Algorithm::new(HashFunction::Sha512_256, true);

    pub const fn new(hash: HashFunction, session: bool) -> Self {
        Self { hash, session }
    }

    /// Parses the `algorithm` token case-insensitively (RFC 7616 3.3).
    pub fn parse(token: &str) -> Result<Self, DigestError> {
        let (base, session) = match token.len().checked_sub(5) {
            Some(i) if token.is_char_boundary(i) && token[i..].eq_ignore_ascii_case("-sess") => {
                (&token[..i], true)
            }
            _ => (token, false),
        };
        let hash = if base.eq_ignore_ascii_case("MD5") {
            HashFunction::Md5
        } else if base.eq_ignore_ascii_case("SHA-256") {
            HashFunction::Sha256
        } else if base.eq_ignore_ascii_case("SHA-512-256") {
            HashFunction::Sha512_256
        } else {
            return Err(DigestError::UnsupportedAlgorithm(token.to_string()));
        };
        Ok(Self { hash, session })
    }

    pub fn token(self) -> &'static str {
        match (self.hash, self.session) {
            (HashFunction::Md5, false) => "MD5",
            (HashFunction::Md5, true) => "MD5-sess",
            (HashFunction::Sha256, false) => "SHA-256",
            (HashFunction::Sha256, true) => "SHA-256-sess",
            (HashFunction::Sha512_256, false) => "SHA-512-256",
            (HashFunction::Sha512_256, true) => "SHA-512-256-sess",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// Quality of protection (RFC 7616 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    Auth,
    AuthInt,
}

impl Qop {
    pub fn parse(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if token.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }

    pub fn token(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Which header pair a challenge travels in (RFC 3261 22.2 and 22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// 401, `WWW-Authenticate` answered with `Authorization` (user agents,
    /// registrars).
    Www,
    /// 407, `Proxy-Authenticate` answered with `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// A challenge header of this kind with the given value.
    pub fn challenge_header(self, value: String) -> rsip::Header {
        use rsip::headers::UntypedHeader;
        match self {
            ChallengeKind::Www => {
                rsip::Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(value))
            }
            ChallengeKind::Proxy => {
                rsip::Header::ProxyAuthenticate(rsip::headers::ProxyAuthenticate::new(value))
            }
        }
    }

    /// A credentials header of this kind with the given value.
    pub fn credentials_header(self, value: String) -> rsip::Header {
        use rsip::headers::UntypedHeader;
        match self {
            ChallengeKind::Www => {
                rsip::Header::Authorization(rsip::headers::Authorization::new(value))
            }
            ChallengeKind::Proxy => {
                rsip::Header::ProxyAuthorization(rsip::headers::ProxyAuthorization::new(value))
            }
        }
    }

    /// The challenge header values of this kind in `headers`, in order.
    pub fn challenge_values(self, headers: &rsip::Headers) -> Vec<&str> {
        use rsip::headers::UntypedHeader;
        headers
            .iter()
            .filter_map(|h| match (self, h) {
                (ChallengeKind::Www, rsip::Header::WwwAuthenticate(v)) => Some(v.value()),
                (ChallengeKind::Proxy, rsip::Header::ProxyAuthenticate(v)) => Some(v.value()),
                _ => None,
            })
            .collect()
    }

    /// The credentials header values of this kind in `headers`, in order.
    pub fn credentials_values(self, headers: &rsip::Headers) -> Vec<&str> {
        use rsip::headers::UntypedHeader;
        headers
            .iter()
            .filter_map(|h| match (self, h) {
                (ChallengeKind::Www, rsip::Header::Authorization(v)) => Some(v.value()),
                (ChallengeKind::Proxy, rsip::Header::ProxyAuthorization(v)) => Some(v.value()),
                _ => None,
            })
            .collect()
    }

    pub fn is_credentials_header(self, header: &rsip::Header) -> bool {
        matches!(
            (self, header),
            (ChallengeKind::Www, rsip::Header::Authorization(_))
                | (ChallengeKind::Proxy, rsip::Header::ProxyAuthorization(_))
        )
    }
}

/// A password. Its `Debug` prints `***` and it has no `Display`, so it
/// cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for hashing only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}
