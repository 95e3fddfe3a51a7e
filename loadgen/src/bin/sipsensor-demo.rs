//! `make demo`: the whole system on this machine with embedded defaults.
//!
//! Starts the collector (embedded registrar, SQLite, web page) and a few
//! agents with simulated sensors on 127.0.0.1, prints the page's address
//! and the live values every second, and on Ctrl-C stops everything
//! (agents first: they hang up and unregister) and removes its files.
//!
//! The path is the secure one a site runs (issue #14): SIP over TLS and
//! SRTP, with a throw-away CA made here in place of the site's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use sipsensor_loadgen::pki::{ThrowAwayPki, write_private};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Run a collector and simulated sensors on this machine"
)]
struct Args {
    /// Number of simulated sensors.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    sensors: u16,
    /// Web page port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Stop by itself after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
}

/// Children stopped with SIGTERM, then SIGKILL, when dropped.
struct Processes(Vec<(String, Child)>);

impl Processes {
    fn stop(&mut self) {
        for (_, child) in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for (name, child) in &mut self.0 {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !matches!(child.try_wait(), Ok(Some(_))) {
                eprintln!("{name} did not stop in time; killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.0.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_udp_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_tcp_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --release -p {name}` (make demo does)",
            path.display()
        ))
    }
}

/// A GET on the collector's API; the body of a 200.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some(if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn collector_config(dir: &Path, http: u16, sip: u16, tls: u16, pki: &ThrowAwayPki) -> String {
    r#"storage:
  url: sqlite://DB
http:
  bind: 127.0.0.1:HTTP
sip:
  bind: 127.0.0.1:SIP
  domain: 127.0.0.1
  registrar: true
  credentials_file: CREDS
  control_socket: CONTROL
  trusted_peers: []
  tls:
    bind: 127.0.0.1:TLS_PORT
    certificate: CERTIFICATE
    private_key: PRIVATE_KEY
media:
  rtp_bind: 127.0.0.1:0
policy:
  mode: accept_as_offered
"#
    .replace("DB", &dir.join("collector.db").display().to_string())
    .replace("HTTP", &http.to_string())
    .replace("SIP", &sip.to_string())
    .replace("CREDS", &dir.join("credentials.yaml").display().to_string())
    .replace("CONTROL", &dir.join("collector.sock").display().to_string())
    .replace("TLS_PORT", &tls.to_string())
    .replace("CERTIFICATE", &pki.certificate.display().to_string())
    .replace("PRIVATE_KEY", &pki.private_key.display().to_string())
}

