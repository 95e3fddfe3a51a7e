//! A `sipsensor-agent` process with one simulated sensor.

use crate::logs::StartLogs;
use sipsensor_agent::config::{self, ConfigFiles};
use sipsensor_agent::sensor::SensorKind;
use sipsensor_agent::sensor::sim::SimConfig;
use sipsensor_agent::status::{Status, client};
use sipsensor_testkit::ports::{LOCALHOST, free_udp_tcp_port};
use sipsensor_testkit::{ChildGuard, HarnessError, workspace_binary};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// What the agent is told.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The user part of its address of record (and its digest user name).
    pub user: String,
    /// The domain of its address of record.
    pub domain: String,
    /// The digest password in the secrets file; `None`: no secrets file.
    pub password: Option<String>,
    /// `sip.registrar`.
    pub registrar: Option<String>,
    /// `sip.collector`: whom it calls.
    pub collector: Option<String>,
    /// `sip.callers` with their passwords (secrets file): who may call it
    /// after the agent's digest challenge.
    pub callers: Vec<(String, String)>,
    /// `sip.transport: tcp` and `sip.listen: false`: no port open, called
    /// over its own connection to the registrar (RFC 5626).
    pub flow_only: bool,
    /// `sip.transport: tls`, `sip.listen: false` and `sip.ca_file`: the
    /// registrar must prove its name with a certificate from this CA;
    /// calls come over that TLS flow (RFC 5626, RFC 5923).
    pub tls_ca_file: Option<PathBuf>,
    pub expires_s: u32,
    /// `stream.rate` and `stream.samples_per_packet`.
    pub rate: u32,
    pub spp: u32,
    /// The simulated sensor's read interval (its waveform's time axis).
    pub interval_ms: u32,
    pub seed: u64,
    /// Channels of the simulated sensor: channel 0 is the checked wave,
    /// the others (same shape, their own noise) only make the stream, and
    /// so the spool, bigger.
    pub channels: u32,
    /// The address SIP and RTP bind (127.0.0.1; the agent's side of a
    /// network namespace, [`crate::netns`]).
    pub ip: IpAddr,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
    pub spool: SpoolSpec,
    /// Further top-level YAML sections, verbatim (switches of features
    /// this harness does not model).
    pub extra_yaml: String,
}

/// The `spool` section: `None` keeps the agent's default.
#[derive(Debug, Clone)]
pub struct SpoolSpec {
    pub enabled: bool,
    pub max_bytes: Option<u64>,
    pub max_age: Option<String>,
    pub fsync_interval_ms: Option<u32>,
}

impl Default for SpoolSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: None,
            max_age: None,
            fsync_interval_ms: None,
        }
    }
}

impl SpoolSpec {
    fn yaml(&self, dir: &Path) -> String {
        // Each agent its own spool, never a shared /var/lib one.
        let mut y = format!(
            "spool:\n  enabled: {}\n  dir: '{}'\n",
            self.enabled,
            dir.join("spool").display()
        );
        if let Some(b) = self.max_bytes {
            y.push_str(&format!("  max_bytes: {b}\n"));
        }
        if let Some(a) = &self.max_age {
            y.push_str(&format!("  max_age: {a}\n"));
        }
        if let Some(ms) = self.fsync_interval_ms {
            y.push_str(&format!("  fsync_interval_ms: {ms}\n"));
        }
        y
    }
}

