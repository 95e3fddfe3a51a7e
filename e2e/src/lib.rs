//! End-to-end system tests of sipsensor (issue #5): the real
//! `sipsensor-agent` and `sipsensor-collector` binaries with Kamailio,
//! PostgreSQL, baresip and tshark, all on loopback. Each scenario is one
//! file under `tests/`; this library starts the two sipsensor programs and
//! reads back what they did.
//!
//! - [`agent`]: an agent with a simulated sensor, its config, secrets and
//!   status socket in a temporary directory.
//! - [`collector`]: a collector, its stored data through `export`, its
//!   statistics through the HTTP API.
//! - [`wave`]: the simulated waveform recomputed, and the check that stored
//!   samples are exactly what the agent generated.
//! - [`capture`]: what the agent sent, read from the tshark capture.
//! - [`site`]: Kamailio, a collector and an agent, captured: the set-up
//!   most scenarios share.
//! - [`pki`]: a throw-away site CA and the certificates of Kamailio and
//!   the collector, for the scenarios over TLS.
//! - [`complete`]: "stored = sent exactly" (issue #15): every instant of a
//!   sensor's history stored once, each value the waveform's reading of
//!   that instant.
//! - [`recovery`]: what the #15 scenarios share: sensors at 10 Hz, waiting
//!   until a backfill is done, the figures they print.
//! - `logs`: one log file per start of a process, quoted when a
//!   scenario fails.
//! - [`netns`]: a sensor in its own network namespace, its link cut and
//!   restored.
//! - [`paths`]: scenario 7's impaired media path and scenario 9's two
//!   collectors behind the dispatcher, each shared with a #15 scenario.

pub mod agent;
pub mod capture;
pub mod collector;
pub mod complete;
mod logs;
pub mod netns;
pub mod paths;
pub mod pki;
pub mod recovery;
pub mod site;
pub mod wave;

pub use agent::{Agent, AgentSpec};
pub use collector::{Collector, CollectorSpec, CollectorTls, Gap, StoredSample};
pub use site::Site;

use std::time::{Duration, Instant};

/// The binaries the scenarios run, with the skip-or-fail rule for the
/// external tools: `false` means the test should return (skipped).
///
/// `make test-rust` runs the whole workspace before the binaries these
/// tests start are built; it sets `SIPSENSOR_E2E_DEFERRED` and the
/// scenarios then run in `make test-e2e` instead (not twice).
pub fn require(tools: &[&str]) -> bool {
    if let Ok(target) = std::env::var("SIPSENSOR_E2E_DEFERRED") {
        eprintln!("DEFERRED: system test; it runs in `make {target}`");
        return false;
    }
    for tool in tools {
        let ok = match *tool {
            "tshark" => sipsensor_testkit::require_capture(),
            "postgres" => sipsensor_testkit::require_postgres(),
            other => sipsensor_testkit::require_tool(other),
        };
        if !ok {
            return false;
        }
    }
    for bin in ["sipsensor-agent", "sipsensor-collector"] {
        if let Err(e) = sipsensor_testkit::workspace_binary(bin) {
            panic!("{e}");
        }
    }
    true
}

/// Poll `check` every 100 ms until it returns `Some`, for at most `limit`;
/// `None` when the time is up.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Send `signal` to one process (not its group).
pub fn signal_pid(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory effects.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// A tshark capture of SIP on `sip_ports` and RTP on each of `rtp_ports`
/// (RTCP on the port above), decoded as such.
pub fn capture(sip_ports: &[u16], rtp_ports: &[u16]) -> sipsensor_testkit::Tshark {
    sipsensor_testkit::Tshark::start(sipsensor_testkit::TsharkOptions {
        sip_ports: sip_ports.to_vec(),
        rtp_ports: rtp_ports.to_vec(),
        rtcp_ports: rtp_ports.iter().map(|p| p + 1).collect(),
        ..sipsensor_testkit::TsharkOptions::default()
    })
    .unwrap_or_else(|e| panic!("tshark: {e}"))
}

/// Scenario 10 for every scenario: stop the capture and fail if Wireshark
/// flags any SIP, SDP, RTP or RTCP packet as malformed (or saw no SIP).
pub fn check_capture(tshark: sipsensor_testkit::Tshark) -> sipsensor_testkit::Capture {
    let capture = tshark.finish().unwrap_or_else(|e| panic!("{e}"));
    let rtp = capture.count("rtp").unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "capture: {} SIP, {rtp} RTP, {} RTCP packets, none malformed",
        capture.count("sip").unwrap_or(0),
        capture.count("rtcp").unwrap_or(0)
    );
    capture
}

