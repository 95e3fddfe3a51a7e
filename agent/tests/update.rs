//! The updater's shell against a real local HTTPS server (a throw-away CA
//! from tests/harness) that drops connections mid-file and answers 206,
//! 200, 416 and 404, and against fake `rauc` and reboot commands:
//! docs/protocol.md 12.5.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use sha2::{Digest, Sha256};
use sipsensor_agent::config::update::UpdateConfig;
use sipsensor_agent::update::board::BoardPaths;
use sipsensor_agent::update::download::{self, Fetch};
use sipsensor_agent::update::run::{self, Report};
use sipsensor_agent::update::{DownloadEnd, FleetWant, RebootPolicy, UpdateState};
use sipsensor_runtime::sip_transport::tls::client_config_from_pem;
use sipsensor_testkit::pki::TestCa;

#[path = "support/bundle_server.rs"]
mod bundle_server;
use bundle_server::{Answer, Server, serve};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn bundle() -> Arc<Vec<u8>> {
    // 300 kB that are not all alike, so a misplaced byte shows.
    Arc::new((0..300_000u32).map(|i| (i * 7 % 251) as u8).collect())
}

fn hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tls(ca: &TestCa) -> Arc<tokio_rustls::rustls::ClientConfig> {
    client_config_from_pem(ca.certificate_pem().as_bytes(), None).unwrap()
}

fn job(dir: &Path, server: &Server, data: &[u8], offset: u64) -> Fetch {
    Fetch {
        url: format!("https://{}/bundles/{}.raucb", server.addr, hex(data)),
        size: data.len() as u64,
        part: download::part_path(dir, &hex(data)),
        offset,
    }
}

fn part_len(job: &Fetch) -> u64 {
    std::fs::metadata(&job.part).map_or(0, |m| m.len())
}

#[tokio::test]
async fn a_dropped_download_resumes_with_a_range_and_verifies() {
    let ca = TestCa::new("site CA");
    let data = bundle();
    let server = serve(
        &ca,
        data.clone(),
        vec![Answer::DropAfter(100_000), Answer::Honour],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let first = job(dir.path(), &server, &data, 0);
    let mut seen = 0;
    let end = download::fetch(tls(&ca), &first, |n| seen = n).await;
    assert!(matches!(end, DownloadEnd::Interrupted(_)), "{end:?}");
    let have = part_len(&first);
    assert_eq!(have, 100_000);
    assert_eq!(seen, have, "progress counts the file");

    let again = job(dir.path(), &server, &data, have);
    let end = download::fetch(tls(&ca), &again, |_| {}).await;
    assert_eq!(end, DownloadEnd::Complete);
    assert_eq!(
        *server.ranges.lock().unwrap(),
        [None, Some("bytes=100000-".into())]
    );
    let bundle = download::verify(dir.path(), &hex(&data), data.len() as u64).unwrap();
    assert_eq!(std::fs::read(bundle).unwrap(), *data);
}

#[tokio::test]
async fn a_200_instead_of_206_restarts_the_file() {
    let ca = TestCa::new("site CA");
    let data = bundle();
    let server = serve(&ca, data.clone(), vec![Answer::IgnoreRange]).await;
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, &data, 50_000);
    // 50 kB of something else: appended to, they would spoil the bundle.
    std::fs::write(&job.part, vec![0xaa; 50_000]).unwrap();
    assert_eq!(
        download::fetch(tls(&ca), &job, |_| {}).await,
        DownloadEnd::Complete
    );
    assert_eq!(
        *server.ranges.lock().unwrap(),
        [Some("bytes=50000-".into())]
    );
    download::verify(dir.path(), &hex(&data), data.len() as u64).unwrap();
}

#[tokio::test]
async fn a_416_starts_over_and_the_next_attempt_completes() {
    let ca = TestCa::new("site CA");
    let data = bundle();
    let server = serve(
        &ca,
        data.clone(),
        vec![Answer::Unsatisfiable, Answer::Honour],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let first = job(dir.path(), &server, &data, 1000);
    std::fs::write(&first.part, &data[..1000]).unwrap();
    let end = download::fetch(tls(&ca), &first, |_| {}).await;
    assert!(
        matches!(&end, DownloadEnd::Interrupted(r) if r.contains("416")),
        "{end:?}"
    );
    assert_eq!(part_len(&first), 0, "the part is cut back");
    let again = job(dir.path(), &server, &data, 0);
    assert_eq!(
        download::fetch(tls(&ca), &again, |_| {}).await,
        DownloadEnd::Complete
    );
    download::verify(dir.path(), &hex(&data), data.len() as u64).unwrap();
}

#[tokio::test]
async fn a_corrupted_file_fails_verification_and_is_deleted() {
    let ca = TestCa::new("site CA");
    let data = bundle();
    let server = serve(&ca, data.clone(), vec![Answer::Corrupt]).await;
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, &data, 0);
    assert_eq!(
        download::fetch(tls(&ca), &job, |_| {}).await,
        DownloadEnd::Complete
    );
    let e = download::verify(dir.path(), &hex(&data), data.len() as u64).unwrap_err();
    assert!(e.contains("SHA-256"), "{e}");
    assert!(!job.part.exists());
}

