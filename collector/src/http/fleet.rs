//! `/api/fleet`: what every sensor last reported of its software
//! (docs/protocol.md 12.3), and the published bundles.

use super::{ApiError, AppState};
use crate::timefmt::format_rfc3339;
use crate::update::fleet::{UpdateState, VersionCount, json};
use crate::update::store::BundleRecord;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct FleetSensor {
    pub sensor: String,
    pub version: String,
    pub agent: String,
    pub compatible: String,
    pub slot: String,
    #[serde(serialize_with = "json::update")]
    pub update: UpdateState,
    pub target: Option<String>,
    pub progress: Option<u8>,
    pub reason: Option<String>,
    pub reported: String,
    pub reported_ns: i64,
}

#[derive(Debug, Serialize)]
pub struct Fleet {
    pub versions: Vec<VersionCount>,
    pub sensors: Vec<FleetSensor>,
}

/// A collector without a fleet view (tests of the page alone) shows an
/// empty fleet.
pub async fn fleet(State(state): State<AppState>) -> Json<Fleet> {
    let Some(view) = state.fleet.as_ref() else {
        return Json(Fleet {
            versions: Vec::new(),
            sensors: Vec::new(),
        });
    };
    let sensors = view
        .snapshot()
        .into_iter()
        .map(|s| FleetSensor {
            sensor: s.sensor,
            version: s.state.version,
            agent: s.state.agent,
            compatible: s.state.compatible,
            slot: s.state.slot,
            update: s.state.update,
            target: s.state.target,
            progress: s.state.progress,
            reason: s.state.reason,
            reported: format_rfc3339(s.reported_ns),
            reported_ns: s.reported_ns,
        })
        .collect();
    Json(Fleet {
        versions: view.versions(),
        sensors,
    })
}

pub async fn bundles(State(state): State<AppState>) -> Result<Json<Vec<BundleRecord>>, ApiError> {
    let store = state
        .storage
        .clone()
        .updates()
        .ok_or_else(|| ApiError::not_found("this store has no bundles"))?;
    Ok(Json(store.bundles().await?))
}
