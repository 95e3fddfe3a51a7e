//! `sipsensor-collector run` as a child process, for what only the real
//! binary shows: signals, exit codes, the lines it logs.

use super::sip_section;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The collector process, killed by PID if the test fails.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sipsensor-collector run` on a config in `dir` (users: s1/pw-1)
/// and returns it with its SIP address and the lines it logs from then on.
pub fn spawn_collector(dir: &Path) -> (Guard, SocketAddr, mpsc::Receiver<String>) {
    spawn_collector_with(dir, "", "")
}

/// As [`spawn_collector`], with more `sip:` lines and `media:` lines.
pub fn spawn_collector_with(
    dir: &Path,
    sip_extra: &str,
    media_extra: &str,
) -> (Guard, SocketAddr, mpsc::Receiver<String>) {
    let d = dir.display().to_string();
    std::fs::write(dir.join("credentials.yaml"), "users: {s1: pw-1}\n").unwrap();
    let config = dir.join("collector.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  url: sqlite://{d}/c.db\nhttp:\n  bind: 127.0.0.1:0\n{}media:\n  rtp_bind: 127.0.0.1:0\n{media_extra}",
            sip_section(sip_extra).replace("{dir}", &d)
        ),
    )
    .unwrap();
    let (guard, rx) = spawn_run(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    let sip = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the collector logs its SIP address");
        if let Some(rest) = line.split("advertised ").nth(1) {
            let addr = rest.split(';').next().unwrap();
            break addr.parse::<SocketAddr>().unwrap();
        }
    };
    (guard, sip, rx)
}

/// `sipsensor-collector run --config CONFIG` and the lines it logs.
pub fn spawn_run(config: &Path) -> (Guard, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipsensor-collector"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads to the end: a closed pipe would fail the collector's logging.
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("collector: {line}");
            let _ = tx.send(line);
        }
    });
    (guard, rx)
}
