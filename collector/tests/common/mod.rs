//! Helpers shared by the collector's system tests. Each test binary uses a
//! part of them.
#![allow(dead_code)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod page;
pub mod pg;

use sipsensor_collector::storage::*;

/// True when CI runs the tests: a missing tool is then a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("SIPSENSOR_CI").is_ok_and(|v| v == "1")
}

/// Skips the calling test with a message, or fails it under SIPSENSOR_CI=1.
pub fn skip_or_fail(what: &str) {
    if in_ci() {
        panic!("{what} (SIPSENSOR_CI=1: missing tools are failures)");
    }
    eprintln!("SKIPPED: {what}");
}

pub const T0: i64 = 1_764_072_000_000_000_000; // 2025-11-25T12:00:00Z
pub const PERIOD: i64 = 100_000_000; // 10 Hz

pub fn stream(channels: &[(&str, &str, f64)]) -> StreamSpec {
    StreamSpec {
        rate_hz: 10.0,
        samples_per_packet: 1,
        channels: channels
            .iter()
            .map(|(n, u, s)| ChannelSpec {
                name: n.to_string(),
                unit: u.to_string(),
                scale: *s,
            })
            .collect(),
    }
}

pub fn climate() -> StreamSpec {
    stream(&[("temperature", "Cel", 0.01), ("humidity", "%RH", 0.1)])
}

/// The value a test sensor sends: deterministic per (sequence, channel).
pub fn raw_of(seq: i64, channel: u16) -> i64 {
    (seq * 7 + i64::from(channel) * 1000) % 5000 - 1000
}

/// One reading (a value per channel) for each sequence number, at 10 Hz
/// from `t0`.
pub fn samples(session: &Session, seqs: impl IntoIterator<Item = i64>, t0: i64) -> Vec<Reading> {
    let channels = session.stream.channels.len() as u16;
    seqs.into_iter()
        .map(|seq| Reading {
            session: session.id,
            sensor: session.sensor,
            seq,
            index: 0,
            ts_ns: t0 + seq * PERIOD,
            raws: (0..channels).map(|ch| Some(raw_of(seq, ch))).collect(),
            source: ReadingSource::Live,
        })
        .collect()
}

pub async fn sensor_with_session(
    store: &dyn Storage,
    aor: &str,
    call_id: &str,
    started_ns: i64,
) -> (Sensor, Session) {
    let sensor = store.upsert_sensor(aor, None).await.unwrap();
    let session = store
        .open_session(&NewSession {
            sensor: sensor.id,
            call_id: call_id.into(),
            ssrc: 0x0bad_cafe,
            stream: climate(),
            started_ns,
        })
        .await
        .unwrap();
    (sensor, session)
}

/// Every sample of a sensor, paging through the store.
pub async fn all_samples(store: &dyn Storage, sensor: SensorId) -> Vec<StoredSample> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .samples(&SampleQuery {
                sensor,
                from_ns: i64::MIN,
                to_ns: TS_MAX,
                limit: 10_000,
                order: Order::Asc,
                after,
            })
            .await
            .unwrap();
        let n = page.len();
        after = page.last().map(|s| s.key());
        out.extend(page);
        if n < 10_000 {
            return out;
        }
    }
}