#[tokio::test]
async fn a_404_is_refused_and_a_server_of_another_ca_is_not_trusted() {
    let ca = TestCa::new("site CA");
    let data = bundle();
    let server = serve(&ca, data.clone(), vec![Answer::NotFound]).await;
    let dir = tempfile::tempdir().unwrap();
    let job404 = job(dir.path(), &server, &data, 0);
    assert_eq!(
        download::fetch(tls(&ca), &job404, |_| {}).await,
        DownloadEnd::Refused("HTTP 404 Not Found".into())
    );

    let stranger = TestCa::new("someone else's CA");
    let impostor = serve(&stranger, data.clone(), vec![Answer::Honour]).await;
    let job = job(dir.path(), &impostor, &data, 0);
    let end = download::fetch(tls(&ca), &job, |_| {}).await;
    assert!(
        matches!(&end, DownloadEnd::Interrupted(r) if r.contains("TLS")),
        "{end:?}"
    );
    assert_eq!(part_len(&job), 0, "nothing of it was written");
}

/// The updater's configuration and the board's files, all under `root`
/// (the scripts `rauc` and `reboot` there).
fn board_under(root: &Path, enabled: bool) -> (UpdateConfig, BoardPaths) {
    let config = UpdateConfig {
        enabled,
        window: None,
        rauc: root.join("rauc"),
        reboot_command: vec![root.join("reboot").display().to_string()],
        dir: root.join("update"),
        ota_dir: root.join("ota"),
        ca_file: root.join("ca.pem"),
    };
    let paths = BoardPaths {
        os_release: root.join("os-release"),
        rauc_system_conf: root.join("system.conf"),
        cmdline: root.join("cmdline"),
        boot_id: root.join("boot_id"),
        ota_dir: root.join("ota"),
        download_dir: root.join("update"),
    };
    (config, paths)
}

