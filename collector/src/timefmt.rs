//! Timestamps: nanoseconds since the Unix epoch inside, RFC 3339 outside.

use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("{input:?} is not an RFC 3339 time (like 2026-01-31T12:00:00Z): {reason}")]
    Parse { input: String, reason: String },
    #[error("{0:?} is outside the years 1678..2262 that nanosecond timestamps cover")]
    Range(String),
}

/// Parses an RFC 3339 date-time (any offset) to ns since the epoch.
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| TimeError::Parse {
        input: s.to_string(),
        reason: e.to_string(),
    })?;
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| TimeError::Range(s.to_string()))
}

/// Parses RFC 3339, or a bare integer of ns since the epoch (what the API
/// hands out as `ts_ns`).
pub fn parse_time(s: &str) -> Result<i64, TimeError> {
    let t = s.trim();
    if !t.is_empty()
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && let Ok(ns) = t.parse::<i64>()
    {
        return Ok(ns);
    }
    parse_rfc3339(t)
}

/// Formats ns since the epoch as RFC 3339 in UTC, with as many fractional
/// digits as needed (none for whole seconds).
pub fn format_rfc3339(ns: i64) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)) {
        Ok(t) => t.format(&Rfc3339).unwrap_or_else(|_| ns.to_string()),
        // Unreachable for i64 input (covers 1677..2262), but never panic.
        Err(_) => ns.to_string(),
    }
}

/// The wall clock now, ns since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_nanoseconds() {
        let ns = 1_764_072_000_123_456_789;
        let s = format_rfc3339(ns);
        assert_eq!(s, "2025-11-25T12:00:00.123456789Z");
        assert_eq!(parse_rfc3339(&s).unwrap(), ns);
        assert_eq!(
            format_rfc3339(1_764_072_000_000_000_000),
            "2025-11-25T12:00:00Z"
        );
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn offsets_are_honoured() {
        assert_eq!(
            parse_rfc3339("2025-11-25T13:00:00+01:00").unwrap(),
            parse_rfc3339("2025-11-25T12:00:00Z").unwrap()
        );
    }

    #[test]
    fn bad_input_is_explained() {
        let e = parse_rfc3339("yesterday").unwrap_err().to_string();
        assert!(e.contains("\"yesterday\" is not an RFC 3339 time"), "{e}");
        assert!(parse_rfc3339("2025-11-25 12:00:00").is_err());
        assert!(matches!(
            parse_rfc3339("2300-01-01T00:00:00Z"),
            Err(TimeError::Range(_))
        ));
    }

    #[test]
    fn integers_are_nanoseconds() {
        assert_eq!(
            parse_time("1764072000000000000").unwrap(),
            1_764_072_000_000_000_000
        );
        assert_eq!(parse_time("-5").unwrap(), -5);
        assert_eq!(
            parse_time("2025-11-25T12:00:00Z").unwrap(),
            1_764_072_000_000_000_000
        );
        assert!(parse_time("99999999999999999999").is_err());
    }
}
