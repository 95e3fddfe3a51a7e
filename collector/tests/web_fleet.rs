//! The page's fleet section in headless Chromium: reported states go into
//! the fleet view, the page must show them (sensors per version, each
//! sensor's version, slot, update state, target, progress, reason) and
//! follow a new report without a reload.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::browser::Browser;
use serde_json::Value;
use sipsensor_collector::http::AppState;
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::stats::StreamsRegistry;
use sipsensor_collector::storage::Storage;
use sipsensor_collector::storage::sqlite::{SqliteOptions, SqliteStore};
use sipsensor_collector::update::fleet::{FleetState, FleetView, UpdateState};
use std::sync::Arc;

fn state(version: &str, update: UpdateState) -> FleetState {
    FleetState {
        version: version.into(),
        agent: "0.1.0".into(),
        compatible: "sipsensor-beaglebone".into(),
        slot: "A".into(),
        update,
        target: None,
        progress: None,
        reason: None,
    }
}

fn rows(browser: &mut Browser) -> Vec<Vec<String>> {
    let v = browser.eval(
        "Array.from(document.querySelectorAll('#fleet-sensors tbody tr')).map((tr) => \
         Array.from(tr.cells).slice(0, 7).map((td) => td.innerText))",
    );
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_fleet_section_shows_every_sensor_and_follows_its_reports() {
    let Some(mut browser) = Browser::start() else {
        return;
    };
    let rt = common::page::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (state_, fleet) = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
            .await
            .unwrap();
        let storage = Arc::new(store);
        let fleet = FleetView::load(storage.clone().updates().unwrap())
            .await
            .unwrap();
        let mut downloading = state("2026.12.1", UpdateState::Downloading);
        downloading.target = Some("2026.12.2".into());
        downloading.progress = Some(37);
        fleet
            .record("sip:a@example.net", downloading, 1_000_000_000)
            .await
            .unwrap();
        let mut rolled_back = state("2026.12.1", UpdateState::RolledBack);
        rolled_back.target = Some("2026.12.2".into());
        rolled_back.reason = Some("health check: not streaming".into());
        fleet
            .record("sip:b@example.net", rolled_back, 2_000_000_000)
            .await
            .unwrap();
        let mut good = state("2026.12.2", UpdateState::Good);
        good.slot = "B".into();
        good.target = Some("2026.12.2".into());
        fleet
            .record("sip:c@example.net", good, 3_000_000_000)
            .await
            .unwrap();
        let streams = StreamsRegistry::new();
        let metrics = Metrics::new(streams.clone());
        let state = AppState {
            storage,
            streams,
            metrics,
            fleet: Some(fleet.clone()),
        };
        (state, fleet)
    });
    let server = common::page::PageServer::start(&rt, state_);
    browser.goto(&format!("http://{}/", server.addr));
    browser
        .wait(
            "document.querySelectorAll('#fleet-sensors tbody tr').length === 3",
            20_000,
        )
        .expect("the fleet table did not fill");
    assert_eq!(
        browser.eval("document.querySelector('#fleet').hidden"),
        false
    );
    let expected = |rows: &[[&str; 7]]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    };
    assert_eq!(
        rows(&mut browser),
        expected(&[
            [
                "sip:a@example.net",
                "2026.12.1",
                "A",
                "downloading",
                "2026.12.2",
                "37 %",
                ""
            ],
            [
                "sip:b@example.net",
                "2026.12.1",
                "A",
                "rolled-back",
                "2026.12.2",
                "",
                "health check: not streaming"
            ],
            [
                "sip:c@example.net",
                "2026.12.2",
                "B",
                "good",
                "2026.12.2",
                "",
                ""
            ],
        ])
    );
    let versions = browser.eval("document.querySelector('#fleet-versions').innerText");
    let versions = versions.as_str().unwrap();
    assert!(
        versions.contains("2026.12.1: 2 (1 downloading, 1 rolled-back)"),
        "{versions}"
    );
    assert!(versions.contains("2026.12.2: 1 (1 good)"), "{versions}");

    // A new report shows without a reload.
    rt.block_on(async {
        let mut installing = state("2026.12.1", UpdateState::Installing);
        installing.target = Some("2026.12.2".into());
        installing.progress = Some(80);
        fleet
            .record("sip:a@example.net", installing, 4_000_000_000)
            .await
            .unwrap();
    });
    browser
        .wait(
            "document.querySelector('#fleet-sensors tbody tr').innerText.includes('installing')",
            20_000,
        )
        .expect("the new report did not show");
    assert_eq!(rows(&mut browser)[0][5], "80 %");
    assert_eq!(browser.eval("window.sipsensor.lastError"), Value::Null);
    server.stop(&rt);
}
