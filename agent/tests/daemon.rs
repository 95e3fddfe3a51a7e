//! `sipsensor-agent run` as a process: a bad config makes it wait (not
//! exit), a fixed file lets it start, SIGHUP reloads, SIGTERM stops it.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sipsensor_agent::status::{AgentState, Status, client};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The agent process, killed by PID if the test fails before it ends.
struct Agent {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn start(dir: &Path, config: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let log = dir.join("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sipsensor-agent"))
            .args(["run", "--no-override", "--config"])
            .arg(config)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            socket,
            log,
        }
    }

    fn signal(&self, s: Signal) {
        let pid = self.child.as_ref().unwrap().id();
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), s).unwrap();
    }

    /// Poll status (bounded: 20 s in 50 ms steps) until `cond` holds.
    fn until(&self, what: &str, cond: impl Fn(&Status) -> bool) -> Status {
        let mut last = None;
        for _ in 0..400 {
            if let Ok(s) = client::fetch(&self.socket, Duration::from_secs(1)) {
                if cond(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("never {what}; last status {last:#?}\nlog:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait (bounded) for the exit; returns the time taken.
    fn terminate(&mut self) -> Duration {
        let start = Instant::now();
        self.signal(Signal::SIGTERM);
        let mut child = self.child.take().unwrap();
        for _ in 0..400 {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "exit status {status}; log:\n{}",
                    self.log()
                );
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("did not stop on SIGTERM; log:\n{}", self.log());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Over UDP (clear text, warned about), so that no CA file is needed.
fn config(dir: &Path, rate: u32) -> String {
    config_with(dir, rate, "  transport: udp\n")
}

fn config_with(dir: &Path, rate: u32, sip: &str) -> String {
    format!(
        "secrets_file: {}\nidentity:\n  aor: sip:sensor-1@example.net\nsip:\n  collector: sip:collector@example.net\n{sip}stream:\n  rate: {rate}\nsensors:\n  - type: simulated\n    name: sim\n    interval_ms: 20\n    channels: [{{name: wave, unit: V}}]\nspool:\n  dir: {}\n",
        dir.join("secrets.yaml").display(),
        dir.join("spool").display()
    )
}

/// Started, with or without a registrar to talk to yet.
fn running(state: AgentState) -> bool {
    matches!(state, AgentState::Starting | AgentState::Registering)
}

#[test]
fn bad_config_waits_for_a_fix_then_runs_reloads_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.yaml");
    std::fs::write(&cfg, config(dir.path(), 0)).unwrap();
    let mut agent = Agent::start(dir.path(), &cfg);

    let s = agent.until("config_error", |s| s.state == AgentState::ConfigError);
    let err = s.last_error.unwrap();
    assert_eq!(err.source, "config");
    assert_eq!(
        err.message,
        format!(
            "{}:8:9: stream.rate: sample rate (Hz) must be 1 to 10000, got 0",
            cfg.display()
        )
    );
    // Still alive, still waiting: no exit, no restart loop.
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.child.as_mut().unwrap().try_wait().unwrap().is_none());

    // The technician fixes the file: the agent picks it up by itself.
    std::fs::write(&cfg, config(dir.path(), 10)).unwrap();
    let s = agent.until("running with sensor reads", |s| {
        // The collector's host does not resolve here: the session keeps
        // trying (registering) while the sensors run.
        running(s.state) && s.sensors.first().is_some_and(|x| x.reads >= 3)
    });
    assert_eq!(s.config_files, vec![cfg.clone()]);
    assert_eq!(s.sensors[0].kind, "simulated");

    // SIGHUP with a broken file: reported, the running config kept.
    std::fs::write(&cfg, "stream: [\n").unwrap();
    agent.signal(Signal::SIGHUP);
    let s = agent.until("reload error reported", |s| {
        s.last_error
            .as_ref()
            .is_some_and(|e| e.message.contains("agent.yaml:2:1:"))
    });
    assert!(running(s.state), "{:?}", s.state);
    let reads = s.sensors[0].reads;
    agent.until("sensor still read", |s| s.sensors[0].reads > reads);

    // SIGHUP with a good file: reloaded (sensor list rebuilt).
    std::fs::write(
        &cfg,
        config(dir.path(), 20).replace("name: sim", "name: sim2"),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    agent.until("reloaded", |s| {
        s.sensors
            .first()
            .is_some_and(|x| x.name == "sim2" && x.reads > 0)
    });

    let took = agent.terminate();
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(!agent.socket.exists(), "socket file left behind");
    let log = agent.log();
    for needle in [
        "stream.rate: sample rate (Hz) must be 1 to 10000, got 0",
        "waiting for a fixed config",
        "config is valid now",
        "SIGHUP: the new config is invalid; keeping the running one",
        "SIGHUP: config reloaded",
        "stopped",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}

#[test]
fn missing_config_is_no_config_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.yaml");
    let mut agent = Agent::start(dir.path(), &cfg);
    let s = agent.until("no_config", |s| s.state == AgentState::NoConfig);
    assert!(
        s.last_error
            .unwrap()
            .message
            .contains("cannot read: No such file or directory")
    );
    std::fs::write(&cfg, config(dir.path(), 10)).unwrap();
    agent.until("started", |s| running(s.state));
    agent.terminate();
}

/// The one start-up line of a clear-text config, and none over TLS
/// (the default transport, with SRTP required).
#[test]
fn clear_text_is_warned_at_start_and_tls_is_not() {
    const LINE: &str = "clear text: SIP over UDP carries signalling and samples unencrypted";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.yaml");
    std::fs::write(&cfg, config(dir.path(), 10)).unwrap();
    let mut agent = Agent::start(dir.path(), &cfg);
    agent.until("started", |s| running(s.state));
    agent.terminate();
    let log = agent.log();
    assert_eq!(log.matches(LINE).count(), 1, "{log}");
    assert!(log.contains("`sip.transport: tls`"), "{log}");

    let ca = sipsensor_testkit::pki::TestCa::new("daemon test CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.certificate_pem()).unwrap();
    // No `transport:`: TLS.
    std::fs::write(
        &cfg,
        config_with(
            dir.path(),
            10,
            &format!("  ca_file: {}\n", ca_file.display()),
        ),
    )
    .unwrap();
    let mut agent = Agent::start(dir.path(), &cfg);
    agent.until("started", |s| {
        running(s.state) && s.sensors.first().is_some_and(|x| x.reads >= 1)
    });
    agent.terminate();
    let log = agent.log();
    assert!(!log.contains("clear text"), "{log}");
    assert!(log.contains("running: 1 sensors"), "{log}");
}
