//! DigestServer: nonces, verification, replay, policy.

use super::*;

// ---- server ---------------------------------------------------------------

#[test]
fn server_offers_sha256_then_md5_with_one_nonce() {
    let mut f = fixture();
    let r = f.challenge(true, f.t0);
    let all: Vec<Challenge> = Challenge::parse_all(ChallengeKind::Www, &r.headers)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].algorithm, Algorithm::SHA256);
    assert_eq!(all[1].algorithm, Algorithm::MD5);
    assert_eq!(all[0].nonce, all[1].nonce);
    assert_eq!(all[0].nonce.len(), 64);
    assert!(
        all.iter()
            .all(|c| c.stale && c.qop == vec![Qop::Auth] && c.opaque.is_some())
    );
    let again = f.challenge(false, f.t0);
    let again = Challenge::parse_all(ChallengeKind::Www, &again.headers);
    assert_ne!(again[0].as_ref().unwrap().nonce, all[0].nonce, "salted");
}

#[test]
fn round_trip_for_every_algorithm() {
    for alg in [
        Algorithm::MD5,
        Algorithm::MD5_SESS,
        Algorithm::SHA256,
        Algorithm::SHA256_SESS,
        Algorithm::SHA512_256,
        Algorithm::SHA512_256_SESS,
    ] {
        let mut f = fixture();
        let mut config = f.server.config().clone();
        config.algorithms = vec![alg];
        f.server = DigestServer::new(config, WallClock::new(f.t0, 1_700_000_000)).unwrap();
        let mut client = DigestClient::new("alice", Password::new("s3cret"));
        let req = authenticated_now(&mut f, &mut client);
        assert_eq!(creds_of(ChallengeKind::Www, &req)[0].algorithm, alg);
        let user = f.verify(&req, f.t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.realm, "sipsensor");
    }
}

#[test]
fn client_picks_sha256_from_the_servers_pair() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let req = authenticated_now(&mut f, &mut client);
    let c = creds_of(ChallengeKind::Www, &req);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].algorithm, Algorithm::SHA256);
    assert_eq!(c[0].nc, Some(1));
    assert_eq!(c[0].uri, "sip:example.com");
}

#[test]
fn wrong_password_and_unknown_user_are_not_stale() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("wrong"));
    let req = authenticated_now(&mut f, &mut client);
    let e = f.verify(&req, f.t0).unwrap_err();
    assert_eq!(e, AuthFailure::WrongResponse("alice".into()));
    assert!(!e.stale() && !e.is_bad_request());

    let mut client = DigestClient::new("mallory", Password::new("s3cret"));
    let req = authenticated_now(&mut f, &mut client);
    let e = f.verify(&req, f.t0).unwrap_err();
    assert_eq!(e, AuthFailure::UnknownUser("mallory".into()));
    assert!(!e.stale());
}

#[test]
fn nonce_expires_after_its_lifetime_and_is_then_stale() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let _ = authenticated_now(&mut f, &mut client);
    let mut at_limit = register("");
    client.authorize(&mut at_limit, &mut f.ids);
    assert!(f.verify(&at_limit, f.t0 + Duration::from_secs(300)).is_ok());
    let mut late = register("");
    client.authorize(&mut late, &mut f.ids);
    let e = f
        .verify(&late, f.t0 + Duration::from_secs(302))
        .unwrap_err();
    assert_eq!(e, AuthFailure::StaleNonce);
    assert!(e.stale());
}

#[test]
fn a_restarted_server_or_a_peer_with_the_same_secret_accepts_the_nonce() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let req = authenticated_now(&mut f, &mut client);
    // Restarted 10 s later: a new Instant base, the same wall clock.
    let t1 = f.t0 + Duration::from_secs(10);
    let mut peer = DigestServer::new(
        ServerConfig::new("sipsensor", ServerSecret::new(SECRET)),
        WallClock::new(t1, 1_700_000_010),
    )
    .unwrap();
    assert!(peer.verify(&req, ChallengeKind::Www, &f.store, t1).is_ok());

    let mut stranger = DigestServer::new(
        ServerConfig::new(
            "sipsensor",
            ServerSecret::new(b"another secret of 32 bytes......".to_vec()),
        ),
        WallClock::new(t1, 1_700_000_010),
    )
    .unwrap();
    let e = stranger
        .verify(&req, ChallengeKind::Www, &f.store, t1)
        .unwrap_err();
    assert_eq!(e, AuthFailure::ForeignNonce);
    assert!(e.stale(), "right password, unknown nonce: stale=true");
}

#[test]
fn nonces_from_the_future_and_forged_nonces_are_refused() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    // Issued an hour "later" by a peer whose clock is ahead.
    let later = f.t0 + Duration::from_secs(3600);
    let req = authenticated(&mut f, &mut client, later);
    assert_eq!(f.verify(&req, f.t0).unwrap_err(), AuthFailure::ForeignNonce);

    let forged = response(
        401,
        &[www(&format!(
            r#"Digest realm="sipsensor", nonce="{}", qop="auth", algorithm=SHA-256"#,
            "0".repeat(64)
        ))],
    );
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    client.handle_challenge(&register(""), &forged).unwrap();
    let mut req = register("");
    client.authorize(&mut req, &mut f.ids);
    assert_eq!(f.verify(&req, f.t0).unwrap_err(), AuthFailure::ForeignNonce);
}

