//! DigestClient: choosing, answering, stale, wrong passwords.

use super::*;

// ---- client ---------------------------------------------------------------

#[test]
fn client_prefers_the_strongest_per_realm_and_answers_every_realm() {
    let mut ids = IdGenerator::seeded(3);
    let mut client = DigestClient::new("alice", Password::new("pw"));
    let r = response(
        407,
        &[
            proxy(r#"Digest realm="p1", nonce="a", qop="auth", algorithm=MD5"#),
            proxy(r#"Digest realm="p1", nonce="b", qop="auth", algorithm=SHA-256"#),
            proxy(r#"Digest realm="p1", nonce="c", qop="auth", algorithm=SHA-256-sess"#),
            proxy(r#"Digest realm="p2", nonce="d", algorithm=MD5"#),
            www(r#"Digest realm="uas", nonce="e", qop="auth", algorithm=SHA-1"#),
            www(r#"Digest realm="uas", nonce="f", qop="auth-int""#),
        ],
    );
    client.handle_challenge(&register(""), &r).unwrap();
    let mut req = register("");
    client.authorize(&mut req, &mut ids);
    let p = creds_of(ChallengeKind::Proxy, &req);
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].realm.as_str(), p[0].nonce.as_str()), ("p1", "b"));
    assert_eq!(p[0].algorithm, Algorithm::SHA256);
    assert_eq!((p[1].realm.as_str(), p[1].qop, p[1].nc), ("p2", None, None));
    let w = creds_of(ChallengeKind::Www, &req);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].nonce.as_str(), w[0].qop), ("f", Some(Qop::AuthInt)));
    // Credentials come before Content-Length.
    let last: Vec<rsip::Header> = req.headers.clone().into();
    assert!(matches!(last.last(), Some(rsip::Header::ContentLength(_))));
}

#[test]
fn legacy_no_qop_md5_matches_rfc2069_form() {
    let mut ids = IdGenerator::seeded(3);
    let mut client = DigestClient::new("Mufasa", Password::new("Circle Of Life"));
    let r = response(
        401,
        &[www(
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#,
        )],
    );
    client.handle_challenge(&register(""), &r).unwrap();
    let mut req = register("");
    req.method = rsip::Method::Register;
    client.authorize(&mut req, &mut ids);
    let c = &creds_of(ChallengeKind::Www, &req)[0];
    let ha1 = hash::base_ha1(
        HashFunction::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    let ha2 = hash::hex_hash(HashFunction::Md5, b"REGISTER:sip:example.com");
    let expected = hash::hex_hash(
        HashFunction::Md5,
        format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}").as_bytes(),
    );
    assert_eq!(c.response, expected);
    assert_eq!((c.qop, c.nc, c.cnonce.as_deref()), (None, None, None));

    // A second 401 to that first answer: wrong password.
    let e = client.handle_challenge(&req, &r).unwrap_err();
    assert_eq!(
        e,
        DigestError::WrongCredentials {
            realm: "testrealm@host.com".into()
        }
    );
}

#[test]
fn stale_reuses_the_password_without_reporting_failure() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let first = authenticated_now(&mut f, &mut client);
    assert!(f.verify(&first, f.t0).is_ok());
    // Later refresh with the cached nonce, after it expired.
    let later = f.t0 + Duration::from_secs(1000);
    let mut refresh = register("");
    client.authorize(&mut refresh, &mut f.ids);
    assert_eq!(creds_of(ChallengeKind::Www, &refresh)[0].nc, Some(2));
    let e = f.verify(&refresh, later).unwrap_err();
    assert!(e.stale());
    let stale = f.challenge(true, later);
    client.handle_challenge(&refresh, &stale).unwrap();
    let mut retry = register("");
    client.authorize(&mut retry, &mut f.ids);
    assert_eq!(creds_of(ChallengeKind::Www, &retry)[0].nc, Some(1));
    assert!(f.verify(&retry, later).is_ok());
}

