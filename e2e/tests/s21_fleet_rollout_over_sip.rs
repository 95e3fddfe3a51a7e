//! Scenario 21 (issue #16): a fleet rollout over SIP that the host's RAUC
//! refuses. Kamailio (TLS) is registrar and proxy; the sensor registers
//! over its own TLS flow, the collector (`sip.tls`, `update:` with its
//! HTTPS bundle server) calls it and subscribes to its fleet state
//! (docs/protocol.md 12.1) through Kamailio, which relays the SUBSCRIBE
//! on the sensor's flow. A bundle signed with throw-away keys and made by
//! the real `rauc bundle` is published; `update rollout VERSION --sensors
//! S --canary 1 --max-failures 0` sends the want; the agent downloads the
//! bundle over HTTPS from the collector (its certificate checked against
//! the site CA), checks its SHA-256 and runs the host's real `rauc
//! install`, which refuses (this host has no RAUC system). The collector's
//! fleet view shows `failed` with RAUC's words, and the rollout halts
//! naming the sensor.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::pki::{SitePki, require_kamailio_tls};
use sipsensor_e2e::site::{CALL_WAVE_AT_20_HZ, COLLECTOR_PASSWORD, SENSOR_PASSWORD};
use sipsensor_e2e::*;
use sipsensor_testkit::ports::{LOCALHOST, free_tcp_port};
use sipsensor_testkit::{Kamailio, KamailioOptions, rauc, workspace_binary};
use std::process::Command;
use std::time::Duration;

const SENSOR: &str = "sensor21";
const VERSION: &str = "2099.12.1";

/// The sensor's entry in `/api/fleet`, once there.
fn fleet_entry(collector: &Collector, aor: &str) -> Option<serde_json::Value> {
    let fleet: serde_json::Value = serde_json::from_str(&collector.http_get("/api/fleet")).ok()?;
    fleet["sensors"]
        .as_array()?
        .iter()
        .find(|s| s["sensor"].as_str() == Some(aor))
        .cloned()
}

#[test]
fn a_rollout_reaches_the_sensor_over_sip_and_halts_on_the_host_s_rauc_refusal() {
    if !require(&["kamailio", "rauc", "mksquashfs", "openssl"]) || !require_kamailio_tls() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // Throw-away keys (images/scripts/mk-dev-keys): their CA is the
    // keyring `update publish` checks the bundle's signature against.
    let keys = rauc::keys(work.path(), "s21");
    let bundle = rauc::bundle(work.path(), &keys, VERSION, "verity");

    let pki = SitePki::new();
    let kamailio = Kamailio::start(
        KamailioOptions {
            tls: Some(pki.kamailio()),
            ..KamailioOptions::default()
        }
        .with_subscriber(SENSOR, SENSOR_PASSWORD)
        .with_subscriber("collector", COLLECTOR_PASSWORD),
    )
    .unwrap_or_else(|e| panic!("kamailio: {e}"));
    let kamailio_tls = kamailio.tls_addr().unwrap();

    let https = free_tcp_port(LOCALHOST).unwrap();
    let mut cspec = collector_behind(&kamailio, "collector", COLLECTOR_PASSWORD);
    cspec.kamailio = Some(kamailio_tls);
    cspec.tls = Some(pki.collector());
    cspec.extra_yaml = format!(
        "update:\n  listen: 127.0.0.1:{https}\n  bundle_dir: '{}'\n  keyring: '{}'\n  \
         url: 'https://127.0.0.1:{https}'\n",
        work.path().join("bundles").display(),
        keys.join("ca.cert.pem").display()
    );
    let mut collector = Collector::new(cspec).unwrap();
    let mut aspec = AgentSpec::new(SENSOR, &kamailio.domain());
    aspec.password = Some(SENSOR_PASSWORD.into());
    aspec.registrar = Some(format!("sip:{kamailio_tls}"));
    // The site CA verifies Kamailio and the collector's bundle server.
    aspec.tls_ca_file = Some(pki.ca_file());
    aspec.extra_yaml = format!(
        "update:\n  enabled: true\n  dir: '{0}/update'\n  ota_dir: '{0}/ota'\n",
        work.path().display()
    );
    let mut agent = Agent::new(aspec).unwrap();
    let aor = agent.spec.aor();

    // Published before anything runs: checked against the keyring.
    let out = Command::new(workspace_binary("sipsensor-collector").unwrap())
        .args(["update", "publish", "--config"])
        .arg(collector.config_path())
        .arg(&bundle)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "update publish: {said}");
    assert!(said.contains(VERSION), "{said}");

    collector.launch().unwrap();
    wait_log(
        "collector registration over TLS",
        Duration::from_secs(20),
        || collector.log(),
        "registered as",
    );
    agent.launch().unwrap();
    agent.wait_status("registered", Duration::from_secs(30), |s| {
        s.state == AgentState::Registered
    });
    let mut call = vec!["call", aor.as_str()];
    call.extend(CALL_WAVE_AT_20_HZ);
    let (ok, said) = collector.control(&call);
    assert!(ok, "call: {said}\ncollector log:\n{}", collector.log());

    // The stream session brings the subscription: the first NOTIFY puts
    // the sensor in the fleet view, idle.
    let first =
        wait_for(Duration::from_secs(30), || fleet_entry(&collector, &aor)).unwrap_or_else(|| {
            panic!(
                "the sensor never reached the fleet view\ncollector log:\n{}\nagent log:\n{}",
                collector.log(),
                agent.log()
            )
        });
    assert_eq!(first["update"], "idle", "{first}");

    let (ok, said) = collector.control(&[
        "update",
        "rollout",
        VERSION,
        "--sensors",
        &aor,
        "--canary",
        "1",
        "--max-failures",
        "0",
    ]);
    assert!(ok, "update rollout: {said}");

    // Downloaded over HTTPS from the collector, then refused by the host.
    let failed = wait_for(Duration::from_secs(40), || {
        fleet_entry(&collector, &aor).filter(|s| s["update"] == "failed")
    })
    .unwrap_or_else(|| {
        panic!(
            "never failed: {:?}\ncollector log:\n{}\nagent log:\n{}",
            fleet_entry(&collector, &aor),
            collector.log(),
            agent.log()
        )
    });
    assert_eq!(failed["target"], VERSION, "{failed}");
    let reason = failed["reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.starts_with("rauc install: exit status") && reason.len() > 35,
        "the host's RAUC refused it in its own words: {reason}"
    );
    let agent_log = agent.log();
    assert!(agent_log.contains("update: downloaded"), "{agent_log}");

    // The rollout halts on its first failure, naming the sensor.
    let status = wait_for(Duration::from_secs(10), || {
        let (ok, said) = collector.control(&["update", "status", "1"]);
        (ok && said.contains("halted")).then_some(said)
    })
    .unwrap_or_else(|| {
        panic!(
            "the rollout did not halt: {:?}\ncollector log:\n{}",
            collector.control(&["update", "status", "1"]),
            collector.log()
        )
    });
    assert!(status.contains(SENSOR), "{status}");
    assert!(status.contains("failed"), "{status}");
    println!("fleet view: {failed}\n{status}");
    agent.stop();
    collector.stop();
}
