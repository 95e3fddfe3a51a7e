//! When to send RTCP: the interval of RFC 3550 6.2/6.3 and A.7 as a
//! sans-I/O timer.
//!
//! A sensor session has two members (agent and collector) and one sender,
//! and this scheduler keeps those counts unless told otherwise; timer
//! reconsideration (6.3.6) is done, member time-outs (6.3.5) and BYE
//! reconsideration (6.3.7, moot below 50 members) are not.

use crate::ids::IdGenerator;
use std::time::{Duration, Instant};

/// RFC 3550 A.7: e - 3/2, compensating for the timer reconsideration's
/// bias towards shorter intervals.
const COMPENSATION: f64 = std::f64::consts::E - 1.5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RtcpConfig {
    /// RTP session bandwidth in bit/s (see `StreamDescription::session_bandwidth_bps`).
    pub session_bandwidth_bps: u64,
    /// Share of it for RTCP: 5 % (RFC 3550 6.2).
    pub rtcp_fraction: f64,
    /// Minimum interval, 5 s recommended (6.2).
    pub min_interval: Duration,
    /// Scale the minimum to 360 / (session kbit/s) when that is smaller
    /// (6.2, "MAY").
    pub reduced_minimum: bool,
    /// Send the first compound at once: allowed for unicast sessions (6.2),
    /// and it gives the receiver its NTP/RTP mapping from the start.
    pub immediate_first: bool,
    /// Bytes of network and transport headers added to each compound's
    /// size for the average (6.2: IPv4 + UDP = 28).
    pub header_overhead: usize,
}

impl RtcpConfig {
    pub fn new(session_bandwidth_bps: u64) -> Self {
        Self {
            session_bandwidth_bps,
            rtcp_fraction: 0.05,
            min_interval: Duration::from_secs(5),
            reduced_minimum: false,
            immediate_first: true,
            header_overhead: 28,
        }
    }

    /// The longest wait A.7 allows between two reports of the receiver of
    /// a two-party session whose compounds average `avg_size` bytes (the
    /// deterministic interval, randomised at its top, compensated): the
    /// sender cannot call the receiver's silence dead before it.
    pub fn longest_receiver_interval(&self, avg_size: usize) -> Duration {
        let rtcp_bw = self.session_bandwidth_bps as f64 / 8.0 * self.rtcp_fraction;
        let mut min = self.min_interval.as_secs_f64();
        if self.reduced_minimum && self.session_bandwidth_bps > 0 {
            min = min.min(360.0 / (self.session_bandwidth_bps as f64 / 1000.0));
        }
        let size = (avg_size + self.header_overhead) as f64;
        let t = deterministic_interval(2, 1, rtcp_bw, false, size, min);
        // Bounded so that a zero bandwidth cannot make an infinite Duration.
        Duration::from_secs_f64((t * 1.5 / COMPENSATION).min(86_400.0))
    }
}

/// The deterministic interval of RFC 3550 A.7 (before randomisation and
/// compensation), in seconds.
pub fn deterministic_interval(
    members: u32,
    senders: u32,
    rtcp_bw_bytes: f64,
    we_sent: bool,
    avg_rtcp_size: f64,
    min: f64,
) -> f64 {
    const SENDER_FRACTION: f64 = 0.25;
    let mut n = f64::from(members.max(1));
    let mut bw = rtcp_bw_bytes;
    // 6.2: senders get a quarter of the RTCP bandwidth when they are a
    // quarter of the members or fewer.
    if f64::from(senders) <= f64::from(members) * SENDER_FRACTION {
        if we_sent {
            bw *= SENDER_FRACTION;
            n = f64::from(senders.max(1));
        } else {
            bw *= 1.0 - SENDER_FRACTION;
            n -= f64::from(senders);
        }
    }
    let t = if bw > 0.0 {
        avg_rtcp_size * n / bw
    } else {
        f64::INFINITY
    };
    t.max(min)
}

/// Sans-I/O RTCP transmission timer for one participant.
#[derive(Debug, Clone)]
pub struct RtcpScheduler {
    config: RtcpConfig,
    members: u32,
    senders: u32,
    we_sent: bool,
    avg_rtcp_size: f64,
    initial: bool,
    forced: bool,
    tp: Instant,
    tn: Instant,
}

