//! The 10.3 steps, one behaviour per test, on a virtual clock.

use super::*;
use crate::sip::digest::{DigestClient, InMemoryCredentials, Password, ServerSecret};
use rsip::headers::UntypedHeader;

const SRC: &str = "203.0.113.5:40000";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One base instant for all tests: the virtual clock's zero.
fn t0() -> Instant {
    static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *T0.get_or_init(Instant::now)
}

struct Env {
    reg: Registrar,
    ids: IdGenerator,
}

fn env_with(config: RegistrarConfig) -> Env {
    let mut users = InMemoryCredentials::new();
    users.insert_password("s1", Password::new("pw1"));
    users.insert_password("s2", Password::new("pw2"));
    let reg = Registrar::new(
        config,
        ServerConfig::new(
            "sipsensor",
            ServerSecret::new(b"registrar test secret 0123456789".to_vec()),
        ),
        Box::new(users),
        WallClock::new(t0(), 1_289_690_940),
        IdGenerator::seeded(5),
    )
    .unwrap();
    Env {
        reg,
        ids: IdGenerator::seeded(6),
    }
}

fn open_env() -> Env {
    env_with(RegistrarConfig {
        authenticate: false,
        domains: vec!["example.com".into()],
        ..RegistrarConfig::default()
    })
}

/// A REGISTER for `user`@example.com with the given extra header lines.
fn register(user: &str, call_id: &str, cseq: u32, extra: &str) -> rsip::Request {
    rsip::Request::try_from(format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK{cseq}x;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@example.com>;tag=ft\r\n\
         To: <sip:{user}@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    ))
    .unwrap()
}

fn handle(env: &mut Env, req: &rsip::Request, at: Instant) -> rsip::Response {
    env.reg
        .handle_register(req, SRC.parse().unwrap(), Transport::Udp, at)
}

fn code(r: &rsip::Response) -> u16 {
    r.status_code.code()
}

fn contacts(r: &rsip::Response) -> Vec<String> {
    r.headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Contact(c) => Some(c.value().to_string()),
            _ => None,
        })
        .collect()
}

fn header<'a>(r: &'a rsip::Response, name: &str) -> Option<&'a str> {
    r.headers.iter().find_map(|h| {
        let text = h.to_string();
        let (n, _) = text.split_once(':')?;
        if n.eq_ignore_ascii_case(name) {
            Some(match h {
                rsip::Header::MinExpires(v) => v.value(),
                rsip::Header::Date(v) => v.value(),
                rsip::Header::Unsupported(v) => v.value(),
                rsip::Header::RetryAfter(v) => v.value(),
                rsip::Header::Warning(v) => v.value(),
                rsip::Header::Via(v) => v.value(),
                rsip::Header::To(v) => v.value(),
                rsip::Header::Allow(v) => v.value(),
                _ => "",
            })
        } else {
            None
        }
    })
}

#[test]
fn binds_with_default_expiry_and_reports_everything() {
    let mut env = open_env();
    let req = register(
        "s1",
        "c1",
        1,
        "Contact: <sip:s1@10.0.0.2:5062>\r\nUser-Agent: sipsensor-agent/0.1\r\n",
    );
    let r = handle(&mut env, &req, t0());
    assert_eq!(code(&r), 200);
    assert_eq!(contacts(&r), ["<sip:s1@10.0.0.2:5062>;expires=3600"]);
    assert_eq!(header(&r, "Date"), Some("Sat, 13 Nov 2010 23:29:00 GMT"));
    // RFC 3581: the response tells the UA where it was seen from.
    assert_eq!(
        header(&r, "Via"),
        Some("SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK1x;rport=40000;received=203.0.113.5")
    );
    assert!(header(&r, "To").unwrap().contains(";tag="));

    let found = env
        .reg
        .lookup("sip:s1@EXAMPLE.com:5060;transport=udp", t0() + secs(1));
    assert_eq!(found.len(), 1);
    let b = &found[0];
    assert_eq!(b.aor, "sip:s1@example.com");
    assert_eq!(b.source, SRC.parse().unwrap());
    assert_eq!(b.transport, Transport::Udp);
    assert!(b.behind_nat());
    assert_eq!(b.user_agent.as_deref(), Some("sipsensor-agent/0.1"));
    assert_eq!(env.reg.poll_timeout(), Some(t0() + secs(3600)));
}

