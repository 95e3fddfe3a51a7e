//! The scale test at the core: 1,000 simulated sensors, 10
//! canaries, waves doubling.

use super::super::{Rollout, RolloutEvent, RolloutStatus, SensorPhase};
use super::plan;
use super::sim::Sim;

const SENSORS: usize = 1000;
const CANARIES: u32 = 10;
const MAX_FAILURES: u32 = 20;

fn waves_started(events: &[RolloutEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, RolloutEvent::WaveStarted { .. }))
        .count()
}

/// A rollout over `SENSORS` fake installs, a share `failure_rate` of them
/// failing, run until it halts or finishes.
fn run(failure_rate: f64, seed: u64) -> (Sim, Rollout, Vec<RolloutEvent>) {
    let mut sim = Sim::new(SENSORS, failure_rate, seed);
    let p = plan(SENSORS, CANARIES, MAX_FAILURES);
    let mut r = Rollout::start(1, p, sim.known(), sim.now_ns()).unwrap();
    let events = sim.run(&mut r);
    (sim, r, events)
}

#[test]
fn with_no_install_failing_a_thousand_sensors_finish_in_seven_waves() {
    let (sim, r, events) = run(0.0, 7);
    assert_eq!(r.status(), &RolloutStatus::Finished);
    assert_eq!(r.tally().done, SENSORS);
    // 10, 20, 40, 80, 160, 320, 370.
    assert_eq!(waves_started(&events), 7);
    // Each wave takes its slowest sensor's install: about 4 minutes, at
    // most 1.5 times that with the fake's jitter.
    let elapsed = sim.elapsed().as_secs();
    assert!((7 * 250..=7 * 375).contains(&elapsed), "{elapsed} s");
    eprintln!(
        "1,000 sensors, 10 canaries, 0 % failing: finished in {} waves, {elapsed} s simulated",
        waves_started(&events)
    );
}

#[test]
fn with_five_percent_of_installs_failing_the_rollout_halts_at_the_threshold() {
    for seed in [1, 2, 3] {
        let (sim, r, events) = run(0.05, seed);
        let halt = events
            .iter()
            .position(|e| matches!(e, RolloutEvent::Halted { .. }))
            .unwrap_or_else(|| panic!("seed {seed}: no halt: {:?}", r.status()));
        let failed_before_halt = events[..halt]
            .iter()
            .filter(|e| matches!(e, RolloutEvent::SensorFailed { .. }))
            .count();
        assert_eq!(failed_before_halt, MAX_FAILURES as usize + 1, "seed {seed}");
        let RolloutStatus::Halted { reason } = r.status() else {
            panic!("seed {seed}: {:?}", r.status());
        };
        assert!(
            reason.starts_with("21 failures > --max-failures 20: s"),
            "{reason}"
        );
        // No wave starts after the halt, and the sensors never targeted stay
        // on the old version.
        assert_eq!(waves_started(&events[halt..]), 0);
        let pending = r.tally().pending;
        assert!(
            pending > 0,
            "seed {seed}: the halt came after the last wave"
        );
        let never_told = r
            .sensors()
            .iter()
            .filter(|s| s.phase == SensorPhase::Pending)
            .all(|s| s.targeted_ns.is_none());
        assert!(never_told);
        let (wave, waves) = r.wave();
        eprintln!(
            "seed {seed}: halted in wave {} of {waves} after {} s simulated, {pending} sensors never targeted",
            wave.map_or(0, |w| w + 1),
            sim.elapsed().as_secs()
        );
    }
}
