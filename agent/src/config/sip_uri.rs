//! The SIP URIs a technician writes into the config: the protocol crate's
//! one URI type (RFC 3261 25.1 grammar), plus the rules only a config file
//! needs.

use sipsensor_protocol::UriError;
use std::fmt;

pub use sipsensor_protocol::SipHost as Host;

/// A SIP or SIPS URI that passed the RFC 3261 section 25.1 grammar and the
/// config's own rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    uri: sipsensor_protocol::SipUri,
    host: Host,
}

/// Why a configured URI is refused; the text reads after "`<uri>` is not a
/// SIP URI: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigUriError {
    #[error(transparent)]
    Syntax(#[from] UriError),
    /// RFC 3261 19.1.1: a password in a URI is NOT RECOMMENDED; here it
    /// would also sit in a world-readable file.
    #[error("has a password in the URI; put it in the secrets file")]
    Password,
    /// Port 0 is grammatical but reaches no one.
    #[error("has an invalid port `0` (1-65535)")]
    PortZero,
    /// The protocol reader trims; a config value with spaces around it is
    /// a typo.
    #[error("has spaces around it")]
    Whitespace,
}

impl SipUri {
    /// Parse and check `text`; the error says what part is wrong.
    pub fn parse(text: &str) -> Result<SipUri, ConfigUriError> {
        if text.trim() != text {
            return Err(ConfigUriError::Whitespace);
        }
        let parsed = sipsensor_protocol::SipUri::parse(text)?;
        if parsed.password().is_some() {
            return Err(ConfigUriError::Password);
        }
        if parsed.port == Some(0) {
            return Err(ConfigUriError::PortZero);
        }
        let host = parsed.host_kind();
        Ok(SipUri { uri: parsed, host })
    }

    /// The URI as written in the config.
    pub fn as_str(&self) -> &str {
        self.uri.as_str()
    }

    /// `sips:` (RFC 3261 19.1: TLS on every hop).
    pub fn is_secure(&self) -> bool {
        self.uri.is_secure()
    }

    /// The user part, unescaped percent sequences left as written.
    pub fn user(&self) -> Option<&str> {
        self.uri.user.as_deref()
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.uri.port
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn accepts_valid_uris() {
        let u = SipUri::parse("sip:sensor-0001@example.net").unwrap();
        assert_eq!(u.user(), Some("sensor-0001"));
        assert_eq!(u.host(), &Host::Name("example.net".into()));
        assert_eq!(u.port(), None);
        assert!(!u.is_secure());

        let u = SipUri::parse("sip:198.51.100.7;lr").unwrap();
        assert_eq!(u.host(), &Host::V4(Ipv4Addr::new(198, 51, 100, 7)));
        assert_eq!(u.user(), None);
        assert_eq!(u.as_str(), "sip:198.51.100.7;lr");
    }

    #[test]
    fn rejects_what_only_a_config_refuses() {
        // The grammar's refusals are tested with the protocol's URI type;
        // these are the config's own.
        for (text, why) in [
            ("sip:a@b:0", "invalid port"),
            ("sip:a:secret@host", "password"),
            (" sip:a@host", "spaces"),
            ("sip:a b@c", "contains ` `"),
        ] {
            let err = SipUri::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
