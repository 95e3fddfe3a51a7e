//! What the agent sent, read back from the tshark capture: every sample
//! with the wall-clock time the agent itself gives it through its RTCP
//! sender reports (RFC 3550 6.4.1: an SR pairs an NTP time with an RTP
//! timestamp of the same instant).

use sipsensor_protocol::{MISSING_SAMPLE, Payload, decode_payload};
use sipsensor_testkit::Capture;

/// One sample of channel 0 as the agent sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentSample {
    pub ssrc: u32,
    pub seq: u16,
    /// The agent's wall-clock time of the instant, ns since the epoch.
    pub ts_ns: i64,
    /// `MISSING_SAMPLE` when the sensor had no fresh reading for the instant (a
    /// sensor thread starved of CPU): the agent sends a gap, not a value.
    pub raw: i32,
}

impl SentSample {
    pub fn missing(&self) -> bool {
        self.raw == MISSING_SAMPLE
    }
}

/// Seconds between the NTP era (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: i64 = 2_208_988_800;

fn num<T: std::str::FromStr>(field: &str) -> Option<T> {
    let f = field.split(',').next()?.trim();
    if let Some(hex) = f.strip_prefix("0x") {
        // Only used for u32 fields; parse through u64.
        return u64::from_str_radix(hex, 16).ok()?.to_string().parse().ok();
    }
    f.parse().ok()
}

