//! The maintenance window (`update.window`, e.g. `02:00-04:00`): when a
//! sensor told `reboot=window` may reboot into its update.
//!
//! In UTC, not local time: a fleet spans time zones and the boards keep
//! no zone database, and a rollout that says "02:00 UTC" means one instant
//! for every sensor. The window may wrap midnight (`23:00-01:00`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Seconds after midnight UTC.
    start: u64,
    end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a window; expected HH:MM-HH:MM (UTC) with different ends, e.g. 02:00-04:00")]
pub struct WindowError(String);

impl Window {
    pub fn parse(text: &str) -> Result<Self, WindowError> {
        let bad = || WindowError(text.to_owned());
        let (start, end) = text.trim().split_once('-').ok_or_else(bad)?;
        let start = minute_of_day(start).ok_or_else(bad)?;
        let end = minute_of_day(end).ok_or_else(bad)?;
        if start == end {
            return Err(bad());
        }
        Ok(Window {
            start: start * 60,
            end: end * 60,
        })
    }

    /// How long from `wall` until the window is open; zero inside it.
    pub fn wait(&self, wall: SystemTime) -> Duration {
        let now = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % DAY);
        let inside = if self.start < self.end {
            (self.start..self.end).contains(&now)
        } else {
            now >= self.start || now < self.end
        };
        if inside {
            Duration::ZERO
        } else {
            Duration::from_secs((self.start + DAY - now) % DAY)
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02} UTC",
            self.start / 3600,
            self.start / 60 % 60,
            self.end / 3600,
            self.end / 60 % 60
        )
    }
}

fn minute_of_day(text: &str) -> Option<u64> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u64 = h.parse().ok()?;
    let m: u64 = m.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u64, m: u64) -> SystemTime {
        // Some day well after the epoch, at h:m UTC.
        UNIX_EPOCH + Duration::from_secs(20_000 * DAY + h * 3600 + m * 60)
    }

    #[test]
    fn waits_until_the_start_and_not_inside() {
        let w = Window::parse("02:00-04:00").expect("valid");
        assert_eq!(w.wait(at(1, 30)), Duration::from_secs(30 * 60));
        assert_eq!(w.wait(at(2, 0)), Duration::ZERO);
        assert_eq!(w.wait(at(3, 59)), Duration::ZERO);
        // At the end it is closed again: until tomorrow's start.
        assert_eq!(w.wait(at(4, 0)), Duration::from_secs(22 * 3600));
        assert_eq!(w.to_string(), "02:00-04:00 UTC");
    }

    #[test]
    fn a_window_may_wrap_midnight() {
        let w = Window::parse("23:30-00:30").expect("valid");
        assert_eq!(w.wait(at(0, 10)), Duration::ZERO);
        assert_eq!(w.wait(at(23, 45)), Duration::ZERO);
        assert_eq!(w.wait(at(0, 30)), Duration::from_secs(23 * 3600));
    }

    #[test]
    fn refuses_what_is_not_a_window() {
        for bad in [
            "",
            "2-4",
            "02:00",
            "02:00-02:00",
            "24:00-01:00",
            "02:60-03:00",
            "2:00-4:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }
}
