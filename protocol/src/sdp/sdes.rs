//! SDES: SRTP keys in `a=crypto` (RFC 4568), and the suites this side
//! takes.
//!
//! Only the parts a sensor stream needs: one `inline` key per line, no MKI,
//! no session parameters (RFC 4568 6.3: an attribute with a parameter that
//! is not understood is not acceptable), no key lifetime shorter than the
//! SRTP maximum (re-keying within a session is not implemented).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use std::fmt;
use thiserror::Error;

/// The crypto suites this side protects streams with, in the order it
/// offers them: the suite every SDES implementation has first (RFC 4568
/// 6.2.1), then the AEAD one (RFC 7714 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 truncated to 80 bits (RFC 4568 6.2.1).
    AesCm128HmacSha1_80,
    /// AES-128 GCM, 128-bit tag (RFC 7714 12).
    AeadAes128Gcm,
}

impl SrtpSuite {
    pub const ALL: [SrtpSuite; 2] = [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm];

    /// The suite's name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        16
    }

    /// Master salt length in bytes: 112 bits for AES-CM (RFC 3711 8.2),
    /// 96 for GCM (RFC 7714 12).
    pub fn salt_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 14,
            SrtpSuite::AeadAes128Gcm => 12,
        }
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One master key and salt for a suite (RFC 4568 6.1 `key||salt`). Its
/// `Debug` shows the suite only: keys never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    suite: SrtpSuite,
    key_and_salt: Vec<u8>,
}

impl SrtpKey {
    /// A fresh random key for `suite` (RFC 4568 6.1: each side picks its
    /// own; RFC 3711 9.2: never reused).
    pub fn generate(suite: SrtpSuite) -> Self {
        let mut key_and_salt = vec![0; suite.key_len() + suite.salt_len()];
        rand::rng().fill_bytes(&mut key_and_salt);
        Self {
            suite,
            key_and_salt,
        }
    }

    /// A key from its bytes, checked against the suite's lengths.
    pub fn from_bytes(suite: SrtpSuite, key_and_salt: &[u8]) -> Result<Self, SdesError> {
        let expected = suite.key_len() + suite.salt_len();
        if key_and_salt.len() != expected {
            return Err(SdesError::KeyLength {
                suite,
                expected,
                got: key_and_salt.len(),
            });
        }
        Ok(Self {
            suite,
            key_and_salt: key_and_salt.to_vec(),
        })
    }

    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    pub fn master_key(&self) -> &[u8] {
        &self.key_and_salt[..self.suite.key_len()]
    }

    pub fn master_salt(&self) -> &[u8] {
        &self.key_and_salt[self.suite.key_len()..]
    }

    /// `key||salt` in base64, as `inline:` carries it.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.key_and_salt)
    }
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SrtpKey({}, ..)", self.suite)
    }
}

/// The keys of an SRTP stream agreed by offer/answer: each side protects
/// what it sends with its own key and unprotects with the peer's (RFC 4568
/// 6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// Protects what this side sends (its RTP or its RTCP reports).
    pub send: SrtpKey,
    /// Unprotects what the peer sends.
    pub receive: SrtpKey,
}

impl SrtpKeys {
    pub fn suite(&self) -> SrtpSuite {
        self.send.suite()
    }
}

/// `a=crypto:<tag> <crypto-suite> inline:<key||salt>` (RFC 4568 9.1) with
/// a suite this side takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// 1 to 9 digits, unique within the media section (RFC 4568 9.1, 5.1).
    pub tag: u32,
    pub key: SrtpKey,
}

/// Why an `a=crypto` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdesError {
    #[error("a=crypto: {0}")]
    Syntax(&'static str),
    #[error("a=crypto: tag {0:?} is not 1 to 9 digits")]
    Tag(String),
    #[error("a=crypto: suite {0:?} is not supported")]
    UnknownSuite(String),
    #[error("a=crypto: key method {0:?}, only inline is defined")]
    KeyMethod(String),
    #[error("a=crypto: the key is not base64")]
    Base64,
    #[error("a=crypto: {suite} needs {expected} bytes of key and salt, got {got}")]
    KeyLength {
        suite: SrtpSuite,
        expected: usize,
        got: usize,
    },
    #[error(
        "a=crypto: key lifetime {0:?} is below the SRTP maximum (2^48) and re-keying is not implemented"
    )]
    Lifetime(String),
    #[error("a=crypto: MKI is not supported")]
    Mki,
    #[error("a=crypto: more than one key")]
    SeveralKeys,
    #[error("a=crypto: session parameter {0:?} is not understood")]
    SessionParameter(String),
}

/// The SRTP limit of packets per master key (RFC 3711 9.2), as a lifetime.
const MAX_LIFETIME_EXPONENT: u32 = 48;

impl CryptoAttribute {
    /// Parses an `a=crypto` value (RFC 4568 9.1):
    /// `tag SP crypto-suite SP key-params *(SP session-param)`.
    pub fn parse(value: &str) -> Result<Self, SdesError> {
        let mut fields = value.split(' ');
        let tag = fields.next().ok_or(SdesError::Syntax("empty"))?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SdesError::Tag(tag.into()));
        }
        let tag: u32 = tag.parse().map_err(|_| SdesError::Tag(tag.into()))?;
        let suite_name = fields.next().ok_or(SdesError::Syntax("no crypto-suite"))?;
        let suite = SrtpSuite::from_name(suite_name)
            .ok_or_else(|| SdesError::UnknownSuite(suite_name.into()))?;
        let key_params = fields.next().ok_or(SdesError::Syntax("no key-params"))?;
        if let Some(param) = fields.next() {
            return Err(SdesError::SessionParameter(param.into()));
        }
        // key-params = key-param *(";" key-param): several keys only make
        // sense with MKIs, which are not supported.
        if key_params.contains(';') {
            return Err(SdesError::SeveralKeys);
        }
        let (method, info) = key_params
            .split_once(':')
            .ok_or(SdesError::Syntax("key-param without ':'"))?;
        if method != "inline" {
            return Err(SdesError::KeyMethod(method.into()));
        }
        // srtp-key-info = key-salt ["|" lifetime] ["|" mki] (RFC 4568 6.1).
        let mut parts = info.split('|');
        let encoded = parts.next().unwrap_or_default();
        for extra in parts {
            if extra.contains(':') {
                return Err(SdesError::Mki);
            }
            check_lifetime(extra)?;
        }
        let bytes = BASE64.decode(encoded).map_err(|_| SdesError::Base64)?;
        Ok(Self {
            tag,
            key: SrtpKey::from_bytes(suite, &bytes)?,
        })
    }

    /// The attribute value, `<tag> <suite> inline:<key||salt>`.
    pub fn value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.key.suite(),
            self.key.to_base64()
        )
    }
}

/// `lifetime = ["2^"] 1*(DIGIT)`: accepted only when it is at least the
/// SRTP maximum, so no lifetime can run out inside a session.
fn check_lifetime(text: &str) -> Result<(), SdesError> {
    let bad = || SdesError::Lifetime(text.into());
    let long_enough = match text.strip_prefix("2^") {
        Some(exponent) if !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit()) => {
            exponent
                .parse::<u32>()
                .map_or(true, |e| e >= MAX_LIFETIME_EXPONENT)
        }
        Some(_) => return Err(bad()),
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text
            .parse::<u64>()
            .map_or(true, |n| n >= 1 << MAX_LIFETIME_EXPONENT),
        None => return Err(bad()),
    };
    if long_enough { Ok(()) } else { Err(bad()) }
}

#[cfg(test)]
mod tests;
