//! Issue #16 at scale: 1,000 simulated sensors (`sipsensor-loadgen run
//! --fleet-version`, whose fake installs speak the fleet subscription of
//! docs/protocol.md 12.1-12.4 and reboot as a board does) registered with
//! a real collector, which rolls a real signed bundle out to them with
//! `update rollout V --all --canary 10 --max-failures 20` (12.7):
//!
//! - (a) no install fails: the rollout finishes in waves of 10, 20, 40,
//!   80, 160, 320 and 370, and the fleet view shows every sensor `good` on
//!   the new version;
//! - (c) on that fleet, the next version, with the collector killed
//!   (SIGKILL) in wave 4 and started again: the rollout resumes and ends as
//!   (a) did;
//! - (b) a fleet where 5 % of installs fail: the rollout halts at the 21st
//!   failure and says why, and no sensor is told the version after the
//!   halt.
//!
//! The fake steps take about a second each, so a wave lasts a few
//! seconds; the times of each rollout and wave are printed for the
//! closing note.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sipsensor_e2e::pki::SitePki;
use sipsensor_e2e::{Collector, CollectorSpec, require, wait_for};
use sipsensor_testkit::ports::{LOCALHOST, free_tcp_port};
use sipsensor_testkit::{ChildGuard, rauc, workspace_binary};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const SENSORS: usize = 1000;
const OLD: &str = "2026.12.1";
const V2: &str = "2026.12.2";
const V3: &str = "2026.12.3";
/// The compatible string of the harness's bundles (`testkit::rauc`).
const COMPATIBLE: &str = "sipsensor-test";
/// --canary 10 --growth 2 over 1,000 sensors.
const WAVES: [usize; 7] = [10, 20, 40, 80, 160, 320, 370];
const MAX_FAILURES: usize = 20;
/// A rollout of fake steps of about a second: a few seconds a wave on a
/// quiet machine, much more on a shared one.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn a_rollout_to_1000_simulated_sensors_in_waves_halts_and_survives_a_restart() {
    if !require(&["rauc", "mksquashfs", "openssl"]) {
        return;
    }
    let started = Instant::now();

    // (a) and (c): a fleet whose installs all succeed.
    let mut fleet = Fleet::start(0.0, 22);
    fleet.publish(V2);
    let a = fleet.roll_out(V2, None);
    a.print("(a) no failures");
    assert_eq!(a.status, "finished", "{}", a.details);
    a.assert_waves_in_order(1);
    fleet.assert_all_good_on(V2);

    fleet.publish(V3);
    let c = fleet.roll_out(V3, Some(4));
    c.print("(c) collector killed in wave 4");
    assert_eq!(c.status, "finished", "{}", c.details);
    assert!(
        c.details.contains(&format!("{SENSORS} done, 0 failed")),
        "{}",
        c.details
    );
    // The waves before the kill and after the restart: every one once.
    c.assert_waves_in_order(1);
    fleet.assert_all_good_on(V3);
    drop(fleet);

    // (b) a fleet where 5 % of installs fail.
    let mut fleet = Fleet::start(0.05, 23);
    fleet.publish(V2);
    let b = fleet.roll_out(V2, None);
    b.print("(b) 5 % failing");
    assert_eq!(b.status, "halted", "{}", b.details);
    let halt = format!(
        "halted: {} failures > --max-failures {MAX_FAILURES}:",
        MAX_FAILURES + 1
    );
    assert!(b.details.contains(&halt), "{}", b.details);
    // No sensor told after the halt: those told before finish (an install
    // is never cancelled), the others stay on the old version untouched.
    let told = b.told;
    std::thread::sleep(Duration::from_secs(8));
    let view = fleet.view();
    let touched = view
        .iter()
        .filter(|s| s.version == V2 || s.target.as_deref() == Some(V2))
        .count();
    let untouched = view
        .iter()
        .filter(|s| s.version == OLD && s.update == "idle" && s.target.is_none())
        .count();
    eprintln!(
        "(b) {told} sensors told before the halt; after it {touched} show {V2} and {untouched} \
         are untouched on {OLD}"
    );
    assert!(touched <= told, "{touched} sensors show {V2}, {told} told");
    assert!(
        untouched >= SENSORS - told,
        "{untouched} untouched, {told} told"
    );
    // The rollout still halted, and nobody told since.
    let again = fleet.status(b.id);
    let line = Summary::parse(&again).unwrap_or_else(|| panic!("{again}"));
    assert_eq!(
        (line.status.as_str(), line.told),
        ("halted", told),
        "{again}"
    );
    eprintln!("s22 took {:.0} s", started.elapsed().as_secs_f64());
}

