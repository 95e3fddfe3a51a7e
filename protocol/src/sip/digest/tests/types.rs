//! The plain types: Password, Algorithm, Qop.

use super::super::*;

#[test]
fn password_debug_is_masked() {
    let p = Password::new("hunter2");
    assert_eq!(format!("{p:?}"), "***");
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Config {
        password: Password,
    }
    let c = Config { password: p };
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{c:#?}").contains("hunter2"));
}

#[test]
fn algorithm_tokens_round_trip_case_insensitively() {
    for alg in [
        Algorithm::MD5,
        Algorithm::MD5_SESS,
        Algorithm::SHA256,
        Algorithm::SHA256_SESS,
        Algorithm::SHA512_256,
        Algorithm::SHA512_256_SESS,
    ] {
        assert_eq!(Algorithm::parse(alg.token()), Ok(alg));
        assert_eq!(Algorithm::parse(&alg.token().to_lowercase()), Ok(alg));
    }
    assert!(matches!(
        Algorithm::parse("SHA-1"),
        Err(DigestError::UnsupportedAlgorithm(_))
    ));
    assert!(Algorithm::parse("-sess").is_err());
    assert!(Algorithm::parse("").is_err());
    assert!(Algorithm::parse("é-sess").is_err());
}

#[test]
fn qop_tokens() {
    assert_eq!(Qop::parse("AUTH"), Some(Qop::Auth));
    assert_eq!(Qop::parse("auth-int"), Some(Qop::AuthInt));
    assert_eq!(Qop::parse("auth-conf"), None);
}
