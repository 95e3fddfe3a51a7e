//! The rollout rules of docs/protocol.md 12.7 on a virtual clock; the
//! 1,000-sensor runs are in `tests/scale.rs` on the simulated fleet of
//! `tests/sim.rs`.

mod scale;
pub(crate) mod sim;

use super::*;

const V: &str = "2026.12.2";
const OLD: &str = "2026.12.1";
const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_800_000_000 * SEC;

pub(crate) fn want() -> FleetWant {
    FleetWant {
        version: V.into(),
        url: "https://collector.test:8443/bundles/ab.raucb".into(),
        sha256: [0xab; 32],
        size: 41_234_432,
        reboot: RebootPolicy::Now,
    }
}

pub(crate) fn plan(sensors: usize, canary: u32, max_failures: u32) -> RolloutPlan {
    RolloutPlan {
        want: want(),
        sensors: (0..sensors).map(|i| format!("s{i}")).collect(),
        canary,
        growth: DEFAULT_GROWTH,
        max_failures,
        timeout: DEFAULT_TIMEOUT,
    }
}

pub(crate) fn state(version: &str, update: UpdateState, target: Option<&str>) -> FleetState {
    FleetState {
        version: version.into(),
        agent: "0.1.0".into(),
        compatible: "sipsensor-beaglebone".into(),
        slot: "A".into(),
        update,
        target: target.map(String::from),
        progress: None,
        reason: None,
    }
}

fn good() -> FleetState {
    state(V, UpdateState::Good, Some(V))
}

fn failed(update: UpdateState, reason: &str) -> FleetState {
    FleetState {
        reason: Some(reason.into()),
        ..state(OLD, update, Some(V))
    }
}

fn drain(r: &mut Rollout) -> Vec<Output> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

/// The sensors told the version, and those told to stop.
fn wants(outputs: &[Output]) -> (Vec<String>, Vec<String>) {
    let mut told = Vec::new();
    let mut stopped = Vec::new();
    for o in outputs {
        if let Output::SetWant { sensor, want } = o {
            match want {
                Some(w) => {
                    assert_eq!(w, &self::want());
                    told.push(sensor.clone());
                }
                None => stopped.push(sensor.clone()),
            }
        }
    }
    (told, stopped)
}

fn events(outputs: &[Output]) -> Vec<RolloutEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            Output::SetWant { .. } => None,
        })
        .collect()
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("s{i}")).collect()
}

fn start(p: RolloutPlan) -> Rollout {
    Rollout::start(1, p, [], T0).unwrap()
}

#[test]
fn canaries_first_then_each_wave_twice_the_last() {
    let mut r = start(plan(7, 1, 0));
    let out = drain(&mut r);
    assert_eq!(wants(&out).0, names(0..1));
    assert!(events(&out).contains(&RolloutEvent::WaveStarted {
        wave: 0,
        at_ns: T0,
        first: 0,
        count: 1
    }));
    r.report("s0", good(), T0 + 60 * SEC);
    assert_eq!(wants(&drain(&mut r)).0, names(1..3));
    r.report("s1", good(), T0 + 70 * SEC);
    r.report("s2", good(), T0 + 80 * SEC);
    assert_eq!(wants(&drain(&mut r)).0, names(3..7));
    assert_eq!(r.wave(), (Some(2), 3));
    for i in 3..7 {
        r.report(&format!("s{i}"), good(), T0 + 90 * SEC);
    }
    let out = drain(&mut r);
    assert_eq!(
        events(&out).last(),
        Some(&RolloutEvent::Finished {
            at_ns: T0 + 90 * SEC
        })
    );
    assert_eq!(r.status(), &RolloutStatus::Finished);
    assert_eq!(r.tally().done, 7);
}

#[test]
fn a_wave_waits_for_every_sensor_of_the_previous_one() {
    let mut r = start(plan(7, 2, 5));
    drain(&mut r);
    r.report("s0", good(), T0 + SEC);
    r.report("s1", state(OLD, UpdateState::Installing, Some(V)), T0 + SEC);
    r.report(
        "s1",
        state(OLD, UpdateState::Rebooting, Some(V)),
        T0 + 2 * SEC,
    );
    // On trial: not good yet (12.6).
    r.report("s1", state(V, UpdateState::Trial, Some(V)), T0 + 3 * SEC);
    assert_eq!(wants(&drain(&mut r)).0, Vec::<String>::new());
    assert_eq!(r.wave(), (Some(0), 3));
    // A failure settles a sensor too: the next wave starts.
    r.report(
        "s1",
        failed(UpdateState::RolledBack, "health check"),
        T0 + 4 * SEC,
    );
    assert_eq!(wants(&drain(&mut r)).0, names(2..6));
}

