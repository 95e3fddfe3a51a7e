//! A `sipsensor-collector` process, its stored data and its statistics.

use crate::logs::StartLogs;
use sipsensor_testkit::ports::{LOCALHOST, free_rtp_ports, free_tcp_port, free_udp_tcp_port};
use sipsensor_testkit::{ChildGuard, HarnessError, workspace_binary};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// How long a start may take on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the collector is told.
#[derive(Debug, Clone)]
pub struct CollectorSpec {
    /// `storage.url`; `None`: SQLite in its temporary directory.
    pub storage_url: Option<String>,
    /// `sip.identity`, e.g. `sip:collector@127.0.0.1`.
    pub identity: String,
    /// Register `identity` at this Kamailio (and send calls through it)
    /// with `password`; `None`: embedded registrar, no registration.
    pub kamailio: Option<SocketAddr>,
    pub password: String,
    /// Address the RTP socket binds (127.0.0.1; another loopback address
    /// when a relay takes 127.0.0.1's port).
    pub rtp_ip: IpAddr,
    /// `sip.advertise`.
    pub advertise: Option<IpAddr>,
    /// `None`: a free pair.
    pub rtp_port: Option<u16>,
    /// Run the embedded registrar (without `kamailio`): off behind a
    /// dispatcher, where Kamailio is the registrar.
    pub embedded_registrar: bool,
    /// `sip.tls`; with `kamailio` (then its TLS address), the registration
    /// and the calls go to Kamailio over TLS (`;transport=tls`).
    pub tls: Option<CollectorTls>,
    /// Address SIP binds (127.0.0.1; the host's side of a network
    /// namespace, [`crate::netns`], which is then trusted too).
    pub sip_ip: IpAddr,
    /// Further top-level YAML sections, verbatim (switches of features
    /// this harness does not model).
    pub extra_yaml: String,
    /// Further lines of the `media` section, verbatim and indented.
    pub media_yaml: String,
}

/// The PEM files of `sip.tls`.
#[derive(Debug, Clone)]
pub struct CollectorTls {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// The CA that Kamailio's certificate must chain to.
    pub ca_file: PathBuf,
}

impl CollectorSpec {
    pub fn new(identity: &str) -> Self {
        Self {
            storage_url: None,
            identity: identity.into(),
            kamailio: None,
            password: "collector-secret".into(),
            rtp_ip: LOCALHOST,
            advertise: None,
            rtp_port: None,
            embedded_registrar: true,
            tls: None,
            sip_ip: LOCALHOST,
            extra_yaml: String::new(),
            media_yaml: String::new(),
        }
    }

    /// The user part of the identity.
    pub fn user(&self) -> &str {
        self.identity
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("collector")
    }
}

/// One stored sample (channel 0 of the simulated sensor).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSample {
    pub ts_ns: i64,
    pub session: i64,
    pub channel: u16,
    pub seq: i64,
    pub index: u32,
    pub raw: i64,
    /// `live`, `resent` or `backfilled` (docs/protocol.md 11).
    pub source: String,
}

/// One stored gap.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub from_ns: i64,
    pub to_ns: i64,
    pub samples: i64,
    pub cause: String,
    pub session: Option<i64>,
}

/// A running collector; stopped by PID when dropped.
#[derive(Debug)]
pub struct Collector {
    pub spec: CollectorSpec,
    pub sip_port: u16,
    pub rtp_port: u16,
    pub http_port: u16,
    storage_url: String,
    dir: TempDir,
    logs: StartLogs,
    child: Option<ChildGuard>,
}

impl Drop for Collector {
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

fn io(what: &str) -> impl FnOnce(std::io::Error) -> HarnessError + '_ {
    move |source| HarnessError::Io {
        what: what.into(),
        source,
    }
}

impl Collector {
    /// Write its files and start it; returns once SIP is up.
    pub fn start(spec: CollectorSpec) -> Result<Self, HarnessError> {
        let mut c = Self::new(spec)?;
        c.launch()?;
        Ok(c)
    }

