use super::*;
use crate::storage::Storage;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};

pub(crate) fn state(version: &str, update: UpdateState) -> FleetState {
    FleetState {
        version: version.to_string(),
        agent: "0.1.0".to_string(),
        compatible: "sipsensor-beaglebone".to_string(),
        slot: "A".to_string(),
        update,
        target: None,
        progress: None,
        reason: None,
    }
}

async fn store(dir: &tempfile::TempDir) -> Arc<dyn UpdateStore> {
    let s = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
        .await
        .unwrap();
    Arc::new(s).updates().expect("SQLite has the update tables")
}

#[tokio::test]
async fn reports_are_kept_across_a_restart_and_progress_alone_is_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let view = FleetView::load(store(&dir).await).await.unwrap();
    let s1 = "sip:s1@example.net";
    assert!(
        view.record(s1, state("v1", UpdateState::Idle), 10)
            .await
            .unwrap()
            .is_some()
    );
    let mut downloading = state("v1", UpdateState::Downloading);
    downloading.target = Some("v2".into());
    downloading.progress = Some(10);
    assert!(
        view.record(s1, downloading.clone(), 20)
            .await
            .unwrap()
            .is_some()
    );
    downloading.progress = Some(60);
    assert_eq!(
        view.record(s1, downloading.clone(), 30).await.unwrap(),
        None
    );
    let mut failed = state("v1", UpdateState::Failed);
    failed.target = Some("v2".into());
    failed.reason = Some("sha256 mismatch".into());
    view.record(s1, failed.clone(), 40).await.unwrap();
    view.record("sip:s2@example.net", state("v2", UpdateState::Good), 50)
        .await
        .unwrap();

    // A new view on the same file: what the database holds.
    let again = FleetView::load(store(&dir).await).await.unwrap();
    assert_eq!(again.snapshot(), view.snapshot());
    let s1_now = again.sensor(s1).unwrap();
    assert_eq!((s1_now.state, s1_now.reported_ns), (failed, 40));
    let events = again.events(s1, 10).await.unwrap();
    let updates: Vec<_> = events.iter().map(|e| (e.ts_ns, e.update)).collect();
    assert_eq!(
        updates,
        vec![
            (40, UpdateState::Failed),
            (20, UpdateState::Downloading),
            (10, UpdateState::Idle)
        ]
    );
    assert_eq!(events[0].reason.as_deref(), Some("sha256 mismatch"));
    assert_eq!(again.events(s1, 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sensors_are_counted_per_version_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let view = FleetView::load(store(&dir).await).await.unwrap();
    for (i, (v, u)) in [
        ("v1", UpdateState::Idle),
        ("v1", UpdateState::Downloading),
        ("v2", UpdateState::Good),
        ("v1", UpdateState::Idle),
    ]
    .into_iter()
    .enumerate()
    {
        view.record(&format!("sip:s{i}@example.net"), state(v, u), 1)
            .await
            .unwrap();
    }
    // s0 moves to v2: counted once, under its latest report.
    view.record("sip:s0@example.net", state("v2", UpdateState::Trial), 2)
        .await
        .unwrap();
    let versions = view.versions();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].version, "v1");
    assert_eq!(versions[0].sensors, 2);
    assert_eq!(
        versions[0].by_update,
        BTreeMap::from([(UpdateState::Idle, 1), (UpdateState::Downloading, 1)])
    );
    assert_eq!(
        versions[1].by_update,
        BTreeMap::from([(UpdateState::Good, 1), (UpdateState::Trial, 1)])
    );
}
