//! Shared by the fleet-update system tests: a sensor played by the protocol
//! crate's user agent (the notifier side of docs/protocol.md 12.1: it
//! registers, calls the collector, accepts its SUBSCRIBE and NOTIFYs
//! states), and `sipsensor-collector` as a child process with an
//! `update:` section and a published bundle.
#![allow(dead_code)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sipsensor_loadgen::sensor::standard_stream;
use sipsensor_protocol::fleet::{self, FleetWant};
use sipsensor_protocol::{
    IdGenerator, LiteralsOnly, LocalEndpoint, LocalMedia, LocalSdp, NotifyState, Password,
    RegistrationConfig, RegistrationEvent, StreamRole, SubscriptionEvent, SubscriptionId,
    Transport, UaConfig, UaEvent, UserAgent, make_offer,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use crate::sip_support::process::{Guard, spawn_run};
pub use sipsensor_testkit::rauc::{available as have_rauc, bundle, keys};

pub const DOMAIN: &str = "example.net";
pub const WAIT: Duration = Duration::from_secs(20);

/// What a sensor's user agent told the test.
#[derive(Debug)]
pub enum Heard {
    Registered,
    /// Our INVITE was answered: a stream session is up.
    Answered,
    /// The collector subscribed (or refreshed) with this want (`None`:
    /// report only).
    Want(Option<FleetWant>),
    SubscriptionEnded,
}

/// A sensor on UDP loopback whose notifier answers every SUBSCRIBE with
/// its current state.
pub struct FleetSensor {
    pub aor: String,
    pub ua: UaHandle,
    pub heard: mpsc::UnboundedReceiver<Heard>,
    state: Arc<Mutex<Vec<u8>>>,
    subscription: Arc<Mutex<Option<SubscriptionId>>>,
    local: LocalEndpoint,
}

/// A NOTIFY body (12.3).
pub fn state(version: &str, update: &str, target: Option<&str>, reason: Option<&str>) -> Vec<u8> {
    let mut body = format!(
        "version={version}\nagent=0.1.0\ncompatible=sipsensor-test\nslot=A\nupdate={update}\n"
    );
    if let Some(t) = target {
        body.push_str(&format!("target={t}\n"));
    }
    if let Some(r) = reason {
        body.push_str(&format!("reason={r}\n"));
    }
    body.into_bytes()
}

impl FleetSensor {
    pub async fn start(user: &str, password: &str, version: &str) -> FleetSensor {
        let net = NetConfig {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            ..NetConfig::default()
        };
        let (network, incoming) = Network::bind(net).await.unwrap();
        let addr = network.local_addr(Transport::Udp).unwrap();
        let local = LocalEndpoint::new(Transport::Udp, addr);
        let aor = format!("sip:{user}@{DOMAIN}");
        let mut config = UaConfig::new(local.clone(), aor.clone());
        config.credentials = Some((user.into(), Password::new(password)));
        config.event_packages = vec![fleet::event_package(true)];
        let ua =
            UserAgent::new(config, IdGenerator::from_entropy(), Box::new(LiteralsOnly)).unwrap();
        let (ua, mut events, _task) = ua_driver::spawn(ua, network, incoming);
        let state = Arc::new(Mutex::new(self::state(version, "idle", None, None)));
        let subscription = Arc::new(Mutex::new(None));
        let (tx, heard) = mpsc::unbounded_channel();
        let (handle, body, current) = (ua.clone(), state.clone(), subscription.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let heard = match event {
                    UaEvent::Registration(RegistrationEvent::Registered { .. }) => {
                        Heard::Registered
                    }
                    UaEvent::Answered { .. } => Heard::Answered,
                    UaEvent::Subscription(SubscriptionEvent::Incoming {
                        subscription,
                        body: want,
                        ..
                    }) => {
                        *current.lock().unwrap() = Some(subscription);
                        let notify = body.lock().unwrap().clone();
                        handle
                            .with(move |ua, now| {
                                ua.accept_subscription(subscription, 3600, notify, now)
                            })
                            .await
                            .unwrap()
                            .unwrap();
                        Heard::Want(FleetWant::parse(&want).unwrap())
                    }
                    UaEvent::Subscription(SubscriptionEvent::Refreshed { body: want, .. }) => {
                        Heard::Want(FleetWant::parse(&want).unwrap())
                    }
                    UaEvent::Subscription(SubscriptionEvent::Terminated { .. }) => {
                        Heard::SubscriptionEnded
                    }
                    _ => continue,
                };
                let _ = tx.send(heard);
            }
        });
        FleetSensor {
            aor,
            ua,
            heard,
            state,
            subscription,
            local,
        }
    }

    /// The next thing heard that `pick` takes, skipping the rest.
    pub async fn wait<T>(&mut self, what: &str, mut pick: impl FnMut(Heard) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let heard = tokio::time::timeout_at(deadline, self.heard.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: no {what} within {WAIT:?}", self.aor))
                .unwrap();
            if let Some(t) = pick(heard) {
                return t;
            }
        }
    }

    pub async fn register(&mut self, collector: SocketAddr) {
        let (aor, local) = (self.aor.clone(), self.local.clone());
        let user = aor.trim_start_matches("sip:").split('@').next().unwrap();
        let mut reg = RegistrationConfig::new(
            format!("sip:{collector}"),
            aor.clone(),
            user,
            Password::new(format!("pw-{user}")),
            local,
        );
        reg.expires = 600;
        self.ua
            .with(move |ua, now| ua.register(reg, now))
            .await
            .unwrap()
            .unwrap();
        self.wait("registration", |h| {
            matches!(h, Heard::Registered).then_some(())
        })
        .await;
    }

    /// Calls the collector: its answer starts a stream session, which
    /// makes the collector subscribe (12.1). Returns the want it sent.
    pub async fn call(&mut self, collector: SocketAddr) -> Option<FleetWant> {
        let mut ids = IdGenerator::from_entropy();
        let rtp = "127.0.0.1:9".parse().unwrap();
        let mut origin = LocalSdp::new("sensor", "127.0.0.1".parse().unwrap(), &mut ids);
        let mut media = LocalMedia::new(rtp);
        media.ssrc = Some(ids.u32());
        let offer = make_offer(
            &standard_stream(3, 10, 1),
            StreamRole::Sender,
            &media,
            &mut origin,
        )
        .unwrap()
        .to_bytes();
        let to = format!("sip:collector@{collector}");
        self.ua
            .with(move |ua, now| ua.call(&to, offer, now))
            .await
            .unwrap()
            .unwrap();
        self.wait("answer", |h| matches!(h, Heard::Answered).then_some(()))
            .await;
        self.next_want().await
    }

    /// The next want the collector sends (in a SUBSCRIBE or a refresh).
    pub async fn next_want(&mut self) -> Option<FleetWant> {
        self.wait("SUBSCRIBE", |h| match h {
            Heard::Want(w) => Some(w),
            _ => None,
        })
        .await
    }

    /// Reports `body` in a NOTIFY (and in the first NOTIFY of the next
    /// subscription).
    pub async fn report(&self, body: Vec<u8>) {
        *self.state.lock().unwrap() = body.clone();
        let sub = self.subscription.lock().unwrap().expect("subscribed to");
        self.ua
            .with(move |ua, now| ua.notify(sub, body, NotifyState::Active, now))
            .await
            .unwrap()
            .unwrap();
    }
}

