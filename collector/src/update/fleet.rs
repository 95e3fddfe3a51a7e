//! The fleet view: every sensor's latest report (docs/protocol.md 12.3),
//! kept in memory for the page, `/api/fleet` and `/metrics`, and written
//! through to the database with a history of its update events.

pub mod metrics;

pub use sipsensor_protocol::fleet::{FleetState, FleetWant, RebootPolicy, UpdateState};

use super::store::{FleetEvent, SensorFleetState, UpdateStore};
use crate::storage::StorageError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many sensors run a version, by update state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionCount {
    pub version: String,
    pub sensors: usize,
    /// By `update` value; only the states some sensor is in.
    #[serde(serialize_with = "json::by_update")]
    pub by_update: BTreeMap<UpdateState, usize>,
}

#[derive(Debug)]
pub struct FleetView {
    store: Arc<dyn UpdateStore>,
    sensors: Mutex<BTreeMap<String, SensorFleetState>>,
}

impl FleetView {
    /// The view as the database last saw it.
    pub async fn load(store: Arc<dyn UpdateStore>) -> Result<Arc<Self>, StorageError> {
        let sensors = store
            .fleet_states()
            .await?
            .into_iter()
            .map(|s| (s.sensor.clone(), s))
            .collect();
        Ok(Arc::new(FleetView {
            store,
            sensors: Mutex::new(sensors),
        }))
    }

    fn sensors(&self) -> MutexGuard<'_, BTreeMap<String, SensorFleetState>> {
        // A panic elsewhere leaves a whole map: every write is one insert.
        self.sensors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a NOTIFY's state: the database first, so the view never
    /// shows what a restart would forget.
    pub async fn record(
        &self,
        sensor: &str,
        state: FleetState,
        now_ns: i64,
    ) -> Result<Option<FleetEvent>, StorageError> {
        let previous = self.sensors().get(sensor).map(|s| s.state.clone());
        let event = FleetEvent::between(sensor, previous.as_ref(), &state, now_ns);
        let report = SensorFleetState {
            sensor: sensor.to_string(),
            state,
            reported_ns: now_ns,
        };
        self.store
            .record_fleet_state(&report, event.as_ref())
            .await?;
        self.sensors().insert(sensor.to_string(), report);
        Ok(event)
    }

    /// Every sensor's latest report, by address of record.
    pub fn snapshot(&self) -> Vec<SensorFleetState> {
        self.sensors().values().cloned().collect()
    }

    pub fn sensor(&self, sensor: &str) -> Option<SensorFleetState> {
        self.sensors().get(sensor).cloned()
    }

    /// Sensors per version, versions in order.
    pub fn versions(&self) -> Vec<VersionCount> {
        let mut by_version: BTreeMap<String, VersionCount> = BTreeMap::new();
        for s in self.sensors().values() {
            let v = by_version
                .entry(s.state.version.clone())
                .or_insert_with(|| VersionCount {
                    version: s.state.version.clone(),
                    sensors: 0,
                    by_update: BTreeMap::new(),
                });
            v.sensors += 1;
            *v.by_update.entry(s.state.update).or_insert(0) += 1;
        }
        by_version.into_values().collect()
    }

    /// The sensor's newest events, newest first.
    pub async fn events(&self, sensor: &str, limit: u32) -> Result<Vec<FleetEvent>, StorageError> {
        self.store.fleet_events(sensor, limit).await
    }
}

/// The protocol crate's body types as JSON (`/api/fleet`): serde is the
/// collector's concern, so the conversion lives at this edge.
pub mod json {
    use super::{FleetState, UpdateState};
    use serde::{Serialize, Serializer};
    use std::collections::BTreeMap;

    /// A state as its wire name (12.3).
    pub fn update<S: Serializer>(u: &UpdateState, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.as_str())
    }

    pub fn by_update<S: Serializer>(
        map: &BTreeMap<UpdateState, usize>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(u, n)| (u.as_str(), n)))
    }

    /// A NOTIFY body's fields by their names (12.3).
    pub fn state<S: Serializer>(state: &FleetState, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Fields<'a> {
            version: &'a str,
            agent: &'a str,
            compatible: &'a str,
            slot: &'a str,
            update: &'static str,
            target: Option<&'a str>,
            progress: Option<u8>,
            reason: Option<&'a str>,
        }
        Fields {
            version: &state.version,
            agent: &state.agent,
            compatible: &state.compatible,
            slot: &state.slot,
            update: state.update.as_str(),
            target: state.target.as_deref(),
            progress: state.progress,
            reason: state.reason.as_deref(),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests;