/// A tshark bytes field (`0a:1b...` or `0a1b...`) as bytes.
pub fn hex_bytes(field: &str) -> Option<Vec<u8>> {
    let clean: String = field.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(clean.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Every sample the capture shows going to `ip_dst:rtp_port` (RTP) with
/// sender reports to `rtp_port + 1`, channel 0. `clock` is the RTP clock
/// (Hz); `period` gives the ticks between instants for a payload `cfg`.
/// Missing instants are included, marked (see [`SentSample::missing`]).
pub fn sent_samples(
    capture: &Capture,
    ip_dst: &str,
    rtp_port: u16,
    clock: u32,
    period: impl Fn(u8) -> u32,
) -> Result<Vec<SentSample>, String> {
    let reports = capture
        .fields(
            &format!(
                "rtcp.pt == 200 && ip.dst == {ip_dst} && udp.dstport == {}",
                rtp_port + 1
            ),
            &[
                "frame.number",
                "rtcp.senderssrc",
                "rtcp.timestamp.ntp.msw",
                "rtcp.timestamp.ntp.lsw",
                "rtcp.timestamp.rtp",
            ],
        )
        .map_err(|e| e.to_string())?;
    // (frame, ssrc, unix ns, rtp timestamp)
    let mut srs: Vec<(u64, u32, i64, u32)> = Vec::new();
    for r in &reports {
        let (Some(frame), Some(ssrc), Some(msw), Some(lsw), Some(rtp)) = (
            num::<u64>(&r[0]),
            num::<u32>(&r[1]),
            num::<i64>(&r[2]),
            num::<i64>(&r[3]),
            num::<u32>(&r[4]),
        ) else {
            return Err(format!("unreadable sender report {r:?}"));
        };
        let ns = (msw - NTP_UNIX_OFFSET) * 1_000_000_000 + ((lsw * 1_000_000_000) >> 32);
        srs.push((frame, ssrc, ns, rtp));
    }
    let packets = capture
        .fields(
            &format!("rtp && ip.dst == {ip_dst} && udp.dstport == {rtp_port}"),
            &[
                "frame.number",
                "rtp.ssrc",
                "rtp.seq",
                "rtp.timestamp",
                "rtp.payload",
                "rtp.ext.rfc5285.id",
                "rtp.ext.rfc5285.data",
            ],
        )
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for p in &packets {
        let (Some(frame), Some(ssrc), Some(seq), Some(ts), Some(body)) = (
            num::<u64>(&p[0]),
            num::<u32>(&p[1]),
            num::<u16>(&p[2]),
            num::<u32>(&p[3]),
            hex_bytes(&p[4]),
        ) else {
            return Err(format!("unreadable RTP packet {p:?}"));
        };
        let Ok(Payload::Samples(s)) = decode_payload(&body) else {
            continue;
        };
        // The sample instant the agent stamped (docs/protocol.md 11.2),
        // when the session agreed it: it, not the SR, times the samples.
        if let Some((first_ns, step_ns)) = stamp(p.get(5), p.get(6)) {
            for i in 0..usize::from(s.count) {
                let Some(raw) = s.raw(i, 0) else { continue };
                out.push(SentSample {
                    ssrc,
                    seq,
                    ts_ns: first_ns + step_ns * i as i64,
                    raw,
                });
            }
            continue;
        }
        // The collector holds packets until the first SR: use the latest
        // SR before the packet, else the first after it.
        let mine = srs.iter().filter(|r| r.1 == ssrc);
        let Some(sr) = mine
            .clone()
            .rfind(|r| r.0 < frame)
            .or_else(|| mine.clone().next())
        else {
            continue;
        };
        let step = period(s.config);
        for i in 0..usize::from(s.count) {
            let Some(raw) = s.raw(i, 0) else { continue };
            let tick = ts.wrapping_add(step * i as u32);
            let delta = i64::from(tick.wrapping_sub(sr.3) as i32);
            out.push(SentSample {
                ssrc,
                seq,
                ts_ns: sr.2 + delta * 1_000_000_000 / i64::from(clock),
                raw,
            });
        }
    }
    // A sample sent twice (live and again by backfill, or a backfill
    // packet resent) is one sample: stamped, its copies have one instant.
    out.sort_by_key(|s| s.ts_ns);
    out.dedup_by_key(|s| s.ts_ns);
    Ok(out)
}

/// The sample instant of one packet from tshark's RFC 8285 fields (one
/// element, ID 1: the extension's `first_ns` and `step_ns`, big-endian).
fn stamp(ids: Option<&String>, data: Option<&String>) -> Option<(i64, i64)> {
    let ids: Vec<&str> = ids?.split(',').collect();
    let data: Vec<&str> = data?.split(',').collect();
    let at = ids.iter().position(|id| id.trim() == "1")?;
    let bytes = hex_bytes(data.get(at)?)?;
    let first = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let step = i64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some((first, step))
}

/// How stored compares with sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// The largest time error, ns.
    pub worst_ns: i64,
    /// Instants the agent sent as missing (nothing to store).
    pub missing: usize,
}

/// Stored and sent are the same samples: as many (besides the instants
/// the agent itself sent as missing), each with the agent's value and
/// within 1 ms of the agent's time.
pub fn assert_stored_as_sent(stored: &[crate::StoredSample], sent: &[SentSample]) -> Comparison {
    let mut stored: Vec<_> = stored.iter().filter(|s| s.channel == 0).collect();
    stored.sort_by_key(|s| s.ts_ns);
    let missing = sent.iter().filter(|s| s.missing()).count();
    let mut sent: Vec<SentSample> = sent.iter().filter(|s| !s.missing()).copied().collect();
    sent.sort_by_key(|s| s.ts_ns);
    if stored.len() != sent.len() {
        panic!(
            "every sample sent is stored, once: {} stored, {} sent\n{}",
            stored.len(),
            sent.len(),
            unmatched(&stored, &sent)
        );
    }
    let mut worst = 0;
    for (s, x) in stored.iter().zip(&sent) {
        assert_eq!(s.raw, i64::from(x.raw), "value at {}", x.ts_ns);
        let dt = (s.ts_ns - x.ts_ns).abs();
        assert!(
            dt <= 1_000_000,
            "stored at {} but the agent says {}",
            s.ts_ns,
            x.ts_ns
        );
        worst = worst.max(dt);
    }
    Comparison {
        worst_ns: worst,
        missing,
    }
}

/// The instants on one side only (within 1 ms), for a failure message
/// that says which samples differ, and from which packet.
fn unmatched(stored: &[&crate::StoredSample], sent: &[SentSample]) -> String {
    let near = |a: i64, b: i64| (a - b).abs() <= 1_000_000;
    let only_sent: Vec<String> = sent
        .iter()
        .filter(|x| !stored.iter().any(|s| near(s.ts_ns, x.ts_ns)))
        .map(|x| {
            format!(
                "{} (ssrc {:08x} seq {} raw {})",
                x.ts_ns, x.ssrc, x.seq, x.raw
            )
        })
        .collect();
    let only_stored: Vec<String> = stored
        .iter()
        .filter(|s| !sent.iter().any(|x| near(s.ts_ns, x.ts_ns)))
        .map(|s| format!("{} (raw {})", s.ts_ns, s.raw))
        .collect();
    format!("sent, not stored: {only_sent:?}\nstored, not sent: {only_stored:?}")
}