/// Kamailio (the repository's config) with subscribers `users`.
pub fn kamailio(users: &[(&str, &str)]) -> sipsensor_testkit::Kamailio {
    kamailio_with(users, Vec::new())
}

/// Kamailio with a dispatcher set of `collectors` (SIP URIs).
pub fn kamailio_with(
    users: &[(&str, &str)],
    collectors: Vec<String>,
) -> sipsensor_testkit::Kamailio {
    let mut options = sipsensor_testkit::KamailioOptions {
        dispatcher: collectors,
        // Probe the collectors every second, so a dead one is skipped soon.
        defines: vec!["DISPATCHER_PING_INTERVAL=1".into()],
        ..sipsensor_testkit::KamailioOptions::default()
    };
    for (user, password) in users {
        options = options.with_subscriber(user, password);
    }
    sipsensor_testkit::Kamailio::start(options).unwrap_or_else(|e| panic!("kamailio: {e}"))
}

/// A collector that registers `user` at Kamailio and takes its calls.
pub fn collector_behind(
    kamailio: &sipsensor_testkit::Kamailio,
    user: &str,
    password: &str,
) -> CollectorSpec {
    let mut spec = CollectorSpec::new(&kamailio.aor(user));
    spec.kamailio = Some(kamailio.addr());
    spec.password = password.into();
    spec
}

/// An agent `user` registering at Kamailio and calling `collector` there.
pub fn agent_behind(
    kamailio: &sipsensor_testkit::Kamailio,
    user: &str,
    password: &str,
    collector: &str,
) -> AgentSpec {
    let mut spec = AgentSpec::new(user, &kamailio.domain());
    spec.password = Some(password.into());
    spec.registrar = Some(format!("sip:{}", kamailio.addr()));
    spec.collector = Some(kamailio.aor(collector));
    // Calls come through Kamailio over UDP: the agent challenges them and
    // the collector answers with its Kamailio credential.
    spec.callers = vec![(collector.into(), crate::site::COLLECTOR_PASSWORD.into())];
    spec
}

/// Wait until `log()` contains `needle`, for at most `limit`.
pub fn wait_log(what: &str, limit: Duration, log: impl Fn() -> String, needle: &str) {
    if wait_for(limit, || log().contains(needle).then_some(())).is_none() {
        panic!("{what}: no {needle:?} within {limit:?}; log:\n{}", log());
    }
}

/// The stored samples of `aor` once at least `min` are there and the count
/// has stopped growing (the collector commits every 50 ms).
pub fn settled_samples(collector: &Collector, aor: &str, min: usize) -> Vec<StoredSample> {
    let mut last = 0usize;
    let found = wait_for(Duration::from_secs(20), || {
        let s = collector.samples(aor);
        let done = s.len() >= min && s.len() == last;
        last = s.len();
        if !done {
            std::thread::sleep(Duration::from_millis(400));
        }
        done.then_some(s)
    });
    found.unwrap_or_else(|| {
        panic!(
            "{aor}: fewer than {min} samples stored ({last}); collector log:\n{}",
            collector.log()
        )
    })
}

/// The stored gaps of `aor` other than `allowed` causes, and other than
/// `source` gaps (instants the agent itself skipped because its sender
/// was starved of CPU past its late limit, which it marks in the stream):
/// these must be none, and no gap may miss no instant. Returns how many
/// `source` gaps there were.
pub fn assert_gaps_only(collector: &Collector, aor: &str, allowed: &[&str]) -> usize {
    let gaps = collector.gaps(aor);
    let other: Vec<&Gap> = gaps
        .iter()
        .filter(|g| g.cause != "source" && !allowed.contains(&g.cause.as_str()))
        .collect();
    assert!(other.is_empty(), "{aor}: unexpected gaps {other:?}");
    assert_no_empty_gaps(aor, &gaps);
    gaps.iter().filter(|g| g.cause == "source").count()
}

/// A stored gap says instants are missing: one of 0 samples is noise (the
/// collector stored one at each backfill's end and each reopen, where the
/// agent declared the step between its last backfilled and its first live
/// instant unsampled; docs/protocol.md 11.7).
pub fn assert_no_empty_gaps(what: &str, gaps: &[Gap]) {
    let empty: Vec<&Gap> = gaps.iter().filter(|g| g.samples == 0).collect();
    assert!(
        empty.is_empty(),
        "{what}: gaps missing no instant {empty:?}"
    );
}
