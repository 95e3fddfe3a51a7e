//! The digest computations of RFC 7616 section 3.4 (and the RFC 2069 /
//! RFC 2617 form without `qop`, kept for MD5 only).

use super::{Algorithm, HashFunction, Qop};
use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use std::fmt::Write;

/// Lower-case hex of the hash of `data` (RFC 7616 3.4: "the bits ... are
/// converted ... to the ASCII representation ... 0123456789abcdef").
pub fn hex_hash(hash: HashFunction, data: &[u8]) -> String {
    match hash {
        HashFunction::Md5 => to_hex(&Md5::digest(data)),
        HashFunction::Sha256 => to_hex(&Sha256::digest(data)),
        HashFunction::Sha512_256 => to_hex(&Sha512_256::digest(data)),
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// H(username ":" realm ":" passwd): the HA1 of the non-session algorithms
/// (RFC 7616 3.4.2), also what a credential store may keep instead of the
/// password.
pub fn base_ha1(hash: HashFunction, username: &str, realm: &str, password: &str) -> String {
    hex_hash(hash, format!("{username}:{realm}:{password}").as_bytes())
}

/// The HA1 actually used in the response: for `-sess` algorithms
/// H(H(username:realm:passwd) ":" nonce ":" cnonce) (RFC 7616 3.4.2).
pub fn effective_ha1(
    algorithm: Algorithm,
    base: &str,
    nonce: &str,
    cnonce: Option<&str>,
) -> String {
    if algorithm.session {
        let cnonce = cnonce.unwrap_or_default();
        hex_hash(
            algorithm.hash,
            format!("{base}:{nonce}:{cnonce}").as_bytes(),
        )
    } else {
        base.to_string()
    }
}

/// What the `response` parameter is computed over, apart from HA1.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `None` is the RFC 2069 form (challenge without `qop`).
    pub qop: Option<Qop>,
    pub nc: u32,
    pub cnonce: &'a str,
    /// The message body, hashed into A2 for `qop=auth-int`.
    pub body: &'a [u8],
}

/// The 8-hex-digit `nc` value (RFC 7616 3.4).
pub fn nc_hex(nc: u32) -> String {
    format!("{nc:08x}")
}

/// response = KD(HA1, nonce:nc:cnonce:qop:HA2), or KD(HA1, nonce:HA2)
/// without qop (RFC 7616 3.4.1, RFC 2617 3.2.2.1).
pub fn response(hash: HashFunction, ha1: &str, input: &ResponseInput<'_>) -> String {
    // RFC 7616 3.4.3: A2 = Method ":" request-uri [":" H(entity-body)].
    let a2 = match input.qop {
        Some(Qop::AuthInt) => format!(
            "{}:{}:{}",
            input.method,
            input.uri,
            hex_hash(hash, input.body)
        ),
        _ => format!("{}:{}", input.method, input.uri),
    };
    let ha2 = hex_hash(hash, a2.as_bytes());
    let data = match input.qop {
        Some(qop) => format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            input.nonce,
            nc_hex(input.nc),
            input.cnonce,
            qop.token()
        ),
        None => format!("{ha1}:{}:{ha2}", input.nonce),
    };
    hex_hash(hash, data.as_bytes())
}

/// Equality whose running time does not depend on where the inputs differ,
/// so a forger learns nothing from timing (RFC 7616 5.x spirit).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 section 3.9.1: the same request under MD5 and SHA-256.
    const USER: &str = "Mufasa";
    const PASS: &str = "Circle of Life";
    const REALM: &str = "http-auth@example.org";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616_input() -> ResponseInput<'static> {
        ResponseInput {
            method: "GET",
            uri: "/dir/index.html",
            nonce: NONCE,
            qop: Some(Qop::Auth),
            nc: 1,
            cnonce: CNONCE,
            body: b"",
        }
    }

    #[test]
    fn rfc7616_3_9_1_md5() {
        let ha1 = base_ha1(HashFunction::Md5, USER, REALM, PASS);
        assert_eq!(
            response(HashFunction::Md5, &ha1, &rfc7616_input()),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_3_9_1_sha256() {
        let ha1 = base_ha1(HashFunction::Sha256, USER, REALM, PASS);
        assert_eq!(
            response(HashFunction::Sha256, &ha1, &rfc7616_input()),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    // RFC 2617 section 3.5 (MD5, qop=auth), and the same inputs without
    // qop (RFC 2069 form) and as MD5-sess; the latter two computed
    // independently with Python's hashlib.
    fn rfc2617_input(qop: Option<Qop>) -> ResponseInput<'static> {
        ResponseInput {
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop,
            nc: 1,
            cnonce: "0a4f113b",
            body: b"",
        }
    }

    #[test]
    fn rfc2617_3_5_and_legacy_forms() {
        let ha1 = base_ha1(
            HashFunction::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(
            response(HashFunction::Md5, &ha1, &rfc2617_input(Some(Qop::Auth))),
            "6629fae49393a05397450978507c4ef1"
        );
        assert_eq!(
            response(HashFunction::Md5, &ha1, &rfc2617_input(None)),
            "670fd8c2df070c60b045671b8b24ff02"
        );
        let sess = effective_ha1(
            Algorithm::MD5_SESS,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some("0a4f113b"),
        );
        assert_eq!(
            response(HashFunction::Md5, &sess, &rfc2617_input(Some(Qop::Auth))),
            "8e3825c57e897f5a0dec6c2d4e5059d0"
        );
    }

    #[test]
    fn sha512_256_matches_hashlib() {
        let ha1 = base_ha1(HashFunction::Sha512_256, USER, REALM, PASS);
        assert_eq!(
            response(HashFunction::Sha512_256, &ha1, &rfc7616_input()),
            "430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0"
        );
    }

    #[test]
    fn auth_int_hashes_the_body() {
        let ha1 = base_ha1(HashFunction::Md5, USER, REALM, PASS);
        let mut a = rfc7616_input();
        a.qop = Some(Qop::AuthInt);
        let empty = response(HashFunction::Md5, &ha1, &a);
        a.body = b"v=0\r\n";
        assert_ne!(empty, response(HashFunction::Md5, &ha1, &a));
        assert_ne!(empty, response(HashFunction::Md5, &ha1, &rfc7616_input()));
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
