//! The recovery side of a simulated stream (docs/protocol.md 11): live
//! packets stamped with their sample instant, and a backfill of an outage
//! before the stream's start in its own SSRC, paced at the agreed rate,
//! as a sensor sends after an interruption. Nothing is spooled and
//! nothing resent: the load is the packets, which is what the collector
//! sees.

use crate::waveform;
use sipsensor_protocol::{
    BackfillPace as Pace, BackfillPacer, RtpSender, SampleInstant, StreamDescription,
    encode_samples,
};
use std::time::{Duration, Instant};

/// What a stream agreed of section 11, as the pump needs it.
#[derive(Debug, Clone)]
pub struct PumpRecovery {
    /// `a=extmap` ID of the sample instant: live packets carry it.
    pub instant_id: u8,
    pub backfill: Option<BackfillPlan>,
}

/// The backfill to send: `outage` before the stream's first instant.
#[derive(Debug, Clone)]
pub struct BackfillPlan {
    pub payload_type: u8,
    pub ssrc: u32,
    pub outage: Duration,
    /// Bytes per second, RTP headers included: the lower of the
    /// collector's `max-rate` and the sensor's own.
    pub rate: u64,
}

/// RTP header, the one-byte extension header, the 17-byte instant element
/// padded to 20 (11.2), the 4-byte samples payload header (5.1).
const OVERHEAD: usize = 12 + 4 + 20 + 4;

/// One stream's backfill in progress.
#[derive(Debug)]
pub struct Backfill {
    plan: BackfillPlan,
    sender: RtpSender,
    pacer: BackfillPacer,
    /// The next instant to send, and where the live stream began.
    next_ns: i64,
    end_ns: i64,
    step_ns: i64,
    seed: u64,
    instant_id: u8,
}

/// The sample instant of `tick` on a stream whose tick 0 is `start_ns`.
pub fn instant(desc: &StreamDescription, start_ns: i64, tick: u64) -> SampleInstant {
    let clock = u64::from(desc.clock_rate.max(1));
    let period = desc.samples.as_ref().map_or(1, |s| u64::from(s.period));
    let first = u64::try_from(start_ns).unwrap_or(0) + tick * 1_000_000_000 / clock;
    SampleInstant {
        first_ns: first,
        step_ns: period * 1_000_000_000 / clock,
    }
}

impl Backfill {
    pub fn new(
        plan: BackfillPlan,
        instant_id: u8,
        desc: &StreamDescription,
        start_ns: i64,
        seed: u64,
    ) -> Self {
        let step_ns = i64::try_from(instant(desc, start_ns, 0).step_ns).unwrap_or(i64::MAX);
        let outage = i64::try_from(plan.outage.as_nanos()).unwrap_or(i64::MAX);
        let now = Instant::now();
        Self {
            sender: RtpSender::with_start(plan.ssrc, (seed as u16).wrapping_mul(7), 0),
            pacer: BackfillPacer::new(plan.rate, now),
            // On the live stream's grid, so instants never collide.
            next_ns: start_ns - outage / step_ns.max(1) * step_ns,
            end_ns: start_ns,
            step_ns,
            plan,
            seed,
            instant_id,
        }
    }

