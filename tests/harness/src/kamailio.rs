//! Kamailio with the repository's configuration, on loopback.

use crate::ports::{LOCALHOST, free_tcp_port, free_udp_tcp_port};
use crate::process::ChildGuard;
use crate::{HarnessError, io_err, repo_root, tool_path};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;

/// How long Kamailio gets to answer its first OPTIONS.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts with a fresh port when another process took ours first.
const START_ATTEMPTS: usize = 3;

/// What to start.
#[derive(Debug, Clone)]
pub struct KamailioOptions {
    /// (username, password) rows of the subscriber table.
    pub subscribers: Vec<(String, String)>,
    /// Listen address; UDP and TCP on the same port.
    pub ip: IpAddr,
    /// `None`: a free port.
    pub port: Option<u16>,
    /// `SIP_DOMAIN`: a domain served besides the listen address.
    pub domain: Option<String>,
    /// Collector URIs for the dispatcher set (turns on `WITH_DISPATCHER`).
    pub dispatcher: Vec<String>,
    /// Further `-A` defines, e.g. `NAT_PING_INTERVAL=5`.
    pub defines: Vec<String>,
    /// Worker processes per socket (Kamailio's `-n`).
    pub children: u32,
    /// Configuration file; default `deploy/kamailio/kamailio.cfg`.
    pub config: Option<PathBuf>,
    /// SIP over TLS too, on its own free port (`WITH_TLS`).
    pub tls: Option<KamailioTls>,
}

/// PEM files for Kamailio's tls module (Debian `kamailio-tls-modules`).
#[derive(Debug, Clone)]
pub struct KamailioTls {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// The CA that servers Kamailio connects to must chain to.
    pub ca_file: PathBuf,
}

impl Default for KamailioOptions {
    fn default() -> Self {
        Self {
            subscribers: Vec::new(),
            ip: LOCALHOST,
            port: None,
            domain: None,
            dispatcher: Vec::new(),
            defines: Vec::new(),
            children: 2,
            config: None,
            tls: None,
        }
    }
}

impl KamailioOptions {
    pub fn with_subscriber(mut self, user: &str, password: &str) -> Self {
        self.subscribers.push((user.into(), password.into()));
        self
    }
}

/// A running Kamailio; stopped (by PID) on drop, its files removed.
#[derive(Debug)]
pub struct Kamailio {
    child: Option<ChildGuard>,
    options: KamailioOptions,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    dir: TempDir,
}

