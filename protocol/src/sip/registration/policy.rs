//! Timing decisions of the registration client: when to refresh, how long
//! to back off, what Retry-After means.

use std::time::Duration;

/// Refresh point for a binding granted `granted` seconds: a random point
/// between 40 % and 50 % of the interval.
///
/// Why not "expires minus a margin": a refresh over UDP may take 64*T1 =
/// 32 s to time out, and the back-off after that is tens of seconds, so
/// a late refresh lets the binding lapse on the first lost packet.
/// Refreshing at about half leaves the second half of the interval for
/// retries. The random spread keeps a fleet of sensors that booted
/// together (after a power cut) from refreshing in lock-step.
pub fn refresh_delay(granted: Duration, unit: f64) -> Duration {
    let unit = unit.clamp(0.0, 1.0);
    granted.mul_f64(0.5 - 0.1 * unit)
}

/// Back-off after `failures` consecutive failures (1 = first), after
/// RFC 5626 section 4.5: `min(max, base * 2^(failures-1))`, then a random
/// point between 50 % and 100 % of that, so that devices that failed
/// together do not retry together.
pub fn backoff(base: Duration, max: Duration, failures: u32, unit: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exp).min(max);
    ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// `Retry-After: delta-seconds [comment] *(;param)` (RFC 3261 20.33):
/// the seconds, or `None` when unreadable.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let digits: String = value
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        return None;
    }
    let secs = digits.parse::<u64>().unwrap_or(u64::from(u32::MAX));
    Some(Duration::from_secs(secs))
}

/// The reason phrase for a status code: the received one where rsip
/// keeps it (codes it does not know), else RFC 3261 section 21's.
pub fn reason_phrase(status: &rsip::StatusCode) -> String {
    match status {
        rsip::StatusCode::Other(_, reason) => reason.clone(),
        known => crate::sip::response::reason_phrase(known.code()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_lands_between_40_and_50_percent() {
        let g = Duration::from_secs(3600);
        assert_eq!(refresh_delay(g, 0.0), Duration::from_secs(1800));
        assert_eq!(refresh_delay(g, 1.0), Duration::from_secs(1440));
        let mid = refresh_delay(g, 0.5);
        assert!(mid > Duration::from_secs(1440) && mid < Duration::from_secs(1800));
        assert_eq!(refresh_delay(g, 7.0), Duration::from_secs(1440), "clamped");
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(1800);
        assert_eq!(backoff(base, max, 1, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(base, max, 1, 0.0), Duration::from_secs(15));
        assert_eq!(backoff(base, max, 2, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(base, max, 3, 1.0), Duration::from_secs(120));
        assert_eq!(backoff(base, max, 7, 1.0), Duration::from_secs(1800));
        assert_eq!(backoff(base, max, 1000, 1.0), Duration::from_secs(1800));
        assert_eq!(backoff(base, max, 1000, 0.0), Duration::from_secs(900));
        assert_eq!(backoff(base, max, 0, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after(" 18000;duration=3600"),
            Some(Duration::from_secs(18000))
        );
        assert_eq!(
            parse_retry_after("5 (I'm in a meeting)"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(Duration::from_secs(u64::from(u32::MAX)))
        );
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(&403.into()), "Forbidden");
        assert_eq!(reason_phrase(&423.into()), "Interval Too Brief");
        assert_eq!(
            reason_phrase(&rsip::StatusCode::Other(499, "Odd".into())),
            "Odd"
        );
    }
}
