//! Client and server together, on a virtual clock.

use super::*;
use crate::sip::ids::IdGenerator;
use rsip::headers::UntypedHeader;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn register(extra: &str) -> rsip::Request {
    rsip::Request::try_from(format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=1\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: c1@192.0.2.1\r\n\
         CSeq: 1 REGISTER\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    ))
    .unwrap()
}

fn response(code: u16, headers: &[rsip::Header]) -> rsip::Response {
    rsip::Response {
        status_code: code.into(),
        version: rsip::Version::V2,
        headers: headers.to_vec().into(),
        body: vec![],
    }
}

fn www(value: &str) -> rsip::Header {
    rsip::Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(value))
}

fn proxy(value: &str) -> rsip::Header {
    rsip::Header::ProxyAuthenticate(rsip::headers::ProxyAuthenticate::new(value))
}

fn creds_of(kind: ChallengeKind, req: &rsip::Request) -> Vec<DigestCredentials> {
    DigestCredentials::parse_all(kind, &req.headers)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

struct Fixture {
    t0: Instant,
    ids: IdGenerator,
    server: DigestServer,
    store: InMemoryCredentials,
}

fn fixture() -> Fixture {
    let t0 = Instant::now();
    let mut store = InMemoryCredentials::new();
    store.insert_password("alice", Password::new("s3cret"));
    let server = DigestServer::new(
        ServerConfig::new("sipsensor", ServerSecret::new(SECRET)),
        WallClock::new(t0, 1_700_000_000),
    )
    .unwrap();
    Fixture {
        t0,
        ids: IdGenerator::seeded(42),
        server,
        store,
    }
}

impl Fixture {
    fn challenge(&mut self, stale: bool, at: Instant) -> rsip::Response {
        let headers = self
            .server
            .challenges(ChallengeKind::Www, stale, at, &mut self.ids);
        response(401, &headers)
    }

    fn verify(
        &mut self,
        req: &rsip::Request,
        at: Instant,
    ) -> Result<AuthenticatedUser, AuthFailure> {
        self.server.verify(req, ChallengeKind::Www, &self.store, at)
    }
}

/// Client answers a fresh server challenge; returns the signed request.
fn authenticated(f: &mut Fixture, client: &mut DigestClient, at: Instant) -> rsip::Request {
    let first = register("");
    let challenge = f.challenge(false, at);
    client.handle_challenge(&first, &challenge).unwrap();
    let mut second = register("");
    client.authorize(&mut second, &mut f.ids);
    second
}

fn authenticated_now(f: &mut Fixture, client: &mut DigestClient) -> rsip::Request {
    let t0 = f.t0;
    authenticated(f, client, t0)
}

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
    let t0 = Instant::now();
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