#[test]
fn step1_foreign_domain_is_404_before_any_challenge() {
    let mut env = env_with(RegistrarConfig {
        domains: vec!["example.com".into()],
        ..RegistrarConfig::default()
    });
    let mut req = register("s1", "c1", 1, "Contact: <sip:s1@10.0.0.2>\r\n");
    req.uri = rsip::Uri::try_from("sip:elsewhere.org").unwrap();
    let r = handle(&mut env, &req, t0());
    assert_eq!(code(&r), 404);
    assert!(header(&r, "Warning").unwrap().contains("elsewhere.org"));
}

#[test]
fn step2_required_extensions_get_420_with_unsupported() {
    let mut env = open_env();
    let req = register(
        "s1",
        "c1",
        1,
        "Require: path, gruu\r\nContact: <sip:s1@10.0.0.2>\r\n",
    );
    let r = handle(&mut env, &req, t0());
    assert_eq!(code(&r), 420);
    assert_eq!(header(&r, "Unsupported"), Some("path, gruu"));
}

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
fn step5_bad_or_foreign_to_is_refused() {
    let mut env = open_env();
    let mut req = register("s1", "c1", 1, "Contact: <sip:s1@10.0.0.2>\r\n");
    req.headers.retain(|h| !matches!(h, rsip::Header::To(_)));
    assert_eq!(code(&handle(&mut env, &req, t0())), 400);
    let mut req = register("s1", "c1", 1, "Contact: <sip:s1@10.0.0.2>\r\n");
    req.headers.retain(|h| !matches!(h, rsip::Header::To(_)));
    req.headers.push(rsip::Header::To(rsip::headers::To::new(
        "<sip:s1@other.org>",
    )));
    assert_eq!(code(&handle(&mut env, &req, t0())), 404);
}

#[test]
fn step6_expiry_from_param_header_or_default_with_min_and_max() {
    let mut env = env_with(RegistrarConfig {
        authenticate: false,
        max_expires: 7200,
        ..RegistrarConfig::default()
    });
    let r = handle(
        &mut env,
        &register(
            "s1",
            "c1",
            1,
            "Contact: <sip:a@10.0.0.2>;expires=120, <sip:b@10.0.0.2>\r\nExpires: 600\r\n",
        ),
        t0(),
    );
    assert_eq!(code(&r), 200);
    let mut c = contacts(&r);
    c.sort();
    assert_eq!(
        c,
        [
            "<sip:a@10.0.0.2>;expires=120",
            "<sip:b@10.0.0.2>;expires=600"
        ]
    );

    // Too brief: 423 with Min-Expires, and nothing changes (10.2.8).
    let r = handle(
        &mut env,
        &register("s1", "c1", 2, "Contact: <sip:a@10.0.0.2>;expires=30\r\n"),
        t0(),
    );
    assert_eq!(code(&r), 423);
    assert_eq!(header(&r, "Min-Expires"), Some("60"));
    assert_eq!(env.reg.lookup("sip:s1@example.com", t0()).len(), 2);

    // Too long: shortened to the maximum.
    let r = handle(
        &mut env,
        &register("s1", "c1", 3, "Contact: <sip:a@10.0.0.2>;expires=99999\r\n"),
        t0(),
    );
    assert!(contacts(&r).contains(&"<sip:a@10.0.0.2>;expires=7200".to_string()));

    // A malformed Expires header reads as 3600 (20.19).
    let r = handle(
        &mut env,
        &register(
            "s1",
            "c1",
            4,
            "Contact: <sip:c@10.0.0.2>\r\nExpires: soon\r\n",
        ),
        t0(),
    );
    assert!(contacts(&r).contains(&"<sip:c@10.0.0.2>;expires=3600".to_string()));

    // A bad q is a bad request.
    let r = handle(
        &mut env,
        &register("s1", "c1", 5, "Contact: <sip:c@10.0.0.2>;q=7\r\n"),
        t0(),
    );
    assert_eq!(code(&r), 400);
}

