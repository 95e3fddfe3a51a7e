//! The load run over TLS and SRTP against a real collector process: every
//! sample sent is stored, no packet is lost and the collector refuses none
//! as SRTP (its keys and ours agree, no replay from our sealer); and the
//! refusal count the run reads does count: a sensor that replays packets
//! moves it.
//!
//! Needs the collector's binary next to this package's (a workspace
//! `cargo test` builds it); skips itself when it is not there.

use sipsensor_loadgen::load::{self, LoadOptions, credentials_yaml, metric_sum};
use sipsensor_loadgen::pki::{ThrowAwayPki, write_private};
use sipsensor_loadgen::pump::{Fault, MediaPump};
use sipsensor_loadgen::sensor::{SensorConfig, SimSensor, standard_stream};
use sipsensor_loadgen::sockets::SharedSocket;
use sipsensor_runtime::sip_transport::{TlsConfig, tls::client_config};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The collector process, killed when the test ends however it ends.
struct Collector(Child);

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn collector_binary() -> Option<PathBuf> {
    let path =
        Path::new(env!("CARGO_BIN_EXE_sipsensor-loadgen")).with_file_name("sipsensor-collector");
    path.is_file().then_some(path)
}

/// The TLS and HTTP addresses from the collector's start-up lines.
fn addresses(log: impl BufRead) -> (SocketAddr, SocketAddr) {
    let (mut tls, mut http) = (None, None);
    for line in log.lines().map_while(Result::ok) {
        if let Some(rest) = line.split("on http://").nth(1) {
            http = rest.split('/').next().and_then(|a| a.parse().ok());
        }
        if let Some(rest) = line.split(", TLS on ").nth(1) {
            tls = rest.split(' ').next().and_then(|a| a.parse().ok());
        }
        if let (Some(t), Some(h)) = (tls, http) {
            return (t, h);
        }
    }
    panic!("the collector exited without logging its TLS and HTTP addresses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_streams_over_tls_are_stored_whole_and_none_is_refused() {
    let Some(binary) = collector_binary() else {
        eprintln!("skipped: no sipsensor-collector binary next to sipsensor-loadgen's");
        return;
    };
    let dir = std::env::temp_dir().join(format!("sipsensor-loadgen-srtp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = ThrowAwayPki::write(&dir).unwrap();
    let sensors = 3;
    let credentials = dir.join("credentials.yaml");
    // One more for the replaying sensor.
    write_private(
        &credentials,
        &credentials_yaml(sensors + 1, "sensor-", "pw-"),
    )
    .unwrap();
    let config = dir.join("collector.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  url: \"sqlite://{db}\"\nhttp:\n  bind: 127.0.0.1:0\n\
             sip:\n  bind: 127.0.0.1:0\n  domain: example.net\n  credentials_file: {creds}\n  \
             control_socket: {sock}\n  tls:\n    bind: 127.0.0.1:0\n    certificate: {crt}\n    \
             private_key: {key}\nmedia:\n  rtp_bind: 127.0.0.1:0\n",
            db = dir.join("collector.db").display(),
            creds = credentials.display(),
            sock = dir.join("control.sock").display(),
            crt = pki.certificate.display(),
            key = pki.private_key.display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = BufReader::new(child.stderr.take().unwrap());
    let pid = child.id();
    let _collector = Collector(child);
    let (tls_addr, http) = addresses(log);

    let started = Instant::now();
    let tls = TlsConfig {
        client: Some(client_config(&pki.ca, None).unwrap()),
        ..TlsConfig::default()
    };
    let report = load::run(LoadOptions {
        collector: tls_addr,
        domain: "example.net".into(),
        sensors,
        prefix: "sensor-".into(),
        password_prefix: "pw-".into(),
        rate_hz: 10,
        channels: 3,
        samples_per_packet: 1,
        duration: Duration::from_secs(2),
        ips: vec!["127.0.0.1".parse().unwrap()],
        per_rtp_socket: 2,
        concurrency: 10,
        collector_pid: Some(pid),
        metrics: Some(http),
        pumps: 1,
        tls: Some(tls.clone()),
        backfill_sensors: 0,
        backfill: Default::default(),
        fleet: None,
        keep_session: None,
    })
    .await
    .unwrap();

    assert!(report.srtp);
    assert_eq!(
        (report.registered, report.streaming),
        (sensors, sensors),
        "{report:?}"
    );
    assert!(report.packets_sent >= 3 * 20, "{report:?}");
    assert_eq!(report.send_errors, 0, "{report:?}");
    // Loss from the collector's SRTCP receiver reports: read at all only
    // when our opener takes its key.
    assert_eq!(report.missing_reports, 0, "{report:?}");
    assert_eq!(report.packets_lost, 0, "{report:?}");
    assert_eq!(
        report.samples_stored,
        Some(report.samples_sent),
        "{report:?}"
    );
    assert_eq!(report.srtp_rejected, Some(0), "{report:?}");

    // The same sensors' kind, replaying two of its packets (the same
    // protected bytes again, RFC 3711 3.3.2).
    let pump = MediaPump::start().unwrap();
    let rtp = SharedSocket::bind("127.0.0.1".parse().unwrap()).unwrap();
    let uri = |user: &str| format!("sip:{user}{tls_addr};transport=tls");
    let replayer = SimSensor::start_over_tls(
        SensorConfig {
            aor: "sip:sensor-00003@example.net".into(),
            username: "sensor-00003".into(),
            password: "pw-00003".into(),
            sip_ip: "127.0.0.1".parse().unwrap(),
            registrar: Some(uri("")),
            collector: Some(uri("collector@")),
            expires: 600,
            capabilities: standard_stream(3, 10, 1),
            seed: 3,
        },
        tls,
        rtp,
        pump.clone(),
    )
    .await
    .unwrap();
    replayer.register().await.unwrap();
    let agreed = replayer.call().await.unwrap();
    assert!(
        agreed.srtp.is_some(),
        "the collector answered plain RTP over TLS"
    );
    replayer.fault(Fault::Duplicate(2)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = 0.0;
    while refused < 2.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        refused = metric_sum(http, "sipsensor_collector_srtp_rejected_total").unwrap_or(0.0);
    }
    replayer.hangup().await;
    pump.quit();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(refused, 2.0, "replays refused");
    assert!(started.elapsed() < Duration::from_secs(60));
}
