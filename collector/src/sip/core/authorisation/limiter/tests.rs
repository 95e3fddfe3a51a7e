use super::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::from([203, 0, 113, last])
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn ten_guesses_in_a_minute_earn_five_minutes_of_back_off() {
    let t0 = Instant::now();
    let mut l = FailureLimiter::new(Limits::default());
    for i in 0..9 {
        let v = l.failed(ip(1), Outcome::WrongPassword, t0 + secs(i));
        assert!(!v.blocked);
        assert!(!l.blocked(ip(1), t0 + secs(i)));
    }
    let v = l.failed(ip(1), Outcome::UnknownUser, t0 + secs(9));
    assert!(v.blocked);
    assert!(l.blocked(ip(1), t0 + secs(9)));
    assert!(l.blocked(ip(1), t0 + secs(308)));
    assert!(!l.blocked(ip(1), t0 + secs(309)));
    // Another source is not touched.
    assert!(!l.blocked(ip(2), t0 + secs(9)));
}

#[test]
fn guesses_spread_wider_than_the_window_do_not_block() {
    let t0 = Instant::now();
    let mut l = FailureLimiter::new(Limits::default());
    for i in 0..30 {
        let v = l.failed(ip(1), Outcome::WrongPassword, t0 + secs(i * 7));
        assert!(!v.blocked, "attempt {i}");
    }
}

#[test]
fn honest_nonce_trouble_is_logged_but_never_blocks() {
    let t0 = Instant::now();
    let mut l = FailureLimiter::new(Limits::default());
    for i in 0..50 {
        let outcome = [Outcome::StaleNonce, Outcome::ForeignNonce][i % 2];
        let v = l.failed(ip(1), outcome, t0 + secs(i as u64));
        assert!(!v.blocked);
        assert_eq!(v.log, Some(0));
    }
    assert!(!l.blocked(ip(1), t0 + secs(50)));
}

#[test]
fn one_line_per_source_per_second_with_the_count_held_back() {
    let t0 = Instant::now();
    let mut l = FailureLimiter::new(Limits {
        failures: u32::MAX,
        ..Limits::default()
    });
    let ms = Duration::from_millis;
    assert_eq!(l.failed(ip(1), Outcome::WrongPassword, t0).log, Some(0));
    for i in 1..500 {
        assert_eq!(
            l.failed(ip(1), Outcome::WrongPassword, t0 + ms(i)).log,
            None
        );
    }
    // Another source has its own line.
    assert_eq!(
        l.failed(ip(2), Outcome::WrongPassword, t0 + ms(1)).log,
        Some(0)
    );
    assert_eq!(
        l.failed(ip(1), Outcome::WrongPassword, t0 + ms(1000)).log,
        Some(499)
    );
}

#[test]
fn forged_sources_cannot_flood_the_log() {
    let t0 = Instant::now();
    let mut l = FailureLimiter::new(Limits::default());
    let logged = (0..=255u8)
        .filter(|i| l.failed(ip(*i), Outcome::WrongPassword, t0).log.is_some())
        .count();
    assert_eq!(logged, 20);
    assert_eq!(
        l.failed(ip(77), Outcome::WrongPassword, t0 + secs(1)).log,
        Some(1)
    );
}

#[test]
fn memory_is_bounded_by_the_sources_remembered() {
    let t0 = Instant::now();
    let mut l = FailureLimiter::new(Limits {
        max_sources: 100,
        ..Limits::default()
    });
    for i in 0..1000u32 {
        let source = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        l.failed(
            source,
            Outcome::WrongPassword,
            t0 + Duration::from_millis(i.into()),
        );
    }
    assert_eq!(l.remembered(), 100);
    // A source backing off outlives a crowd of newer ones if it can.
    let mut l = FailureLimiter::new(Limits {
        max_sources: 2,
        ..Limits::default()
    });
    for _ in 0..10 {
        l.failed(ip(1), Outcome::WrongPassword, t0);
    }
    l.failed(ip(2), Outcome::WrongPassword, t0 + secs(120));
    l.failed(ip(3), Outcome::WrongPassword, t0 + secs(121));
    assert!(l.blocked(ip(1), t0 + secs(121)));
}

#[test]
fn the_line_is_stable_and_carries_no_forged_fields() {
    let line = FailureLine {
        source: ip(9),
        aor: loggable("sip:x@y source=10.0.0.1\nWARN"),
        method: "REGISTER".into(),
        outcome: Outcome::WrongPassword,
        held: 3,
    };
    assert_eq!(
        line.to_string(),
        "sip auth failure: source=203.0.113.9 aor=sip:x@ysource=10.0.0.1WARN \
         method=REGISTER outcome=wrong_password held=3"
    );
    assert_eq!(loggable(" \t"), "-");
    assert_eq!(loggable(&"a".repeat(300)).len(), 100);
}
