//! Steps 3 and 4 (authentication, authorization) and INVITE checks.

use super::*;

#[test]
fn step3_challenge_then_accept_with_digest() {
    let mut env = env_with(RegistrarConfig::default());
    let mut client = DigestClient::new("s1", Password::new("pw1"));
    let first = register("s1", "c1", 1, "Contact: <sip:s1@10.0.0.2:5062>\r\n");
    let r = handle(&mut env, &first, t0());
    assert_eq!(code(&r), 401);
    let www: Vec<&rsip::Header> = r
        .headers
        .iter()
        .filter(|h| matches!(h, rsip::Header::WwwAuthenticate(_)))
        .collect();
    assert_eq!(www.len(), 2);
    assert!(www[0].to_string().contains("algorithm=SHA-256"));
    assert!(env.reg.lookup("sip:s1@example.com", t0()).is_empty());

    client.handle_challenge(&first, &r).unwrap();
    let mut second = register("s1", "c1", 2, "Contact: <sip:s1@10.0.0.2:5062>\r\n");
    client.authorize(&mut second, &mut env.ids);
    let r = handle(&mut env, &second, t0());
    assert_eq!(code(&r), 200);
    assert_eq!(env.reg.lookup("sip:s1@example.com", t0()).len(), 1);
}

#[test]
fn step3_wrong_password_and_stale_nonce() {
    let mut env = env_with(RegistrarConfig::default());
    let first = register("s1", "c1", 1, "Contact: <sip:s1@10.0.0.2>\r\n");
    let challenge = handle(&mut env, &first, t0());

    let mut wrong = DigestClient::new("s1", Password::new("nope"));
    wrong.handle_challenge(&first, &challenge).unwrap();
    let mut req = register("s1", "c1", 2, "Contact: <sip:s1@10.0.0.2>\r\n");
    wrong.authorize(&mut req, &mut env.ids);
    let r = handle(&mut env, &req, t0());
    assert_eq!(code(&r), 401);
    assert!(!r.to_string().contains("stale=true"));
    assert!(matches!(
        wrong.handle_challenge(&req, &r),
        Err(DigestError::WrongCredentials { .. })
    ));

    let mut right = DigestClient::new("s1", Password::new("pw1"));
    right.handle_challenge(&first, &challenge).unwrap();
    let mut late = register("s1", "c1", 3, "Contact: <sip:s1@10.0.0.2>\r\n");
    right.authorize(&mut late, &mut env.ids);
    let r = handle(&mut env, &late, t0() + secs(400));
    assert_eq!(code(&r), 401);
    assert!(r.to_string().contains("stale=true"));
}

#[test]
fn step3_garbled_credentials_get_400() {
    let mut env = env_with(RegistrarConfig::default());
    let req = register(
        "s1",
        "c1",
        1,
        "Authorization: Digest username=\"s1\", realm=\"sipsensor\r\nContact: <sip:s1@10.0.0.2>\r\n",
    );
    assert_eq!(code(&handle(&mut env, &req, t0())), 400);
}

#[test]
fn step4_user_may_only_register_its_own_aor() {
    let mut env = env_with(RegistrarConfig::default());
    let first = register("s2", "c1", 1, "Contact: <sip:s2@10.0.0.2>\r\n");
    let challenge = handle(&mut env, &first, t0());
    let mut s1 = DigestClient::new("s1", Password::new("pw1"));
    s1.handle_challenge(&first, &challenge).unwrap();
    let mut req = register("s2", "c1", 2, "Contact: <sip:s2@10.0.0.2>\r\n");
    s1.authorize(&mut req, &mut env.ids);
    let r = handle(&mut env, &req, t0());
    assert_eq!(code(&r), 403);

    let mut env = env_with(RegistrarConfig {
        aor_policy: AorPolicy::AnyAuthenticatedUser,
        ..RegistrarConfig::default()
    });
    let challenge = handle(&mut env, &first, t0());
    let mut s1 = DigestClient::new("s1", Password::new("pw1"));
    s1.handle_challenge(&first, &challenge).unwrap();
    s1.authorize(&mut req, &mut env.ids);
    assert_eq!(code(&handle(&mut env, &req, t0())), 200);
}

#[test]
fn authenticate_request_for_an_invite() {
    let mut env = env_with(RegistrarConfig::default());
    let invite = |auth: &str| {
        rsip::Request::try_from(format!(
            "INVITE sip:collector@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKinv\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:s1@example.com>;tag=a\r\n\
             To: <sip:collector@example.com>\r\n\
             Call-ID: inv1\r\n\
             CSeq: 1 INVITE\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        ))
        .unwrap()
    };
    let first = invite("");
    let challenge = env.reg.authenticate_request(&first, t0()).unwrap_err();
    assert_eq!(code(&challenge), 401);
    assert!(header(&challenge, "To").unwrap().contains(";tag="));
    let mut client = DigestClient::new("s1", Password::new("pw1"));
    client.handle_challenge(&first, &challenge).unwrap();
    let mut second = invite("");
    client.authorize(&mut second, &mut env.ids);
    let user = env.reg.authenticate_request(&second, t0()).unwrap();
    assert_eq!(user.username, "s1");
}

#[test]
fn debug_output_hides_secrets() {
    let env = env_with(RegistrarConfig::default());
    let text = format!("{:?}", env.reg);
    assert!(!text.contains("registrar test secret"), "{text}");
    assert!(!text.contains("pw1"));
}

#[test]
fn why_a_request_failed_is_told_once() {
    let mut env = env_with(RegistrarConfig::default());
    let first = register("s1", "c1", 1, "Contact: <sip:s1@10.0.0.2>\r\n");
    let challenge = handle(&mut env, &first, t0());
    assert_eq!(
        env.reg.take_auth_failure(),
        Some(AuthFailure::NoCredentials("sipsensor".into()))
    );
    let mut wrong = DigestClient::new("s1", Password::new("nope"));
    wrong.handle_challenge(&first, &challenge).unwrap();
    let mut req = register("s1", "c1", 2, "Contact: <sip:s1@10.0.0.2>\r\n");
    wrong.authorize(&mut req, &mut env.ids);
    handle(&mut env, &req, t0());
    assert_eq!(
        env.reg.take_auth_failure(),
        Some(AuthFailure::WrongResponse("s1".into()))
    );
    assert_eq!(env.reg.take_auth_failure(), None);
    // A success after a failure leaves nothing to take.
    handle(&mut env, &req, t0());
    let mut right = DigestClient::new("s1", Password::new("pw1"));
    right.handle_challenge(&first, &challenge).unwrap();
    let mut ok = register("s1", "c1", 3, "Contact: <sip:s1@10.0.0.2>\r\n");
    right.authorize(&mut ok, &mut env.ids);
    assert_eq!(code(&handle(&mut env, &ok, t0())), 200);
    assert_eq!(env.reg.take_auth_failure(), None);
}