fn agent_config(dir: &Path, n: u16, tls: u16, ca: &Path) -> String {
    let user = format!("sensor-{n:04}");
    // Each sensor its own waveform: a different seed, level and period.
    r#"secrets_file: SECRETS
identity:
  aor: sip:USER@127.0.0.1
  display_name: Demo sensor N
sip:
  registrar: sip:127.0.0.1:SIP
  collector: sip:collector@127.0.0.1:SIP
  # The default transport, said here for the reader: the collector's
  # certificate is checked against the demo's CA, and no port is opened
  # (calls come over the agent's own TLS connection).
  transport: tls
  ca_file: CA_FILE
  listen: false
  bind: 127.0.0.1:0
  username: USER
media:
  # The default over TLS, said here: a stream runs only as SRTP.
  srtp: required
stream:
  rate: 10
  samples_per_packet: 1
sensors:
  - type: simulated
    name: sim
    seed: N
    interval_ms: 100
    channels:
      - {name: humidity, unit: '%RH', scale: 0.1, offset: HUM, amplitude: 8.0, period_ms: HPERIOD}
status:
  socket: SOCKET
logging:
  level: warn
"#
    .replace(
        "SECRETS",
        &dir.join(format!("{user}.secrets.yaml"))
            .display()
            .to_string(),
    )
    .replace("USER", &user)
    .replace("CA_FILE", &ca.display().to_string())
    .replace("SIP", &tls.to_string())
    .replace("TEMP", &(20 + n).to_string())
    .replace("TPERIOD", &(20_000 + 7_000 * u32::from(n)).to_string())
    .replace("HUM", &(40 + 5 * n).to_string())
    .replace("HPERIOD", &(45_000 + 11_000 * u32::from(n)).to_string())
    .replace(
        "SOCKET",
        &dir.join(format!("{user}.sock")).display().to_string(),
    )
    .replace("seed: N", &format!("seed: {n}"))
    .replace("sensor N", &format!("sensor {n}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipsensor-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let collector_bin = binary("sipsensor-collector")?;
    let agent_bin = binary("sipsensor-agent")?;
    let dir = std::env::temp_dir().join(format!("sipsensor-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = demo(args, &dir, &collector_bin, &agent_bin);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn demo(args: &Args, dir: &Path, collector_bin: &Path, agent_bin: &Path) -> Result<(), String> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let sip = free_udp_port().map_err(io("free port"))?;
    let tls = free_tcp_port().map_err(io("free port"))?;
    let pki = ThrowAwayPki::write(dir).map_err(|e| e.to_string())?;
    let http = if args.http_port == 0 {
        free_tcp_port().map_err(io("free port"))?
    } else {
        args.http_port
    };
    let mut users = String::from("users:\n");
    for n in 1..=args.sensors {
        let password = format!("demo-password-{n}-{}", std::process::id());
        users.push_str(&format!("  sensor-{n:04}: \"{password}\"\n"));
        write_private(
            &dir.join(format!("sensor-{n:04}.secrets.yaml")),
            &format!("password: \"{password}\"\n"),
        )
        .map_err(io("secrets file"))?;
        write_private(
            &dir.join(format!("sensor-{n:04}.yaml")),
            &agent_config(dir, n, tls, &pki.ca),
        )
        .map_err(io("agent config"))?;
    }
    write_private(&dir.join("credentials.yaml"), &users).map_err(io("credentials"))?;
    let collector_yaml = dir.join("collector.yaml");
    write_private(
        &collector_yaml,
        &collector_config(dir, http, sip, tls, &pki),
    )
    .map_err(io("collector config"))?;

    let mut processes = Processes(Vec::new());
    let log = |name: &str| std::fs::File::create(dir.join(format!("{name}.log")));
    // Own process groups: the terminal's Ctrl-C (SIGINT to the whole
    // foreground group) reaches only the demo, which then stops the agents
    // before the collector, so they hang up and unregister first.
    let collector = Command::new(collector_bin)
        .process_group(0)
        .arg("run")
        .arg("--config")
        .arg(&collector_yaml)
        .stdout(Stdio::null())
        .stderr(log("collector").map_err(io("log"))?)
        .spawn()
        .map_err(io("starting the collector"))?;
    processes.0.push(("collector".into(), collector));
    let http_addr = SocketAddr::from(([127, 0, 0, 1], http));
    let ready = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        get(http_addr, "/healthz").is_some()
    });
    if !ready {
        let log = std::fs::read_to_string(dir.join("collector.log")).unwrap_or_default();
        return Err(format!("the collector did not start:\n{log}"));
    }
    // Agents stop first on the way out: insert them before the collector.
    for n in 1..=args.sensors {
        let name = format!("sensor-{n:04}");
        let child = Command::new(agent_bin)
            .process_group(0)
            .args(["run", "--no-override", "--config"])
            .arg(dir.join(format!("{name}.yaml")))
            .stdout(Stdio::null())
            .stderr(log(&name).map_err(io("log"))?)
            .spawn()
            .map_err(io("starting an agent"))?;
        processes.0.insert(0, (name, child));
    }

    println!();
    println!(
        "  sipsensor demo: a collector with its registrar and {} simulated sensors, over TLS + SRTP",
        args.sensors
    );
    println!("  live charts:    http://127.0.0.1:{http}/");
    println!("  JSON API:       http://127.0.0.1:{http}/api/streams   metrics: /metrics");
    println!(
        "  {}",
        collector_says_tls(dir).unwrap_or_else(|| "collector: no TLS listener logged".into())
    );
    println!(
        "  CA (throw-away): {}     logs: {}",
        pki.ca.display(),
        dir.display()
    );
    println!("  Ctrl-C stops everything.");
    println!();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        let handler = move || stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("runtime"))?;
        std::thread::spawn(move || {
            runtime.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            handler();
        });
    }
    let started = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if args.seconds > 0 && started.elapsed() >= Duration::from_secs(args.seconds) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        print_streams(http_addr, args.sensors);
        if let Some(line) = clear_text_logged(dir, &processes) {
            return Err(format!(
                "the demo should run on TLS and SRTP only, but: {line}"
            ));
        }
        for (name, child) in &mut processes.0 {
            if let Ok(Some(status)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
                return Err(format!("{name} exited ({status}):\n{log}"));
            }
        }
    }
    println!("\nstopping: sensors hang up and unregister, then the collector flushes");
    processes.stop();
    println!("stopped");
    Ok(())
}

/// The collector's own start-up line naming its TLS listener, shortened:
/// what the demo shows is what the collector says it runs.
fn collector_says_tls(dir: &Path) -> Option<String> {
    let log = std::fs::read_to_string(dir.join("collector.log")).ok()?;
    let line = log.lines().find(|l| l.contains("SIP on "))?;
    let tls = line.split(", TLS on ").nth(1)?.split(' ').next()?;
    Some(format!(
        "collector:      SIP over TLS on {tls} (from its log); the sensors require SRTP"
    ))
}

/// A clear-text warning in any log (a collector without TLS, a sensor on
/// UDP): a demo that does not do what it says is an error.
fn clear_text_logged(dir: &Path, processes: &Processes) -> Option<String> {
    processes.0.iter().find_map(|(name, _)| {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).ok()?;
        log.lines()
            .find(|l| l.contains("clear text"))
            .map(|l| format!("{name}: {l}"))
    })
}

fn print_streams(http: SocketAddr, sensors: u16) {
    let Some(body) = get(http, "/api/streams") else {
        println!("(collector not answering)");
        return;
    };
    let Ok(streams) = serde_json::from_str::<serde_json::Value>(&body) else {
        return;
    };
    let list = streams
        .as_array()
        .or_else(|| streams.get("streams").and_then(|s| s.as_array()))
        .cloned()
        .unwrap_or_default();
    // Each sensor's config requires SRTP and TLS: a stream the collector
    // lists runs encrypted, or it would not run at all.
    let mut line = format!("{:>2}/{sensors} streaming over TLS+SRTP |", list.len());
    for s in &list {
        let aor = s.get("aor").and_then(|a| a.as_str()).unwrap_or("?");
        let user = aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or(aor);
        let values: Vec<String> = s
            .get("last_values")
            .and_then(|v| v.as_array())
            .map(|vs| {
                vs.iter()
                    .map(|v| {
                        format!(
                            "{:.2} {}",
                            v.get("value").and_then(|x| x.as_f64()).unwrap_or(f64::NAN),
                            v.get("unit").and_then(|u| u.as_str()).unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let packets = s.get("packets").and_then(|p| p.as_u64()).unwrap_or(0);
        line.push_str(&format!(
            " {user}: {} ({packets} pkts) |",
            values.join(", ")
        ));
    }
    println!("{line}");
}
