//! A load run's simulated fleet (docs/protocol.md 12): every sensor
//! answers the collector's fleet subscription with a fake install, and
//! the run says on stderr how the fleet stands while it lasts.

use crate::fake_install::FakeInstallConfig;
use crate::fleet::{FleetIdentity, SimFleet};
use crate::sensor::SimSensor;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the run prints the fleet's states when they changed.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// What every simulated sensor runs and how its installs go.
#[derive(Debug, Clone)]
pub struct LoadFleet {
    /// The image version the sensors run at start.
    pub version: String,
    /// `compatible=` of their reports.
    pub compatible: String,
    pub install: FakeInstallConfig,
    /// Seeds the installs' draws; sensor `i` draws from its own stream.
    pub seed: u64,
}

impl LoadFleet {
    /// Sensor `index`'s fleet side.
    pub fn sensor(&self, index: usize) -> SimFleet {
        SimFleet {
            version: self.version.clone(),
            identity: FleetIdentity {
                agent: env!("CARGO_PKG_VERSION").into(),
                compatible: self.compatible.clone(),
            },
            install: self.install.clone(),
            seed: self.seed.wrapping_mul(1_000_003).wrapping_add(index as u64),
        }
    }
}

/// Sensors per `VERSION UPDATE` (e.g. `2026.12.2 good`), as they would
/// report now; sensors without a fleet side are left out.
pub fn summary(sensors: &[Arc<SimSensor>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for state in sensors.iter().filter_map(|s| s.fleet_state()) {
        *counts
            .entry(format!("{} {}", state.version, state.update))
            .or_default() += 1;
    }
    counts
}

/// `2026.12.1 idle 990, 2026.12.2 good 10`.
pub fn summary_line(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(state, n)| format!("{state} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sleeps `duration`, printing the fleet's states every few seconds when
/// they changed.
pub async fn sleep_reporting(sensors: &[Arc<SimSensor>], duration: Duration) {
    let end = Instant::now() + duration;
    let mut last = BTreeMap::new();
    loop {
        let counts = summary(sensors);
        if counts != last {
            eprintln!("fleet: {}", summary_line(&counts));
            last = counts;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(SUMMARY_EVERY)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sensor_draws_from_its_own_seed_and_reports_the_run_s_version() {
        let fleet = LoadFleet {
            version: "2026.12.1".into(),
            compatible: "sipsensor-sim".into(),
            install: FakeInstallConfig::default(),
            seed: 5,
        };
        let (a, b) = (fleet.sensor(0), fleet.sensor(1));
        assert_ne!(a.seed, b.seed);
        assert_eq!(fleet.sensor(1).seed, b.seed, "repeatable");
        assert_eq!(a.version, "2026.12.1");
        assert_eq!(a.identity.compatible, "sipsensor-sim");
        let counts = BTreeMap::from([
            ("2026.12.1 idle".to_string(), 990),
            ("2026.12.2 good".to_string(), 10),
        ]);
        assert_eq!(
            summary_line(&counts),
            "2026.12.1 idle 990, 2026.12.2 good 10"
        );
    }
}
