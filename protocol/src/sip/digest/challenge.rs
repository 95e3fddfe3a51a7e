//! Typed Digest challenges (WWW-/Proxy-Authenticate) and credentials
//! (Authorization / Proxy-Authorization), RFC 7616 sections 3.3 and 3.4.

use super::params::{AuthItem, parse_auth_items, quote};
use super::{Algorithm, ChallengeKind, DigestError, HashFunction, Qop};
use std::fmt::Write;

/// One Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub kind: ChallengeKind,
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// Absent means MD5 (RFC 7616 3.3).
    pub algorithm: Algorithm,
    /// The offered qop values this stack supports, in offered order; empty
    /// for a legacy RFC 2069 challenge without `qop`.
    pub qop: Vec<Qop>,
    pub stale: bool,
    pub domain: Option<String>,
}

impl Challenge {
    /// A typed challenge from one parsed `challenge` item.
    pub fn from_item(kind: ChallengeKind, item: &AuthItem) -> Result<Self, DigestError> {
        if !item.is_digest() {
            return Err(DigestError::NotDigest(item.scheme.clone()));
        }
        let realm = item
            .param("realm")
            .ok_or(DigestError::MissingParam("realm"))?;
        let nonce = item
            .param("nonce")
            .ok_or(DigestError::MissingParam("nonce"))?;
        let algorithm = match item.param("algorithm") {
            Some(a) => Algorithm::parse(a)?,
            None => Algorithm::MD5,
        };
        let qop = match item.param("qop") {
            Some(list) => {
                let offered: Vec<Qop> = list
                    .split(',')
                    .filter_map(|t| Qop::parse(t.trim()))
                    .collect();
                if offered.is_empty() {
                    return Err(DigestError::UnsupportedQop(list.to_string()));
                }
                offered
            }
            // RFC 2069 compatibility (RFC 7616 3.3 "qop ... MUST" for new
            // algorithms): only plain MD5 may be answered without qop, as
            // the -sess variants need a cnonce that only qop brings.
            None if algorithm == Algorithm::MD5 => Vec::new(),
            None => return Err(DigestError::QopRequired(algorithm)),
        };
        let stale = item
            .param("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true"));
        Ok(Self {
            kind,
            realm: realm.to_string(),
            nonce: nonce.to_string(),
            opaque: item.param("opaque").map(str::to_string),
            algorithm,
            qop,
            stale,
            domain: item.param("domain").map(str::to_string),
        })
    }

    /// Every challenge of `kind` in `headers`, each parsed on its own so
    /// that one unsupported or broken challenge does not hide the others
    /// (RFC 8760 2.4: ignore challenges the client does not understand).
    pub fn parse_all(
        kind: ChallengeKind,
        headers: &rsip::Headers,
    ) -> Vec<Result<Self, DigestError>> {
        let mut out = Vec::new();
        for value in kind.challenge_values(headers) {
            match parse_auth_items(value) {
                Ok(items) => out.extend(items.iter().map(|i| Self::from_item(kind, i))),
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    /// The qop the client uses: `auth` when offered, else `auth-int`,
    /// else none (legacy).
    pub fn chosen_qop(&self) -> Option<Qop> {
        if self.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else {
            self.qop.first().copied()
        }
    }

    pub fn hash(&self) -> HashFunction {
        self.algorithm.hash
    }

    /// The header value, `Digest realm="...", nonce="...", ...`.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest realm={}, nonce={}",
            quote(&self.realm),
            quote(&self.nonce)
        );
        if let Some(domain) = &self.domain {
            let _ = write!(s, ", domain={}", quote(domain));
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(s, ", opaque={}", quote(opaque));
        }
        let _ = write!(s, ", algorithm={}", self.algorithm);
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.token()).collect();
            let _ = write!(s, ", qop={}", quote(&list.join(",")));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }

    pub fn to_header(&self) -> rsip::Header {
        self.kind.challenge_header(self.to_header_value())
    }
}

/// Digest credentials as sent in Authorization / Proxy-Authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<Qop>,
    pub nc: Option<u32>,
}