/// Off, the updater reports and refuses wants (12.4); it makes no
/// download directory on a host whose agent never updates.
#[tokio::test]
async fn a_disabled_updater_reports_a_want_failed_and_makes_no_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (config, paths) = board_under(root, false);
    let (links, mut ends) = run::links();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run::run_with(config, paths, "0.1.0".into(), links, stop));
    let want = FleetWant {
        version: "2.0".into(),
        url: "https://collector.example/b.raucb".into(),
        sha256: [7; 32],
        size: 10,
        reboot: RebootPolicy::Now,
    };
    ends.wants.send(Some(want)).unwrap();
    let failed = loop {
        match ends.reports.recv().await.unwrap() {
            Report::State(s) if s.update == UpdateState::Failed => break s,
            Report::State(_) => {}
            Report::GoingDown(_) => panic!("no reboot"),
        }
    };
    let reason = failed.reason.unwrap_or_default();
    assert!(reason.contains("updates are off"), "{reason}");
    stop_tx.send_replace(true);
    task.await.unwrap();
    assert!(!root.join("update").exists());
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The whole shell: a want in; download, verify, `rauc install`, the
/// journal, the farewell and the reboot command out, each state reported.
#[tokio::test]
async fn the_shell_downloads_installs_and_reboots_reporting_each_step() {
    let ca = TestCa::new("site CA");
    let data = bundle();
    let server = serve(&ca, data.clone(), vec![Answer::DropAfter(64_000)]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("ca.pem"), ca.certificate_pem()).unwrap();
    std::fs::write(root.join("os-release"), "VERSION_ID=1.0\n").unwrap();
    std::fs::write(root.join("cmdline"), "console=ttyS0 rauc.slot=A\n").unwrap();
    std::fs::write(root.join("boot_id"), "boot-1\n").unwrap();
    std::fs::write(
        root.join("system.conf"),
        "[system]\ncompatible=sipsensor-test\n",
    )
    .unwrap();
    let log = root.join("calls");
    script(
        &root.join("rauc"),
        &format!(
            "echo \"rauc $*\" >> {log}\necho '  0% Installing'\necho ' 50% Copying'\necho '100% Installing done.'",
            log = log.display()
        ),
    );
    script(
        &root.join("reboot"),
        &format!("echo reboot >> {}", log.display()),
    );
    let (config, paths) = board_under(root, true);
    let (links, mut ends) = run::links();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run::run_with(
        config,
        paths.clone(),
        "0.1.0".into(),
        links,
        stop,
    ));
    ends.wants
        .send(Some(FleetWant {
            version: "2.0".into(),
            url: format!("https://{}/bundles/{}.raucb", server.addr, hex(&data)),
            sha256: Sha256::digest(&data[..]).into(),
            size: data.len() as u64,
            reboot: RebootPolicy::Now,
        }))
        .unwrap();
    let mut seen = Vec::new();
    let going_down = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match ends.reports.recv().await.unwrap() {
                Report::State(s) => {
                    assert_eq!((s.version.as_str(), s.slot.as_str()), ("1.0", "A"));
                    assert_eq!(s.compatible, "sipsensor-test");
                    if seen.last() != Some(&s.update) {
                        seen.push(s.update);
                    }
                }
                Report::GoingDown(ack) => break ack,
            }
        }
    })
    .await
    .expect("the updater reboots within a minute (the dropped download resumes after 2.5-5 s)");
    assert_eq!(
        seen,
        [
            UpdateState::Idle,
            UpdateState::Downloading,
            UpdateState::Downloaded,
            UpdateState::Installing,
            UpdateState::Installed,
            UpdateState::Rebooting
        ]
    );
    // The journal says what to report after the reboot.
    let journal = std::fs::read_to_string(paths.journal()).unwrap();
    assert!(journal.contains("step=installed\n"), "{journal}");
    assert!(journal.contains("target=2.0\n"), "{journal}");
    ack_and_wait_for_reboot(going_down, &log).await;
    let calls = std::fs::read_to_string(&log).unwrap();
    let bundle = download::bundle_path(&root.join("update"), &hex(&data));
    assert_eq!(
        calls,
        format!("rauc install {}\nreboot\n", bundle.display())
    );
    assert!(!bundle.exists(), "the installed bundle is deleted");
    assert_eq!(server.ranges.lock().unwrap().len(), 2, "resumed once");
    stop_tx.send_replace(true);
    task.await.unwrap();
}

async fn ack_and_wait_for_reboot(ack: tokio::sync::oneshot::Sender<()>, log: &Path) {
    ack.send(()).unwrap();
    for _ in 0..100 {
        if std::fs::read_to_string(log).is_ok_and(|c| c.contains("reboot")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reboot command did not run");
}

/// Serve `hub` on `path` from a runtime on its own thread.
fn status_socket(path: &Path, hub: sipsensor_agent::status::StatusHub) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sock = rt
        .block_on(async { sipsensor_agent::status::server::bind(path) })
        .unwrap();
    rt.spawn(sock.serve(hub));
    rt
}

/// docs/protocol.md 12.6: registered is not enough, and a blip of
/// streaming does not count; only an unbroken run of SECONDS does.
#[test]
fn the_health_wait_wants_an_unbroken_run_of_streaming() {
    use sipsensor_agent::status::{AgentState, StatusHub};
    use sipsensor_agent::update::health::wait_streamed;
    let ms = Duration::from_millis;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let hub = StatusHub::new();
    hub.set_state(AgentState::Registered);
    let _rt = status_socket(&path, hub.clone());

    let err = wait_streamed(&path, ms(300), ms(100), ms(50)).unwrap_err();
    assert!(err.to_string().contains("(last: registered)"), "{err}");

    // Streaming for 250 ms, a break, then for good: the wait of 400 ms
    // of streaming ends only 400 ms after the break.
    let h = hub.clone();
    let flapper = std::thread::spawn(move || {
        h.set_state(AgentState::Streaming);
        std::thread::sleep(ms(250));
        h.set_state(AgentState::Registered);
        std::thread::sleep(ms(150));
        h.set_state(AgentState::Streaming);
    });
    let start = std::time::Instant::now();
    let s = wait_streamed(&path, Duration::from_secs(10), ms(400), ms(50)).unwrap();
    assert_eq!(s.state, AgentState::Streaming);
    assert!(start.elapsed() >= ms(800), "{:?}", start.elapsed());
    flapper.join().unwrap();
}