impl AgentSpec {
    /// `user@domain` with a 20 Hz stream of two samples a packet, read
    /// every 50 ms (a sensor thread may be late by up to 150 ms on a
    /// loaded machine before an instant counts as missing).
    pub fn new(user: &str, domain: &str) -> Self {
        Self {
            user: user.into(),
            domain: domain.into(),
            password: None,
            registrar: None,
            collector: None,
            callers: Vec::new(),
            flow_only: false,
            tls_ca_file: None,
            expires_s: 600,
            rate: 20,
            spp: 2,
            interval_ms: 50,
            seed: 1,
            channels: 1,
            ip: LOCALHOST,
            netns: None,
            spool: SpoolSpec::default(),
            extra_yaml: String::new(),
        }
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    fn yaml(&self, dir: &Path, sip_port: u16) -> String {
        let mut sip = format!(
            "  bind: {}:{sip_port}\n  expires: {}\n",
            self.ip, self.expires_s
        );
        if let Some(r) = &self.registrar {
            sip.push_str(&format!("  registrar: '{r}'\n"));
        }
        if let Some(c) = &self.collector {
            sip.push_str(&format!("  collector: '{c}'\n"));
        }
        if let Some(ca_file) = &self.tls_ca_file {
            sip.push_str(&format!(
                "  transport: tls\n  listen: false\n  ca_file: '{}'\n",
                ca_file.display()
            ));
        } else if self.flow_only {
            sip.push_str("  transport: tcp\n  listen: false\n");
        } else {
            sip.push_str("  transport: udp\n");
        }
        if !self.callers.is_empty() {
            let names: Vec<&str> = self.callers.iter().map(|(n, _)| n.as_str()).collect();
            sip.push_str(&format!("  callers: [{}]\n", names.join(", ")));
        }
        // Channel 0's noise (±1000 in steps of 0.001) makes nearly every
        // sample index's value unique, so a stored value tells which
        // reading it was; the sine keeps it a waveform.
        let channels: String = (0..self.channels.max(1))
            .map(|i| {
                let name = if i == 0 {
                    "wave".to_string()
                } else {
                    format!("extra{i}")
                };
                format!(
                    "      - name: {name}\n        unit: V\n        scale: 0.001\n\
                     \x20       offset: 0\n        amplitude: 1000\n        period_ms: 3000\n        noise: 1000\n"
                )
            })
            .collect();
        format!(
            "identity:\n  aor: '{aor}'\nsip:\n{sip}stream:\n  rate: {rate}\n  samples_per_packet: {spp}\n\
             sensors:\n  - type: simulated\n    name: sim\n    seed: {seed}\n    interval_ms: {interval}\n\
             \x20   channels:\n{channels}\
             status:\n  socket: '{socket}'\nsecrets_file: '{secrets}'\nlogging:\n  level: debug\n\
             {spool}{extra}",
            aor = self.aor(),
            rate = self.rate,
            spp = self.spp,
            seed = self.seed,
            interval = self.interval_ms,
            socket = dir.join("agent.sock").display(),
            secrets = dir.join("secrets.yaml").display(),
            spool = self.spool.yaml(dir),
            extra = self.extra_yaml,
        )
    }
}

/// A running agent; stopped by PID when dropped.
#[derive(Debug)]
pub struct Agent {
    pub spec: AgentSpec,
    pub sip_port: u16,
    dir: TempDir,
    logs: StartLogs,
    child: Option<ChildGuard>,
}

impl Drop for Agent {
    /// Stopped while its directory exists: the guard quotes the running
    /// start's log when a scenario panics, and the earlier starts are
    /// quoted here.
    fn drop(&mut self) {
        let running = self.child.take().map(drop).is_some();
        if std::thread::panicking() {
            let earlier = self.logs.starts() - u32::from(running);
            if earlier > 0 {
                eprintln!("{}", self.logs.tails(&self.name(), earlier));
            }
        }
    }
}

impl Agent {
    /// Write its files and start it.
    pub fn start(spec: AgentSpec) -> Result<Self, HarnessError> {
        let mut agent = Self::new(spec)?;
        agent.launch()?;
        Ok(agent)
    }

    /// Write its files and pick its port, without starting it (a capture
    /// can then be told the port first).
    pub fn new(spec: AgentSpec) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-e2e-agent-")
            .tempdir()
            .map_err(|source| HarnessError::Io {
                what: "agent directory".into(),
                source,
            })?;
        let sip_port = free_udp_tcp_port(LOCALHOST).map_err(|source| HarnessError::Io {
            what: "a free SIP port".into(),
            source,
        })?;
        let agent = Self {
            sip_port,
            logs: StartLogs::new(dir.path(), "agent"),
            dir,
            child: None,
            spec,
        };
        write(
            &agent.config_path(),
            &agent.spec.yaml(agent.dir.path(), sip_port),
        )?;
        if let Some(pw) = agent.spec.password.clone() {
            agent.set_password(&pw)?;
        }
        Ok(agent)
    }

