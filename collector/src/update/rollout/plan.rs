//! What a rollout is asked to do (docs/protocol.md 12.7) and the waves that
//! follow from it.

use super::FleetWant;
use std::collections::HashSet;
use std::ops::Range;
use std::time::Duration;

/// `--growth` when not given: each wave twice the previous one (12.7).
pub const DEFAULT_GROWTH: u32 = 2;
/// `--timeout` when not given (12.7).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A rollout as the operator asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutPlan {
    /// What the sensors are told (`want` is the version rolled out).
    pub want: FleetWant,
    /// The sensors in targeting order: the first `canary` are the canaries.
    pub sensors: Vec<String>,
    pub canary: u32,
    /// Each wave after the canaries is this many times the previous one.
    pub growth: u32,
    /// The rollout halts when more sensors than this have failed.
    pub max_failures: u32,
    /// A targeted sensor not `good` on the version after this has failed.
    pub timeout: Duration,
}

/// Why a plan cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no sensors to roll out to")]
    NoSensors,
    #[error("--canary must be at least 1")]
    NoCanary,
    #[error("--canary {canary} is more than the {sensors} sensors")]
    CanaryExceedsSensors { canary: u32, sensors: usize },
    #[error("--growth must be at least 1")]
    NoGrowth,
    #[error("--timeout must be longer than zero")]
    NoTimeout,
    #[error("sensor {0} is listed twice")]
    DuplicateSensor(String),
}

impl RolloutPlan {
    /// The version rolled out.
    pub fn version(&self) -> &str {
        &self.want.version
    }

    pub fn validate(&self) -> Result<(), PlanError> {
        if self.sensors.is_empty() {
            return Err(PlanError::NoSensors);
        }
        if self.canary == 0 {
            return Err(PlanError::NoCanary);
        }
        if usize::try_from(self.canary).map_or(true, |c| c > self.sensors.len()) {
            return Err(PlanError::CanaryExceedsSensors {
                canary: self.canary,
                sensors: self.sensors.len(),
            });
        }
        if self.growth == 0 {
            return Err(PlanError::NoGrowth);
        }
        if self.timeout.is_zero() {
            return Err(PlanError::NoTimeout);
        }
        let mut seen = HashSet::with_capacity(self.sensors.len());
        if let Some(dup) = self.sensors.iter().find(|s| !seen.insert(s.as_str())) {
            return Err(PlanError::DuplicateSensor(dup.clone()));
        }
        Ok(())
    }

    /// The waves as ranges of [`RolloutPlan::sensors`]: `canary`, then each
    /// `growth` times the previous, the last one what is left.
    pub fn waves(&self) -> Vec<Range<usize>> {
        let total = self.sensors.len();
        let growth = usize::try_from(self.growth).unwrap_or(usize::MAX).max(1);
        let mut size = usize::try_from(self.canary).unwrap_or(usize::MAX).max(1);
        let mut waves = Vec::new();
        let mut start = 0;
        while start < total {
            let end = start.saturating_add(size).min(total);
            waves.push(start..end);
            start = end;
            size = size.saturating_mul(growth);
        }
        waves
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::rollout::RebootPolicy;

    pub(crate) fn plan(sensors: usize, canary: u32, growth: u32) -> RolloutPlan {
        RolloutPlan {
            want: FleetWant {
                version: "2026.12.2".into(),
                url: "https://collector.test:8443/bundles/00.raucb".into(),
                sha256: [0; 32],
                size: 1,
                reboot: RebootPolicy::Now,
            },
            sensors: (0..sensors).map(|i| format!("s{i}")).collect(),
            canary,
            growth,
            max_failures: 0,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    #[test]
    fn waves_grow_from_the_canaries_and_the_last_takes_the_rest() {
        assert_eq!(plan(1000, 10, 2).waves().len(), 7);
        let sizes: Vec<usize> = plan(1000, 10, 2).waves().iter().map(|w| w.len()).collect();
        assert_eq!(sizes, [10, 20, 40, 80, 160, 320, 370]);
        let sizes: Vec<usize> = plan(10, 3, 1).waves().iter().map(|w| w.len()).collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        let sizes: Vec<usize> = plan(5, 5, 2).waves().iter().map(|w| w.len()).collect();
        assert_eq!(sizes, [5]);
        // Huge factors saturate instead of overflowing.
        let sizes: Vec<usize> = plan(7, 2, u32::MAX)
            .waves()
            .iter()
            .map(|w| w.len())
            .collect();
        assert_eq!(sizes, [2, 5]);
    }

    #[test]
    fn plans_that_cannot_run_say_why() {
        assert_eq!(plan(0, 1, 2).validate(), Err(PlanError::NoSensors));
        assert_eq!(plan(3, 0, 2).validate(), Err(PlanError::NoCanary));
        assert_eq!(
            plan(3, 4, 2).validate(),
            Err(PlanError::CanaryExceedsSensors {
                canary: 4,
                sensors: 3
            })
        );
        assert_eq!(plan(3, 1, 0).validate(), Err(PlanError::NoGrowth));
        let mut p = plan(3, 1, 2);
        p.timeout = Duration::ZERO;
        assert_eq!(p.validate(), Err(PlanError::NoTimeout));
        let mut p = plan(3, 1, 2);
        p.sensors[2] = "s0".into();
        assert_eq!(p.validate(), Err(PlanError::DuplicateSensor("s0".into())));
        assert_eq!(plan(3, 3, 2).validate(), Ok(()));
    }
}
