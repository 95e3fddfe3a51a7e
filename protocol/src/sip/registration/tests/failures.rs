//! Wrong passwords, rejections, back-off, timeouts and bad input.

use super::*;

#[test]
fn wrong_password_is_reported_once_and_never_retried() {
    let mut c = client_with(config());
    c.start(t0());
    let first = request(&mut c);
    let challenge = |r: &rsip::Request, nonce: &str| {
        reply(
            r,
            401,
            vec![www(&format!(
                r#"Digest realm="example.com", nonce="{nonce}", qop="auth""#
            ))],
        )
    };
    c.handle_response(&challenge(&first, "n1"), t0()).unwrap();
    let second = request(&mut c);
    c.handle_response(&challenge(&second, "n2"), t0()).unwrap();
    assert_eq!(
        events(&mut c),
        [RegistrationEvent::Failed {
            reason: FailureReason::WrongCredentials {
                realm: "example.com".into()
            }
        }]
    );
    assert_eq!(c.state(), RegistrationState::Failed);
    assert!(c.poll_request().is_none());
    assert_eq!(c.poll_timeout(), None, "no retry with the same password");
    c.handle_timeout(t0() + secs(100_000));
    assert!(c.poll_request().is_none());

    // A fixed password (SIGHUP) starts over at once.
    c.set_credentials("s1", Password::new("right"), t0() + secs(5));
    let again = request(&mut c);
    assert!(values(&again.headers, "Authorization").is_empty());
    c.handle_response(&challenge(&again, "n3"), t0() + secs(5))
        .unwrap();
    let answered = request(&mut c);
    assert!(one(&answered.headers, "Authorization").contains("nonce=\"n3\""));
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let mut c = client_with(config());
    c.start(t0());
    let req = request(&mut c);
    let busy = reply(
        &req,
        503,
        vec![rsip::Header::RetryAfter(rsip::headers::RetryAfter::new(
            "120 (maintenance)",
        ))],
    );
    c.handle_response(&busy, t0()).unwrap();
    assert_eq!(
        events(&mut c),
        [
            RegistrationEvent::Failed {
                reason: FailureReason::Rejected {
                    code: 503,
                    reason: "Service Unavailable".into()
                }
            },
            RegistrationEvent::Retrying { after: secs(120) }
        ]
    );
    assert_eq!(c.state(), RegistrationState::Retrying);
    assert_eq!(c.poll_timeout(), Some(t0() + secs(120)));
    c.handle_timeout(t0() + secs(120));
    let again = request(&mut c);
    let absurd = reply(
        &again,
        503,
        vec![rsip::Header::RetryAfter(rsip::headers::RetryAfter::new(
            "999999",
        ))],
    );
    c.handle_response(&absurd, t0() + secs(120)).unwrap();
    assert_eq!(
        events(&mut c)[1],
        RegistrationEvent::Retrying { after: secs(3600) }
    );
}

#[test]
fn failures_back_off_exponentially_with_jitter_up_to_the_cap() {
    let mut c = client_with(config());
    c.start(t0());
    let mut now = t0();
    let mut delays = Vec::new();
    for _ in 0..10 {
        let _ = request(&mut c);
        c.handle_transaction_failure(now).unwrap();
        let ev = events(&mut c);
        assert_eq!(
            ev[0],
            RegistrationEvent::Failed {
                reason: FailureReason::Unreachable
            }
        );
        let RegistrationEvent::Retrying { after } = ev[1] else {
            panic!("{ev:?}")
        };
        assert_eq!(c.poll_timeout(), Some(now + after));
        delays.push(after);
        now += after;
        c.handle_timeout(now);
    }
    for (i, d) in delays.iter().enumerate() {
        let ceiling = secs(30 * (1u64 << i)).min(secs(1800));
        assert!(
            *d >= ceiling / 2 && *d <= ceiling,
            "failure {}: {d:?} vs {ceiling:?}",
            i + 1
        );
    }
    assert!(
        delays.iter().any(|d| d.as_secs() % 15 != 0),
        "jittered: {delays:?}"
    );
    // A success resets the count.
    let req = request(&mut c);
    c.handle_response(&reply(&req, 200, vec![]), now).unwrap();
    events(&mut c);
    c.handle_timeout(c.poll_timeout().unwrap());
    let refresh = request(&mut c);
    c.handle_transaction_failure(now).unwrap();
    let RegistrationEvent::Retrying { after } = events(&mut c)[1].clone() else {
        panic!()
    };
    assert!(after <= secs(30), "{after:?}");
    drop(refresh);
}