    /// Write its files and pick its ports, without starting it.
    pub fn new(spec: CollectorSpec) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-e2e-collector-")
            // SIPSENSOR_E2E_KEEP=1: the database and log stay for a look.
            .disable_cleanup(std::env::var_os("SIPSENSOR_E2E_KEEP").is_some())
            .tempdir()
            .map_err(io("collector directory"))?;
        let sip_port = free_udp_tcp_port(spec.sip_ip).map_err(io("a free SIP port"))?;
        let rtp_port = match spec.rtp_port {
            Some(p) => p,
            None => free_rtp_ports(spec.rtp_ip).map_err(io("free RTP ports"))?.0,
        };
        let http_port = free_tcp_port(LOCALHOST).map_err(io("a free HTTP port"))?;
        let storage_url = spec
            .storage_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/collector.db", dir.path().display()));
        let c = Self {
            spec,
            sip_port,
            rtp_port,
            http_port,
            storage_url,
            logs: StartLogs::new(dir.path(), "collector"),
            dir,
            child: None,
        };
        c.write_config()?;
        Ok(c)
    }

    fn write_config(&self) -> Result<(), HarnessError> {
        use std::os::unix::fs::PermissionsExt;
        let d = self.dir.path();
        let creds = d.join("credentials.yaml");
        std::fs::write(
            &creds,
            format!("users:\n  {}: '{}'\n", self.spec.user(), self.spec.password),
        )
        .map_err(io("writing credentials"))?;
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod credentials"))?;
        let trusted = match self.spec.sip_ip {
            IpAddr::V4(ip) if !ip.is_loopback() => {
                let [a, b, c, _] = ip.octets();
                format!("127.0.0.0/8, {a}.{b}.{c}.0/24")
            }
            _ => "127.0.0.0/8".to_string(),
        };
        let mut sip = format!(
            "sip:\n  bind: {}\n  identity: '{}'\n  credentials_file: '{}'\n\
             \x20 control_socket: '{}'\n  trusted_peers: [{trusted}]\n",
            self.sip_addr(),
            self.spec.identity,
            creds.display(),
            self.control_socket().display()
        );
        if let Some(ip) = self.spec.advertise {
            sip.push_str(&format!("  advertise: {ip}\n"));
        }
        if let Some(tls) = &self.spec.tls {
            sip.push_str(&format!(
                "  tls:\n    bind: 127.0.0.1:0\n    certificate: '{}'\n    private_key: '{}'\n\
                 \x20   ca_file: '{}'\n",
                tls.certificate.display(),
                tls.private_key.display(),
                tls.ca_file.display()
            ));
        }
        if let Some(k) = self.spec.kamailio {
            let params = if self.spec.tls.is_some() {
                ";transport=tls"
            } else {
                ""
            };
            sip.push_str(&format!(
                "  registrar: false\n  outbound_proxy: 'sip:{k}{params}'\n  register:\n\
                 \x20   registrar: 'sip:{k}{params}'\n    aor: '{}'\n    username: {}\n    expires: 600\n",
                self.spec.identity,
                self.spec.user()
            ));
        } else if !self.spec.embedded_registrar {
            sip.push_str("  registrar: false\n");
        }
        let yaml = format!(
            "storage:\n  url: '{}'\n  flush_interval_ms: 50\n  max_flush_interval_ms: 200\n\
             http:\n  bind: 127.0.0.1:{}\n{sip}media:\n  rtp_bind: {}\n{}{}",
            self.storage_url,
            self.http_port,
            SocketAddr::new(self.spec.rtp_ip, self.rtp_port),
            self.spec.media_yaml,
            self.spec.extra_yaml
        );
        std::fs::write(self.config_path(), yaml).map_err(io("writing the collector config"))
    }

    /// Start the process; returns once SIP is up.
    pub fn launch(&mut self) -> Result<(), HarnessError> {
        let mut cmd = Command::new(workspace_binary("sipsensor-collector")?);
        cmd.args(["run", "--config"]).arg(self.config_path());
        let log = self.logs.next_start();
        let mut child = ChildGuard::spawn(&self.name(), cmd, &log)?;
        // Ready when SIP is up (logged after storage, HTTP and media).
        child.wait_log(&["SIP on "], START_TIMEOUT)?;
        self.child = Some(child);
        Ok(())
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("collector.yaml")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.spec.sip_ip, self.sip_port)
    }

    /// `sip:127.0.0.1:PORT` (a dispatcher destination).
    pub fn sip_uri(&self) -> String {
        format!("sip:{}", self.sip_addr())
    }

    fn name(&self) -> String {
        format!("collector {}", self.spec.user())
    }

    /// Every log line of every start so far.
    pub fn log(&self) -> String {
        self.logs.all()
    }

    /// SIGKILL: no BYE, no last commit.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.signal(libc::SIGKILL);
            c.wait_timeout(Duration::from_secs(10));
        }
    }

    /// SIGTERM: BYE to every sensor, every row committed.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.stop(Duration::from_secs(15));
        }
    }

    /// `sipsensor-collector ARGS... --socket <control>`: (success, output).
    pub fn control(&self, args: &[&str]) -> (bool, String) {
        let bin = workspace_binary("sipsensor-collector").unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new(bin)
            .args(args)
            .arg("--socket")
            .arg(self.control_socket())
            .output()
            .unwrap_or_else(|e| panic!("running the collector CLI: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `export --kind KIND --format json` of one sensor: its rows (empty
    /// when the sensor is not stored yet).
    pub fn export(&self, aor: &str, kind: &str) -> Vec<serde_json::Value> {
        export(&self.storage_url, aor, kind)
    }

    pub fn samples(&self, aor: &str) -> Vec<StoredSample> {
        samples(&self.storage_url, aor)
    }

    pub fn gaps(&self, aor: &str) -> Vec<Gap> {
        gaps(&self.storage_url, aor)
    }

    /// `storage.url` (several collectors may share one).
    pub fn storage_url(&self) -> &str {
        &self.storage_url
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    /// GET `path` from the HTTP API: the body (panics on failure).
    pub fn http_get(&self, path: &str) -> String {
        http_get(SocketAddr::new(LOCALHOST, self.http_port), path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", self.log()))
    }

    /// Where received readings went, for failure messages: the writer's
    /// counters (stored, duplicate, dropped, deferred, errors), the repair
    /// counters, the gaps stored and the packets refused, by reason, as
    /// `/metrics` lines (`""` when it does not answer).
    pub fn storage_metrics(&self) -> String {
        const WANTED: [&str; 9] = [
            "samples_stored",
            "samples_duplicate",
            "rows_dropped",
            "late_rows_deferred",
            "storage_errors",
            "gaps_stored",
            "packets_rejected",
            "packets_recovered",
            "packets_given_up",
        ];
        let body =
            http_get(SocketAddr::new(LOCALHOST, self.http_port), "/metrics").unwrap_or_default();
        body.lines()
            .filter(|l| !l.starts_with('#') && WANTED.iter().any(|w| l.contains(w)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `/api/streams` as JSON.
    pub fn streams(&self) -> Vec<serde_json::Value> {
        match serde_json::from_str(&self.http_get("/api/streams")) {
            Ok(serde_json::Value::Array(a)) => a,
            other => panic!("/api/streams: {other:?}"),
        }
    }
}

/// `sipsensor-collector export` from storage `url`.
pub fn export(url: &str, aor: &str, kind: &str) -> Vec<serde_json::Value> {
    export_range(url, aor, kind, None)
}

/// [`export`] of the instants from `from_ns` (inclusive) to `to_ns`
/// (exclusive) only, or of all.
pub fn export_range(
    url: &str,
    aor: &str,
    kind: &str,
    range: Option<(i64, i64)>,
) -> Vec<serde_json::Value> {
    let bin = workspace_binary("sipsensor-collector").unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(bin);
    cmd.args(["export", "--storage", url, "--sensor", aor, "--kind", kind])
        .args(["--format", "json"]);
    if let Some((from, to)) = range {
        cmd.args(["--from", &rfc3339(from), "--to", &rfc3339(to)]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running export: {e}"));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("no sensor") {
            return Vec::new();
        }
        panic!("export {aor} {kind} failed: {err}");
    }
    match serde_json::from_slice(&out.stdout) {
        Ok(serde_json::Value::Array(rows)) => rows,
        other => panic!("export {aor} {kind}: not a JSON array: {other:?}"),
    }
}

fn int(row: &serde_json::Value, key: &str) -> i64 {
    row[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} in {row}"))
}

/// Every stored sample of `aor`, oldest first.
pub fn samples(url: &str, aor: &str) -> Vec<StoredSample> {
    samples_in(url, aor, None)
}

/// The stored samples of `aor` with instants in `range` (from inclusive,
/// to exclusive), or all of them.
pub fn samples_in(url: &str, aor: &str, range: Option<(i64, i64)>) -> Vec<StoredSample> {
    export_range(url, aor, "samples", range)
        .iter()
        .map(|r| StoredSample {
            ts_ns: int(r, "ts_ns"),
            session: int(r, "session"),
            channel: u16::try_from(int(r, "channel")).unwrap_or(u16::MAX),
            seq: int(r, "seq"),
            index: u32::try_from(int(r, "index")).unwrap_or(u32::MAX),
            raw: int(r, "raw"),
            source: r["source"].as_str().unwrap_or("live").to_string(),
        })
        .collect()
}

/// Every stored gap of `aor`.
pub fn gaps(url: &str, aor: &str) -> Vec<Gap> {
    export(url, aor, "gaps")
        .iter()
        .map(|r| Gap {
            from_ns: int(r, "from_ns"),
            to_ns: int(r, "to_ns"),
            samples: int(r, "samples"),
            cause: r["cause"].as_str().unwrap_or("?").to_string(),
            session: r["session"].as_i64(),
        })
        .collect()
}

/// ns since the Unix epoch as RFC 3339 in UTC with nanoseconds (what
/// `export --from/--to` take), by the civil-from-days algorithm of
/// H. Hinnant's "chrono-compatible low-level date algorithms".
pub fn rfc3339(ns: i64) -> String {
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

/// A plain HTTP/1.0 GET on loopback: the body of a 200.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.take(64 << 20)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{head}\n{body}"));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_instants_as_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // docs/protocol.md 11.2's example instant.
        assert_eq!(
            super::rfc3339(1_767_225_600_500_000_000),
            "2026-01-01T00:00:00.500000000Z"
        );
        assert_eq!(
            super::rfc3339(951_825_599_999_999_999),
            "2000-02-29T11:59:59.999999999Z"
        );
    }
}
