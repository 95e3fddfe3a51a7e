//! NTP timestamps (RFC 3550 4) and the RTP-to-wall-clock mapping a sender
//! report gives (RFC 3550 6.4.1).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
const NANOS: u128 = 1_000_000_000;

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, binary
/// fraction in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// The NTP time of a Unix time. Seconds wrap at 2^32 (2036-02-07) into
    /// era 1, as RFC 4330 section 3 describes.
    pub fn from_unix(since_epoch: Duration) -> Self {
        let secs = (since_epoch.as_secs() + NTP_UNIX_OFFSET) & 0xffff_ffff;
        let frac = (u128::from(since_epoch.subsec_nanos()) << 32) / NANOS;
        NtpTime(secs << 32 | frac as u64)
    }

    /// The wall clock as NTP; times before 1970 map to 1970.
    pub fn from_system_time(t: SystemTime) -> Self {
        Self::from_unix(t.duration_since(UNIX_EPOCH).unwrap_or_default())
    }

    /// The Unix time. Seconds below 2^31 are taken as era 1 (after 2036),
    /// so the mapping is right from 1968 to 2104 (RFC 4330 section 3).
    pub fn to_unix(self) -> Duration {
        let mut secs = self.0 >> 32;
        if secs < 1 << 31 {
            secs += 1 << 32;
        }
        let frac = u128::from(self.0 & 0xffff_ffff);
        // Round to the nearest nanosecond so from/to round-trips exactly.
        let nanos = ((frac * NANOS) + (1 << 31)) >> 32;
        Duration::from_secs(secs - NTP_UNIX_OFFSET) + Duration::from_nanos(nanos as u64)
    }

    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + self.to_unix()
    }

    /// The middle 32 bits, as LSR carries them (RFC 3550 6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// One sender report's pairing of an RTP timestamp with a wall-clock time,
/// used to give every sample an absolute time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrMapping {
    pub ntp: NtpTime,
    pub rtp_timestamp: u32,
    pub clock_rate: u32,
}

impl SrMapping {
    /// The wall-clock time of an RTP timestamp within 2^31 ticks of the
    /// report's (either side, with wrap-around).
    pub fn system_time_of(&self, rtp_timestamp: u32) -> Option<SystemTime> {
        self.system_time_at(rtp_timestamp, 0)
    }

    /// As [`Self::system_time_of`], plus a 32.32 tick offset (an event
    /// record's edge time, docs/protocol.md).
    pub fn system_time_at(&self, rtp_timestamp: u32, offset: i64) -> Option<SystemTime> {
        if self.clock_rate == 0 {
            return None;
        }
        let ticks = rtp_timestamp.wrapping_sub(self.rtp_timestamp) as i32;
        let q32 = (i128::from(ticks) << 32) + i128::from(offset);
        let delta_ns = (q32 * NANOS as i128).div_euclid(i128::from(self.clock_rate) << 32);
        let base_ns = self.ntp.to_unix().as_nanos() as i128;
        let ns = u64::try_from(base_ns + delta_ns).ok()?;
        Some(UNIX_EPOCH + Duration::from_nanos(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_and_known_instants() {
        assert_eq!(NtpTime::from_unix(Duration::ZERO).0, NTP_UNIX_OFFSET << 32);
        // 2026-01-01T00:00:00.5Z = 1767225600.5 Unix.
        let t = NtpTime::from_unix(Duration::from_millis(1_767_225_600_500));
        assert_eq!(t.0 >> 32, 1_767_225_600 + NTP_UNIX_OFFSET);
        assert_eq!(t.0 & 0xffff_ffff, 1 << 31);
        assert_eq!(t.to_unix(), Duration::from_millis(1_767_225_600_500));
        assert_eq!(t.middle32(), ((t.0 >> 16) & 0xffff_ffff) as u32);
    }

    #[test]
    fn round_trips_to_the_nanosecond_across_the_2036_era() {
        for unix in [
            Duration::new(0, 1),
            Duration::new(1_767_225_600, 123_456_789),
            Duration::new(2_085_978_495, 999_999_999), // 2036-02-07 06:28:15
            Duration::new(2_085_978_496, 0),           // era 1 starts
            Duration::new(4_000_000_000, 7),           // 2096
        ] {
            let t = NtpTime::from_unix(unix);
            assert_eq!(t.to_unix(), unix, "{unix:?}");
            let st = UNIX_EPOCH + unix;
            assert_eq!(NtpTime::from_system_time(st).to_system_time(), st);
        }
        assert_eq!(
            NtpTime::from_unix(Duration::new(2_085_978_496, 0)).0 >> 32,
            0
        );
    }

    #[test]
    fn times_before_1970_clamp() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(NtpTime::from_system_time(before).to_unix(), Duration::ZERO);
    }

    #[test]
    fn sr_mapping_gives_each_timestamp_its_wall_clock() {
        let base = Duration::new(1_767_225_600, 0);
        let m = SrMapping {
            ntp: NtpTime::from_unix(base),
            rtp_timestamp: 0xffff_fff0,
            clock_rate: 100,
        };
        let at = |ts: u32| {
            m.system_time_of(ts)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
        };
        assert_eq!(at(0xffff_fff0), base);
        // 0x20 ticks later, across the wrap: 320 ms.
        assert_eq!(at(0x10), base + Duration::from_millis(320));
        assert_eq!(at(0xffff_ffe0), base - Duration::from_millis(160));
        // A quarter tick before: 2.5 ms.
        let edge = m.system_time_at(0x10, -(1 << 30)).unwrap();
        assert_eq!(
            edge.duration_since(UNIX_EPOCH).unwrap(),
            base + Duration::from_micros(317_500)
        );
        // 3 Hz: thirds of a second, floored to the nanosecond.
        let third = SrMapping {
            clock_rate: 3,
            rtp_timestamp: 0,
            ..m
        };
        assert_eq!(
            third
                .system_time_of(1)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap(),
            base + Duration::from_nanos(333_333_333)
        );
        assert_eq!(SrMapping { clock_rate: 0, ..m }.system_time_of(1), None);
        let early = SrMapping {
            ntp: NtpTime::from_unix(Duration::from_secs(1)),
            rtp_timestamp: 1000,
            clock_rate: 1,
        };
        assert_eq!(early.system_time_of(0), None, "before 1970");
    }
}