#[test]
fn replayed_nc_is_refused_and_reordering_within_the_window_is_not() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let first = authenticated_now(&mut f, &mut client);
    assert!(f.verify(&first, f.t0).is_ok());
    let e = f.verify(&first, f.t0).unwrap_err();
    assert_eq!(e, AuthFailure::Replay(1));
    assert!(e.stale());

    let mut signed = Vec::new();
    for _ in 0..3 {
        let mut r = register("");
        client.authorize(&mut r, &mut f.ids);
        signed.push(r);
    }
    // nc 4 arrives before 2 and 3.
    assert!(f.verify(&signed[2], f.t0).is_ok());
    assert!(f.verify(&signed[0], f.t0).is_ok());
    assert!(f.verify(&signed[1], f.t0).is_ok());
    assert_eq!(
        f.verify(&signed[1], f.t0).unwrap_err(),
        AuthFailure::Replay(3)
    );
    assert_eq!(f.server.tracked_nonces(), 1);
}

#[test]
fn nc_far_behind_the_highest_is_refused() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let first = authenticated_now(&mut f, &mut client);
    let mut ahead = register("");
    for _ in 0..70 {
        client.authorize(&mut ahead, &mut f.ids);
    }
    assert_eq!(creds_of(ChallengeKind::Www, &ahead)[0].nc, Some(71));
    assert!(f.verify(&ahead, f.t0).is_ok());
    // nc 1 is 70 behind 71: outside the 64-wide window, refused.
    assert_eq!(f.verify(&first, f.t0).unwrap_err(), AuthFailure::Replay(1));
}

#[test]
fn tracked_nonces_are_bounded() {
    let mut f = fixture();
    let mut config = f.server.config().clone();
    config.max_tracked_nonces = 2;
    f.server = DigestServer::new(config, WallClock::new(f.t0, 1_700_000_000)).unwrap();
    for i in 0..5u64 {
        let mut client = DigestClient::new("alice", Password::new("s3cret"));
        let at = f.t0 + Duration::from_secs(i);
        let req = authenticated(&mut f, &mut client, at);
        assert!(f.verify(&req, at).is_ok());
        assert!(f.server.tracked_nonces() <= 2);
    }
}

#[test]
fn bad_requests_get_400_not_a_challenge() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let good = authenticated_now(&mut f, &mut client);

    let mut other_uri = good.clone();
    other_uri.uri = rsip::Uri::try_from("sip:other.example.com").unwrap();
    let e = f.verify(&other_uri, f.t0).unwrap_err();
    assert!(matches!(e, AuthFailure::UriMismatch { .. }) && e.is_bad_request());

    let broken = register("Authorization: Digest username=\"alice\", realm=\"sipsensor\r\n");
    let e = f.verify(&broken, f.t0).unwrap_err();
    assert!(matches!(e, AuthFailure::Malformed(_)) && e.is_bad_request());

    let no_qop = register(
        "Authorization: Digest username=\"alice\", realm=\"sipsensor\", nonce=\"n\", uri=\"sip:example.com\", response=\"00\"\r\n",
    );
    assert_eq!(
        f.verify(&no_qop, f.t0).unwrap_err(),
        AuthFailure::QopMissing
    );

    let none = register("");
    assert_eq!(
        f.verify(&none, f.t0).unwrap_err(),
        AuthFailure::NoCredentials("sipsensor".into())
    );
    // Credentials for another realm only: as if none were given.
    let elsewhere = register(
        "Authorization: Digest username=\"alice\", realm=\"elsewhere\", nonce=\"n\", uri=\"sip:example.com\", response=\"00\"\r\n",
    );
    assert!(matches!(
        f.verify(&elsewhere, f.t0).unwrap_err(),
        AuthFailure::NoCredentials(_)
    ));
}

#[test]
fn uri_comparison_tolerates_rsip_reserialisation() {
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let first = register("");
    client
        .handle_challenge(&first, &f.challenge(false, f.t0))
        .unwrap();
    let mut req = register("");
    req.uri = rsip::Uri::try_from("sip:example.com;transport=tcp").unwrap();
    client.authorize(&mut req, &mut f.ids);
    // rsip prints transport=TCP; a client that signed its own spelling is
    // still accepted.
    let mut creds = creds_of(ChallengeKind::Www, &req).remove(0);
    assert_eq!(creds.uri, "sip:example.com;transport=TCP");
    creds.uri = "sip:example.com;transport=tcp".into();
    assert!(super::server::same_uri(&creds.uri, &req.uri.to_string()));
}