    /// Start the process (again, after [`Agent::stop`]). Another process
    /// on this shared machine may take its SIP port between the pick and
    /// the bind: then it starts again on a new one (a capture started
    /// for the old port misses its SIP, not Kamailio's side of it).
    pub fn launch(&mut self) -> Result<(), HarnessError> {
        for _ in 0..3 {
            self.spawn()?;
            let clash = crate::wait_for(Duration::from_secs(5), || {
                let log = self.logs.latest();
                if log.contains("cannot bind SIP") {
                    Some(true)
                } else {
                    log.contains("SIP on ").then_some(false)
                }
            });
            if clash != Some(true) {
                return Ok(());
            }
            self.kill9();
            self.sip_port = free_udp_tcp_port(LOCALHOST).map_err(|source| HarnessError::Io {
                what: "a free SIP port".into(),
                source,
            })?;
            write(
                &self.config_path(),
                &self.spec.yaml(self.dir.path(), self.sip_port),
            )?;
        }
        Err(HarnessError::Invalid {
            what: format!("agent {}", self.spec.user),
            detail: "its SIP port was taken three times".into(),
        })
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let bin = workspace_binary("sipsensor-agent")?;
        let mut cmd = match &self.spec.netns {
            // `ip netns exec` execs the agent: the PID stays the agent's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str()]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["run", "--no-override", "--config"])
            .arg(self.config_path());
        let log = self.logs.next_start();
        self.child = Some(ChildGuard::spawn(&self.name(), cmd, &log)?);
        Ok(())
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.yaml")
    }

    /// Where its spool lives.
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// Rewrite the secrets file (mode 0600) with `password`.
    pub fn set_password(&self, password: &str) -> Result<(), HarnessError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join("secrets.yaml");
        let mut text = format!("password: '{password}'\n");
        if !self.spec.callers.is_empty() {
            text.push_str("callers:\n");
            for (name, pw) in &self.spec.callers {
                text.push_str(&format!("  {name}: '{pw}'\n"));
            }
        }
        write(&path, &text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
            HarnessError::Io {
                what: "chmod secrets".into(),
                source,
            }
        })
    }

    /// The simulated sensor as configured (its waveform).
    pub fn sim(&self) -> SimConfig {
        let files = ConfigFiles::new(vec![self.config_path()], vec![]);
        let cfg = config::load(&files).unwrap_or_else(|e| panic!("agent config: {e:?}"));
        match &cfg.sensors[0].kind {
            SensorKind::Simulated(sim) => sim.clone(),
            other => panic!("not simulated: {other:?}"),
        }
    }

    /// How long this agent waits for RTCP from a collector that agreed no
    /// backfill before it calls again (docs/protocol.md 6.1).
    pub fn legacy_peer_timeout(&self) -> Duration {
        let files = ConfigFiles::new(vec![self.config_path()], vec![]);
        let cfg = config::load(&files).unwrap_or_else(|e| panic!("agent config: {e:?}"));
        let offered = sipsensor_agent::session::media::capabilities(&cfg)
            .unwrap_or_else(|e| panic!("agent stream: {e}"));
        sipsensor_agent::session::liveness::legacy_peer_timeout(cfg.media.peer_timeout, &offered)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.spec.interval_ms))
    }

    pub fn status(&self) -> Option<Status> {
        client::fetch(&self.socket(), Duration::from_secs(2)).ok()
    }

    /// Poll the status until `pred` holds, for at most `limit`; panics
    /// with the agent's log otherwise.
    pub fn wait_status(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Status) -> bool,
    ) -> Status {
        let mut last = None;
        let found = crate::wait_for(limit, || {
            let s = self.status()?;
            let ok = pred(&s);
            last = Some(s.clone());
            ok.then_some(s)
        });
        found.unwrap_or_else(|| {
            panic!(
                "agent {}: not {what} within {limit:?}; last status {last:?}\nlog:\n{}",
                self.spec.user,
                self.log_tail()
            )
        })
    }

    fn name(&self) -> String {
        format!("agent {}", self.spec.user)
    }

    /// Every line of every start so far.
    pub fn log(&self) -> String {
        self.logs.all()
    }

    /// The last lines of every start so far, for failure messages.
    pub fn log_tail(&self) -> String {
        self.logs.tails(&self.name(), self.logs.starts())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    /// Is it still running?
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().is_none())
    }

    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            crate::signal_pid(pid, signal);
        }
    }

    /// SIGKILL: no BYE, no last spool sync; the files stay for a restart.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.signal(libc::SIGKILL);
            c.wait_timeout(Duration::from_secs(10));
        }
    }

    /// SIGTERM (BYE, un-REGISTER), then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.stop(Duration::from_secs(5));
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), HarnessError> {
    std::fs::write(path, text).map_err(|source| HarnessError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}