#[test]
fn second_non_stale_401_is_a_wrong_password() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("wrong"));
    let req = authenticated_now(&mut f, &mut client);
    let e = f.verify(&req, f.t0).unwrap_err();
    assert!(!e.stale());
    let again = f.challenge(false, f.t0);
    assert_eq!(
        client.handle_challenge(&req, &again),
        Err(DigestError::WrongCredentials {
            realm: "sipsensor".into()
        })
    );
    // The rejected realm is forgotten: no more wrong credentials up front.
    assert!(!client.has_challenges());
    // Fixed credentials start over.
    client.set_credentials("alice", Password::new("s3cret"));
    let fixed = authenticated_now(&mut f, &mut client);
    assert!(f.verify(&fixed, f.t0).is_ok());
}

#[test]
fn cached_nonce_dropped_without_stale_gets_one_retry() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let _ = authenticated_now(&mut f, &mut client);
    let mut reused = register("");
    client.authorize(&mut reused, &mut f.ids);
    let fresh = f.challenge(false, f.t0);
    client.handle_challenge(&reused, &fresh).unwrap();
    let mut retry = register("");
    client.authorize(&mut retry, &mut f.ids);
    assert!(matches!(
        client.handle_challenge(&retry, &fresh),
        Err(DigestError::WrongCredentials { .. })
    ));
}

#[test]
fn endless_stale_on_fresh_nonces_is_cut_short() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let mut req = authenticated_now(&mut f, &mut client);
    let mut outcome = Ok(());
    for _ in 0..5 {
        let stale = f.challenge(true, f.t0);
        outcome = client.handle_challenge(&req, &stale);
        if outcome.is_err() {
            break;
        }
        req = register("");
        client.authorize(&mut req, &mut f.ids);
    }
    assert_eq!(
        outcome,
        Err(DigestError::TooManyStale {
            realm: "sipsensor".into()
        })
    );
}

#[test]
fn unanswerable_challenges_are_typed_errors() {
    let mut client = DigestClient::new("alice", Password::new("pw")).with_realm("mine");
    let other_realm = response(
        401,
        &[www(r#"Digest realm="theirs", nonce="n", qop="auth""#)],
    );
    assert_eq!(
        client.handle_challenge(&register(""), &other_realm),
        Err(DigestError::NoSupportedChallenge)
    );
    let sha1 = response(
        401,
        &[www(
            r#"Digest realm="mine", nonce="n", qop="auth", algorithm=SHA-1"#,
        )],
    );
    assert!(matches!(
        client.handle_challenge(&register(""), &sha1),
        Err(DigestError::UnsupportedAlgorithm(_))
    ));
    let garbage = response(401, &[www("Digest realm=\"mine")]);
    assert!(matches!(
        client.handle_challenge(&register(""), &garbage),
        Err(DigestError::Malformed(_))
    ));
    let empty = response(401, &[]);
    assert_eq!(
        client.handle_challenge(&register(""), &empty),
        Err(DigestError::NoSupportedChallenge)
    );
    assert_eq!(
        client.handle_challenge(&register(""), &response(403, &[])),
        Err(DigestError::NotAChallenge(403))
    );
    assert!(!client.has_challenges());
}

#[test]
fn authorize_replaces_old_credentials_and_counts_nc() {
    let mut ids = IdGenerator::seeded(9);
    let mut client = DigestClient::new("alice", Password::new("pw"));
    let r = response(
        401,
        &[www(
            r#"Digest realm="r", nonce="n", qop="auth", opaque="o""#,
        )],
    );
    client.handle_challenge(&register(""), &r).unwrap();
    let mut req = register("Authorization: Digest username=\"old\"\r\n");
    for expected in 1..=3u32 {
        client.authorize(&mut req, &mut ids);
        let c = creds_of(ChallengeKind::Www, &req);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].nc, Some(expected));
        assert_eq!(c[0].opaque.as_deref(), Some("o"));
        assert_eq!(c[0].username, "alice");
    }
    let text = req.to_string();
    assert!(!text.contains("pw\""), "{text}");
}
