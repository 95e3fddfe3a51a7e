//! The agent binary as a child process of a test, killed when dropped.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Agent(pub Child);

impl Agent {
    /// Writes `yaml` to `config` and runs the agent binary on it.
    pub fn start(config: &Path, yaml: &str) -> Self {
        std::fs::write(config, yaml).unwrap();
        Agent(
            Command::new(env!("CARGO_BIN_EXE_sipsensor-agent"))
                .args(["run", "--no-override", "--config"])
                .arg(config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A registrar on `addr` that binds without authentication (the proxy in
/// front of it authenticated the sensor), and a socket for the RTP the
/// agent is asked to send.
#[allow(dead_code)] // not every test crate that starts the agent registers it
pub fn open_registrar(addr: std::net::SocketAddr) -> (sipsensor_protocol::Registrar, UdpSocket) {
    use sipsensor_protocol::{
        DigestServerConfig, IdGenerator, Registrar, RegistrarConfig, ServerSecret, WallClock,
    };
    let registrar = Registrar::new(
        RegistrarConfig {
            authenticate: false,
            agent: addr.to_string(),
            ..RegistrarConfig::default()
        },
        DigestServerConfig::new("127.0.0.1", ServerSecret::new(vec![9; 32])),
        Box::new(sipsensor_protocol::InMemoryCredentials::new()),
        WallClock::new(std::time::Instant::now(), 1_800_000_000),
        IdGenerator::seeded(2),
    )
    .unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    (registrar, rtp)
}