/// A collector serving bundles, and 1,000 simulated sensors streaming to
/// it with a fake install each.
struct Fleet {
    collector: Collector,
    _loadgen: ChildGuard,
    dir: TempDir,
    _pki: SitePki,
}

/// One sensor as the fleet view shows it.
#[derive(Debug)]
struct Reported {
    version: String,
    update: String,
    target: Option<String>,
}

/// What a rollout did, watched through `update status` every 200 ms.
struct Watched {
    id: u64,
    /// `finished` or `halted`.
    status: String,
    /// The last `update status N` (summary line and details).
    details: String,
    summary: String,
    /// Each wave as first seen: its number, when (from the rollout), and
    /// the sensors told by then (done + failed + targeted + stopped).
    waves: Vec<(usize, Duration, usize)>,
    took: Duration,
    /// Sensors told in all.
    told: usize,
}

impl Fleet {
    fn start(failure_rate: f64, seed: u64) -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-e2e-s22-")
            .disable_cleanup(std::env::var_os("SIPSENSOR_E2E_KEEP").is_some())
            .tempdir()
            .unwrap();
        let keys = rauc::keys(dir.path(), "keys");
        let pki = SitePki::new();
        let mut spec = CollectorSpec::new("sip:collector@127.0.0.1");
        // The bundle server presents the SIP TLS certificate (12.5).
        spec.tls = Some(pki.collector());
        let https = free_tcp_port(LOCALHOST).unwrap();
        spec.extra_yaml = format!(
            "update:\n  listen: 127.0.0.1:{https}\n  bundle_dir: '{}'\n  keyring: '{}'\n  \
             url: 'https://127.0.0.1:{https}'\n",
            dir.path().join("bundles").display(),
            keys.join("ca.cert.pem").display()
        );
        let mut collector = Collector::new(spec).unwrap();
        // REGISTER wants the digest even from a trusted address: the
        // simulated sensors' users (the load generator's `credentials`
        // format) beside the collector's own.
        let mut users = format!("users:\n  collector: '{}'\n", collector.spec.password);
        for i in 0..SENSORS {
            users.push_str(&format!("  sensor-{i:05}: pw-{i:05}\n"));
        }
        std::fs::write(
            collector.config_path().with_file_name("credentials.yaml"),
            users,
        )
        .unwrap();
        collector.launch().unwrap();

        let ms = |d: u64| d.to_string();
        let mut cmd = Command::new(workspace_binary("sipsensor-loadgen").unwrap());
        cmd.args(["run", "--collector"])
            .arg(collector.sip_addr().to_string())
            .args(["-n", &SENSORS.to_string()])
            // Outlives every rollout; the guard stops it.
            .args(["--seconds", "3600"])
            // One channel at 1 Hz: the rollout is what is tested here.
            .args(["--rate", "1", "--channels", "1", "--per-rtp-socket", "10"])
            .args(["--concurrency", "50"])
            // A restarted collector is found again within seconds.
            .args(["--keepalive-ms", &ms(5000)])
            .args(["--fleet-version", OLD, "--fleet-compatible", COMPATIBLE])
            .args(["--install-failure-rate", &failure_rate.to_string()])
            .args([
                "--fake-download-ms",
                &ms(1000),
                "--fake-install-ms",
                &ms(1000),
            ])
            .args(["--fake-reboot-ms", &ms(1000), "--fake-trial-ms", &ms(1000)])
            .args(["--fake-jitter", "0.3", "--fleet-seed", &seed.to_string()]);
        let loadgen = ChildGuard::spawn("loadgen", cmd, &dir.path().join("loadgen.log")).unwrap();
        let mut fleet = Fleet {
            collector,
            _loadgen: loadgen,
            dir,
            _pki: pki,
        };
        let t0 = Instant::now();
        let ready = wait_for(Duration::from_secs(180), || {
            let view = fleet.view();
            (view.len() == SENSORS && view.iter().all(|s| s.version == OLD)).then_some(())
        });
        assert!(
            ready.is_some(),
            "the fleet view did not show {SENSORS} sensors on {OLD}: {} reported\nloadgen:\n{}",
            fleet.view().len(),
            fleet.loadgen_log_tail()
        );
        eprintln!(
            "{SENSORS} simulated sensors registered, streaming and subscribed in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        fleet.dir_keep_note();
        fleet
    }

