//! Shared by the SIP system tests: a collector running in this process on
//! loopback (SQLite in a temporary directory), and simulated sensors of
//! the load generator playing the agent side over real sockets.
#![allow(dead_code)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sipsensor_collector::app::{self, RunError};
use sipsensor_collector::config::Config;
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::sip::control::{self, Reply, Request};
use sipsensor_collector::storage::writer::{WriterHandle, WriterSummary};
use sipsensor_collector::storage::*;
use sipsensor_loadgen::pump::MediaPump;
use sipsensor_loadgen::sensor::{SensorConfig, SimSensor, standard_stream};
use sipsensor_loadgen::sockets::SharedSocket;
use sipsensor_loadgen::waveform;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod process;

pub const DOMAIN: &str = "example.net";

/// A collector in this process.
pub struct Collector {
    pub dir: tempfile::TempDir,
    pub sip: SocketAddr,
    pub rtp: SocketAddr,
    pub http: SocketAddr,
    pub storage: Arc<dyn Storage>,
    pub writer: WriterHandle,
    pub metrics: Arc<Metrics>,
    pub control: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<WriterSummary, RunError>>>,
}

/// The `sip:` section of a test config; `{dir}` is the temporary directory.
pub fn sip_section(extra: &str) -> String {
    format!(
        "sip:\n  bind: 127.0.0.1:0\n  domain: {DOMAIN}\n  credentials_file: '{{dir}}/credentials.yaml'\n  control_socket: '{{dir}}/control.sock'\n{extra}"
    )
}

pub async fn start(users: &[(&str, &str)], sip: &str) -> Collector {
    start_with_media(users, sip, "").await
}

