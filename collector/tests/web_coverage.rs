//! The page's coverage band in a real browser (issue 15): a seeded store
//! with live, resent, backfilled and missing ranges; the band under the
//! chart must show exactly those, told apart by class and label, and
//! follow when backfill lands, without a reload.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::browser::Browser;
use serde_json::Value;
use sipsensor_collector::storage::sqlite::{SqliteOptions, SqliteStore};
use sipsensor_collector::storage::*;
use sipsensor_collector::timefmt::format_rfc3339;
use std::path::PathBuf;

use common::page::{STEP, climate_samples as readings};

/// `(class, from, to)` of each segment the band draws, in order.
fn band(browser: &mut Browser, sensor: SensorId) -> Vec<(String, String, String)> {
    let v = browser.eval(&format!("window.sipsensor.coverage({})", sensor.0));
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap().to_string();
            (text("cls"), text("from"), text("to"))
        })
        .collect()
}

#[test]
fn the_band_shows_each_range_and_follows_backfill() {
    let Some(mut browser) = Browser::start() else {
        return;
    };
    let rt = common::page::runtime();
    let dir = tempfile::tempdir().unwrap();
    let t0 = common::page::recent_t0();
    let at = |i: i64| t0 + i * STEP;
    let (state, sensor, second, ahead) = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
            .await
            .unwrap();
        let sensor = store
            .upsert_sensor("sip:pump@example.net", None)
            .await
            .unwrap();
        let session = |call: &'static str, start| NewSession {
            sensor: sensor.id,
            call_id: call.into(),
            ssrc: 0x5eed_0003,
            stream: common::climate(),
            started_ns: start,
        };
        // A sensor whose clock runs an hour ahead of the collector's: its
        // band still asks for a window that holds its data.
        let ahead = store
            .upsert_sensor("sip:ahead@example.net", None)
            .await
            .unwrap();
        let ahead_session = store
            .open_session(&NewSession {
                sensor: ahead.id,
                ..session("c0", t0 + 3_600_000_000_000)
            })
            .await
            .unwrap();
        store
            .write_batch(&Batch {
                readings: readings(&ahead_session, 7_200..=7_209, t0),
                ..Batch::default()
            })
            .await
            .unwrap();
        let first = store.open_session(&session("c1", t0)).await.unwrap();
        let second = store.open_session(&session("c2", at(40))).await.unwrap();
        // 0..=19 live with 5 resent; a break until the second session at
        // 40; 40..=49 live, 50..=54 not sampled, 55..=59 live.
        let mut live = readings(&first, 0..=19, t0);
        live[5].source = ReadingSource::Resent;
        live.extend(readings(&second, 40..=49, t0));
        live.extend(readings(&second, 55..=59, t0));
        let gap = |from, to, samples, cause| Gap {
            sensor: sensor.id,
            session: None,
            from_ns: at(from),
            to_ns: at(to),
            samples,
            cause,
        };
        store
            .write_batch(&Batch {
                readings: live,
                gaps: vec![
                    gap(19, 40, 20, GapCause::SessionBreak),
                    gap(49, 55, 5, GapCause::Source),
                ],
                ..Batch::default()
            })
            .await
            .unwrap();
        let state = common::page::app_state(store);
        (state, sensor, second, ahead)
    });

    let server = common::page::PageServer::start(&rt, state.clone());
    let addr = server.addr;

    browser.goto(&format!("http://{addr}/"));
    let id = sensor.id.0;
    browser
        .wait(
            &format!(
                "window.sipsensor && window.sipsensor.coverage({id}) && \
                 window.sipsensor.coverage({id}).length === 5"
            ),
            20_000,
        )
        .expect("the band did not fill");
    let t = |i: i64| format_rfc3339(at(i));
    let seg = |cls: &str, from: i64, to: i64| (format!("seg {cls}"), t(from), t(to));
    assert_eq!(
        band(&mut browser, sensor.id),
        vec![
            seg("cov-resent", 0, 19),
            seg("cov-missing", 19, 40),
            seg("cov-live", 40, 49),
            seg("cov-unsampled", 49, 55),
            seg("cov-live", 55, 59),
        ]
    );
    // Not colour alone: every segment says what it is, and why data is
    // missing.
    let labels = browser.eval(&format!(
        "window.sipsensor.coverage({id}).map((s) => s.label)"
    ));
    let labels: Vec<&str> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        labels[0].starts_with("resent: 20 instants") && labels[0].ends_with("1 resent"),
        "{labels:?}"
    );
    assert!(
        labels[1].starts_with("missing: 20 instants") && labels[1].contains("no session"),
        "{labels:?}"
    );
    assert!(labels[3].contains("not sampled"), "{labels:?}");
    assert_eq!(
        browser.eval("document.querySelectorAll('#coverage-legend li').length"),
        6
    );

    // The agent backfills 20..=29; 30..=34 had left its spool.
    rt.block_on(async {
        let mut backfill = readings(&second, 20..=29, t0);
        for r in &mut backfill {
            r.source = ReadingSource::Backfilled;
            r.seq += 50_000;
        }
        state
            .storage
            .write_batch(&Batch {
                readings: backfill,
                ..Batch::default()
            })
            .await
            .unwrap();
        state
            .storage
            .record_expired(sensor.id, at(29), at(35))
            .await
            .unwrap();
    });
    browser
        .wait(
            &format!("window.sipsensor.coverage({id}).length === 7"),
            10_000,
        )
        .expect("the band did not follow the backfill");
    assert_eq!(
        band(&mut browser, sensor.id),
        vec![
            seg("cov-resent", 0, 19),
            seg("cov-backfilled", 20, 29),
            seg("cov-expired", 29, 35),
            seg("cov-missing", 34, 40),
            seg("cov-live", 40, 49),
            seg("cov-unsampled", 49, 55),
            seg("cov-live", 55, 59),
        ]
    );
    let expired = browser.eval(&format!("window.sipsensor.coverage({id})[2].label"));
    assert!(
        expired.as_str().unwrap().contains("gone for good"),
        "{expired}"
    );
    let ahead_band = band(&mut browser, ahead.id);
    assert_eq!(ahead_band.len(), 1, "{ahead_band:?}");
    assert_eq!(ahead_band[0].0, "seg cov-live");
    assert_eq!(browser.eval("window.sipsensor.lastError"), Value::Null);

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("collector-coverage.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    drop(browser);
    server.stop(&rt);
}