impl Kamailio {
    /// Write the database and start Kamailio, waiting until it answers.
    pub fn start(options: KamailioOptions) -> Result<Self, HarnessError> {
        let mut dir = tempfile::Builder::new()
            .prefix("sipsensor-kamailio-")
            .tempdir()
            .map_err(io_err("creating a temporary directory"))?;
        write_database(dir.path(), &options)?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = match options.port {
                Some(port) => port,
                None => free_udp_tcp_port(options.ip).map_err(io_err("finding a free port"))?,
            };
            let addr = SocketAddr::new(options.ip, port);
            let tls_addr = match &options.tls {
                Some(_) => Some(SocketAddr::new(
                    options.ip,
                    free_tcp_port(options.ip).map_err(io_err("finding a free TLS port"))?,
                )),
                None => None,
            };
            let mut kamailio = Self {
                child: None,
                options: options.clone(),
                addr,
                tls_addr,
                dir,
            };
            match kamailio.launch() {
                Ok(()) => return Ok(kamailio),
                Err(err) => {
                    // Take the directory back; the failed process is stopped.
                    let Kamailio {
                        child, dir: kept, ..
                    } = kamailio;
                    drop(child);
                    dir = kept;
                    last_error = Some(err);
                    if options.port.is_some() {
                        break;
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| HarnessError::Invalid {
            what: "Kamailio start".into(),
            detail: "no attempt made".into(),
        }))
    }

    fn launch(&mut self) -> Result<(), HarnessError> {
        let binary = tool_path("kamailio").ok_or(HarnessError::MissingTool {
            tool: "kamailio".into(),
        })?;
        let config = self
            .options
            .config
            .clone()
            .unwrap_or_else(|| repo_root().join("deploy/kamailio/kamailio.cfg"));
        let dir = self.dir.path();
        let mut cmd = Command::new(binary);
        let host_port = |addr: SocketAddr| match addr.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        };
        let listen = host_port(self.addr);
        cmd.args(["-DD", "-E", "-f"])
            .arg(&config)
            .args(["-n", &self.options.children.to_string()])
            .args(["-m", "32", "-M", "4"])
            .args(["-Y"])
            .arg(dir)
            .args([
                "-l",
                &format!("udp:{listen}"),
                "-l",
                &format!("tcp:{listen}"),
            ])
            .args([
                "-A",
                &format!("DBURL=\"text://{}\"", dir.join("db").display()),
            ])
            .args([
                "-A",
                &format!("CTL_SOCKET=\"unix:{}\"", dir.join("ctl").display()),
            ])
            .args([
                "-A",
                &format!("RPC_FIFO=\"{}\"", dir.join("rpc.fifo").display()),
            ]);
        if let Some(domain) = &self.options.domain {
            cmd.args(["-A", &format!("SIP_DOMAIN=\"{domain}\"")]);
        }
        if !self.options.dispatcher.is_empty() {
            cmd.args(["-A", "WITH_DISPATCHER"]).args([
                "-A",
                &format!(
                    "DISPATCHER_LIST=\"{}\"",
                    dir.join("dispatcher.list").display()
                ),
            ]);
        }
        for define in &self.options.defines {
            cmd.args(["-A", define]);
        }
        if let (Some(tls), Some(addr)) = (&self.options.tls, self.tls_addr) {
            let config = dir.join("tls.cfg");
            write_tls_config(&config, tls)?;
            cmd.args(["-l", &format!("tls:{}", host_port(addr))])
                .args(["-A", "WITH_TLS"])
                .args(["-A", &format!("TLS_CONFIG=\"{}\"", config.display())]);
        }
        let mut child = ChildGuard::spawn("kamailio", cmd, &dir.join("kamailio.log"))?;
        let ready = wait_ready(&mut child, self.addr);
        self.child = Some(child);
        ready
    }

    /// Where it listens, UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it listens for TLS, when started with [`KamailioOptions::tls`].
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The SIP domain of its users: `SIP_DOMAIN` or the listen address.
    pub fn domain(&self) -> String {
        match (&self.options.domain, self.addr.ip()) {
            (Some(domain), _) => domain.clone(),
            (None, IpAddr::V6(ip)) => format!("[{ip}]"),
            (None, ip) => ip.to_string(),
        }
    }

    /// `sip:user@domain`.
    pub fn aor(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.domain())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.child.as_ref().map(ChildGuard::log).unwrap_or_default()
    }

    /// Add or replace a subscriber while it runs (db_text reloads the
    /// changed file on the next lookup).
    pub fn set_subscriber(&mut self, user: &str, password: &str) -> Result<(), HarnessError> {
        self.options.subscribers.retain(|(u, _)| u != user);
        self.options
            .subscribers
            .push((user.to_string(), password.to_string()));
        write_subscribers(self.dir.path(), &self.options.subscribers)
    }

    /// Stop it (SIGTERM, then SIGKILL after 3 s). Bindings are lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.stop(Duration::from_secs(3));
        }
    }

    /// Stop and start again on the same address with the same database.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        self.launch()
    }
}

