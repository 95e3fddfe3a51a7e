//! The status socket: server and client over a real Unix socket.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use sipsensor_agent::status::client::{self, ClientError};
use sipsensor_agent::status::{AgentState, StatusHub, server};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Serve `hub` on `path` from a runtime on its own thread.
fn serve(path: &Path, hub: StatusHub) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sock = rt.block_on(async { server::bind(path) }).unwrap();
    rt.spawn(sock.serve(hub));
    rt
}

#[test]
fn status_round_trip_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/agent.sock");
    let hub = StatusHub::new();
    hub.set_state(AgentState::ConfigError);
    hub.error("config", "a.yaml:1:1: boom");
    hub.set_sensors(vec![("env".into(), "bme280".into())]);
    let rt = serve(&path, hub.clone());

    let s = client::fetch(&path, Duration::from_secs(2)).unwrap();
    assert_eq!(s.state, AgentState::ConfigError);
    assert_eq!(s.last_error.unwrap().message, "a.yaml:1:1: boom");
    assert_eq!(s.sensors[0].name, "env");
    assert_eq!(s.pid, std::process::id());

    // A silent client does not hold up the next one.
    let _silent = UnixStream::connect(&path).unwrap();
    assert!(client::fetch(&path, Duration::from_secs(2)).is_ok());

    // An unknown request gets an error reply, not silence.
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c.write_all(b"reboot\n").unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert_eq!(
        reply.trim(),
        r#"{"error":"unknown request `reboot`; expected `status`"}"#
    );

    // An overlong request: the server reads 256 bytes, refuses, and
    // closes; the rest of the client's data may make the close a reset.
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c.write_all(&[b'x'; 10_000]).unwrap();
    let mut reply = String::new();
    match c.read_to_string(&mut reply) {
        Ok(_) => assert!(reply.contains("unknown request"), "{reply}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    // And it goes on answering.
    assert!(client::fetch(&path, Duration::from_secs(2)).is_ok());

    drop(rt);
}

#[test]
fn wait_registered_returns_once_registered_or_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let hub = StatusHub::new();
    hub.set_state(AgentState::Registering);
    let _rt = serve(&path, hub.clone());

    let err = client::wait_registered(&path, Duration::from_millis(300), Duration::from_millis(50))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::NotRegistered { state, .. } if state == "registering"),
        "{err}"
    );

    let h = hub.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        h.set_state(AgentState::Registered);
    });
    let s =
        client::wait_registered(&path, Duration::from_secs(10), Duration::from_millis(50)).unwrap();
    assert_eq!(s.state, AgentState::Registered);
    t.join().unwrap();
}

#[test]
fn wait_registered_tolerates_an_agent_that_is_not_up_yet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let err = client::wait_registered(&path, Duration::from_millis(200), Duration::from_millis(50))
        .unwrap_err();
    assert!(err.to_string().contains("agent not reachable"), "{err}");
    let err = client::fetch(&path, Duration::from_secs(1)).unwrap_err();
    assert!(
        err.to_string()
            .contains("is `sipsensor-agent run` running?"),
        "{err}"
    );
}

#[test]
fn bind_replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    // A socket file left by a dead daemon.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let rt = serve(&path, StatusHub::new());
    // A second agent must not steal it.
    let err = rt.block_on(async { server::bind(&path) }).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    drop(rt);

    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async { server::bind(&file) }).unwrap_err();
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn the_socket_file_goes_away_with_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let rt = serve(&path, StatusHub::new());
    assert!(path.exists());
    drop(rt);
    assert!(!path.exists());
}
