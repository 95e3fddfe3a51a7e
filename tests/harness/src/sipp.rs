//! SIPp (Debian `sip-tester`) runs, each bounded in time.

use crate::ports::{LOCALHOST, free_tcp_port, free_udp_port};
use crate::process::ChildGuard;
use crate::{HarnessError, io_err, tool_path};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SippTransport {
    Udp,
    Tcp,
}

/// One SIPp process.
#[derive(Debug, Clone)]
pub struct SippOptions {
    pub scenario: PathBuf,
    /// Where requests go; `None` for a UAS that only answers.
    pub remote: Option<SocketAddr>,
    pub local_ip: IpAddr,
    /// `None`: a free port.
    pub local_port: Option<u16>,
    pub transport: SippTransport,
    /// `-s`: the `[service]` keyword (the user part).
    pub service: Option<String>,
    /// `-au`/`-ap`: digest credentials for `[authentication]`.
    pub auth: Option<(String, String)>,
    /// `-key name value` keywords.
    pub keys: Vec<(String, String)>,
    /// Calls to place or answer (`-m`).
    pub calls: u32,
    /// Whole-run limit (`-timeout`, a failure when hit).
    pub timeout: Duration,
}

impl SippOptions {
    pub fn new(scenario: PathBuf) -> Self {
        Self {
            scenario,
            remote: None,
            local_ip: LOCALHOST,
            local_port: None,
            transport: SippTransport::Udp,
            service: None,
            auth: None,
            keys: Vec::new(),
            calls: 1,
            timeout: Duration::from_secs(10),
        }
    }

    pub fn key(mut self, name: &str, value: impl ToString) -> Self {
        self.keys.push((name.into(), value.to_string()));
        self
    }
}

/// What a finished run left behind.
#[derive(Debug)]
pub struct SippOutcome {
    /// SIPp's exit code: 0 all calls succeeded, 1 some failed, other: error.
    pub code: Option<i32>,
    /// `<log>` lines of the scenario (`-log_file`).
    pub log: String,
    /// Unexpected messages and errors (`-error_file`).
    pub errors: String,
    /// Every message sent and received (`-message_file`).
    pub messages: String,
    /// Screen and statistics output.
    pub screen: String,
}

impl SippOutcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Everything, for an assertion message.
    pub fn report(&self) -> String {
        format!(
            "exit code {:?}\n--- log ---\n{}\n--- errors ---\n{}\n--- messages ---\n{}\n--- screen (tail) ---\n{}",
            self.code,
            self.log,
            self.errors,
            self.messages,
            tail(&self.screen, 30)
        )
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running SIPp; stopped by PID on drop.
#[derive(Debug)]
pub struct Sipp {
    child: ChildGuard,
    local: SocketAddr,
    timeout: Duration,
    dir: TempDir,
}

impl Sipp {
    /// Start SIPp (for a UAS, before the traffic that reaches it).
    pub fn spawn(options: &SippOptions) -> Result<Self, HarnessError> {
        let binary = tool_path("sipp").ok_or(HarnessError::MissingTool {
            tool: "sipp".into(),
        })?;
        let port = match (options.local_port, options.transport) {
            (Some(port), _) => Ok(port),
            (None, SippTransport::Udp) => free_udp_port(options.local_ip),
            (None, SippTransport::Tcp) => free_tcp_port(options.local_ip),
        }
        .map_err(io_err("finding a free port for SIPp"))?;
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-sipp-")
            .tempdir()
            .map_err(io_err("creating a SIPp directory"))?;
        let file = |name: &str| dir.path().join(name);
        let mut cmd = Command::new(binary);
        // SIPp writes its default files next to the scenario otherwise.
        cmd.current_dir(dir.path())
            .arg("-sf")
            .arg(&options.scenario)
            .args(["-i", &options.local_ip.to_string()])
            .args(["-p", &port.to_string()])
            .args(["-m", &options.calls.to_string()])
            .args([
                "-timeout",
                &format!("{}s", options.timeout.as_secs().max(1)),
            ])
            .args(["-timeout_error", "-nostdin", "-trace_logs", "-log_file"])
            .arg(file("log"))
            .args(["-trace_err", "-error_file"])
            .arg(file("errors"))
            .args(["-trace_msg", "-message_file"])
            .arg(file("messages"))
            .args([
                "-t",
                match options.transport {
                    SippTransport::Udp => "u1",
                    SippTransport::Tcp => "t1",
                },
            ]);
        if let Some(service) = &options.service {
            cmd.args(["-s", service]);
        }
        if let Some((user, password)) = &options.auth {
            cmd.args(["-au", user, "-ap", password]);
        }
        for (name, value) in &options.keys {
            cmd.args(["-key", name, value]);
        }
        if let Some(remote) = options.remote {
            cmd.arg(remote.to_string());
        }
        let child = ChildGuard::spawn("sipp", cmd, &file("screen"))?;
        Ok(Self {
            child,
            local: SocketAddr::new(options.local_ip, port),
            timeout: options.timeout,
            dir,
        })
    }

    /// Start and wait for the run to end.
    pub fn run(options: &SippOptions) -> Result<SippOutcome, HarnessError> {
        Self::spawn(options)?.wait()
    }

    /// The address SIPp sends from and listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Wait until SIPp ends (its own `-timeout` plus 5 s at most).
    pub fn wait(mut self) -> Result<SippOutcome, HarnessError> {
        let limit = self.timeout + Duration::from_secs(5);
        let Some(status) = self.child.wait_timeout(limit) else {
            self.child.stop(Duration::from_secs(1));
            return Err(HarnessError::Timeout {
                name: "sipp".into(),
                seconds: limit.as_secs(),
                log: self.outcome(None).report(),
            });
        };
        Ok(self.outcome(status.code()))
    }

    fn outcome(&self, code: Option<i32>) -> SippOutcome {
        let read = |name: &str| {
            std::fs::read(self.dir.path().join(name))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        SippOutcome {
            code,
            log: read("log"),
            errors: read("errors"),
            messages: read("messages"),
            screen: self.child.log(),
        }
    }
}
