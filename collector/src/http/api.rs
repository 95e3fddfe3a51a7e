//! JSON API handlers.
//!
//! No answer carries a stream's SSRC, Call-ID or RTP address: with them
//! anyone who can read the page could inject packets or sender reports
//! into a stream (issue 14). The store keeps them.

use super::{ApiError, AppState};
use crate::stats::StreamSnapshot;
use crate::storage::{
    Event, Gap, Order, ReadingSource, SampleQuery, Sensor, SensorId, Session, SessionId,
    StoredSample, StreamSpec, TS_MAX,
};
use crate::timefmt::{format_rfc3339, now_ns, parse_time};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Largest `limit` a sample query may ask for.
pub const MAX_LIMIT: u32 = 100_000;
pub const DEFAULT_LIMIT: u32 = 1_000;

#[derive(Debug, Serialize)]
pub struct SensorJson {
    pub id: SensorId,
    pub aor: String,
    pub display_name: Option<String>,
    pub state: crate::storage::SensorState,
    /// RFC 3339
    pub last_seen: Option<String>,
    pub last_seen_ns: Option<i64>,
}

impl From<Sensor> for SensorJson {
    fn from(s: Sensor) -> Self {
        SensorJson {
            id: s.id,
            aor: s.aor,
            display_name: s.display_name,
            state: s.state,
            last_seen: s.last_seen_ns.map(format_rfc3339),
            last_seen_ns: s.last_seen_ns,
        }
    }
}

/// A session record without its Call-ID and SSRC.
#[derive(Debug, Serialize)]
pub struct SessionJson {
    pub id: SessionId,
    pub sensor: SensorId,
    pub stream: StreamSpec,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
}

impl From<Session> for SessionJson {
    fn from(s: Session) -> Self {
        SessionJson {
            id: s.id,
            sensor: s.sensor,
            stream: s.stream,
            started_ns: s.started_ns,
            ended_ns: s.ended_ns,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SampleJson {
    pub ts_ns: i64,
    pub time: String,
    pub session: crate::storage::SessionId,
    pub channel: u16,
    pub name: String,
    pub unit: String,
    pub seq: i64,
    pub index: u32,
    pub raw: i64,
    pub value: f64,
    /// How it came: `live`, `resent` (retransmitted) or `backfilled` (from
    /// the agent's spool after an interruption).
    pub source: ReadingSource,
}

impl From<StoredSample> for SampleJson {
    fn from(s: StoredSample) -> Self {
        SampleJson {
            ts_ns: s.ts_ns,
            time: format_rfc3339(s.ts_ns),
            session: s.session,
            channel: s.channel,
            name: s.name,
            unit: s.unit,
            seq: s.seq,
            index: s.index,
            raw: s.raw,
            value: s.value,
            source: s.source,
        }
    }
}

#[derive(Debug, Serialize)]
struct SamplesJson {
    sensor: SensorId,
    aor: String,
    order: Order,
    limit: u32,
    /// True when `limit` rows came back: there may be more.
    truncated: bool,
    samples: Vec<SampleJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
    order: Option<Order>,
}

struct Range {
    from: i64,
    to: i64,
}

fn range(p: &RangeParams) -> Result<Range, ApiError> {
    let from = match &p.from {
        Some(s) => parse_time(s).map_err(|e| ApiError::bad_request(format!("from: {e}")))?,
        None => i64::MIN,
    };
    let to = match &p.to {
        Some(s) => parse_time(s).map_err(|e| ApiError::bad_request(format!("to: {e}")))?,
        None => TS_MAX,
    };
    if from > to {
        return Err(ApiError::bad_request("from is after to"));
    }
    Ok(Range { from, to })
}

fn params(q: Result<Query<RangeParams>, QueryRejection>) -> Result<RangeParams, ApiError> {
    q.map(|Query(p)| p)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A sensor by numeric id or by address of record.
pub(super) async fn find_sensor(state: &AppState, key: &str) -> Result<Sensor, ApiError> {
    let found = match key.parse::<i64>() {
        Ok(id) => state.storage.sensor(SensorId(id)).await?,
        Err(_) => state.storage.sensor_by_aor(key).await?,
    };
    found.ok_or_else(|| ApiError::not_found(format!("no sensor {key:?}")))
}

pub async fn sensors(State(state): State<AppState>) -> Result<Json<Vec<SensorJson>>, ApiError> {
    let list = state.storage.sensors().await?;
    Ok(Json(list.into_iter().map(SensorJson::from).collect()))
}

pub async fn sensor(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<SensorJson>, ApiError> {
    Ok(Json(find_sensor(&state, &key).await?.into()))
}

pub async fn sessions(
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<Vec<SessionJson>>, ApiError> {
    let p = params(q)?;
    let r = range(&p)?;
    let s = find_sensor(&state, &key).await?;
    let list = state.storage.sessions(s.id, r.from, r.to).await?;
    Ok(Json(list.into_iter().map(SessionJson::from).collect()))
}

pub async fn samples(
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let r = range(&p)?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={MAX_LIMIT}, got {limit}"
        )));
    }
    let order = p.order.unwrap_or_default();
    let s = find_sensor(&state, &key).await?;
    let rows = state
        .storage
        .samples(&SampleQuery {
            sensor: s.id,
            from_ns: r.from,
            to_ns: r.to,
            limit,
            order,
            after: None,
        })
        .await?;
    let body = SamplesJson {
        sensor: s.id,
        aor: s.aor,
        order,
        limit,
        truncated: rows.len() == limit as usize,
        samples: rows.into_iter().map(SampleJson::from).collect(),
    };
    Ok(Json(body).into_response())
}

pub async fn gaps(
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<Vec<Gap>>, ApiError> {
    let p = params(q)?;
    let r = range(&p)?;
    let s = find_sensor(&state, &key).await?;
    Ok(Json(state.storage.gaps(s.id, r.from, r.to).await?))
}

pub async fn events(
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let p = params(q)?;
    let r = range(&p)?;
    let s = find_sensor(&state, &key).await?;
    Ok(Json(state.storage.events(s.id, r.from, r.to).await?))
}

/// Serialised without SSRC, Call-ID and RTP address (see `StreamInfo`).
pub async fn streams(State(state): State<AppState>) -> Json<Vec<StreamSnapshot>> {
    Json(state.streams.snapshot(now_ns()))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response(),
    }
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.storage.schema_version().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such page")
}