impl RtcpScheduler {
    /// A timer started at `now`; `we_sent` is true for the agent.
    pub fn new(config: RtcpConfig, we_sent: bool, now: Instant, ids: &mut IdGenerator) -> Self {
        let mut s = Self {
            config,
            members: 2,
            senders: 1,
            we_sent,
            // 6.3.2: initialise avg_rtcp_size to the probable size of the
            // first compound (SR + SDES CNAME of ~30 bytes, plus headers).
            avg_rtcp_size: (28 + 40 + config.header_overhead) as f64,
            initial: true,
            forced: false,
            tp: now,
            tn: now,
        };
        if !config.immediate_first {
            s.tn = now + s.interval(ids);
        }
        s
    }

    /// The minimum interval in effect (6.2), halved for the first report
    /// when it is not sent at once (6.3.2, A.7 "initial").
    fn min_seconds(&self) -> f64 {
        let mut min = self.config.min_interval.as_secs_f64();
        if self.config.reduced_minimum && self.config.session_bandwidth_bps > 0 {
            min = min.min(360.0 / (self.config.session_bandwidth_bps as f64 / 1000.0));
        }
        if self.initial { min / 2.0 } else { min }
    }

    /// One randomised, compensated interval (A.7).
    pub fn interval(&self, ids: &mut IdGenerator) -> Duration {
        let rtcp_bw = self.config.session_bandwidth_bps as f64 / 8.0 * self.config.rtcp_fraction;
        let t = deterministic_interval(
            self.members,
            self.senders,
            rtcp_bw,
            self.we_sent,
            self.avg_rtcp_size,
            self.min_seconds(),
        );
        let randomised = t * (0.5 + ids.unit()) / COMPENSATION;
        // Bounded so that a zero bandwidth cannot make an infinite Duration.
        Duration::from_secs_f64(randomised.min(86_400.0))
    }