impl DigestCredentials {
    pub fn from_item(item: &AuthItem) -> Result<Self, DigestError> {
        if !item.is_digest() {
            return Err(DigestError::NotDigest(item.scheme.clone()));
        }
        let get = |name: &'static str| {
            item.param(name)
                .map(str::to_string)
                .ok_or(DigestError::MissingParam(name))
        };
        let algorithm = match item.param("algorithm") {
            Some(a) => Algorithm::parse(a)?,
            None => Algorithm::MD5,
        };
        let qop = match item.param("qop") {
            Some(q) => Some(Qop::parse(q).ok_or_else(|| DigestError::UnsupportedQop(q.into()))?),
            None => None,
        };
        let (cnonce, nc) = if qop.is_some() {
            // RFC 7616 3.4: with qop, cnonce and nc MUST be present.
            let nc_text = item.param("nc").ok_or(DigestError::MissingParam("nc"))?;
            if nc_text.is_empty() || nc_text.len() > 8 {
                return Err(DigestError::Malformed(format!(
                    "nc {nc_text:?} is not 8LHEX"
                )));
            }
            let nc = u32::from_str_radix(nc_text, 16)
                .map_err(|_| DigestError::Malformed(format!("nc {nc_text:?} is not hex")))?;
            (Some(get("cnonce")?), Some(nc))
        } else {
            (item.param("cnonce").map(str::to_string), None)
        };
        Ok(Self {
            username: get("username")?,
            realm: get("realm")?,
            nonce: get("nonce")?,
            uri: get("uri")?,
            response: get("response")?,
            algorithm,
            cnonce,
            opaque: item.param("opaque").map(str::to_string),
            qop,
            nc,
        })
    }

    /// All Digest credentials of `kind` in `headers`; non-Digest schemes
    /// are skipped, broken Digest items are reported.
    pub fn parse_all(
        kind: ChallengeKind,
        headers: &rsip::Headers,
    ) -> Vec<Result<Self, DigestError>> {
        let mut out = Vec::new();
        for value in kind.credentials_values(headers) {
            match parse_auth_items(value) {
                Ok(items) => {
                    out.extend(items.iter().filter(|i| i.is_digest()).map(Self::from_item))
                }
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm
        );
        if let Some(cnonce) = &self.cnonce {
            let _ = write!(s, ", cnonce={}", quote(cnonce));
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(s, ", opaque={}", quote(opaque));
        }
        if let Some(qop) = self.qop {
            let _ = write!(s, ", qop={}", qop.token());
        }
        if let Some(nc) = self.nc {
            let _ = write!(s, ", nc={}", super::hash::nc_hex(nc));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::headers::UntypedHeader;

    fn challenges(values: &[&str]) -> Vec<Result<Challenge, DigestError>> {
        let mut headers = rsip::Headers::default();
        for v in values {
            headers.push(rsip::Header::WwwAuthenticate(
                rsip::headers::WwwAuthenticate::new(*v),
            ));
        }
        Challenge::parse_all(ChallengeKind::Www, &headers)
    }

    #[test]
    fn rfc3261_style_challenge() {
        let c = challenges(&[
            r#"Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5"#,
        ]);
        let c = c[0].as_ref().unwrap();
        assert_eq!(c.realm, "atlanta.com");
        assert_eq!(c.algorithm, Algorithm::MD5);
        assert_eq!(c.qop, vec![Qop::Auth]);
        assert_eq!(c.opaque.as_deref(), Some(""));
        assert!(!c.stale);
        assert_eq!(c.domain.as_deref(), Some("sip:boxesbybob.com"));
    }

    #[test]
    fn defaults_and_legacy() {
        let c = challenges(&[r#"Digest realm="r", nonce="n""#]);
        let c = c[0].as_ref().unwrap();
        assert_eq!(c.algorithm, Algorithm::MD5);
        assert!(c.qop.is_empty());
        assert_eq!(c.chosen_qop(), None);
    }

    #[test]
    fn sha_without_qop_and_unknown_qop_are_refused() {
        let c = challenges(&[
            r#"Digest realm="r", nonce="n", algorithm=SHA-256"#,
            r#"Digest realm="r", nonce="n", qop="auth-conf""#,
            r#"Digest realm="r", nonce="n", algorithm=SHA-1, qop="auth""#,
            r#"Digest nonce="n""#,
            r#"Digest realm="r""#,
            "Basic abc=",
            r#"Digest realm="unterminated"#,
        ]);
        assert_eq!(c[0], Err(DigestError::QopRequired(Algorithm::SHA256)));
        assert!(matches!(c[1], Err(DigestError::UnsupportedQop(_))));
        assert!(matches!(c[2], Err(DigestError::UnsupportedAlgorithm(_))));
        assert_eq!(c[3], Err(DigestError::MissingParam("realm")));
        assert_eq!(c[4], Err(DigestError::MissingParam("nonce")));
        assert!(matches!(c[5], Err(DigestError::NotDigest(_))));
        assert!(matches!(c[6], Err(DigestError::Malformed(_))));
    }

    #[test]
    fn qop_list_prefers_auth_and_stale_is_case_insensitive() {
        let c = challenges(&[
            r#"Digest realm="r", nonce="n", qop="auth-int, auth", stale=TRUE, algorithm=sha-256-SESS"#,
        ]);
        let c = c[0].as_ref().unwrap();
        assert_eq!(c.qop, vec![Qop::AuthInt, Qop::Auth]);
        assert_eq!(c.chosen_qop(), Some(Qop::Auth));
        assert!(c.stale);
        assert_eq!(c.algorithm, Algorithm::SHA256_SESS);
    }

    #[test]
    fn challenge_round_trips_through_its_header() {
        let c = Challenge {
            kind: ChallengeKind::Proxy,
            realm: "we \"quote\"".into(),
            nonce: "abc".into(),
            opaque: Some("o".into()),
            algorithm: Algorithm::SHA512_256,
            qop: vec![Qop::Auth, Qop::AuthInt],
            stale: true,
            domain: None,
        };
        let rsip::Header::ProxyAuthenticate(h) = c.to_header() else {
            panic!("wrong header kind")
        };
        let items = parse_auth_items(h.value()).unwrap();
        assert_eq!(
            Challenge::from_item(ChallengeKind::Proxy, &items[0]).unwrap(),
            c
        );
    }

    #[test]
    fn credentials_round_trip_and_validation() {
        let creds = DigestCredentials {
            username: "alice".into(),
            realm: "r".into(),
            nonce: "n".into(),
            uri: "sip:example.com".into(),
            response: "0123".into(),
            algorithm: Algorithm::SHA256,
            cnonce: Some("c".into()),
            opaque: None,
            qop: Some(Qop::Auth),
            nc: Some(0x1f),
        };
        let value = creds.to_header_value();
        assert!(value.contains("nc=0000001f"), "{value}");
        let items = parse_auth_items(&value).unwrap();
        assert_eq!(DigestCredentials::from_item(&items[0]).unwrap(), creds);

        for (bad, expected) in [
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, cnonce="c""#,
                DigestError::MissingParam("nc"),
            ),
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, nc=00000001"#,
                DigestError::MissingParam("cnonce"),
            ),
            (
                r#"Digest realm="r", nonce="n", uri="u", response="x""#,
                DigestError::MissingParam("username"),
            ),
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u""#,
                DigestError::MissingParam("response"),
            ),
        ] {
            let items = parse_auth_items(bad).unwrap();
            assert_eq!(
                DigestCredentials::from_item(&items[0]),
                Err(expected),
                "{bad}"
            );
        }
        for bad_nc in ["zz", "123456789", "-1"] {
            let v = format!(
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, cnonce="c", nc={bad_nc}"#
            );
            let items = parse_auth_items(&v).unwrap();
            assert!(matches!(
                DigestCredentials::from_item(&items[0]),
                Err(DigestError::Malformed(_))
            ));
        }
    }
}
