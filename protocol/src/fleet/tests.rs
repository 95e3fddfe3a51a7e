use super::*;

fn state() -> FleetState {
    FleetState {
        version: "2026.12.1".into(),
        agent: "0.1.0".into(),
        compatible: "sipsensor-beaglebone".into(),
        slot: "A".into(),
        update: UpdateState::Downloading,
        target: Some("2026.12.2".into()),
        progress: Some(42),
        reason: None,
    }
}

fn want() -> FleetWant {
    let sha256 = [0xab; 32];
    FleetWant {
        version: "2026.12.2".into(),
        url: format!(
            "https://collector.example.net:8443/bundles/{}.raucb",
            sha256_hex(&sha256)
        ),
        sha256,
        size: 41_234_432,
        reboot: RebootPolicy::Window,
    }
}

/// The body without its `name=` line.
fn without(body: &str, name: &str) -> String {
    body.lines()
        .filter(|l| !l.starts_with(&format!("{name}=")))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn is_bad_value<T>(result: Result<T, FleetBodyError>) -> bool {
    matches!(result, Err(FleetBodyError::BadValue { .. }))
}

#[test]
fn a_state_reads_back_from_its_body_in_every_update_state() {
    for update in UpdateState::ALL {
        let mut s = state();
        s.update = update;
        s.progress = update.has_progress().then_some(7);
        s.reason = matches!(update, UpdateState::Failed | UpdateState::RolledBack)
            .then(|| "health check: not streaming".into());
        let body = s.to_body().unwrap();
        assert_eq!(FleetState::parse(&body).unwrap(), s, "{update}");
        assert_eq!(UpdateState::parse(update.as_str()), Some(update));
    }
}

#[test]
fn a_want_reads_back_from_its_body() {
    let w = want();
    assert_eq!(FleetWant::parse(&w.to_body().unwrap()).unwrap(), Some(w));
}

#[test]
fn no_body_or_no_want_means_report_only() {
    assert_eq!(FleetWant::parse(b"").unwrap(), None);
    assert_eq!(FleetWant::parse(b"reboot=now\nnews=1\n").unwrap(), None);
}

#[test]
fn crlf_lines_unknown_names_and_a_missing_final_newline_are_read() {
    let body = b"version=1\r\nagent=2\r\ncompatible=c\r\nslot=-\r\nfuture-field=x\r\nupdate=idle";
    let s = FleetState::parse(body).unwrap();
    assert_eq!((s.version.as_str(), s.slot.as_str()), ("1", "-"));
    assert_eq!(s.update, UpdateState::Idle);
}

#[test]
fn the_rules_of_12_2_refuse_a_body() {
    let ok = "version=1\nagent=2\ncompatible=c\nslot=A\nupdate=idle\n";
    let cases: Vec<(Vec<u8>, FleetBodyError)> = vec![
        (
            format!("{ok}x={}\n", "y".repeat(MAX_BODY)).into_bytes(),
            FleetBodyError::TooLarge {
                len: ok.len() + MAX_BODY + 3,
            },
        ),
        (b"version=\xff\n".to_vec(), FleetBodyError::NotUtf8),
        (
            b"version=1\nagent\n".to_vec(),
            FleetBodyError::NotNameValue { line: 2 },
        ),
        (b"Version=1\n".to_vec(), FleetBodyError::BadName { line: 1 }),
        (b"=1\n".to_vec(), FleetBodyError::BadName { line: 1 }),
        (
            b"ver sion=1\n".to_vec(),
            FleetBodyError::BadName { line: 1 },
        ),
        (
            b"version=1\tb\n".to_vec(),
            FleetBodyError::ControlCharacter { line: 1 },
        ),
        (
            b"version=1\rb\n".to_vec(),
            FleetBodyError::ControlCharacter { line: 1 },
        ),
        (
            "version=1\u{85}\n".into(),
            FleetBodyError::ControlCharacter { line: 1 },
        ),
        (
            format!("{ok}version=2\n").into_bytes(),
            FleetBodyError::Duplicate("version".into()),
        ),
        // Unknown names are ignored, but once only like the rest.
        (
            format!("{ok}x=1\nx=2\n").into_bytes(),
            FleetBodyError::Duplicate("x".into()),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            FleetState::parse(&body).as_ref(),
            Err(&expected),
            "{:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn a_state_missing_what_12_3_always_needs_is_refused() {
    let full = "version=1\nagent=2\ncompatible=c\nslot=A\nupdate=failed\ntarget=3\n";
    for name in ["version", "agent", "compatible", "slot", "update", "target"] {
        let body = without(full, name);
        assert_eq!(
            FleetState::parse(body.as_bytes()),
            Err(FleetBodyError::Missing(name)),
            "{name}"
        );
    }
    for bad in ["update=done", "progress=101", "progress=-1", "progress=+5"] {
        let body = format!("{full}{bad}\n").replace("update=failed\n", "");
        let body = if bad.starts_with("update") {
            body
        } else {
            format!("{body}update=downloading\n")
        };
        assert!(is_bad_value(FleetState::parse(body.as_bytes())), "{bad}");
    }
}

#[test]
fn a_want_without_what_the_download_needs_is_refused() {
    let full = want().to_body().unwrap();
    let full = String::from_utf8(full).unwrap();
    for name in ["url", "sha256", "size"] {
        let body = without(&full, name);
        assert_eq!(
            FleetWant::parse(body.as_bytes()),
            Err(FleetBodyError::Missing(name)),
            "{name}"
        );
    }
    let replace = |prefix: &str, line: &str| -> String {
        full.lines()
            .map(|l| if l.starts_with(prefix) { line } else { l })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    for (prefix, line) in [
        ("url=", "url=http://collector.example.net/bundles/x.raucb"),
        ("url=", "url=https:///bundles/x.raucb"),
        ("url=", "url=https://user@evil.example/x"),
        ("url=", "url=file:///etc/shadow"),
        ("sha256=", &format!("sha256={}", "AB".repeat(32))),
        ("sha256=", &format!("sha256={}", "ab".repeat(31))),
        ("sha256=", &format!("sha256={}g", "ab".repeat(31))),
        ("size=", "size=-1"),
        ("size=", "size=18446744073709551616"),
        ("size=", "size=+5"),
        ("reboot=", "reboot=later"),
    ] {
        let body = replace(prefix, line);
        assert!(is_bad_value(FleetWant::parse(body.as_bytes())), "{line}");
    }
}

#[test]
fn writing_refuses_what_reading_would() {
    let mut s = state();
    s.reason = Some("line one\nupdate=good".into());
    assert!(matches!(
        s.to_body(),
        Err(FleetBodyError::BadValue { name: "reason", .. })
    ));
    s.reason = Some(one_line("line one\nupdate=good"));
    let back = FleetState::parse(&s.to_body().unwrap()).unwrap();
    assert_eq!(back.reason.as_deref(), Some("line one update=good"));
    assert_eq!(back.update, UpdateState::Downloading);
    s.version = "v".repeat(MAX_BODY);
    assert!(matches!(s.to_body(), Err(FleetBodyError::TooLarge { .. })));
    let mut w = want();
    w.url = "http://collector.example.net/x.raucb".into();
    assert!(w.to_body().is_err());
}

#[test]
fn one_line_keeps_a_reason_within_the_body() {
    let long = "é".repeat(1000);
    let line = one_line(&long);
    assert!(line.len() <= 512 && line.chars().all(|c| c == 'é'));
    let mut s = state();
    s.reason = Some(line);
    assert!(s.to_body().is_ok());
}

#[test]
fn sha256_hex_reads_back() {
    let digest: [u8; 32] = std::array::from_fn(|i| i as u8 * 8);
    assert_eq!(parse_sha256(&sha256_hex(&digest)), Some(digest));
}
