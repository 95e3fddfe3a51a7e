//! The page in a real browser: known samples go into the store, the page
//! (served by the collector's HTTP router) is loaded in headless Chromium,
//! and the data its charts hold must be exactly those samples; new samples
//! must appear without a reload. A screenshot is saved for people to look at.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::browser::Browser;
use serde_json::Value;
use sipsensor_collector::stats::{Reception, StreamInfo};
use sipsensor_collector::storage::sqlite::{SqliteOptions, SqliteStore};
use sipsensor_collector::storage::*;
use std::path::PathBuf;

use common::page::{STEP, climate_samples, humidity, temperature};

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Checks the chart holds instants 0..n from t0 with the expected values.
fn assert_chart(chart: &Value, t0: i64, n: i64) {
    assert_eq!(
        chart["labels"],
        serde_json::json!(["temperature [Cel]", "humidity [%RH]"])
    );
    let x = numbers(&chart["x"]);
    assert_eq!(x.len() as i64, n);
    for (i, x) in x.iter().enumerate() {
        let want = (t0 + i as i64 * STEP) as f64 / 1e9;
        assert!((x - want).abs() < 1e-6, "x[{i}] = {x}, want {want}");
    }
    let temp = numbers(&chart["series"][0]);
    let hum = numbers(&chart["series"][1]);
    for i in 0..n {
        assert_eq!(
            temp[i as usize],
            temperature(i) as f64 / 100.0,
            "temperature {i}"
        );
        assert_eq!(hum[i as usize], humidity(i) as f64 / 10.0, "humidity {i}");
    }
}

#[test]
fn page_shows_sensors_streams_and_live_charts() {
    let Some(mut browser) = Browser::start() else {
        return;
    };
    let rt = common::page::runtime();
    let dir = tempfile::tempdir().unwrap();
    let t0 = common::page::recent_t0();
    let (state, boiler, session, outdoor) = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
            .await
            .unwrap();
        let boiler = store
            .upsert_sensor("sip:boiler@example.net", Some("Boiler room"))
            .await
            .unwrap();
        store
            .set_sensor_state(boiler.id, SensorState::Streaming)
            .await
            .unwrap();
        let door = store
            .upsert_sensor("sip:door@example.net", None)
            .await
            .unwrap();
        store
            .set_sensor_state(door.id, SensorState::Registered)
            .await
            .unwrap();
        let outdoor = store
            .upsert_sensor("sip:outdoor@example.net", Some("Roof"))
            .await
            .unwrap();
        let session = store
            .open_session(&NewSession {
                sensor: boiler.id,
                call_id: "call-boiler".into(),
                ssrc: 0x5eed_0001,
                stream: common::climate(),
                started_ns: t0,
            })
            .await
            .unwrap();
        let roof = store
            .open_session(&NewSession {
                sensor: outdoor.id,
                call_id: "call-roof".into(),
                ssrc: 0x5eed_0002,
                stream: common::stream(&[("pressure", "Pa", 1.0)]),
                started_ns: t0,
            })
            .await
            .unwrap();
        store.close_session(roof.id, t0 + 30 * STEP).await.unwrap();
        let mut batch = Batch {
            readings: climate_samples(&session, 0..=79, t0),
            seen: vec![(boiler.id, t0 + 79 * STEP), (outdoor.id, t0 + 29 * STEP)],
            ..Batch::default()
        };
        batch.readings.extend((0..30).map(|i| Reading {
            session: roof.id,
            sensor: outdoor.id,
            seq: i,
            index: 0,
            ts_ns: t0 + i * STEP,
            raws: vec![Some(101_325 - i * 10)],
            source: ReadingSource::Live,
        }));
        store.write_batch(&batch).await.unwrap();
        let state = common::page::app_state(store);
        (state, boiler, session, outdoor)
    });
    // A stream as the SIP/RTP side would register it.
    let stream = state.streams.open(StreamInfo {
        sensor: boiler.id,
        aor: boiler.aor.clone(),
        session: session.id,
        call_id: session.call_id.clone(),
        ssrc: session.ssrc,
        remote: Some("127.0.0.1:40002".parse().unwrap()),
        rate_hz: 2.0,
        channels: session.stream.channels.clone(),
        started_ns: t0,
    });
    for i in 0..80 {
        stream.record_packet(32, t0 + i * STEP);
    }
    stream.set_reception(Reception {
        lost: 2,
        fraction_lost: 0.025,
        jitter_seconds: 0.0015,
    });

    let server = common::page::PageServer::start(&rt, state.clone());
    let addr = server.addr;

    browser.goto(&format!("http://{addr}/"));
    let b = boiler.id.0;
    let o = outdoor.id.0;
    browser
        .wait(
            &format!(
                "window.sipsensor && window.sipsensor.chartData({b}) && \
                 window.sipsensor.chartData({b}).x.length === 80 && \
                 window.sipsensor.chartData({o}) !== null"
            ),
            20_000,
        )
        .expect("the charts did not fill");
    assert_chart(
        &browser.eval(&format!("window.sipsensor.chartData({b})")),
        t0,
        80,
    );
    let roof = browser.eval(&format!("window.sipsensor.chartData({o})"));
    assert_eq!(roof["labels"], serde_json::json!(["pressure [Pa]"]));
    assert_eq!(numbers(&roof["series"][0])[29], 101_035.0);
    // Exactly two charts: the registered door sensor has no samples.
    assert_eq!(
        browser.eval("document.querySelectorAll('.chart').length"),
        2
    );

    let sensors = browser.eval("document.querySelector('#sensors tbody').innerText");
    let sensors = sensors.as_str().unwrap();
    for needle in [
        "sip:boiler@example.net",
        "Boiler room",
        "streaming",
        "sip:door@example.net",
        "registered",
        "sip:outdoor@example.net",
        "offline",
        "pressure: 101035 Pa",
        "temperature: 20.",
    ] {
        assert!(
            sensors.contains(needle),
            "{needle:?} not in sensor table:\n{sensors}"
        );
    }
    let streams = browser.eval("document.querySelector('#streams tbody').innerText");
    let streams = streams.as_str().unwrap();
    for needle in ["sip:boiler@example.net", "80", "2 (2.5 %)", "1.50 ms"] {
        assert!(
            streams.contains(needle),
            "{needle:?} not in stream table:\n{streams}"
        );
    }
    // Issue 14: the SSRC is what spoofing the stream takes; not shown.
    assert!(!streams.contains("5eed0001"), "{streams}");

    // Live: 20 more instants arrive; the chart follows without a reload.
    rt.block_on(state.storage.write_batch(&Batch {
        readings: climate_samples(&session, 80..=99, t0),
        ..Batch::default()
    }))
    .unwrap();
    browser
        .wait(
            &format!("window.sipsensor.chartData({b}).x.length === 100"),
            10_000,
        )
        .expect("new samples did not reach the chart");
    assert_chart(
        &browser.eval(&format!("window.sipsensor.chartData({b})")),
        t0,
        100,
    );
    assert_eq!(browser.eval("window.sipsensor.lastError"), Value::Null);

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("collector-page.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "screenshot of {} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());

    drop(browser);
    server.stop(&rt);
}
