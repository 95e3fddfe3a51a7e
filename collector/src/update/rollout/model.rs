//! What a rollout is made of and what it hands out: the sensors' phases,
//! the rollout's status, its snapshot (what the store keeps) and its
//! outputs.

use super::RolloutPlan;
use super::{FleetWant, UpdateState};

/// A rollout's number in the database.
pub type RolloutId = i64;

/// Where a sensor is in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SensorPhase {
    /// Its wave has not started.
    Pending,
    /// Told to run the version; neither done nor failed yet.
    Targeted,
    /// `good` on the version (or running it already when targeted).
    Done,
    /// `failed` or `rolled-back` for the version, or not `good` in time.
    Failed,
    /// Targeted, then told to stop when the rollout halted.
    Stopped,
}

impl SensorPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SensorPhase::Pending => "pending",
            SensorPhase::Targeted => "targeted",
            SensorPhase::Done => "done",
            SensorPhase::Failed => "failed",
            SensorPhase::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SensorPhase::Pending,
            SensorPhase::Targeted,
            SensorPhase::Done,
            SensorPhase::Failed,
            SensorPhase::Stopped,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// One sensor of a rollout, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorRecord {
    pub sensor: String,
    pub phase: SensorPhase,
    pub targeted_ns: Option<i64>,
    /// When it became done, failed or stopped.
    pub finished_ns: Option<i64>,
    /// The last `update=` it reported while targeted.
    pub last_update: Option<UpdateState>,
    /// Why it failed or was stopped.
    pub detail: Option<String>,
}

/// Where the whole rollout is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    Running,
    /// No further sensor is targeted; `reason` says why (12.7).
    Halted {
        reason: String,
    },
    /// Every sensor is done or failed, within the threshold.
    Finished,
}

/// Everything a rollout is: what the store keeps and
/// [`Rollout::resume`](super::Rollout::resume) takes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutSnapshot {
    pub id: RolloutId,
    pub plan: RolloutPlan,
    pub created_ns: i64,
    pub status: RolloutStatus,
    /// The wave last started (0 the canaries), `None` before the first.
    pub wave: Option<u32>,
    /// In the plan's order.
    pub sensors: Vec<SensorRecord>,
}

/// What the rollout decided, in the order it decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutEvent {
    /// The wave's sensors are targeted at `at_ns`.
    WaveStarted {
        wave: u32,
        at_ns: i64,
        /// The wave's sensors: `count` from position `first` of the plan.
        first: usize,
        count: usize,
    },
    /// A targeted sensor reported a new `update=`.
    SensorUpdate {
        sensor: String,
        update: UpdateState,
    },
    SensorDone {
        sensor: String,
        at_ns: i64,
    },
    SensorFailed {
        sensor: String,
        at_ns: i64,
        why: String,
    },
    /// Told to stop (a `want` withdrawn) when the rollout halted.
    SensorStopped {
        sensor: String,
        at_ns: i64,
        why: String,
    },
    Halted {
        at_ns: i64,
        reason: String,
    },
    Finished {
        at_ns: i64,
    },
}

/// What the shell carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Put `want` in the sensor's subscription; `None` withdraws it (a
    /// SUBSCRIBE without `want`, 12.4).
    SetWant {
        sensor: String,
        want: Option<FleetWant>,
    },
    Event(RolloutEvent),
}

/// A counter of a rollout's sensors by phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub pending: usize,
    pub targeted: usize,
    pub done: usize,
    pub failed: usize,
    pub stopped: usize,
}