#[test]
fn failed_or_rolled_back_for_the_version_fails_and_another_version_does_not() {
    let mut r = start(plan(4, 2, 5));
    drain(&mut r);
    // A stale result about an older target: still waiting.
    let other = FleetState {
        reason: Some("checksum".into()),
        ..state(OLD, UpdateState::Failed, Some("2026.11.9"))
    };
    r.report("s0", other, T0 + SEC);
    r.report("s1", failed(UpdateState::Failed, "download: 404"), T0 + SEC);
    let out = drain(&mut r);
    assert!(events(&out).contains(&RolloutEvent::SensorFailed {
        sensor: "s1".into(),
        at_ns: T0 + SEC,
        why: "failed (download: 404)".into()
    }));
    assert_eq!(r.sensors()[0].phase, SensorPhase::Targeted);
    r.report(
        "s0",
        failed(UpdateState::RolledBack, "not streaming"),
        T0 + 2 * SEC,
    );
    assert_eq!(r.sensors()[0].phase, SensorPhase::Failed);
    assert_eq!(
        r.sensors()[0].detail.as_deref(),
        Some("rolled back (not streaming)")
    );
    assert_eq!(wants(&drain(&mut r)).0, names(2..4));
}

#[test]
fn a_sensor_not_good_within_the_timeout_fails_and_is_told_to_stop() {
    let mut p = plan(3, 2, 5);
    p.timeout = Duration::from_secs(600);
    let mut r = start(p);
    drain(&mut r);
    assert_eq!(r.poll_timeout(), Some(T0 + 600 * SEC));
    r.report(
        "s0",
        state(OLD, UpdateState::Downloading, Some(V)),
        T0 + SEC,
    );
    r.report("s1", state(OLD, UpdateState::Installing, Some(V)), T0 + SEC);
    r.handle_timeout(T0 + 599 * SEC);
    assert!(
        drain(&mut r)
            .iter()
            .all(|o| matches!(o, Output::Event(RolloutEvent::SensorUpdate { .. })))
    );
    r.handle_timeout(T0 + 600 * SEC);
    let out = drain(&mut r);
    assert!(events(&out).contains(&RolloutEvent::SensorFailed {
        sensor: "s0".into(),
        at_ns: T0 + 600 * SEC,
        why: "not good within 10m (last reported downloading)".into()
    }));
    // s0 had not begun installing: its want goes; s1's install goes on.
    assert_eq!(wants(&out), (names(2..3), names(0..1)));
    assert_eq!(r.sensors()[1].phase, SensorPhase::Failed);
}

#[test]
fn an_offline_sensor_waits_and_its_time_runs() {
    let mut r = start(plan(2, 1, 5));
    assert_eq!(wants(&drain(&mut r)).0, names(0..1));
    // No report at all for 29 minutes, then it comes back and updates.
    r.handle_timeout(T0 + 29 * 60 * SEC);
    assert_eq!(r.sensors()[0].phase, SensorPhase::Targeted);
    r.report("s0", good(), T0 + 29 * 60 * SEC + SEC);
    assert_eq!(r.sensors()[0].phase, SensorPhase::Done);
    // The next one never answers: failed with "no report".
    r.handle_timeout(T0 + 60 * 60 * SEC);
    assert_eq!(
        r.sensors()[1].detail.as_deref(),
        Some("not good within 30m (no report)")
    );
    assert_eq!(r.status(), &RolloutStatus::Finished);
}

#[test]
fn a_sensor_already_on_the_version_is_done_at_once_and_told_nothing() {
    let known = [
        ("s0".to_string(), state(V, UpdateState::Idle, None)),
        ("s1".to_string(), state(OLD, UpdateState::Idle, None)),
        ("nobody".to_string(), state(OLD, UpdateState::Idle, None)),
    ];
    let mut r = Rollout::start(1, plan(3, 2, 0), known, T0).unwrap();
    let out = drain(&mut r);
    assert_eq!(wants(&out).0, names(1..2));
    assert!(events(&out).contains(&RolloutEvent::SensorDone {
        sensor: "s0".into(),
        at_ns: T0
    }));
    // Reports of sensors outside the plan change nothing.
    r.report("nobody", good(), T0 + SEC);
    assert!(drain(&mut r).is_empty());
}

