//! What the scenarios of issue #15 (gap-free data) share: sensors at the
//! issue's 10 Hz, waiting until what an interruption cost is backfilled,
//! and the exact check with its figures.

use crate::collector::{self, StoredSample};
use crate::complete::{self, Coverage, brief};
use crate::wave::Waveform;
use crate::{Agent, AgentSpec};
use std::time::{Duration, Instant};

/// Stored gaps that stay when everything came back: instants the agent
/// never sampled (its sender starved past its late limit, docs/protocol.md
/// 5.3). Every other hole must be filled.
pub const NEVER_SAMPLED: &[&str] = &["source"];

/// How far a reading may lag the instant it is sent at (sample and hold:
/// the sensor thread's late limit and a reading period), and more than any
/// misplaced backfill must be off to be caught.
pub const READING_SPREAD_NS: i64 = 1_000_000_000;

/// 10 Hz, one sample a packet, a reading every 100 ms (the rate).
pub fn at_10_hz(spec: &mut AgentSpec) {
    spec.rate = 10;
    spec.spp = 1;
    spec.interval_ms = 100;
}

/// Nanoseconds between two sampling instants.
pub fn step_ns(spec: &AgentSpec) -> i64 {
    1_000_000_000 / i64::from(spec.rate.max(1))
}

/// The first sample stored from the live stream at or after `since_ns`.
pub fn first_live_after(samples: &[StoredSample], since_ns: i64) -> Option<i64> {
    samples
        .iter()
        .filter(|s| s.source == "live" && s.ts_ns >= since_ns)
        .map(|s| s.ts_ns)
        .min()
}

/// Poll storage `url` until `aor`'s history reaches `until_ns` with no
/// hole but those gaps of `allowed` causes account for, for at most
/// `limit`. `Ok`: the coverage then; `Err`: the last one seen.
pub fn wait_complete(
    url: &str,
    aor: &str,
    step_ns: i64,
    until_ns: i64,
    allowed: &[&str],
    limit: Duration,
) -> Result<Coverage, Coverage> {
    let mut last = Coverage::default();
    let done = crate::wait_for(limit, || {
        let c = complete::coverage(&collector::samples(url, aor), step_ns);
        let gaps = collector::gaps(url, aor);
        let ok = c.last_ns >= until_ns && c.unexplained(&gaps, allowed, step_ns).is_empty();
        last = c.clone();
        if !ok {
            // An export reads the whole history: not much more often.
            std::thread::sleep(Duration::from_millis(400));
        }
        ok.then_some(c)
    });
    done.ok_or(last)
}

/// [`wait_complete`] for several sensors: when each one's backfill was
/// done, counted from `since`; panics naming the first that was not.
pub fn wait_all_complete(
    url: &str,
    agents: &[&Agent],
    until_ns: i64,
    allowed: &[&str],
    since: Instant,
    limit: Duration,
) -> Vec<Duration> {
    let deadline = since + limit;
    agents
        .iter()
        .map(|a| {
            let aor = a.spec.aor();
            let left = deadline.saturating_duration_since(Instant::now());
            match wait_complete(url, &aor, step_ns(&a.spec), until_ns, allowed, left) {
                Ok(_) => since.elapsed(),
                Err(c) => panic!(
                    "{aor}: not complete within {limit:?} of the recovery: {}\nholes {}\n\
                     gaps {}\nagent log:\n{}",
                    c.summary(),
                    brief(&c.holes),
                    brief(&collector::gaps(url, &aor)),
                    a.log_tail()
                ),
            }
        })
        .collect()
}

/// "Stored = sent exactly" for one run of an agent: `samples` (that run's)
/// are its waveform's readings at their instants, none stored twice, and
/// no hole but those gaps of `allowed` causes account for. Prints and
/// returns the figures.
pub fn assert_exact(
    what: &str,
    wave: &Waveform,
    samples: &[StoredSample],
    gaps: &[collector::Gap],
    step_ns: i64,
    allowed: &[&str],
) -> Coverage {
    let spread = complete::check_values(wave, samples, READING_SPREAD_NS)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let c = complete::coverage(samples, step_ns);
    assert_eq!(c.duplicated, 0, "{what}: stored twice: {}", c.summary());
    let unexplained = c.unexplained(gaps, allowed, step_ns);
    assert!(
        unexplained.is_empty(),
        "{what}: missing samples: {}\nholes {}\ngaps {}",
        c.summary(),
        brief(&unexplained),
        brief(gaps)
    );
    crate::assert_no_empty_gaps(what, gaps);
    eprintln!(
        "{what}: {}; readings within {} ms of their instants",
        c.summary(),
        spread / 1_000_000
    );
    c
}

/// The waveform of `agent`'s sensor for a run of `seconds` (or more).
pub fn waveform(agent: &Agent, seconds: u64) -> Waveform {
    let per_second = 1000 / u64::from(agent.spec.interval_ms.max(1));
    Waveform::with_readings(
        &agent.sim(),
        agent.interval(),
        (seconds * per_second).max(20_000),
    )
}

/// Seconds, for figures.
pub fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}