#[test]
fn ha1_store_and_algorithm_policy() {
    let mut f = fixture();
    let mut store = InMemoryCredentials::new();
    store.insert_for_realm(
        "bob",
        "sipsensor",
        StoredSecret::Ha1(vec![Ha1::compute(
            HashFunction::Md5,
            "bob",
            "sipsensor",
            &Password::new("pw"),
        )]),
    );
    f.store = store;
    // MD5 only stored: a SHA-256 answer cannot be checked.
    let mut client = DigestClient::new("bob", Password::new("pw"));
    let req = authenticated_now(&mut f, &mut client);
    assert_eq!(
        f.verify(&req, f.t0).unwrap_err(),
        AuthFailure::UnsupportedAlgorithm(Algorithm::SHA256)
    );
    // An MD5-only challenge works with the stored HA1.
    let md5_only = response(
        401,
        &f.server
            .challenges(ChallengeKind::Www, false, f.t0, &mut f.ids)[1..],
    );
    let mut client = DigestClient::new("bob", Password::new("pw"));
    client.handle_challenge(&register(""), &md5_only).unwrap();
    let mut req = register("");
    client.authorize(&mut req, &mut f.ids);
    assert!(f.verify(&req, f.t0).is_ok());
    // The user is scoped to realm "sipsensor" only.
    assert!(f.store.lookup("bob", "other").is_none());
    // An algorithm the server did not offer is refused even if correct.
    let mut config = f.server.config().clone();
    config.algorithms = vec![Algorithm::SHA256];
    f.server = DigestServer::new(config, WallClock::new(f.t0, 1_700_000_000)).unwrap();
    let mut req = register("");
    client.authorize(&mut req, &mut f.ids);
    assert_eq!(
        f.verify(&req, f.t0).unwrap_err(),
        AuthFailure::UnsupportedAlgorithm(Algorithm::MD5)
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let f = fixture();
    let server_debug = format!("{:?}", f.server);
    assert!(!server_debug.contains("0123456789abcdef"), "{server_debug}");
    let store_debug = format!("{:?}", f.store);
    assert!(!store_debug.contains("s3cret"), "{store_debug}");
    let client = DigestClient::new("alice", Password::new("s3cret"));
    assert!(!format!("{client:?}").contains("s3cret"));
    let ha1 = Ha1::compute(HashFunction::Md5, "a", "r", &Password::new("p"));
    assert!(!format!("{ha1:?}").contains(&hash::base_ha1(HashFunction::Md5, "a", "r", "p")));
}

#[test]
fn weak_secret_is_refused() {
    let t0 = crate::test_clock::base();
    assert_eq!(
        DigestServer::new(
            ServerConfig::new("r", ServerSecret::new(b"short".to_vec())),
            WallClock::new(t0, 0)
        )
        .unwrap_err(),
        DigestError::WeakSecret
    );
    let mut ids = IdGenerator::seeded(1);
    assert!(
        DigestServer::new(
            ServerConfig::new("r", ServerSecret::generate(&mut ids)),
            WallClock::new(t0, 0)
        )
        .is_ok()
    );
}

/// Over IPv6 the stack holds `[2001:db8::1]` as an internal host name;
/// the digest must cover the wire form that both ends see.
#[test]
fn ipv6_request_uris_are_signed_in_their_wire_form() {
    use crate::sip::ipv6::{to_internal, to_wire};
    let mut f = fixture();
    let mut client = DigestClient::new("alice", Password::new("s3cret"));
    let v6 = |extra: &str| {
        let mut r = register(extra);
        r.uri = rsip::Uri::try_from(to_internal("sip:[2001:db8::1]:5060").as_ref()).unwrap();
        r
    };
    let first = v6("");
    let challenge = f.challenge(false, f.t0);
    client.handle_challenge(&first, &challenge).unwrap();
    let mut signed = v6("");
    client.authorize(&mut signed, &mut f.ids);
    let creds = creds_of(ChallengeKind::Www, &signed).remove(0);
    assert_eq!(creds.uri, "sip:[2001:db8::1]:5060");
    // Its response is the RFC 7616 computation over the wire strings.
    let ha1 = hash::base_ha1(HashFunction::Sha256, "alice", "sipsensor", "s3cret");
    let expected = hash::response(
        HashFunction::Sha256,
        &ha1,
        &hash::ResponseInput {
            method: "REGISTER",
            uri: "sip:[2001:db8::1]:5060",
            nonce: &creds.nonce,
            qop: Some(Qop::Auth),
            nc: 1,
            cnonce: creds.cnonce.as_deref().unwrap(),
            body: b"",
        },
    );
    assert_eq!(creds.response, expected);
    // Across the wire and back into the stack, the server agrees.
    let wire = to_wire(&signed.to_string()).into_owned();
    assert!(wire.contains("REGISTER sip:[2001:db8::1]:5060 SIP/2.0"));
    let inbound = rsip::Request::try_from(to_internal(&wire).as_ref()).unwrap();
    assert!(f.verify(&inbound, f.t0).is_ok());
    assert!(f.verify(&signed, f.t0).is_err(), "replayed nc");
}
