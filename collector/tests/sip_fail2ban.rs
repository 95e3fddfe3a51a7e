//! Finding 4: password guesses leave log lines that fail2ban can act on.
//! The real collector binary gets REGISTERs with a wrong password and an
//! unknown user from two addresses; the filter shipped in
//! contrib/fail2ban must find exactly those addresses in the lines it
//! printed (with `fail2ban-regex` when installed, else the filter's
//! regex through Python's `re` with fail2ban's `<HOST>`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod sip_support;

use sip_support::process::spawn_collector;
use sip_support::*;
use sipsensor_loadgen::pump::MediaPump;
use sipsensor_loadgen::sensor::{SensorConfig, SimSensor, standard_stream};
use sipsensor_loadgen::sockets::SharedSocket;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn filter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/fail2ban/filter.d/sipsensor-collector.conf")
}

fn guesser(sip: SocketAddr, ip: IpAddr, user: &str) -> SensorConfig {
    SensorConfig {
        aor: format!("sip:{user}@{DOMAIN}"),
        username: user.into(),
        password: "guess".into(),
        sip_ip: ip,
        registrar: Some(format!("sip:{sip}")),
        collector: None,
        expires: 600,
        capabilities: standard_stream(1, 10, 1),
        seed: 3,
    }
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The hosts fail2ban-regex matched in `log`.
fn with_fail2ban_regex(log: &Path) -> Vec<String> {
    let out = Command::new("fail2ban-regex")
        .args(["--print-all-matched", "--raw"])
        .arg(log)
        .arg(filter())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // The report lists the matched lines, then the missed ones.
    text.lines()
        .skip_while(|l| !l.starts_with("|- Matched line(s):"))
        .skip(1)
        .take_while(|l| !l.starts_with("`-"))
        .filter_map(|l| l.split("source=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The hosts the filter's failregex matches in `log`, with `<HOST>` as
/// fail2ban 0.9 defined it.
fn with_python_re(log: &Path) -> Vec<String> {
    let script = r#"
import re, sys
conf = open(sys.argv[1]).read()
regex = re.search(r'^failregex\s*=\s*(.+)$', conf, re.M).group(1).strip()
regex = regex.replace('<HOST>', r'(?:::f{4,6}:)?(?P<host>[\w\-.^_]*\w)')
for line in open(sys.argv[2]):
    m = re.search(regex, line.rstrip('\n'))
    if m:
        print(m.group('host'))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(filter())
        .arg(log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_fail2ban_filter_finds_the_guessers_in_the_collectors_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_guard, sip, lines) = spawn_collector(dir.path());
    let guessers: [(IpAddr, &str); 2] = [
        ("127.0.0.1".parse().unwrap(), "s1"),
        ("127.0.0.2".parse().unwrap(), "nobody"),
    ];
    runtime().block_on(async {
        let pump = MediaPump::start().unwrap();
        for (ip, user) in guessers {
            let rtp = SharedSocket::bind(ip).unwrap();
            let s = SimSensor::start(guesser(sip, ip, user), rtp, pump.clone())
                .await
                .unwrap();
            let e = s.register().await.unwrap_err().to_string();
            assert!(e.contains("wrong username or password"), "{e}");
        }
    });
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while failures.len() < 2 && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200))
            && line.contains("sip auth failure")
        {
            failures.push(line);
        }
    }
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].contains(
            "source=127.0.0.1 aor=sip:s1@example.net method=REGISTER outcome=wrong_password"
        ),
        "{failures:?}"
    );
    assert!(
        failures[1].contains(
            "source=127.0.0.2 aor=sip:nobody@example.net method=REGISTER outcome=unknown_user"
        ),
        "{failures:?}"
    );
    // What must not match: an honest client's expired nonce, and an AOR
    // that tries to name another host.
    let stale = failures[0].replace("wrong_password", "stale_nonce");
    let forged = failures[1].replace("aor=sip:", "aor=source=192.0.2.66:");
    let log = dir.path().join("collector.log");
    let text = [failures[0].as_str(), &failures[1], &stale, &forged].join("\n");
    std::fs::write(&log, text + "\n").unwrap();
    let hosts = if installed("fail2ban-regex") {
        with_fail2ban_regex(&log)
    } else if installed("python3") {
        with_python_re(&log)
    } else {
        common::skip_or_fail("neither fail2ban-regex nor python3");
        return;
    };
    assert_eq!(hosts, ["127.0.0.1", "127.0.0.2", "127.0.0.2"], "{hosts:?}");
}
