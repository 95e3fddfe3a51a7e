//! The fleet-update tables (docs/protocol.md 12): bundles and reported
//! states, the same on both backends.

use super::open_store;
use sipsensor_collector::storage::updates::{BundleRecord, FleetEvent, SensorFleetState};
use sipsensor_collector::storage::*;
use sipsensor_collector::update::fleet::{FleetState, UpdateState};

pub async fn bundles_and_fleet_states_round_trip(url: StorageUrl) {
    let s = open_store(&url).await;
    let u = s.clone().updates().expect("both backends have the tables");
    let bundle = |sha: char, version: &str, at: i64| BundleRecord {
        sha256: sha.to_string().repeat(64),
        version: version.into(),
        compatible: "sipsensor-beaglebone".into(),
        size: 5_000_000_000,
        published_ns: at,
    };
    let first = u.record_bundle(&bundle('a', "v1", 10)).await.unwrap();
    assert_eq!(first, bundle('a', "v1", 10));
    // The same file again: the first record stays.
    assert_eq!(
        u.record_bundle(&bundle('a', "v9", 99)).await.unwrap(),
        first
    );
    u.record_bundle(&bundle('b', "v2", 20)).await.unwrap();
    assert_eq!(
        u.bundles().await.unwrap(),
        vec![bundle('b', "v2", 20), bundle('a', "v1", 10)]
    );
    assert_eq!(u.bundle(&"c".repeat(64)).await.unwrap(), None);

    let state = FleetState {
        version: "v1".into(),
        agent: "0.1.0".into(),
        compatible: "sipsensor-beaglebone".into(),
        slot: "A".into(),
        update: UpdateState::Downloading,
        target: Some("v2".into()),
        progress: Some(100),
        reason: None,
    };
    let report = SensorFleetState {
        sensor: "sip:a@example.net".into(),
        state: state.clone(),
        reported_ns: 30,
    };
    let event = FleetEvent::between(&report.sensor, None, &state, 30).unwrap();
    u.record_fleet_state(&report, Some(&event)).await.unwrap();
    let mut failed = state.clone();
    failed.update = UpdateState::RolledBack;
    failed.progress = None;
    failed.reason = Some("health check: not streaming".into());
    let later = SensorFleetState {
        state: failed.clone(),
        reported_ns: 40,
        ..report.clone()
    };
    let second = FleetEvent::between(&later.sensor, Some(&state), &failed, 40).unwrap();
    u.record_fleet_state(&later, Some(&second)).await.unwrap();
    assert_eq!(u.fleet_states().await.unwrap(), vec![later]);
    assert_eq!(
        u.fleet_events("sip:a@example.net", 10).await.unwrap(),
        vec![second, event]
    );
    assert_eq!(
        u.fleet_events("sip:b@example.net", 10).await.unwrap(),
        vec![]
    );
    s.close().await.unwrap();
}