    /// Send the next packet if the pace allows: `Some(when)` to be called
    /// again, `None` when the outage is sent. `send` gets the packet and
    /// the number of sample values in it.
    pub fn poll(
        &mut self,
        desc: &StreamDescription,
        buf: &mut [u8],
        now: Instant,
        send: impl FnOnce(&[u8], usize),
    ) -> Option<Instant> {
        let fmt = desc.samples.as_ref()?;
        if self.next_ns >= self.end_ns {
            return None;
        }
        let channels = fmt.channels.len();
        let left = usize::try_from((self.end_ns - self.next_ns) / self.step_ns.max(1)).unwrap_or(0);
        let spp = usize::from(fmt.samples_per_packet).min(left.max(1));
        match self.pacer.poll(OVERHEAD + 4 * channels * spp, false, now) {
            Pace::Now => {}
            Pace::At(at) => return Some(at),
            // A zero rate: nothing can ever go.
            _ => return None,
        }
        let first = u64::try_from(self.next_ns).unwrap_or(0);
        let index = first / u64::try_from(self.step_ns.max(1)).unwrap_or(1);
        let values: Vec<i32> = (0..spp as u64)
            .flat_map(|k| (0..channels).map(move |ch| (ch, index + k)))
            .map(|(ch, t)| waveform::raw(self.seed, ch, t))
            .collect();
        let stamp = SampleInstant {
            first_ns: first,
            step_ns: u64::try_from(self.step_ns).unwrap_or(0),
        }
        .encode();
        let config = desc.config;
        let written = self.sender.write_extended(
            buf,
            self.plan.payload_type,
            false,
            index as u32,
            &[(self.instant_id, &stamp)],
            |b| encode_samples(b, config, channels, &values),
        );
        if let Ok(n) = written {
            send(&buf[..n], channels * spp);
        }
        self.next_ns += self.step_ns * spp as i64;
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::{decode_payload, parse_rtp};

    #[test]
    fn backfills_the_outage_on_the_live_grid_in_order_then_stops() {
        // 10 Hz, 3 channels, 2 instants a packet; a 1.05 s outage before a
        // start that is not on a whole second.
        let desc = crate::sensor::standard_stream(3, 10, 2);
        let start = 1_767_225_600_030_000_000;
        let plan = BackfillPlan {
            payload_type: 100,
            ssrc: 0x0bf0_0001,
            outage: Duration::from_millis(1050),
            rate: 1_000_000,
        };
        let mut bf = Backfill::new(plan, 3, &desc, start, 7);
        let mut buf = [0u8; 1500];
        let mut instants = Vec::new();
        let now = Instant::now();
        for _ in 0..20 {
            let mut sent = None;
            let next = bf.poll(&desc, &mut buf, now, |p, n| sent = Some((p.to_vec(), n)));
            if let Some((p, n)) = sent {
                let rtp = parse_rtp(&p).unwrap();
                assert_eq!((rtp.payload_type, rtp.ssrc), (100, 0x0bf0_0001));
                let at = rtp.sample_instant(3).unwrap().unwrap();
                assert_eq!(at.step_ns, 100_000_000);
                let decoded = decode_payload(rtp.payload).unwrap();
                let count = n / 3;
                assert!(matches!(decoded, sipsensor_protocol::Payload::Samples(_)));
                instants.extend((0..count as u64).map(|k| at.first_ns + k * at.step_ns));
            }
            if next.is_none() {
                break;
            }
        }
        // Ten instants (1.05 s on a 100 ms grid), ending one step before
        // the live start.
        let expected: Vec<u64> = (1..=10)
            .rev()
            .map(|k| start as u64 - k * 100_000_000)
            .collect();
        assert_eq!(instants, expected);
        assert!(
            bf.poll(&desc, &mut buf, now, |_, _| panic!("sent after the end"))
                .is_none()
        );
    }

    #[test]
    fn a_slow_rate_holds_the_next_packet_back() {
        let desc = crate::sensor::standard_stream(3, 10, 2);
        let plan = BackfillPlan {
            payload_type: 100,
            ssrc: 1,
            outage: Duration::from_secs(60),
            rate: 100,
        };
        let mut bf = Backfill::new(plan, 1, &desc, 1_767_225_600_000_000_000, 7);
        let mut buf = [0u8; 1500];
        let now = Instant::now();
        let mut sent = 0;
        let mut waits = 0;
        for _ in 0..100 {
            match bf.poll(&desc, &mut buf, now, |_, _| sent += 1) {
                Some(at) if at > now => waits += 1,
                Some(_) => {}
                None => panic!("a minute is not sent in one instant"),
            }
        }
        // 100 bytes a second with a burst of one largest packet: the burst
        // of 64-byte packets goes, then each poll is told to wait.
        let burst = sipsensor_protocol::MAX_KEPT_PACKET / OVERHEAD.max(64);
        assert!(sent <= burst && sent >= 1, "{sent} sent, burst {burst}");
        assert_eq!(waits, 100 - sent);
    }
}
