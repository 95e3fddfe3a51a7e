//! The window checks, and the endpoint on the router tests' store.

use super::*;
use crate::http::tests::{T0, fixture, get_json};
use axum::http::StatusCode;

fn params(from: Option<&str>, to: Option<&str>, limit: Option<u32>) -> CoverageParams {
    CoverageParams {
        from: from.map(str::to_string),
        to: to.map(str::to_string),
        limit,
    }
}

#[test]
fn the_window_defaults_to_the_last_hour() {
    let now = 10 * DEFAULT_WINDOW_NS;
    let (from, to, limit) = checked(&params(None, None, None), now).unwrap();
    assert_eq!(
        (from, to, limit),
        (now - DEFAULT_WINDOW_NS, now, DEFAULT_RANGES)
    );
    let (from, to, _) = checked(&params(None, Some("5000"), None), now).unwrap();
    assert_eq!((from, to), (5000 - DEFAULT_WINDOW_NS, 5000));
}

#[test]
fn reversed_huge_and_unlimited_requests_are_refused() {
    let now = 0;
    let reversed = params(
        Some("2026-01-02T00:00:00Z"),
        Some("2026-01-01T00:00:00Z"),
        None,
    );
    assert!(checked(&reversed, now).is_err());
    let month = params(
        Some("2026-01-01T00:00:00Z"),
        Some("2026-02-01T00:00:00Z"),
        None,
    );
    assert!(checked(&month, now).is_ok());
    let longer = params(
        Some("2026-01-01T00:00:00Z"),
        Some("2026-02-01T00:00:00.000000001Z"),
        None,
    );
    assert!(checked(&longer, now).is_err());
    // The whole range of i64 does not overflow the check.
    let all = params(
        Some(&i64::MIN.to_string()),
        Some(&i64::MAX.to_string()),
        None,
    );
    assert!(checked(&all, now).is_err());
    for limit in [0, MAX_RANGES + 1] {
        assert!(checked(&params(None, None, Some(limit)), now).is_err());
    }
    assert!(checked(&params(None, None, Some(MAX_RANGES)), now).is_ok());
}

#[tokio::test]
async fn coverage_shows_live_resent_backfilled_and_missing_ranges() {
    let f = fixture().await;
    let aor = "sip%3Asensor-0001%40example.net";
    let window = "from=2025-11-25T12:00:00Z&to=2025-11-25T12:01:00Z";
    let (status, v) = get_json(&f.state, &format!("/api/sensors/{aor}/coverage?{window}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["sensor"], f.sensor.id.0);
    let shape: Vec<(String, String, String, i64, Option<String>)> = v["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["from"].as_str().unwrap().to_string(),
                r["to"].as_str().unwrap().to_string(),
                r["instants"].as_i64().unwrap(),
                r["cause"].as_str().map(str::to_string),
            )
        })
        .collect();
    let t = |s: &str| format!("2025-11-25T12:00:0{s}Z");
    assert_eq!(
        shape,
        vec![
            ("resent".into(), t("0"), t("4.4"), 45, None),
            ("backfilled".into(), t("4.5"), t("4.9"), 5, None),
            ("missing".into(), t("4.9"), t("5.2"), 2, Some("loss".into())),
            (
                "missing".into(),
                t("5.2"),
                t("6"),
                7,
                Some("expired".into())
            ),
        ]
    );
    assert_eq!(v["ranges"][0]["resent"], 1);
    assert_eq!(v.get("next_from_ns"), None, "{v}");

    // One range at a time: the answer says where the rest starts.
    let id = f.sensor.id.0;
    let (_, v) = get_json(
        &f.state,
        &format!("/api/sensors/{id}/coverage?{window}&limit=1"),
    )
    .await;
    assert_eq!(v["ranges"].as_array().unwrap().len(), 1);
    assert_eq!(v["next_from_ns"], T0 + 4_400_000_001);
    assert_eq!(v["next_from"], "2025-11-25T12:00:04.400000001Z");
    let (_, v) = get_json(
        &f.state,
        &format!(
            "/api/sensors/{id}/coverage?from={}&to=2025-11-25T12:01:00Z&limit=1",
            T0 + 4_400_000_001
        ),
    )
    .await;
    assert_eq!(v["ranges"][0]["kind"], "backfilled");

    // Without a window: the last hour, long after these data.
    let (status, v) = get_json(&f.state, &format!("/api/sensors/{id}/coverage")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ranges"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_coverage_requests_get_4xx_with_a_reason() {
    let f = fixture().await;
    let id = f.sensor.id.0;
    for (q, needle) in [
        (
            "from=2025-11-26T00:00:00Z&to=2025-11-25T00:00:00Z",
            "from is after to",
        ),
        (
            "from=2025-01-01T00:00:00Z&to=2025-11-25T00:00:00Z",
            "at most 31 days",
        ),
        (
            "from=-9223372036854775808&to=9223372036854775807",
            "at most 31 days",
        ),
        ("limit=0", "limit must be"),
        ("limit=10001", "limit must be"),
        ("limit=many", "limit"),
        ("to=soon", "not an RFC 3339 time"),
        ("order=desc", "order"),
    ] {
        let (status, v) = get_json(&f.state, &format!("/api/sensors/{id}/coverage?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{q}: {msg}");
    }
    for key in ["999", "sip%3Anobody%40example.net"] {
        let (status, v) = get_json(&f.state, &format!("/api/sensors/{key}/coverage")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{key}: {v}");
        assert!(v["error"].as_str().unwrap().contains("no sensor"), "{v}");
    }
}
