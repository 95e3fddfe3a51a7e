//! The one start-up line of a collector that sensors can only reach in
//! clear text (no `sip.tls`, or `media.srtp: off`), and none with TLS and
//! SRTP (issue #14: secure by default, clear text an opt-in that says so).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sip_support::process::spawn_collector_with;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts the collector, stops it with SIGTERM and returns every line it
/// logged after its SIP address (the warning comes once SIP is up).
fn lines_of_a_run(dir: &Path, sip_extra: &str, media_extra: &str) -> Vec<String> {
    let (mut guard, _, lines) = spawn_collector_with(dir, sip_extra, media_extra);
    kill(
        Pid::from_raw(i32::try_from(guard.0.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    // Until the process exits and its stderr closes.
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        out.push(line);
    }
    assert!(
        guard.0.wait().unwrap().success(),
        "collector failed: {out:#?}"
    );
    out
}

fn tls_section(dir: &Path) -> String {
    let ca = sipsensor_testkit::pki::TestCa::new("clear-text test CA");
    let leaf = ca.issue(&["127.0.0.1"]);
    let cert = dir.join("collector.crt");
    let key = dir.join("collector.key");
    std::fs::write(&cert, leaf.certificate).unwrap();
    std::fs::write(&key, leaf.private_key).unwrap();
    format!(
        "  tls:\n    bind: 127.0.0.1:0\n    certificate: {}\n    private_key: {}\n",
        cert.display(),
        key.display()
    )
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn without_tls_the_collector_says_once_that_sensors_talk_in_clear_text() {
    let dir = tempfile::tempdir().unwrap();
    let lines = lines_of_a_run(dir.path(), "", "");
    assert_eq!(
        count(&lines, "clear text: no `sip.tls` listener"),
        1,
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "clear text"), 1, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("docs/security.md")),
        "{lines:#?}"
    );
}

#[test]
fn with_tls_and_srtp_nothing_is_said_and_srtp_off_is() {
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_section(dir.path());
    let lines = lines_of_a_run(dir.path(), &tls, "");
    assert_eq!(count(&lines, "clear text"), 0, "{lines:#?}");
    assert!(count(&lines, "storage writer stopped") == 1, "{lines:#?}");

    let dir = tempfile::tempdir().unwrap();
    let tls = tls_section(dir.path());
    let lines = lines_of_a_run(dir.path(), &tls, "  srtp: off\n");
    assert_eq!(
        count(&lines, "clear text: `media.srtp: off`"),
        1,
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "clear text"), 1, "{lines:#?}");
}
