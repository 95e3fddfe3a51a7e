//! What fleet updates keep in the database: the published bundles and
//! every sensor's reported state with a history of its update events.
//! Both backends implement [`UpdateStore`] (`storage/*/update.rs`) on the
//! tables of their migration 4.

use super::fleet::{FleetState, UpdateState};
use crate::storage::StorageError;
use async_trait::async_trait;
use serde::Serialize;

/// A bundle `update publish` accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleRecord {
    /// 64 lower-case hex digits: the file's SHA-256, also its name.
    pub sha256: String,
    pub version: String,
    pub compatible: String,
    pub size: u64,
    pub published_ns: i64,
}

/// A sensor's latest report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SensorFleetState {
    /// Address of record.
    pub sensor: String,
    #[serde(serialize_with = "super::fleet::json::state")]
    pub state: FleetState,
    pub reported_ns: i64,
}

/// A change of a sensor's `update`, `target` or `version` (progress
/// alone is not one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetEvent {
    pub sensor: String,
    pub ts_ns: i64,
    pub version: String,
    #[serde(serialize_with = "super::fleet::json::update")]
    pub update: UpdateState,
    pub target: Option<String>,
    pub reason: Option<String>,
}

impl FleetEvent {
    /// The event `state` makes after `previous`, if it is one.
    pub fn between(
        sensor: &str,
        previous: Option<&FleetState>,
        state: &FleetState,
        ts_ns: i64,
    ) -> Option<FleetEvent> {
        let changed = previous.is_none_or(|p| {
            (&p.version, p.update, &p.target, &p.reason)
                != (&state.version, state.update, &state.target, &state.reason)
        });
        changed.then(|| FleetEvent {
            sensor: sensor.to_string(),
            ts_ns,
            version: state.version.clone(),
            update: state.update,
            target: state.target.clone(),
            reason: state.reason.clone(),
        })
    }
}

#[async_trait]
pub trait UpdateStore: Send + Sync + std::fmt::Debug {
    /// Records a bundle; publishing the same file again keeps the first
    /// record and returns it.
    async fn record_bundle(&self, bundle: &BundleRecord) -> Result<BundleRecord, StorageError>;

    /// Published bundles, newest first.
    async fn bundles(&self) -> Result<Vec<BundleRecord>, StorageError>;

    async fn bundle(&self, sha256: &str) -> Result<Option<BundleRecord>, StorageError>;

    /// Stores the sensor's latest state and, when it is one, the event it
    /// makes (see [`FleetEvent::between`]), in one transaction.
    async fn record_fleet_state(
        &self,
        report: &SensorFleetState,
        event: Option<&FleetEvent>,
    ) -> Result<(), StorageError>;

    /// Every sensor's latest state, by address of record.
    async fn fleet_states(&self) -> Result<Vec<SensorFleetState>, StorageError>;

    /// The sensor's newest `limit` events, newest first.
    async fn fleet_events(&self, sensor: &str, limit: u32)
    -> Result<Vec<FleetEvent>, StorageError>;
}