/// OPTIONS to the proxy itself until it answers 200 (or exits).
fn wait_ready(child: &mut ChildGuard, addr: SocketAddr) -> Result<(), HarnessError> {
    let any = SocketAddr::new(addr.ip(), 0);
    let socket = UdpSocket::bind(any).map_err(io_err("binding a probe socket"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(io_err("setting a probe timeout"))?;
    let local = socket.local_addr().map_err(io_err("probe address"))?;
    let host = |a: SocketAddr| match a {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        if child.try_wait().is_some() {
            return Err(child.exited_error());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(HarnessError::NotReady {
                name: "kamailio".into(),
                seconds: READY_TIMEOUT.as_secs(),
                log: child.log_tail(),
            });
        }
        let probe = format!(
            "OPTIONS sip:{dst} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {src};branch=z9hG4bKready{attempt};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@{src}>;tag=ready\r\n\
             To: <sip:{dst}>\r\n\
             Call-ID: ready-{attempt}@harness\r\n\
             CSeq: {attempt} OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            dst = host(addr),
            src = host(local),
        );
        if socket.send_to(probe.as_bytes(), addr).is_ok()
            && let Ok((n, _)) = socket.recv_from(&mut buf)
            && buf[..n].starts_with(b"SIP/2.0 200")
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tls module's profiles: as a server it asks for no client
/// certificate (digest authenticates users); as a client it verifies the
/// server against the CA.
fn write_tls_config(path: &Path, tls: &KamailioTls) -> Result<(), HarnessError> {
    let text = format!(
        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
         certificate = {cert}\nprivate_key = {key}\nca_list = {ca}\n\n\
         [client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n\
         ca_list = {ca}\n",
        cert = tls.certificate.display(),
        key = tls.private_key.display(),
        ca = tls.ca_file.display(),
    );
    std::fs::write(path, text).map_err(io_err("writing tls.cfg"))
}

fn write_database(dir: &Path, options: &KamailioOptions) -> Result<(), HarnessError> {
    let db = dir.join("db");
    std::fs::create_dir_all(&db).map_err(io_err("creating the db_text directory"))?;
    let template = repo_root().join("deploy/kamailio/db");
    std::fs::copy(template.join("version"), db.join("version"))
        .map_err(io_err(format!("copying {}/version", template.display())))?;
    write_subscribers(dir, &options.subscribers)?;
    if !options.dispatcher.is_empty() {
        // dispatcher.list: "setid destination" per line (set 1, see the cfg).
        let list: String = options
            .dispatcher
            .iter()
            .map(|uri| format!("1 {uri}\n"))
            .collect();
        std::fs::write(dir.join("dispatcher.list"), list)
            .map_err(io_err("writing dispatcher.list"))?;
    }
    Ok(())
}

/// The subscriber table: the template's header plus one row per user.
fn write_subscribers(dir: &Path, subscribers: &[(String, String)]) -> Result<(), HarnessError> {
    let template = repo_root().join("deploy/kamailio/db/subscriber");
    let mut table = std::fs::read_to_string(&template)
        .map_err(io_err(format!("reading {}", template.display())))?;
    for (id, (user, password)) in subscribers.iter().enumerate() {
        // id:username:domain:password:ha1:ha1b (domain and hashes unused).
        table.push_str(&format!(
            "{}:{}::{}::\n",
            id + 1,
            db_text_escape(user)?,
            db_text_escape(password)?
        ));
    }
    // Write then rename, so a running Kamailio never reads half a file.
    let db = dir.join("db");
    let path = db.join("subscriber");
    let tmp = db.join(".subscriber.new");
    std::fs::write(&tmp, table).map_err(io_err("writing the subscriber table"))?;
    // db_text reloads a table whose mtime grew; mtimes it compares are in
    // whole seconds, so a rewrite within the same second must move ahead.
    if let Ok(old) = std::fs::metadata(&path).and_then(|m| m.modified()) {
        let newer = std::cmp::max(SystemTime::now(), old + Duration::from_secs(1));
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(newer))
            .map_err(io_err("dating the subscriber table"))?;
    }
    std::fs::rename(&tmp, &path).map_err(io_err("replacing the subscriber table"))
}

/// db_text field escaping: ':' separates fields, '\\' escapes.
fn db_text_escape(value: &str) -> Result<String, HarnessError> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(HarnessError::Invalid {
            what: "subscriber field".into(),
            detail: format!("{value:?} is empty or has control characters"),
        });
    }
    Ok(value.replace('\\', "\\\\").replace(':', "\\:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(db_text_escape("a:b\\c").unwrap(), "a\\:b\\\\c");
        assert!(db_text_escape("").is_err());
        assert!(db_text_escape("a\nb").is_err());
    }

    #[test]
    fn subscriber_table_rows() {
        let dir = tempfile::tempdir().unwrap();
        let options = KamailioOptions::default()
            .with_subscriber("alice", "pa:ss")
            .with_subscriber("bob", "x");
        write_database(dir.path(), &options).unwrap();
        let table = std::fs::read_to_string(dir.path().join("db/subscriber")).unwrap();
        let rows: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows, ["1:alice::pa\\:ss::", "2:bob::x::"]);
        assert!(dir.path().join("db/version").exists());
    }
}
