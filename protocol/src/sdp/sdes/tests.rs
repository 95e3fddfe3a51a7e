use super::*;

// RFC 4568 9.1's example key (30 bytes: a 16-byte key and 14-byte salt).
const RFC_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

#[test]
fn parses_the_rfc_example_and_writes_it_back() {
    let value = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}");
    let a = CryptoAttribute::parse(&value).unwrap();
    assert_eq!(a.tag, 1);
    assert_eq!(a.key.suite(), SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(a.key.master_key().len(), 16);
    assert_eq!(a.key.master_salt().len(), 14);
    assert_eq!(a.value(), value);
}

#[test]
fn gcm_keys_carry_a_96_bit_salt() {
    let key = SrtpKey::generate(SrtpSuite::AeadAes128Gcm);
    let a = CryptoAttribute { tag: 7, key };
    let back = CryptoAttribute::parse(&a.value()).unwrap();
    assert_eq!(back, a);
    assert_eq!(back.key.master_salt().len(), 12);
}

#[test]
fn lifetimes_at_the_srtp_maximum_are_taken_shorter_ones_refused() {
    let ok = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^48");
    assert!(CryptoAttribute::parse(&ok).is_ok());
    let short = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20");
    assert_eq!(
        CryptoAttribute::parse(&short),
        Err(SdesError::Lifetime("2^20".into()))
    );
    let decimal = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|1000");
    assert!(matches!(
        CryptoAttribute::parse(&decimal),
        Err(SdesError::Lifetime(_))
    ));
    let junk = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^x");
    assert!(matches!(
        CryptoAttribute::parse(&junk),
        Err(SdesError::Lifetime(_))
    ));
}

#[test]
fn hostile_values_are_refused_with_the_reason() {
    let cases: &[(&str, SdesError)] = &[
        ("", SdesError::Tag(String::new())),
        (
            "x AES_CM_128_HMAC_SHA1_80 inline:AA",
            SdesError::Tag("x".into()),
        ),
        (
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AA",
            SdesError::Tag("1234567890".into()),
        ),
        ("1", SdesError::Syntax("no crypto-suite")),
        (
            "1 AES_CM_128_HMAC_SHA1_80",
            SdesError::Syntax("no key-params"),
        ),
        (
            "1 F8_128_HMAC_SHA1_80 inline:AA",
            SdesError::UnknownSuite("F8_128_HMAC_SHA1_80".into()),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 uri:http://x",
            SdesError::KeyMethod("uri".into()),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline",
            SdesError::Syntax("key-param without ':'"),
        ),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", SdesError::Base64),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            SdesError::KeyLength {
                suite: SrtpSuite::AesCm128HmacSha1_80,
                expected: 30,
                got: 3,
            },
        ),
    ];
    for (value, want) in cases {
        assert_eq!(
            CryptoAttribute::parse(value).as_ref(),
            Err(want),
            "{value:?}"
        );
    }
}

#[test]
fn mki_several_keys_and_session_parameters_are_not_acceptable() {
    let mki = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^48|1:4");
    assert_eq!(CryptoAttribute::parse(&mki), Err(SdesError::Mki));
    let two = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY};inline:{RFC_KEY}");
    assert_eq!(CryptoAttribute::parse(&two), Err(SdesError::SeveralKeys));
    // UNENCRYPTED_SRTP would turn encryption off: never taken silently.
    let clear = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY} UNENCRYPTED_SRTP");
    assert_eq!(
        CryptoAttribute::parse(&clear),
        Err(SdesError::SessionParameter("UNENCRYPTED_SRTP".into()))
    );
}

#[test]
fn a_key_for_one_suite_is_the_wrong_length_for_the_other() {
    let cm = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80);
    let value = format!("1 AEAD_AES_128_GCM inline:{}", cm.to_base64());
    assert!(matches!(
        CryptoAttribute::parse(&value),
        Err(SdesError::KeyLength {
            expected: 28,
            got: 30,
            ..
        })
    ));
}

#[test]
fn fresh_keys_differ_and_never_print() {
    let a = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80);
    let b = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80);
    assert_ne!(a, b);
    let shown = format!("{a:?}");
    assert!(!shown.contains(&a.to_base64()), "{shown}");
}