#[test]
fn step6_one_hour_or_more_is_never_too_brief() {
    let mut env = env_with(RegistrarConfig {
        authenticate: false,
        min_expires: 7200,
        ..RegistrarConfig::default()
    });
    let r = handle(
        &mut env,
        &register("s1", "c1", 1, "Contact: <sip:a@10.0.0.2>;expires=3600\r\n"),
        t0(),
    );
    assert_eq!(
        code(&r),
        200,
        "10.3 step 7: only below one hour may get 423"
    );
}

#[test]
fn step6_wildcard_removes_all_and_must_be_alone_with_expires_zero() {
    let mut env = open_env();
    handle(
        &mut env,
        &register(
            "s1",
            "c1",
            1,
            "Contact: <sip:a@10.0.0.2>, <sip:b@10.0.0.2>\r\n",
        ),
        t0(),
    );
    for bad in [
        "Contact: *\r\n",
        "Contact: *\r\nExpires: 10\r\n",
        "Contact: *, <sip:a@10.0.0.2>\r\nExpires: 0\r\n",
    ] {
        let r = handle(&mut env, &register("s1", "c2", 5, bad), t0());
        assert_eq!(code(&r), 400, "{bad:?}");
    }
    assert_eq!(env.reg.lookup("sip:s1@example.com", t0()).len(), 2);
    let r = handle(
        &mut env,
        &register("s1", "c2", 1, "Contact: *\r\nExpires: 0\r\n"),
        t0(),
    );
    assert_eq!(code(&r), 200);
    assert!(contacts(&r).is_empty());
    assert!(env.reg.lookup("sip:s1@example.com", t0()).is_empty());
    assert_eq!(env.reg.poll_timeout(), None);
}

#[test]
fn step7_call_id_and_cseq_ordering() {
    let mut env = open_env();
    let c = "Contact: <sip:a@10.0.0.2>\r\n";
    assert_eq!(
        code(&handle(&mut env, &register("s1", "c1", 10, c), t0())),
        200
    );
    // Same Call-ID, CSeq not higher: the update fails (500) and the
    // binding keeps its state.
    for cseq in [10, 9] {
        let r = handle(
            &mut env,
            &register("s1", "c1", cseq, "Contact: <sip:a@10.0.0.2>;expires=0\r\n"),
            t0(),
        );
        assert_eq!(code(&r), 500, "cseq {cseq}");
    }
    assert_eq!(env.reg.lookup("sip:s1@example.com", t0()).len(), 1);
    let r = handle(
        &mut env,
        &register("s1", "c1", 1, "Contact: *\r\nExpires: 0\r\n"),
        t0(),
    );
    assert_eq!(code(&r), 500);
    // Another Call-ID (a rebooted UA) may update with any CSeq.
    let r = handle(
        &mut env,
        &register("s1", "c2", 1, "Contact: <sip:a@10.0.0.2>;expires=100\r\n"),
        t0(),
    );
    assert_eq!(contacts(&r), ["<sip:a@10.0.0.2>;expires=100"]);
    // And removal by expires=0 with a higher CSeq works.
    let r = handle(
        &mut env,
        &register("s1", "c2", 2, "Contact: <sip:a@10.0.0.2>;expires=0\r\n"),
        t0(),
    );
    assert_eq!(code(&r), 200);
    assert!(contacts(&r).is_empty());
}

#[test]
fn step7_equivalent_uris_update_one_binding_and_duplicates_are_fine() {
    let mut env = open_env();
    handle(
        &mut env,
        &register("s1", "c1", 1, "Contact: <sip:a@10.0.0.2;transport=udp>\r\n"),
        t0(),
    );
    let r = handle(
        &mut env,
        &register(
            "s1",
            "c1",
            2,
            "Contact: <SIP:a@10.0.0.2;TRANSPORT=UDP>;expires=70, <sip:a@10.0.0.2;transport=udp>;expires=80\r\n",
        ),
        t0(),
    );
    assert_eq!(code(&r), 200);
    assert_eq!(contacts(&r), ["<sip:a@10.0.0.2;transport=udp>;expires=80"]);
}

