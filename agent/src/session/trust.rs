//! Who may call this sensor (issue: only the configured trusted proxy or
//! callers; anything else gets 403).

use std::net::IpAddr;

use sipsensor_protocol::Request;
use sipsensor_protocol::prelude::*;

use crate::config::IpNet;

/// Why an incoming INVITE may not open a session; the text is the 403's
/// Warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("{from} from {address} is not a trusted caller")]
    Caller { from: String, address: IpAddr },
    #[error("the request has no readable From")]
    NoFrom,
}

/// Trusted sources of incoming INVITEs.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Callers by address of record (`sip:collector@example.net`),
    /// compared on user and host.
    pub callers: Vec<String>,
    /// Proxies by network: a request arriving from one of these is trusted
    /// (the proxy authenticated the caller).
    pub proxies: Vec<IpNet>,
}

impl Trust {
    /// `Ok` when the request may open a session; `Err` says why not, for
    /// the 403's Warning.
    pub fn check(&self, request: &Request, source: IpAddr) -> Result<(), Untrusted> {
        let source = source.to_canonical();
        if self.proxies.iter().any(|net| net.contains(source)) {
            return Ok(());
        }
        let from = request
            .from_header()
            .ok()
            .and_then(|f| f.uri().ok())
            .map(|u| aor_key(&u.to_string()));
        match from {
            Some(from) if self.callers.iter().any(|c| aor_key(c) == from) => Ok(()),
            Some(from) => Err(Untrusted::Caller {
                from,
                address: source,
            }),
            None => Err(Untrusted::NoFrom),
        }
    }
}

/// `user@host` of a SIP URI, host lower-cased (RFC 3261 19.1.4: the host
/// compares case-insensitively, the user does not).
fn aor_key(uri: &str) -> String {
    let bare = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let bare = bare
        .strip_prefix("sip:")
        .or_else(|| bare.strip_prefix("sips:"))
        .unwrap_or(bare);
    let bare = bare.split([';', '?', '>']).next().unwrap_or_default();
    match bare.rsplit_once('@') {
        Some((user, host)) => format!("{user}@{}", strip_port(host).to_ascii_lowercase()),
        None => strip_port(bare).to_ascii_lowercase(),
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(from: &str) -> Request {
        let text = format!(
            "INVITE sip:s1@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\r\n\
From: {from};tag=a\r\nTo: <sip:s1@example.net>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_bytes()).unwrap()
    }

    #[test]
    fn trusted_callers_match_on_user_and_host() {
        let trust = Trust {
            callers: vec!["sip:collector@Example.NET".into()],
            proxies: vec![],
        };
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(
            trust
                .check(&invite("<sip:collector@example.net:5060>"), ip)
                .is_ok()
        );
        assert!(
            trust
                .check(&invite("\"C\" <sip:collector@example.net>"), ip)
                .is_ok()
        );
        let err = trust
            .check(&invite("<sip:mallory@example.net>"), ip)
            .unwrap_err();
        assert_eq!(
            err,
            Untrusted::Caller {
                from: "mallory@example.net".into(),
                address: ip
            }
        );
        // The 403's Warning text, as logs and docs quote it.
        let err = err.to_string();
        assert!(err.contains("mallory@example.net"), "{err}");
    }

    #[test]
    fn a_trusted_proxy_network_admits_anyone_it_forwards() {
        let trust = Trust {
            callers: vec![],
            proxies: vec![IpNet {
                addr: "203.0.113.0".parse().unwrap(),
                prefix: 24,
            }],
        };
        assert!(
            trust
                .check(&invite("<sip:x@y>"), "203.0.113.9".parse().unwrap())
                .is_ok()
        );
        assert!(
            trust
                .check(&invite("<sip:x@y>"), "::ffff:203.0.113.9".parse().unwrap())
                .is_ok()
        );
        assert!(
            trust
                .check(&invite("<sip:x@y>"), "203.0.114.9".parse().unwrap())
                .is_err()
        );
    }
}