    /// When [`Self::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Instant {
        self.tn
    }

    /// The timer fired (6.3.6). True means: send a compound now and then
    /// call [`Self::on_sent`]. False means it was rescheduled.
    pub fn handle_timeout(&mut self, now: Instant, ids: &mut IdGenerator) -> bool {
        if now < self.tn {
            return false;
        }
        if self.forced || (self.initial && self.config.immediate_first) {
            return true;
        }
        let t = self.interval(ids);
        if self.tp + t <= now {
            true
        } else {
            // Reconsideration: the interval grew since it was scheduled.
            self.tn = self.tp + t;
            false
        }
    }

    /// A compound of `size` bytes was sent at `now` (6.3.6).
    pub fn on_sent(&mut self, size: usize, now: Instant, ids: &mut IdGenerator) {
        self.update_avg(size);
        self.initial = false;
        self.forced = false;
        self.tp = now;
        self.tn = now + self.interval(ids);
    }

    /// Asks for a report at `now`, outside the schedule: after the
    /// sender's wall clock was stepped its SR mapping changed, and the
    /// receiver should not wait a whole interval to learn it
    /// (docs/protocol.md 6). Rare by nature, so the bandwidth share holds.
    pub fn send_soon(&mut self, now: Instant) {
        self.forced = true;
        self.tn = self.tn.min(now);
    }

    /// A compound of `size` bytes arrived (6.3.3).
    pub fn on_received(&mut self, size: usize) {
        self.update_avg(size);
    }

    /// Whether this side counts as a sender (it sent RTP since the last
    /// two reports; 6.3.8).
    pub fn set_we_sent(&mut self, we_sent: bool) {
        self.we_sent = we_sent;
    }

    /// Member and sender counts, for sessions with more than two parties.
    pub fn set_members(&mut self, members: u32, senders: u32) {
        self.members = members.max(1);
        self.senders = senders.min(self.members);
    }

    pub fn avg_rtcp_size(&self) -> f64 {
        self.avg_rtcp_size
    }

    fn update_avg(&mut self, size: usize) {
        // 6.3.3: avg = 1/16 * size + 15/16 * avg, headers included.
        let size = (size + self.config.header_overhead) as f64;
        self.avg_rtcp_size = size / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_interval_follows_a7() {
        // Two members, one sender: senders (1) > 25 % of members (0.5), so
        // everyone shares the whole RTCP bandwidth: 100 B * 2 / 50 B/s = 4 s.
        assert_eq!(deterministic_interval(2, 1, 50.0, true, 100.0, 1.0), 4.0);
        assert_eq!(deterministic_interval(2, 1, 50.0, false, 100.0, 1.0), 4.0);
        // Floor at the minimum.
        assert_eq!(deterministic_interval(2, 1, 50.0, true, 100.0, 5.0), 5.0);
        // Ten members, one sender: the sender gets 1/4 of the bandwidth
        // for itself alone, receivers 3/4 shared by nine.
        assert_eq!(deterministic_interval(10, 1, 100.0, true, 100.0, 0.0), 4.0);
        assert_eq!(
            deterministic_interval(10, 1, 100.0, false, 100.0, 0.0),
            12.0
        );
        assert_eq!(
            deterministic_interval(2, 1, 0.0, true, 100.0, 5.0),
            f64::INFINITY
        );
    }

    #[test]
    fn the_longest_receiver_interval_is_the_top_of_a7s_randomisation() {
        // Fast enough for the 5 s minimum: 5 * 1.5 / (e - 1.5) = 6.16 s.
        let fast = RtcpConfig::new(100_000).longest_receiver_interval(72);
        assert!((fast.as_secs_f64() - 7.5 / COMPENSATION).abs() < 1e-9);
        // docs/protocol.md's 5 Hz example, 672 bit/s: 4.2 B/s for RTCP,
        // 100-byte compounds, two members: 47.6 s, at most 58.6 s.
        let slow = RtcpConfig::new(672).longest_receiver_interval(72);
        let expected = 100.0 * 2.0 / 4.2 * 1.5 / COMPENSATION;
        assert!((slow.as_secs_f64() - expected).abs() < 1e-6, "{slow:?}");
        // Never drawn beyond it.
        let mut ids = IdGenerator::seeded(5);
        let s = RtcpScheduler::new(RtcpConfig::new(672), false, Instant::now(), &mut ids);
        for _ in 0..1000 {
            assert!(s.interval(&mut ids) <= slow);
        }
        assert_eq!(
            RtcpConfig::new(0).longest_receiver_interval(72),
            Duration::from_secs(86_400)
        );
    }

    fn sched(cfg: RtcpConfig, now: Instant, ids: &mut IdGenerator) -> RtcpScheduler {
        RtcpScheduler::new(cfg, true, now, ids)
    }

    #[test]
    fn the_first_report_goes_out_at_once_then_every_5s_randomised() {
        let mut ids = IdGenerator::seeded(9);
        let t0 = crate::test_clock::base();
        // 100 kbit/s: 5 % is 625 B/s, so the 5 s minimum rules.
        let mut s = sched(RtcpConfig::new(100_000), t0, &mut ids);
        assert_eq!(s.poll_timeout(), t0);
        assert!(s.handle_timeout(t0, &mut ids));
        s.on_sent(80, t0, &mut ids);
        // 5 s * [0.5, 1.5] / (e - 1.5): 2.05 s .. 6.16 s.
        let mut now = t0;
        let mut seen = Vec::new();
        for _ in 0..200 {
            let next = s.poll_timeout();
            let gap = next - now;
            assert!(
                gap >= Duration::from_millis(2052) && gap <= Duration::from_millis(6157),
                "{gap:?}"
            );
            seen.push(gap);
            now = next;
            assert!(s.handle_timeout(now, &mut ids) || s.poll_timeout() > now);
            if s.poll_timeout() <= now {
                s.on_sent(80, now, &mut ids);
            } else {
                // Reconsidered: wait for the new time, then it must send.
                now = s.poll_timeout();
                assert!(s.handle_timeout(now, &mut ids) || s.poll_timeout() > now);
                s.on_sent(80, now, &mut ids);
            }
        }
        let mean = seen.iter().sum::<Duration>() / seen.len() as u32;
        // Expected mean 5 / 1.218 = 4.1 s; seeded, so a tight bound is safe.
        assert!(
            mean > Duration::from_millis(3700) && mean < Duration::from_millis(4500),
            "{mean:?}"
        );
    }

    #[test]
    fn early_timeouts_do_nothing() {
        let mut ids = IdGenerator::seeded(1);
        let t0 = crate::test_clock::base();
        let mut cfg = RtcpConfig::new(100_000);
        cfg.immediate_first = false;
        let mut s = sched(cfg, t0, &mut ids);
        // Initial: half the minimum, randomised: 1.03 s .. 3.08 s.
        let first = s.poll_timeout() - t0;
        assert!(
            first >= Duration::from_millis(1026) && first <= Duration::from_millis(3079),
            "{first:?}"
        );
        assert!(!s.handle_timeout(t0, &mut ids));
        assert_eq!(s.poll_timeout() - t0, first);
    }

    #[test]
    fn reconsideration_defers_when_the_interval_grew() {
        let mut ids = IdGenerator::seeded(5);
        let t0 = crate::test_clock::base();
        let mut s = sched(RtcpConfig::new(1000), t0, &mut ids);
        s.on_sent(80, t0, &mut ids);
        let due = s.poll_timeout();
        // Now the packets became huge: 2 * 5000 B / 6.25 B/s = 1600 s.
        for _ in 0..64 {
            s.on_received(5000);
        }
        assert!(!s.handle_timeout(due, &mut ids));
        assert!(s.poll_timeout() - t0 > Duration::from_secs(600));
    }

    #[test]
    fn send_soon_bypasses_the_schedule_once() {
        let mut ids = IdGenerator::seeded(6);
        let t0 = crate::test_clock::base();
        let mut s = sched(RtcpConfig::new(100_000), t0, &mut ids);
        s.on_sent(80, t0, &mut ids);
        let planned = s.poll_timeout();
        let t1 = t0 + Duration::from_millis(100);
        assert!(!s.handle_timeout(t1, &mut ids));
        s.send_soon(t1);
        assert_eq!(s.poll_timeout(), t1);
        assert!(s.handle_timeout(t1, &mut ids));
        s.on_sent(80, t1, &mut ids);
        assert!(s.poll_timeout() > t1 + Duration::from_secs(2));
        assert_ne!(s.poll_timeout(), planned);
    }

    #[test]
    fn average_size_follows_6_3_3() {
        let mut ids = IdGenerator::seeded(2);
        let t0 = crate::test_clock::base();
        let mut s = sched(RtcpConfig::new(1000), t0, &mut ids);
        let a0 = s.avg_rtcp_size();
        s.on_received(100);
        assert_eq!(s.avg_rtcp_size(), 128.0 / 16.0 + a0 * 15.0 / 16.0);
    }

    #[test]
    fn a_slow_sensor_stream_reports_less_often_than_every_5s() {
        // 1.7 kbit/s (docs/protocol.md example): 5 % is 10.6 B/s, a 108-byte
        // compound for each of two members: about 20 s on average.
        let mut ids = IdGenerator::seeded(4);
        let t0 = crate::test_clock::base();
        let mut s = sched(RtcpConfig::new(1664), t0, &mut ids);
        s.on_sent(80, t0, &mut ids);
        for _ in 0..50 {
            s.on_sent(80, s.poll_timeout(), &mut ids);
        }
        let t = s.interval(&mut ids);
        assert!(
            t > Duration::from_secs(7) && t < Duration::from_secs(26),
            "{t:?}"
        );
    }

    #[test]
    fn reduced_minimum_and_member_counts() {
        let mut ids = IdGenerator::seeded(3);
        let t0 = crate::test_clock::base();
        let mut cfg = RtcpConfig::new(720_000); // 720 kbit/s: 0.5 s minimum
        cfg.reduced_minimum = true;
        let mut s = sched(cfg, t0, &mut ids);
        s.on_sent(80, t0, &mut ids);
        let gap = s.poll_timeout() - t0;
        assert!(gap <= Duration::from_millis(616), "{gap:?}");
        s.set_members(0, 5);
        s.set_we_sent(false);
        assert!(s.interval(&mut ids) > Duration::ZERO);
    }
}