#[test]
fn a_sensor_that_failed_the_version_before_fails_at_its_wave() {
    let known = [(
        "s1".to_string(),
        failed(UpdateState::RolledBack, "health check"),
    )];
    let mut r = Rollout::start(1, plan(2, 1, 5), known, T0).unwrap();
    drain(&mut r);
    r.report("s0", good(), T0 + SEC);
    let out = drain(&mut r);
    // The agent would not retry it (12.4): nothing to tell it.
    assert_eq!(wants(&out).0, Vec::<String>::new());
    assert_eq!(r.sensors()[1].phase, SensorPhase::Failed);
}

#[test]
fn past_the_threshold_it_halts_names_the_failures_and_stops_who_can_stop() {
    let mut r = start(plan(20, 4, 1));
    drain(&mut r);
    r.report(
        "s0",
        state(OLD, UpdateState::Downloading, Some(V)),
        T0 + SEC,
    );
    r.report("s1", state(OLD, UpdateState::Installing, Some(V)), T0 + SEC);
    r.report(
        "s2",
        failed(UpdateState::Failed, "rauc install: signature"),
        T0 + 2 * SEC,
    );
    assert_eq!(r.status(), &RolloutStatus::Running);
    drain(&mut r);
    r.report(
        "s3",
        failed(UpdateState::RolledBack, "health check: not streaming"),
        T0 + 3 * SEC,
    );
    let reason = "2 failures > --max-failures 1: s2 failed (rauc install: signature), \
                  s3 rolled back (health check: not streaming)";
    assert_eq!(
        r.status(),
        &RolloutStatus::Halted {
            reason: reason.into()
        }
    );
    let out = drain(&mut r);
    // s0 was only downloading: told to stop; s1 installs on (12.4).
    assert_eq!(wants(&out), (vec![], names(0..1)));
    assert_eq!(r.sensors()[0].phase, SensorPhase::Stopped);
    assert_eq!(r.sensors()[1].phase, SensorPhase::Targeted);
    assert_eq!(
        events(&out).last(),
        Some(&RolloutEvent::Halted {
            at_ns: T0 + 3 * SEC,
            reason: reason.into()
        })
    );
    // Nothing more is targeted, whatever comes; s1's result still counts.
    r.report("s1", good(), T0 + 4 * SEC);
    assert_eq!(r.sensors()[1].phase, SensorPhase::Done);
    r.handle_timeout(T0 + 3600 * SEC);
    let out = drain(&mut r);
    assert_eq!(wants(&out).0, Vec::<String>::new());
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, RolloutEvent::WaveStarted { .. }))
    );
    assert_eq!(r.tally().pending, 16);
}

#[test]
fn the_operator_halts_with_a_reason_once() {
    let mut r = start(plan(4, 2, 1));
    drain(&mut r);
    r.halt("halted by the operator", T0 + SEC);
    let out = drain(&mut r);
    assert_eq!(wants(&out).1, names(0..2));
    r.halt("again", T0 + 2 * SEC);
    assert!(drain(&mut r).is_empty());
    assert_eq!(
        r.status(),
        &RolloutStatus::Halted {
            reason: "halted by the operator".into()
        }
    );
}

#[test]
fn a_resumed_rollout_tells_its_targeted_sensors_again_and_goes_on() {
    let mut r = start(plan(7, 2, 5));
    drain(&mut r);
    r.report("s0", good(), T0 + SEC);
    r.report(
        "s1",
        state(OLD, UpdateState::Downloading, Some(V)),
        T0 + SEC,
    );
    drain(&mut r);
    let snapshot = r.snapshot();
    let mut again = Rollout::resume(snapshot.clone());
    assert_eq!(again.snapshot(), snapshot);
    assert_eq!(wants(&drain(&mut again)).0, names(1..2));
    // The time ran on while the collector was down.
    again.handle_timeout(T0 + 31 * 60 * SEC);
    let out = drain(&mut again);
    assert_eq!(wants(&out), (names(2..6), names(1..2)));
    // Neither a halted nor a finished rollout tells anybody anything.
    again.halt("halted by the operator", T0 + 32 * 60 * SEC);
    drain(&mut again);
    let mut halted = Rollout::resume(again.snapshot());
    assert!(drain(&mut halted).is_empty());
}

#[test]
fn human_durations() {
    assert_eq!(human_duration(Duration::from_secs(1800)), "30m");
    assert_eq!(human_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(human_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(human_duration(Duration::ZERO), "0s");
}
