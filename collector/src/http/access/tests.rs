use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn with_token() -> Access {
    Access {
        names: vec!["collector.example.net".into()],
        token: Some(Token(TOKEN.into())),
    }
}

fn check(a: &Access, path: &str, pairs: &[(&str, &str)]) -> Result<(), Refusal> {
    a.check(path, Version::HTTP_11, &headers(pairs))
}

#[test]
fn host_must_be_an_address_localhost_or_configured() {
    let a = Access::open();
    for ok in [
        "127.0.0.1:8080",
        "127.0.0.1",
        "[::1]:8080",
        "192.0.2.7",
        "localhost:8080",
        "LOCALHOST.",
    ] {
        assert_eq!(check(&a, "/", &[("host", ok)]), Ok(()), "{ok}");
    }
    // DNS rebinding: a name that resolved to us, which we do not answer for.
    for bad in [
        "attacker.example:8080",
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
    ] {
        assert_eq!(
            check(&a, "/api/sensors", &[("host", bad)]),
            Err(Refusal::WrongHost),
            "{bad}"
        );
    }
    assert_eq!(check(&a, "/", &[]), Err(Refusal::NoHost));
    // HTTP/1.0 may leave Host out.
    assert_eq!(a.check("/", Version::HTTP_10, &HeaderMap::new()), Ok(()));
    let named = with_token();
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        check(
            &named,
            "/",
            &[
                ("host", "Collector.Example.NET:8080"),
                ("authorization", &bearer)
            ]
        ),
        Ok(())
    );
}

#[test]
fn a_token_is_needed_everywhere_but_healthz() {
    let a = with_token();
    let host = ("host", "192.0.2.1:8080");
    assert_eq!(check(&a, "/healthz", &[host]), Ok(()));
    for path in ["/", "/api/sensors", "/metrics", "/healthz/x"] {
        assert_eq!(
            check(&a, path, &[host]),
            Err(Refusal::Unauthorized),
            "{path}"
        );
    }
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        check(&a, "/metrics", &[host, ("authorization", &bearer)]),
        Ok(())
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("anyone:{TOKEN}"))
    );
    assert_eq!(check(&a, "/", &[host, ("authorization", &basic)]), Ok(()));
    let wrong = [
        format!("Bearer {}", &TOKEN[..31]),
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}0", &TOKEN[..31]),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN}:nope"))
        ),
        "Basic !!notbase64".into(),
        format!("Token {TOKEN}"),
        TOKEN.into(),
    ];
    for w in &wrong {
        assert_eq!(
            check(&a, "/api/sensors", &[host, ("authorization", w)]),
            Err(Refusal::Unauthorized),
            "{w}"
        );
    }
}

fn http_config(yaml: &str) -> HttpConfig {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn off_loopback_needs_a_token_file_or_an_explicit_opt_out() {
    let e = Access::from_config(&http_config("bind: 0.0.0.0:8080")).unwrap_err();
    assert!(matches!(e, AccessError::NoToken { .. }), "{e}");
    let (_, warnings) = Access::from_config(&http_config(
        "bind: 0.0.0.0:8080\nallow_unauthenticated: true",
    ))
    .unwrap();
    assert!(
        warnings[0].contains("allow_unauthenticated"),
        "{warnings:?}"
    );
    let (a, warnings) = Access::from_config(&http_config("bind: 127.0.0.1:8080")).unwrap();
    assert!(a.token.is_none() && warnings.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let cfg = http_config(&format!(
        "bind: '[::]:8080'\ntoken_file: {}",
        file.display()
    ));
    let e = Access::from_config(&cfg).unwrap_err();
    assert!(matches!(e, AccessError::Read { .. }), "{e}");
    for bad in ["short\n", "", "0123456789abcdef 0123456789abcdef\n"] {
        std::fs::write(&file, bad).unwrap();
        let e = Access::from_config(&cfg).unwrap_err();
        assert!(matches!(e, AccessError::BadToken { .. }), "{bad:?}: {e}");
    }
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (a, warnings) = Access::from_config(&cfg).unwrap();
    assert!(a.token.as_ref().unwrap().matches(TOKEN.as_bytes()));
    assert!(warnings[0].contains("mode 644"), "{warnings:?}");
    assert!(
        !format!("{a:?}").contains(TOKEN),
        "the token is never printed"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Access::from_config(&cfg).unwrap().1.is_empty());
}
