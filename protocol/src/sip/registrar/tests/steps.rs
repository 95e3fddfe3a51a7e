//! The 10.3 steps other than authentication, expiry and bounds.

use super::*;

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