    fn dir_keep_note(&mut self) {
        if std::env::var_os("SIPSENSOR_E2E_KEEP").is_some() {
            eprintln!("s22 files kept in {}", self.dir.path().display());
        }
    }

    fn loadgen_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("loadgen.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A bundle of `version` made with the real `rauc`, published.
    fn publish(&mut self, version: &str) {
        let bundle = rauc::bundle(
            self.dir.path(),
            &self.dir.path().join("keys"),
            version,
            "verity",
        );
        let out = Command::new(workspace_binary("sipsensor-collector").unwrap())
            .args(["update", "publish", "-c"])
            .arg(self.collector.config_path())
            .arg(&bundle)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "update publish {version}: {text}");
        eprintln!("{}", text.trim());
    }

    /// `/api/fleet`: every sensor's last report.
    fn view(&self) -> Vec<Reported> {
        let body = self.collector.http_get("/api/fleet");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let text = |s: &serde_json::Value, k: &str| s[k].as_str().map(str::to_owned);
        json["sensors"]
            .as_array()
            .map(|sensors| {
                sensors
                    .iter()
                    .map(|s| Reported {
                        version: text(s, "version").unwrap_or_default(),
                        update: text(s, "update").unwrap_or_default(),
                        target: text(s, "target"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn assert_all_good_on(&self, version: &str) {
        let settled = wait_for(Duration::from_secs(20), || {
            let view = self.view();
            let good = view
                .iter()
                .filter(|s| s.version == version && s.update == "good")
                .count();
            (good == SENSORS).then_some(())
        });
        if settled.is_none() {
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            for s in self.view() {
                *states
                    .entry(format!("{} {}", s.version, s.update))
                    .or_default() += 1;
            }
            panic!("not every sensor good on {version}: {states:?}");
        }
    }

    /// `update status N` (or the control command's error).
    fn status(&self, id: u64) -> String {
        let (_, text) = self
            .collector
            .control(&["update", "status", &id.to_string()]);
        text.trim().to_string()
    }

    /// Rolls `version` out to all; with `kill_in_wave`, the collector is
    /// killed (SIGKILL) once that wave has started and launched again.
    fn roll_out(&mut self, version: &str, kill_in_wave: Option<usize>) -> Watched {
        let canary = WAVES[0].to_string();
        let max = MAX_FAILURES.to_string();
        let (ok, text) = self.collector.control(&[
            "update",
            "rollout",
            version,
            "--all",
            "--canary",
            &canary,
            "--max-failures",
            &max,
        ]);
        assert!(ok, "update rollout {version}: {text}");
        let t0 = Instant::now();
        let id = text
            .split_whitespace()
            .skip_while(|w| *w != "rollout")
            .nth(1)
            .and_then(|n| n.trim_end_matches([':', ',']).parse().ok())
            .unwrap_or_else(|| panic!("no rollout number in {text:?}"));
        let mut waves = Vec::new();
        let mut killed = false;
        loop {
            assert!(
                t0.elapsed() < ROLLOUT_LIMIT,
                "rollout {id} still running after {ROLLOUT_LIMIT:?}: {}\nloadgen:\n{}",
                self.status(id),
                self.loadgen_log_tail()
            );
            let details = self.status(id);
            let Some(line) = Summary::parse(&details) else {
                // Down for its restart, or not answering yet.
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            if waves.last().is_none_or(|(w, _, _)| *w != line.wave) && line.wave > 0 {
                eprintln!(
                    "  {:.1} s: {}",
                    t0.elapsed().as_secs_f64(),
                    details.lines().next().unwrap_or_default()
                );
                waves.push((line.wave, t0.elapsed(), line.told));
            }
            if line.status != "running" {
                let summary = details.lines().next().unwrap_or_default().to_string();
                return Watched {
                    id,
                    status: line.status,
                    summary,
                    details,
                    waves,
                    took: t0.elapsed(),
                    told: line.told,
                };
            }
            if !killed && kill_in_wave.is_some_and(|w| line.wave >= w) {
                killed = true;
                self.collector.kill9();
                eprintln!(
                    "collector killed (SIGKILL) in wave {} at {:.1} s",
                    line.wave,
                    t0.elapsed().as_secs_f64()
                );
                std::thread::sleep(Duration::from_secs(1));
                self.collector.launch().unwrap();
                eprintln!(
                    "collector started again at {:.1} s",
                    t0.elapsed().as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Watched {
    fn print(&self, what: &str) {
        eprintln!(
            "{what}: rollout {} {} in {:.1} s: {}",
            self.id,
            self.status,
            self.took.as_secs_f64(),
            self.summary
        );
        for (i, (wave, at, told)) in self.waves.iter().enumerate() {
            let next = self.waves.get(i + 1).map_or(self.took, |(_, t, _)| *t);
            eprintln!(
                "  wave {wave}: from {:.1} s, {:.1} s long, {told} sensors told by then",
                at.as_secs_f64(),
                (next - *at).as_secs_f64()
            );
        }
    }

    /// Waves `from`.. seen in order, none skipped, each telling exactly
    /// its planned sensors (10, 20, 40, ... cumulated).
    fn assert_waves_in_order(&self, from: usize) {
        let numbers: Vec<usize> = self.waves.iter().map(|(w, _, _)| *w).collect();
        let expected: Vec<usize> = (from..=WAVES.len()).collect();
        assert_eq!(numbers, expected, "{}", self.details);
        for (wave, _, told) in &self.waves {
            let planned: usize = WAVES[..*wave].iter().sum();
            assert_eq!(*told, planned, "wave {wave}: {}", self.details);
        }
    }
}

/// `rollout 3 of 2026.12.2: running, wave 2 of 7; 30 done, 1 failed, 20
/// targeted, 949 pending`.
struct Summary {
    status: String,
    wave: usize,
    /// done + failed + targeted + stopped.
    told: usize,
}

impl Summary {
    fn parse(text: &str) -> Option<Summary> {
        let line = text.lines().next()?;
        let rest = line.strip_prefix("rollout ")?;
        let (_, rest) = rest.split_once(": ")?;
        let (status, rest) = rest.split_once(", wave ")?;
        let (wave, counts) = rest.split_once(';')?;
        let wave = wave.split_whitespace().next()?.parse().ok()?;
        let mut told = 0;
        for part in counts.split(',') {
            let mut words = part.split_whitespace();
            let n: usize = words.next()?.parse().ok()?;
            if matches!(words.next()?, "done" | "failed" | "targeted" | "stopped") {
                told += n;
            }
        }
        Some(Summary {
            status: status.to_string(),
            wave,
            told,
        })
    }
}

#[test]
fn the_status_line_is_read_as_the_collector_writes_it() {
    let s = Summary::parse(
        "rollout 3 of 2026.12.2: running, wave 2 of 7; 30 done, 1 failed, 20 targeted, 949 pending\n  1000 sensors",
    )
    .unwrap();
    assert_eq!((s.status.as_str(), s.wave, s.told), ("running", 2, 51));
    assert!(Summary::parse("cannot reach the collector").is_none());
}
