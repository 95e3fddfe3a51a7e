//! Timing figures from kernel arrival times.
//!
//! Each samples packet should leave when its last instant is due: at
//! `tick_last / clock` seconds after tick 0. With `e` = arrival minus that
//! ideal time (both relative to the first packet):
//!
//! * jitter: `e - min(e)`, how much later than the best case a packet
//!   left (p50, p99, max). Loopback adds microseconds at most.
//! * rate error: the slope of a least-squares line through `e` against
//!   the ideal time, in ppm: a sender that adds a little to every sleep
//!   shows up here, one on absolute deadlines does not.
//! * drift: that slope times the run's length (µs gained or lost), and
//!   the largest distance of any packet from the line.

use crate::receive::Arrival;
use sipsensor_protocol::{
    Payload, RtcpPacket, SrMapping, decode_payload, parse_rtcp_compound, parse_rtp,
};
use std::collections::HashSet;
use std::time::UNIX_EPOCH;

/// Packets at the start left out of the figures (the first 200 ms at 50
/// packets/s): thread start-up, first page touches.
pub const WARM_UP: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub packets: usize,
    /// Sequence numbers missing between the first and the last packet.
    pub lost: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub rate_ppm: f64,
    pub drift_us: f64,
    pub residual_max_us: f64,
}

