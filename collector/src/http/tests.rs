//! Router tests on an in-process SQLite store (no sockets).

use super::*;
use crate::stats::{Reception, StreamInfo};
use crate::storage::sqlite::{SqliteOptions, SqliteStore};
use crate::storage::*;
use crate::update::fleet::{FleetState, FleetView, UpdateState};
use axum::body::{Body, to_bytes};
use axum::http::{Request, header};
use serde_json::Value;
use tower::ServiceExt;

pub(super) const T0: i64 = 1_764_072_000_000_000_000; // 2025-11-25T12:00:00Z

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) state: AppState,
    pub(super) sensor: Sensor,
    session: Session,
}

pub(super) async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
        .await
        .unwrap();
    let sensor = store
        .upsert_sensor("sip:sensor-0001@example.net", Some("Boiler room"))
        .await
        .unwrap();
    store
        .upsert_sensor("sip:idle@example.net", None)
        .await
        .unwrap();
    store
        .set_sensor_state(sensor.id, SensorState::Streaming)
        .await
        .unwrap();
    let session = store
        .open_session(&NewSession {
            sensor: sensor.id,
            call_id: "call-1".into(),
            ssrc: 0x1234_5678,
            stream: StreamSpec {
                rate_hz: 10.0,
                samples_per_packet: 1,
                channels: vec![
                    ChannelSpec {
                        name: "temperature".into(),
                        unit: "Cel".into(),
                        scale: 0.01,
                    },
                    ChannelSpec {
                        name: "humidity".into(),
                        unit: "%RH".into(),
                        scale: 0.1,
                    },
                ],
            },
            started_ns: T0,
        })
        .await
        .unwrap();
    let mut batch = Batch::default();
    for i in 0..50i64 {
        batch.readings.push(Reading {
            session: session.id,
            sensor: sensor.id,
            seq: i,
            index: 0,
            ts_ns: T0 + i * 100_000_000,
            raws: (0..2).map(|ch| Some(2000 + i + ch * 1000)).collect(),
            // One reading was lost and resent; the last half second came
            // back from the agent's spool.
            source: match i {
                20 => ReadingSource::Resent,
                0..45 => ReadingSource::Live,
                _ => ReadingSource::Backfilled,
            },
        });
    }
    batch.seen.push((sensor.id, T0 + 5_000_000_000));
    // After the last stored instant (4.9 s): a gap never covers one.
    batch.gaps.push(Gap {
        sensor: sensor.id,
        session: Some(session.id),
        from_ns: T0 + 4_900_000_000,
        to_ns: T0 + 5_200_000_000,
        samples: 2,
        cause: GapCause::Loss,
    });
    batch.gaps.push(Gap {
        sensor: sensor.id,
        session: None,
        from_ns: T0 + 5_200_000_000,
        to_ns: T0 + 6_000_000_000,
        samples: 7,
        cause: GapCause::Expired,
    });
    store.write_batch(&batch).await.unwrap();
    let streams = StreamsRegistry::new();
    let metrics = Metrics::new(streams.clone());
    let storage = Arc::new(store);
    let fleet = FleetView::load(storage.clone().updates().unwrap())
        .await
        .unwrap();
    metrics.watch_fleet(fleet.clone());
    Fixture {
        _dir: dir,
        state: AppState {
            storage,
            streams,
            metrics,
            fleet: Some(fleet),
        },
        sensor,
        session,
    }
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, String, String) {
    let resp = router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = to_bytes(resp.into_body(), 10 << 20).await.unwrap();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

pub(super) async fn get_json(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let (status, ctype, body) = get(state, uri).await;
    assert!(ctype.starts_with("application/json"), "{uri}: {ctype}");
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn sensors_are_listed_with_state_and_rfc3339_times() {
    let f = fixture().await;
    let (status, v) = get_json(&f.state, "/api/sensors").await;
    assert_eq!(status, StatusCode::OK);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["aor"], "sip:idle@example.net");
    assert_eq!(list[0]["state"], "offline");
    assert_eq!(list[0]["last_seen"], Value::Null);
    assert_eq!(list[1]["aor"], "sip:sensor-0001@example.net");
    assert_eq!(list[1]["display_name"], "Boiler room");
    assert_eq!(list[1]["state"], "streaming");
    assert_eq!(list[1]["last_seen"], "2025-11-25T12:00:05Z");

    let by_aor = format!("/api/sensors/{}", "sip:sensor-0001@example.net");
    let (status, v) = get_json(&f.state, &by_aor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["id"], f.sensor.id.0);
    let (status, v) = get_json(&f.state, "/api/sensors/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("no sensor"));
}

#[tokio::test]
async fn samples_by_range_limit_and_order() {
    let f = fixture().await;
    let id = f.sensor.id.0;
    let (status, v) = get_json(
        &f.state,
        &format!("/api/sensors/{id}/samples?from=2025-11-25T12:00:01Z&to=2025-11-25T12:00:02Z"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let s = v["samples"].as_array().unwrap();
    // 10 sampling instants x 2 channels, oldest first, channel order within.
    assert_eq!(s.len(), 20);
    assert_eq!(s[0]["time"], "2025-11-25T12:00:01Z");
    assert_eq!(s[0]["name"], "temperature");
    assert_eq!(s[0]["unit"], "Cel");
    assert_eq!(s[0]["raw"], 2010);
    assert_eq!(s[0]["value"], 20.1);
    assert_eq!(s[1]["name"], "humidity");
    assert_eq!(s[1]["value"], 301.0);
    assert_eq!(s[0]["source"], "live");
    assert_eq!(v["truncated"], false);

    let (_, v) = get_json(
        &f.state,
        &format!("/api/sensors/{id}/samples?order=desc&limit=3"),
    )
    .await;
    let s = v["samples"].as_array().unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s[0]["ts_ns"], T0 + 49 * 100_000_000);
    assert_eq!(s[0]["name"], "humidity");
    assert_eq!(v["truncated"], true);

    // Integer nanoseconds work too.
    let (_, v) = get_json(
        &f.state,
        &format!(
            "/api/sensors/{id}/samples?from={}&limit=100000",
            T0 + 4_900_000_000
        ),
    )
    .await;
    assert_eq!(v["samples"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_queries_get_400_with_a_reason() {
    let f = fixture().await;
    let id = f.sensor.id.0;
    for (q, needle) in [
        ("from=yesterday", "not an RFC 3339 time"),
        ("limit=0", "limit must be"),
        ("limit=100001", "limit must be"),
        ("order=sideways", "order"),
        ("colour=red", "colour"),
        ("from=2025-11-26T00:00:00Z&to=2025-11-25T00:00:00Z", "after"),
    ] {
        let (status, v) = get_json(&f.state, &format!("/api/sensors/{id}/samples?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{q}: {msg}");
    }
}

#[tokio::test]
async fn sessions_gaps_and_events() {
    let f = fixture().await;
    let id = f.sensor.id.0;
    let (_, v) = get_json(&f.state, &format!("/api/sensors/{id}/sessions")).await;
    assert_eq!(v[0]["id"], f.session.id.0);
    assert_eq!(v[0]["stream"]["channels"][1]["unit"], "%RH");
    // What a spoofer of the session's packets would need is not published.
    assert_eq!(v[0].get("ssrc"), None, "{v}");
    assert_eq!(v[0].get("call_id"), None, "{v}");
    let (_, v) = get_json(&f.state, &format!("/api/sensors/{id}/gaps")).await;
    assert_eq!(v[0]["samples"], 2);
    assert_eq!(v[0]["cause"], "loss");
    // Missing (may still be backfilled) and expired (gone for good) apart.
    assert_eq!(v[1]["cause"], "expired");
    let (_, v) = get_json(
        &f.state,
        &format!("/api/sensors/{id}/samples?from=2025-11-25T12:00:04.4Z&limit=4"),
    )
    .await;
    let sources: Vec<&str> = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["live", "live", "backfilled", "backfilled"]);
    let (_, v) = get_json(&f.state, &format!("/api/sensors/{id}/events")).await;
    assert_eq!(v, serde_json::json!([]));
}

#[tokio::test]
async fn streams_and_metrics() {
    let f = fixture().await;
    let h = f.state.streams.open(StreamInfo {
        sensor: f.sensor.id,
        aor: f.sensor.aor.clone(),
        session: f.session.id,
        call_id: "call-1".into(),
        ssrc: 0x1234_5678,
        remote: Some("127.0.0.1:40000".parse().unwrap()),
        rate_hz: 10.0,
        channels: f.session.stream.channels.clone(),
        started_ns: T0,
    });
    h.record_packet(28, T0);
    h.set_reception(Reception {
        lost: 2,
        fraction_lost: 0.01,
        jitter_seconds: 0.0015,
    });
    h.set_last_value(0, T0, 2508);
    let (status, v) = get_json(&f.state, "/api/streams").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v[0]["aor"], "sip:sensor-0001@example.net");
    assert_eq!(v[0]["packets"], 1);
    assert_eq!(v[0]["lost"], 2);
    assert_eq!(v[0]["jitter_seconds"], 0.0015);
    assert_eq!(v[0]["last_values"][0]["value"], 25.08);
    assert!(v[0]["uptime_seconds"].as_f64().unwrap() > 0.0);
    // Issue 14: neither the SSRC, the RTP address nor the Call-ID, which
    // are what injecting packets or sender reports into the stream takes.
    let (_, _, body) = get(&f.state, "/api/streams").await;
    for secret in ["ssrc", "305419896", "12345678", "call", "40000", "remote"] {
        assert!(!body.contains(secret), "{secret:?} in {body}");
    }

    let (status, ctype, text) = get(&f.state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, crate::metrics::CONTENT_TYPE);
    assert!(text.contains("# TYPE sipsensor_stream_lost_packets gauge"));
    assert!(text.contains(&format!(
        "sipsensor_stream_lost_packets{{sensor=\"sip:sensor-0001@example.net\",stream=\"{}\"}} 2",
        h.id().0
    )));
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn page_and_assets_are_embedded() {
    let f = fixture().await;
    let (status, ctype, html) = get(&f.state, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/html"));
    assert!(html.contains("<script src=\"vendor/uPlot.iife.min.js\"></script>"));
    assert!(html.contains("<script src=\"app.js\"></script>"));
    let (status, ctype, js) = get(&f.state, "/vendor/uPlot.iife.min.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/javascript"));
    assert!(js.starts_with("/*! https://github.com/leeoniya/uPlot"));
    let (_, _, js) = get(&f.state, "/app.js").await;
    assert!(js.contains("new uPlot("));
    let (status, _, _) = get(&f.state, "/vendor/uPlot.LICENSE").await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = get_json(&f.state, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "no such page");
}

#[tokio::test]
async fn health_reflects_the_store() {
    let f = fixture().await;
    let (status, _, body) = get(&f.state, "/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    f.state.storage.close().await.unwrap();
    let (status, _, body) = get(&f.state, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("closed"), "{body}");
}

#[tokio::test]
async fn the_guard_refuses_wrong_hosts_and_missing_tokens_and_counts_them() {
    let f = fixture().await;
    let access = Access::from_config(&crate::config::HttpConfig {
        hosts: vec!["collector.example.net".into()],
        ..Default::default()
    })
    .unwrap()
    .0;
    let app = guarded(f.state.clone(), Arc::new(access));
    let status = |host: &'static str, path: &'static str| {
        let app = app.clone();
        async move {
            app.oneshot(
                Request::get(path)
                    .header(header::HOST, host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
        }
    };
    assert_eq!(
        status("127.0.0.1:8080", "/api/sensors").await,
        StatusCode::OK
    );
    assert_eq!(status("collector.example.net", "/").await, StatusCode::OK);
    assert_eq!(
        status("rebound.attacker.example", "/api/sensors").await,
        StatusCode::MISDIRECTED_REQUEST
    );
    let metrics = f.state.metrics.render().unwrap();
    assert!(
        metrics.contains("packets_rejected_total{reason=\"http_wrong_host\"} 1"),
        "{metrics}"
    );

    // With a token: only /healthz without it.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let access = Access::from_config(&crate::config::HttpConfig {
        bind: "0.0.0.0:8080".parse().unwrap(),
        token_file: Some(token),
        ..Default::default()
    })
    .unwrap()
    .0;
    let app = guarded(f.state.clone(), Arc::new(access));
    let ask = |auth: Option<&'static str>, path: &'static str| {
        let app = app.clone();
        async move {
            let mut req = Request::get(path).header(header::HOST, "192.0.2.1:8080");
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
        }
    };
    assert_eq!(ask(None, "/healthz").await.status(), StatusCode::OK);
    let refused = ask(None, "/api/sensors").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        refused.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(
        ask(Some("Bearer wrong"), "/metrics").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ask(Some("Bearer 0123456789abcdef0123456789abcdef"), "/metrics")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_fleet_in_the_api_and_the_metrics() {
    let f = fixture().await;
    let fleet = f.state.fleet.clone().unwrap();
    let state = |version: &str, update: UpdateState| FleetState {
        version: version.into(),
        agent: "0.1.0".into(),
        compatible: "sipsensor-beaglebone".into(),
        slot: "B".into(),
        update,
        target: (update != UpdateState::Idle).then(|| "v2".into()),
        progress: (update == UpdateState::Downloading).then_some(42),
        reason: None,
    };
    fleet
        .record(
            "sip:a@example.net",
            state("v1", UpdateState::Downloading),
            T0,
        )
        .await
        .unwrap();
    fleet
        .record("sip:b@example.net", state("v1", UpdateState::Idle), T0)
        .await
        .unwrap();
    fleet
        .record("sip:c@example.net", state("v2", UpdateState::Good), T0)
        .await
        .unwrap();
    let (status, _, body) = get(&f.state, "/api/fleet").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["versions"][0]["version"], "v1");
    assert_eq!(v["versions"][0]["sensors"], 2);
    assert_eq!(v["versions"][0]["by_update"]["downloading"], 1);
    assert_eq!(v["versions"][1]["by_update"]["good"], 1);
    let a = &v["sensors"][0];
    assert_eq!(a["sensor"], "sip:a@example.net");
    assert_eq!(
        (&a["update"], &a["target"], &a["progress"], &a["slot"]),
        (
            &Value::from("downloading"),
            &Value::from("v2"),
            &Value::from(42),
            &Value::from("B")
        )
    );
    assert_eq!(v["sensors"][1]["target"], Value::Null);

    let (_, _, metrics) = get(&f.state, "/metrics").await;
    for line in [
        "sipsensor_collector_fleet_sensors{version=\"v1\",update=\"idle\"} 1",
        "sipsensor_collector_fleet_sensors{version=\"v1\",update=\"downloading\"} 1",
        "sipsensor_collector_fleet_sensors{version=\"v2\",update=\"good\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let (status, _, body) = get(&f.state, "/api/fleet/bundles").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));

    let mut without = f.state.clone();
    without.fleet = None;
    let (status, _, body) = get(&without, "/api/fleet").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"versions":[],"sensors":[]}"#)
    );
}