/// [`start`] with more `media:` keys (each line indented by two spaces).
pub async fn start_with_media(users: &[(&str, &str)], sip: &str, media: &str) -> Collector {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let mut creds = String::from("users:\n");
    for (u, p) in users {
        creds.push_str(&format!("  {u}: '{p}'\n"));
    }
    let cred_path = dir.path().join("credentials.yaml");
    std::fs::write(&cred_path, creds).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cred_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let yaml = format!(
        "storage:\n  url: sqlite://{d}/collector.db\n  flush_interval_ms: 50\nhttp:\n  bind: 127.0.0.1:0\n{}media:\n  rtp_bind: 127.0.0.1:0\n{media}",
        sip.replace("{dir}", &d)
    );
    let config = Config::parse(&yaml, Path::new("test.yaml")).unwrap();
    let control = config.sip.control_socket.clone();
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app::run(
        config,
        async move {
            let _ = stop_rx.await;
        },
        move |s| {
            let _ = ready_tx.send((
                s.sip_addr.unwrap(),
                s.rtp_addr.unwrap(),
                s.storage.clone(),
                s.writer.clone(),
                s.metrics.clone(),
                s.http_addr,
            ));
        },
    ));
    let (sip, rtp, storage, writer, metrics, http) =
        tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .expect("collector start")
            .expect("collector start");
    Collector {
        dir,
        sip,
        rtp,
        http,
        storage,
        writer,
        metrics,
        control,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

impl Collector {
    pub fn uri(&self) -> String {
        format!("sip:collector@{}", self.sip)
    }

    pub fn registrar(&self) -> String {
        format!("sip:{}", self.sip)
    }

    /// Stops it (the SIGTERM path) and returns the writer's summary.
    pub async fn stop(&mut self) -> WriterSummary {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("collector stops")
            .unwrap()
            .unwrap()
    }

    /// A request over the control socket, as the command line sends it.
    pub async fn control(&self, req: Request) -> Reply {
        let path = self.control.clone();
        tokio::task::spawn_blocking(move || {
            control::request(&path, &req, control::CLIENT_TIMEOUT).unwrap()
        })
        .await
        .unwrap()
    }

    /// The value of a counter line in /metrics (0 when absent).
    pub fn metric(&self, line_prefix: &str) -> f64 {
        let text = self.metrics.render().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line_prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn rejected(&self, reason: &str) -> f64 {
        self.metric(&format!(
            "sipsensor_collector_packets_rejected_total{{reason=\"{reason}\"}}"
        ))
    }

    /// The stored sensor (waiting for the SIP side to create it).
    pub async fn sensor(&self, aor: &str) -> Sensor {
        for _ in 0..100 {
            if let Some(s) = self.storage.sensor_by_aor(aor).await.unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no sensor {aor} stored")
    }

    /// Waits until the stored state of `aor` is `state`.
    pub async fn wait_state(&self, aor: &str, state: SensorState) {
        let mut last = None;
        for _ in 0..100 {
            last = self
                .storage
                .sensor_by_aor(aor)
                .await
                .unwrap()
                .map(|s| s.state);
            if last == Some(state) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{aor} is {last:?}, not {state:?}");
    }

    /// Waits until the sensor's stored sample count stops at `want`.
    pub async fn wait_samples(&self, sensor: SensorId, want: usize) -> Vec<StoredSample> {
        let mut last = Vec::new();
        for _ in 0..100 {
            self.writer.flush().await.unwrap();
            last = all_samples(self.storage.as_ref(), sensor).await;
            if last.len() >= want {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }
}

/// A `sip.tls` listener for [`sip_section`] on a free loopback port, its
/// certificate (for 127.0.0.1) and the site CA written to `dir`: the
/// config lines, the port, and the CA that sensors are to trust.
pub fn tls_listener(dir: &Path) -> (String, u16, sipsensor_testkit::pki::TestCa) {
    let ca = sipsensor_testkit::pki::TestCa::new("site CA");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let issued = ca.issue(&["127.0.0.1"]);
    let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let port = sipsensor_testkit::ports::free_tcp_port(loopback).unwrap();
    let section = format!(
        "  tls:\n    bind: 127.0.0.1:{port}\n    certificate: {}\n    private_key: {}\n    ca_file: {}\n",
        write("c.crt", &issued.certificate),
        write("c.key", &issued.private_key),
        write("ca.crt", &ca.certificate_pem()),
    );
    (section, port, ca)
}

/// Every sample of a sensor, oldest first.
pub async fn all_samples(store: &dyn Storage, sensor: SensorId) -> Vec<StoredSample> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .samples(&SampleQuery {
                sensor,
                from_ns: i64::MIN,
                to_ns: TS_MAX,
                limit: 10_000,
                order: Order::Asc,
                after,
            })
            .await
            .unwrap();
        let n = page.len();
        after = page.last().map(|s| s.key());
        out.extend(page);
        if n < 10_000 {
            return out;
        }
    }
}

/// A simulated sensor `name` with its own RTP socket: 3 channels at 10 Hz.
pub async fn sensor(
    c: &Collector,
    pump: &MediaPump,
    name: &str,
    password: &str,
    seed: u64,
) -> SimSensor {
    sensor_as(
        c,
        pump,
        &format!("sip:{name}@{DOMAIN}"),
        name,
        password,
        seed,
    )
    .await
}

/// A simulated sensor with AOR `aor` authenticating as `user`.
pub async fn sensor_as(
    c: &Collector,
    pump: &MediaPump,
    aor: &str,
    user: &str,
    password: &str,
    seed: u64,
) -> SimSensor {
    let rtp = SharedSocket::bind("127.0.0.1".parse().unwrap()).unwrap();
    SimSensor::start(
        SensorConfig {
            aor: aor.into(),
            username: user.into(),
            password: password.into(),
            sip_ip: "127.0.0.1".parse().unwrap(),
            registrar: Some(c.registrar()),
            collector: Some(c.uri()),
            expires: 600,
            capabilities: standard_stream(3, 10, 1),
            seed,
        },
        rtp,
        pump.clone(),
    )
    .await
    .unwrap()
}

/// Checks every stored sample against the sensor's waveform: its tick from
/// its timestamp (within 1 µs of the tick's exact time), its value from the
/// tick. Returns the ticks seen per channel.
pub fn check_exact(samples: &[StoredSample], s: &SimSensor) -> Vec<Vec<u64>> {
    use std::sync::atomic::Ordering;
    let start = s.counters.start_unix_ns.load(Ordering::Relaxed);
    let clock = s.config.capabilities.clock_rate;
    let mut ticks = vec![Vec::new(); 3];
    for x in samples {
        let tick = waveform::tick_at(start, clock, x.ts_ns).unwrap();
        let exact = start as i128 + tick as i128 * 1_000_000_000 / clock as i128;
        assert!(
            (x.ts_ns as i128 - exact).abs() <= 1_000,
            "sample at {} is {} ns off its tick {tick}",
            x.ts_ns,
            x.ts_ns as i128 - exact
        );
        assert_eq!(
            x.raw,
            i64::from(waveform::raw(s.config.seed, usize::from(x.channel), tick)),
            "channel {} tick {tick}",
            x.channel
        );
        ticks[usize::from(x.channel)].push(tick);
    }
    ticks
}

/// Runs `f` on a fresh multi-thread runtime (the media thread blocks on the
/// writer from outside it).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