#[test]
fn step8_query_without_contact_lists_bindings_sorted_by_q() {
    let mut env = open_env();
    handle(
        &mut env,
        &register(
            "s1",
            "c1",
            1,
            "Contact: <sip:lo@10.0.0.2>;q=0.1, <sip:hi@10.0.0.3>;q=0.9\r\n",
        ),
        t0(),
    );
    let r = handle(&mut env, &register("s1", "c1", 2, ""), t0() + secs(100));
    assert_eq!(
        contacts(&r),
        [
            "<sip:hi@10.0.0.3>;expires=3500;q=0.900",
            "<sip:lo@10.0.0.2>;expires=3500;q=0.100"
        ]
    );
    let order: Vec<String> = env
        .reg
        .lookup("sip:s1@example.com", t0())
        .iter()
        .map(|b| b.contact.to_string())
        .collect();
    assert_eq!(order, ["sip:hi@10.0.0.3", "sip:lo@10.0.0.2"]);
}

#[test]
fn expiry_on_the_virtual_clock() {
    let mut env = open_env();
    handle(
        &mut env,
        &register("s1", "c1", 1, "Contact: <sip:a@10.0.0.2>;expires=100\r\n"),
        t0(),
    );
    handle(
        &mut env,
        &register("s2", "c9", 1, "Contact: <sip:b@10.0.0.3>;expires=200\r\n"),
        t0(),
    );
    assert_eq!(env.reg.poll_timeout(), Some(t0() + secs(100)));
    assert!(env.reg.expire(t0() + secs(99)).is_empty());
    // Expired but not yet swept: lookup already hides it.
    assert!(
        env.reg
            .lookup("sip:s1@example.com", t0() + secs(100))
            .is_empty()
    );
    let gone = env.reg.expire(t0() + secs(100));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].aor, "sip:s1@example.com");
    assert_eq!(env.reg.poll_timeout(), Some(t0() + secs(200)));
    // A refresh moves the timeout.
    handle(
        &mut env,
        &register("s2", "c9", 2, "Contact: <sip:b@10.0.0.3>;expires=300\r\n"),
        t0() + secs(150),
    );
    assert_eq!(env.reg.poll_timeout(), Some(t0() + secs(450)));
    assert!(env.reg.expire(t0() + secs(200)).is_empty());
}

#[test]
fn bounds_on_contacts_and_aors() {
    let mut env = env_with(RegistrarConfig {
        authenticate: false,
        max_bindings_per_aor: 2,
        max_aors: 1,
        ..RegistrarConfig::default()
    });
    let r = handle(
        &mut env,
        &register(
            "s1",
            "c1",
            1,
            "Contact: <sip:a@h1>, <sip:b@h1>, <sip:c@h1>\r\n",
        ),
        t0(),
    );
    assert_eq!(code(&r), 403);
    assert_eq!(
        code(&handle(
            &mut env,
            &register("s1", "c1", 2, "Contact: <sip:a@h1>\r\n"),
            t0()
        )),
        200
    );
    let r = handle(
        &mut env,
        &register("s2", "c2", 1, "Contact: <sip:a@h2>\r\n"),
        t0(),
    );
    assert_eq!(code(&r), 503);
    assert_eq!(header(&r, "Retry-After"), Some("300"));
}

#[test]
fn malformed_requests_get_400_and_other_methods_405() {
    let mut env = open_env();
    for extra in [
        "Contact: <sip:a@10.0.0.2\r\n",
        "Contact: <tel:+123>\r\n",
        "Contact: <sip:a@[::1>\r\n",
    ] {
        let r = handle(&mut env, &register("s1", "c1", 1, extra), t0());
        assert_eq!(code(&r), 400, "{extra:?}");
        assert!(header(&r, "Warning").is_some());
    }
    let mut req = register("s1", "c1", 1, "");
    req.method = rsip::Method::Options;
    let r = handle(&mut env, &req, t0());
    assert_eq!(code(&r), 405);
    assert_eq!(header(&r, "Allow"), Some("REGISTER"));
}

#[test]
fn ipv6_contacts_and_tcp_sources() {
    let mut env = open_env();
    let req = register(
        "s1",
        "c1",
        1,
        "Contact: <sip:s1@[2001:db8::5]:5062;transport=tcp>\r\n",
    );
    let src: SocketAddr = "[2001:db8::5]:5062".parse().unwrap();
    let r = env.reg.handle_register(&req, src, Transport::Tcp, t0());
    assert_eq!(code(&r), 200);
    let b = &env.reg.lookup("sip:s1@example.com", t0())[0];
    assert_eq!(b.transport, Transport::Tcp);
    assert!(!b.behind_nat());
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
