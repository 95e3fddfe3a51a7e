//! `GET /api/sensors/{id}/coverage?from&to&limit`: the sensor's timeline
//! as ranges of live, resent and backfilled readings and of gaps by cause
//! (issue 15), for the page's coverage band and for scripts.
//!
//! Bounded: a window spans at most [`MAX_WINDOW_NS`], an answer holds at
//! most `limit` ranges and reads at most
//! [`COVERAGE_SCAN_LIMIT`](crate::storage::COVERAGE_SCAN_LIMIT) readings;
//! `next_from_ns` says where to ask again for the rest.

use super::api::find_sensor;
use super::{ApiError, AppState};
use crate::export::CoverageRow;
use crate::storage::{COVERAGE_SCAN_LIMIT, CoverageQuery, SensorId};
use crate::timefmt::{format_rfc3339, now_ns, parse_time};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Most ranges one answer may ask for.
pub const MAX_RANGES: u32 = 10_000;
pub const DEFAULT_RANGES: u32 = 1_000;
/// Longest window: a month.
pub const MAX_WINDOW_NS: i64 = 31 * 86_400 * 1_000_000_000;
/// The window when `from` is not given: the hour before `to`.
pub const DEFAULT_WINDOW_NS: i64 = 3_600 * 1_000_000_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageParams {
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct CoverageJson<'a> {
    sensor: SensorId,
    aor: &'a str,
    from_ns: i64,
    to_ns: i64,
    limit: u32,
    ranges: Vec<CoverageRow<'a>>,
    /// Ask again with `from` set to this for the rest; absent when the
    /// answer is whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_from_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_from: Option<String>,
}

/// The window and limit asked for, checked: `from <= to`, at most
/// [`MAX_WINDOW_NS`] apart, `limit` in `1..=MAX_RANGES`.
fn checked(p: &CoverageParams, now: i64) -> Result<(i64, i64, u32), ApiError> {
    let to = match &p.to {
        Some(s) => parse_time(s).map_err(|e| ApiError::bad_request(format!("to: {e}")))?,
        None => now,
    };
    let from = match &p.from {
        Some(s) => parse_time(s).map_err(|e| ApiError::bad_request(format!("from: {e}")))?,
        None => to.saturating_sub(DEFAULT_WINDOW_NS),
    };
    if from > to {
        return Err(ApiError::bad_request("from is after to"));
    }
    let span = i128::from(to) - i128::from(from);
    if span > i128::from(MAX_WINDOW_NS) {
        return Err(ApiError::bad_request(format!(
            "the window spans {} days; a coverage request spans at most {} days \
             (ask window by window)",
            span / 86_400_000_000_000,
            MAX_WINDOW_NS / 86_400_000_000_000
        )));
    }
    let limit = p.limit.unwrap_or(DEFAULT_RANGES);
    if !(1..=MAX_RANGES).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={MAX_RANGES}, got {limit}"
        )));
    }
    Ok((from, to, limit))
}

pub async fn coverage(
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: Result<Query<CoverageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (from_ns, to_ns, limit) = checked(&p, now_ns())?;
    let sensor = find_sensor(&state, &key).await?;
    let c = state
        .storage
        .coverage(&CoverageQuery {
            sensor: sensor.id,
            from_ns,
            to_ns,
            limit,
            scan_limit: COVERAGE_SCAN_LIMIT,
        })
        .await?;
    let body = CoverageJson {
        sensor: sensor.id,
        aor: &sensor.aor,
        from_ns,
        to_ns,
        limit,
        ranges: c.ranges.iter().map(|r| CoverageRow::new(None, r)).collect(),
        next_from_ns: c.next_from_ns,
        next_from: c.next_from_ns.map(format_rfc3339),
    };
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests;