#[test]
fn a_lapsed_binding_is_reported_once() {
    let mut c = client_with(config());
    registered(&mut c, 100, t0());
    let mut now = c.poll_timeout().unwrap();
    c.handle_timeout(now);
    let mut expired = 0;
    for _ in 0..10 {
        if c.poll_request().is_some() {
            c.handle_transaction_failure(now).unwrap();
        }
        for e in events(&mut c) {
            if e == RegistrationEvent::Expired {
                expired += 1;
                assert!(now >= t0() + secs(100));
            }
        }
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
    }
    assert_eq!(expired, 1);
    assert!(!c.is_registered(now));
}

#[test]
fn responses_that_do_not_match_are_errors() {
    let mut c = client_with(config());
    let stray = rsip::Response::try_from(
        "SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        c.handle_response(&stray, t0()),
        Err(RegistrationError::NothingOutstanding)
    );
    assert_eq!(
        c.handle_transaction_failure(t0()),
        Err(RegistrationError::NothingOutstanding)
    );
    c.start(t0());
    let req = request(&mut c);
    assert!(matches!(
        c.handle_response(&stray, t0()),
        Err(RegistrationError::UnexpectedResponse(_))
    ));
    let mut wrong_cseq = reply(&req, 200, vec![]);
    wrong_cseq
        .headers
        .retain(|h| !matches!(h, rsip::Header::CSeq(_)));
    wrong_cseq
        .headers
        .push(rsip::Header::CSeq(rsip::headers::CSeq::new(format!(
            "{} REGISTER",
            cseq(&req) + 5
        ))));
    assert!(c.handle_response(&wrong_cseq, t0()).is_err());
    // 1xx are fine and change nothing.
    c.handle_response(&reply(&req, 100, vec![]), t0()).unwrap();
    assert_eq!(c.state(), RegistrationState::Registering);
    c.handle_response(&reply(&req, 200, vec![]), t0()).unwrap();
    assert_eq!(c.state(), RegistrationState::Registered);
}

#[test]
fn bad_configs_are_refused() {
    for (cfg, what) in [
        (
            RegistrationConfig {
                aor: "s1".into(),
                ..config()
            },
            "aor",
        ),
        (
            RegistrationConfig {
                aor: "sip:example.com".into(),
                ..config()
            },
            "aor",
        ),
        (
            RegistrationConfig {
                registrar: "http://x".into(),
                ..config()
            },
            "registrar",
        ),
        (
            RegistrationConfig {
                expires: 0,
                ..config()
            },
            "expires",
        ),
        (
            RegistrationConfig {
                outbound_proxy: Some("proxy".into()),
                ..config()
            },
            "outbound proxy",
        ),
        (
            RegistrationConfig {
                backoff_base: Duration::ZERO,
                ..config()
            },
            "backoff",
        ),
    ] {
        match RegistrationClient::new(cfg, IdGenerator::seeded(1)) {
            Err(RegistrationError::Config(e)) => {
                let msg = e.to_string();
                assert!(msg.starts_with(what), "{msg}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn challenge_loops_are_cut() {
    let mut c = client_with(config());
    c.start(t0());
    let mut failed = false;
    for round in 0..10 {
        let req = request(&mut c);
        // A new realm every time: each looks answerable on its own.
        let r = reply(
            &req,
            401,
            vec![www(&format!(
                r#"Digest realm="r{round}", nonce="n", qop="auth""#
            ))],
        );
        c.handle_response(&r, t0()).unwrap();
        let ev = events(&mut c);
        if !ev.is_empty() {
            assert_eq!(
                ev[0],
                RegistrationEvent::Failed {
                    reason: FailureReason::ChallengeLoop
                }
            );
            assert!(round >= 4);
            failed = true;
            break;
        }
    }
    assert!(failed);
}

#[test]
fn the_password_never_shows() {
    let mut c = client_with(config());
    assert!(!format!("{c:?}").contains("pw1"));
    c.start(t0());
    let req = request(&mut c);
    c.handle_response(
        &reply(
            &req,
            401,
            vec![www(r#"Digest realm="r", nonce="n", qop="auth""#)],
        ),
        t0(),
    )
    .unwrap();
    let signed = request(&mut c);
    assert!(!signed.to_string().contains("pw1"));
    assert!(!format!("{c:?}").contains("pw1"));
}