/// Arrival ns and ideal ns (of the last instant) of each samples packet.
fn points(arrivals: &[Arrival], clock_rate: u32, period: u32) -> (Vec<(f64, f64)>, u64) {
    let mut first: Option<(i128, u32)> = None;
    let mut last_seq: Option<u16> = None;
    let mut lost = 0u64;
    let mut out = Vec::new();
    for a in arrivals {
        let Ok(p) = parse_rtp(&a.bytes) else {
            continue;
        };
        if let Some(s) = last_seq {
            lost += u64::from(p.sequence.wrapping_sub(s).wrapping_sub(1));
        }
        last_seq = Some(p.sequence);
        let Ok(Payload::Samples(s)) = decode_payload(p.payload) else {
            continue;
        };
        let (t0, ts0) = *first.get_or_insert((a.at_ns, p.timestamp));
        let last_tick = u64::from(p.timestamp.wrapping_sub(ts0))
            + u64::from(period) * u64::from(s.count.saturating_sub(1));
        let ideal = last_tick as f64 * 1e9 / f64::from(clock_rate.max(1));
        out.push(((a.at_ns - t0) as f64, ideal));
    }
    (out, lost)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Each samples packet as `ideal µs, arrival - ideal µs` lines (relative
/// to the first packet), for plotting.
pub fn series(arrivals: &[Arrival], clock_rate: u32, period: u32) -> String {
    points(arrivals, clock_rate, period)
        .0
        .iter()
        .map(|(at, ideal)| format!("{:.1},{:.1}\n", ideal / 1e3, (at - ideal) / 1e3))
        .collect()
}

/// The figures, or `None` with fewer than `WARM_UP + 3` packets.
pub fn timing(arrivals: &[Arrival], clock_rate: u32, period: u32) -> Option<Timing> {
    let (all, lost) = points(arrivals, clock_rate, period);
    let pts = all.get(WARM_UP..).filter(|p| p.len() >= 3)?;
    // e = arrival - ideal, in ns; x = ideal time in s.
    let e: Vec<f64> = pts.iter().map(|(at, ideal)| at - ideal).collect();
    let x: Vec<f64> = pts.iter().map(|(_, ideal)| ideal / 1e9).collect();
    let min = e.iter().copied().fold(f64::INFINITY, f64::min);
    let mut late: Vec<f64> = e.iter().map(|v| (v - min) / 1e3).collect();
    late.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    let (mx, me) = (x.iter().sum::<f64>() / n, e.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    let sxe: f64 = x.iter().zip(&e).map(|(a, b)| (a - mx) * (b - me)).sum();
    // Slope in ns per s = ppb... ns/s / 1e3 = ppm.
    let slope = if sxx > 0.0 { sxe / sxx } else { 0.0 };
    let span = x.last().copied().unwrap_or(0.0) - x.first().copied().unwrap_or(0.0);
    let residual_max = x
        .iter()
        .zip(&e)
        .map(|(a, b)| (b - (me + slope * (a - mx))).abs())
        .fold(0.0, f64::max);
    Some(Timing {
        packets: all.len(),
        lost,
        p50_us: percentile(&late, 0.50),
        p99_us: percentile(&late, 0.99),
        max_us: late.last().copied().unwrap_or(0.0),
        rate_ppm: slope / 1e3,
        drift_us: slope * span / 1e3,
        residual_max_us: residual_max / 1e3,
    })
}

/// How long GPIO edges took from the moment they were pushed into the
/// event ring (the edge time the packet carries) to the kernel's receive
/// time, through the SR's wall-clock mapping (docs/protocol.md 6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeLatency {
    pub edges: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

pub fn edge_latency(
    arrivals: &[Arrival],
    rtcp: &[Vec<u8>],
    clock_rate: u32,
) -> Option<EdgeLatency> {
    let sr = rtcp.iter().find_map(|c| {
        parse_rtcp_compound(c)
            .ok()?
            .into_iter()
            .find_map(|p| match p {
                RtcpPacket::SenderReport(sr) => Some(sr),
                _ => None,
            })
    })?;
    let map = SrMapping {
        ntp: sr.ntp,
        rtp_timestamp: sr.rtp_timestamp,
        clock_rate,
    };
    let mut seen = HashSet::new();
    let mut lat = Vec::new();
    for a in arrivals {
        let Ok(p) = parse_rtp(&a.bytes) else {
            continue;
        };
        let Ok(Payload::Events(e)) = decode_payload(p.payload) else {
            continue;
        };
        // The first copy of each edge (receivers deduplicate by serial).
        for r in e.records() {
            if !seen.insert(r.serial) {
                continue;
            }
            let Some(at) = map.system_time_at(p.timestamp, r.offset) else {
                continue;
            };
            let edge_ns = at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i128);
            lat.push((a.at_ns - edge_ns) as f64 / 1e3);
        }
    }
    lat.sort_by(f64::total_cmp);
    Some(EdgeLatency {
        edges: lat.len(),
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        max_us: *lat.last()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::{IdGenerator, RtpSender};

    /// 1000 packets of 2 instants every 20 ms on a 100 Hz clock, arriving
    /// `skew` ppm slow, every 50th one `spike_us` late.
    fn stream(skew_ppm: f64, spike_us: f64) -> Vec<Arrival> {
        let desc =
            sipsensor_agent::stream::sim::SimStream::new(1, 1, 100, false).full_description(2);
        let mut tx = RtpSender::new(&mut IdGenerator::seeded(3));
        let mut buf = [0u8; 256];
        (0..1000u64)
            .map(|n| {
                let len = tx
                    .write_samples(&mut buf, &desc, 2 * n, &[1, 2], n == 0)
                    .unwrap();
                let ideal = (2 * n + 1) as f64 * 10e6;
                let spike = if n % 50 == 25 { spike_us * 1e3 } else { 0.0 };
                Arrival {
                    at_ns: 1_000_000_000_000 + (ideal * (1.0 + skew_ppm * 1e-6) + spike) as i128,
                    bytes: buf[..len].to_vec(),
                }
            })
            .collect()
    }

    #[test]
    fn a_perfect_stream_has_no_jitter_drift_or_rate_error() {
        let t = timing(&stream(0.0, 0.0), 100, 1).unwrap();
        assert_eq!((t.packets, t.lost), (1000, 0));
        assert!(t.max_us < 0.01 && t.rate_ppm.abs() < 0.001, "{t:?}");
    }

    #[test]
    fn rate_error_and_drift_are_measured() {
        let t = timing(&stream(50.0, 0.0), 100, 1).unwrap();
        assert!((t.rate_ppm - 50.0).abs() < 0.5, "{t:?}");
        // 19.6 s (after the warm-up) × 50 ppm ≈ 1 ms over the run.
        assert!((t.drift_us - 980.0).abs() < 20.0, "{t:?}");
        assert!(t.residual_max_us < 1.0, "a straight line: {t:?}");
    }

    #[test]
    fn late_packets_show_in_the_percentiles() {
        let t = timing(&stream(0.0, 300.0), 100, 1).unwrap();
        // 2 % of the packets are 300 µs late: p99 sees them, p50 not.
        assert!((t.max_us - 300.0).abs() < 2.0, "{t:?}");
        assert!((t.p99_us - 300.0).abs() < 2.0 && t.p50_us < 1.0, "{t:?}");
    }

    #[test]
    fn sequence_gaps_count_as_lost_and_short_captures_give_nothing() {
        let mut s = stream(0.0, 0.0);
        s.remove(500);
        s.remove(500);
        assert_eq!(timing(&s, 100, 1).unwrap().lost, 2);
        assert!(timing(&s[..WARM_UP + 2], 100, 1).is_none());
    }
}