/// SIGTERM to the collector, and its exit.
pub fn stop(mut guard: Guard) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(guard.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if guard.0.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the collector did not stop on SIGTERM");
}

/// Writes `dir/collector.yaml` (users s1, s2 with passwords pw-s1, pw-s2;
/// SQLite in `dir`; bundles at `https://127.0.0.1:8443`).
pub fn config(dir: &Path, keys: &Path) -> PathBuf {
    let d = dir.display();
    let credentials = dir.join("credentials.yaml");
    std::fs::write(&credentials, "users: {s1: pw-s1, s2: pw-s2}\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = dir.join("collector.yaml");
    std::fs::write(
        &path,
        format!(
            "storage:\n  url: sqlite://{d}/c.db\n  flush_interval_ms: 50\n\
             http:\n  bind: 127.0.0.1:0\n\
             sip:\n  bind: 127.0.0.1:0\n  domain: {DOMAIN}\n  credentials_file: '{d}/credentials.yaml'\n  control_socket: '{d}/control.sock'\n\
             media:\n  rtp_bind: 127.0.0.1:0\n  silence_timeout_s: 3600\n\
             update:\n  bundle_dir: '{d}/bundles'\n  keyring: '{}'\n  url: https://127.0.0.1:8443\n",
            keys.join("ca.cert.pem").display()
        ),
    )
    .unwrap();
    path
}

/// `sipsensor-collector ARGS`: its exit status and what it printed.
pub fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sipsensor-collector"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running collector: its SIP and HTTP addresses.
pub struct Running {
    pub guard: Guard,
    pub sip: SocketAddr,
    pub http: SocketAddr,
}

/// `sipsensor-collector run --config CONFIG`, once it listens.
pub fn run(config: &Path) -> Running {
    let (guard, rx) = spawn_run(config);
    let deadline = Instant::now() + WAIT;
    let (mut sip, mut http) = (None, None);
    while sip.is_none() || http.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the collector logs its addresses");
        if let Some(rest) = line.split("advertised ").nth(1) {
            sip = rest.split(';').next().unwrap().parse().ok();
        }
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            http = rest.trim_end_matches('/').parse().ok();
        }
    }
    Running {
        guard,
        sip: sip.unwrap(),
        http: http.unwrap(),
    }
}

/// `update publish --config CONFIG BUNDLE`, which must succeed.
pub fn publish(config: &Path, bundle: &Path) {
    let (ok, out) = cli(&[
        "update",
        "publish",
        "--config",
        config.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
}

/// `GET path` on the collector's HTTP server: the body.
pub async fn get(http: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}
