//! The `spool` section: where the sample spool lives and how big it may
//! grow (crate::spool). Its serde type and defaults are in `raw` with the
//! other sections'; the size a week takes and the checks are here, so the
//! rest of the config code only names the section.

use super::raw::{RawSpool, RawStream};
use std::path::PathBuf;
use std::time::Duration;

/// The computed default never exceeds this: three quarters of the image's
/// 256 MiB data partition, which also holds credentials and updates.
pub const DEFAULT_MAX_BYTES_CAP: u64 = 192 << 20;
/// Below this the ring would be a handful of minimum-size segments.
const MIN_MAX_BYTES: u64 = 1 << 20;
const MIN_MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub max_age: Duration,
    pub fsync_interval: Duration,
    /// Bytes per second (docs/protocol.md 11.6); 0 sends no backfill.
    pub backfill_rate: u64,
}

/// A week of the stream as the spool stores it, capped at
/// `DEFAULT_MAX_BYTES_CAP`. Estimated at 3 bytes a value (values are
/// varint deltas: slow readings take 1–2, noisy ones 2–3) plus 28 bytes
/// of record framing a packet; docs/benchmarks.md has measured figures.
pub fn default_max_bytes(stream: &RawStream) -> u64 {
    let channels = stream.channels.len().max(1) as u64;
    let spp = u64::from(stream.samples_per_packet.max(1));
    let packets_per_week = u64::from(stream.rate) * 7 * 86_400 / spp;
    let per_packet = 28 + 3 * channels * spp;
    packets_per_week
        .saturating_mul(per_packet)
        .clamp(MIN_MAX_BYTES, DEFAULT_MAX_BYTES_CAP)
}

/// The checked section (`None`: `enabled: false`), or each problem as the
/// key it concerns and what is wrong.
pub(super) fn check(
    raw: &RawSpool,
    stream: &RawStream,
) -> Result<Option<SpoolConfig>, Vec<(&'static str, String)>> {
    if !raw.enabled {
        return Ok(None);
    }
    let mut errors = Vec::new();
    if !raw.dir.starts_with('/') {
        errors.push(("dir", format!("`{}` must be an absolute path", raw.dir)));
    }
    let max_bytes = raw.max_bytes.unwrap_or_else(|| default_max_bytes(stream));
    if max_bytes < MIN_MAX_BYTES {
        errors.push((
            "max_bytes",
            format!("must be at least {MIN_MAX_BYTES} (1 MiB), got {max_bytes}"),
        ));
    }
    let max_age = match parse_age(&raw.max_age) {
        Some(d) if d >= MIN_MAX_AGE => Some(d),
        Some(_) => {
            errors.push(("max_age", format!("`{}` is shorter than 1m", raw.max_age)));
            None
        }
        None => {
            errors.push((
                "max_age",
                format!(
                    "`{}` is not an age; expected a number and s, m, h or d, e.g. 7d",
                    raw.max_age
                ),
            ));
            None
        }
    };
    if !(10..=60_000).contains(&raw.fsync_interval_ms) {
        errors.push((
            "fsync_interval_ms",
            format!("must be 10 to 60000, got {}", raw.fsync_interval_ms),
        ));
    }
    match max_age {
        Some(max_age) if errors.is_empty() => Ok(Some(SpoolConfig {
            dir: PathBuf::from(&raw.dir),
            max_bytes,
            max_age,
            fsync_interval: Duration::from_millis(u64::from(raw.fsync_interval_ms)),
            backfill_rate: raw.backfill_rate,
        })),
        _ => Err(errors),
    }
}

/// `90s`, `30m`, `12h`, `7d`.
fn parse_age(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit_secs).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rate: u32, spp: u32, channels: usize) -> RawStream {
        RawStream {
            rate,
            samples_per_packet: spp,
            channels: (0..channels).map(|i| format!("c{i}")).collect(),
        }
    }

    #[test]
    fn defaults_hold_a_week_at_the_rate_up_to_the_cap() {
        // 10 Hz, one sample a packet, 1 channel: 31 bytes × 6,048,000.
        assert_eq!(default_max_bytes(&stream(10, 1, 1)), 31 * 6_048_000);
        // A stream too slow to fill the minimum still gets it.
        assert_eq!(default_max_bytes(&stream(1, 1, 0)), 31 * 604_800);
        assert_eq!(default_max_bytes(&stream(0, 1, 1)), MIN_MAX_BYTES);
        assert_eq!(
            default_max_bytes(&stream(100, 10, 3)),
            DEFAULT_MAX_BYTES_CAP
        );
        let c = check(&RawSpool::default(), &stream(10, 1, 3))
            .expect("valid")
            .expect("on");
        assert_eq!(c.max_age, Duration::from_secs(7 * 86_400));
        assert_eq!(c.fsync_interval, Duration::from_secs(1));
        assert_eq!(c.dir, PathBuf::from(crate::config::raw::DEFAULT_SPOOL_DIR));
        assert_eq!(c.backfill_rate, 16_000);
    }

    #[test]
    fn off_is_none() {
        let raw = RawSpool {
            enabled: false,
            max_age: "nonsense".into(),
            ..RawSpool::default()
        };
        assert_eq!(check(&raw, &stream(10, 1, 3)), Ok(None));
    }

    #[test]
    fn each_bad_key_is_named() {
        let raw = RawSpool {
            enabled: true,
            dir: "spool".into(),
            max_bytes: Some(1000),
            max_age: "7 days".into(),
            fsync_interval_ms: 0,
            backfill_rate: 0,
        };
        let errors = check(&raw, &stream(10, 1, 3)).expect_err("invalid");
        let keys: Vec<&str> = errors.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["dir", "max_bytes", "max_age", "fsync_interval_ms"]);
        let short = RawSpool {
            max_age: "30s".into(),
            ..RawSpool::default()
        };
        let errors = check(&short, &stream(10, 1, 3)).expect_err("too short");
        assert!(errors[0].1.contains("shorter than 1m"), "{errors:?}");
    }

    #[test]
    fn ages_take_a_unit() {
        assert_eq!(parse_age("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_age("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_age("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_age("7"), None);
        assert_eq!(parse_age("d"), None);
        assert_eq!(parse_age("99999999999999999999d"), None);
    }
}
