//! The recovery side of a simulated stream (docs/protocol.md 11): live
//! packets stamped with their sample instant, and a backfill of an outage
//! before the stream's start in its own SSRC, paced at the agreed rate,
//! as a sensor sends after an interruption, packed as the agent packs it
//! (consecutive instants merged up to [`MAX_PACKET`] bytes). Nothing is
//! spooled: the outage is made up from the waveform, and sent again from
//! the collector's mark when the mark stops (11.7 step 6), as the agent
//! does when the collector refuses what its storage cannot take.

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

/// The agent's largest backfill packet (agent/src/backfill/packet.rs):
/// an hour's backfill is few packets, as the collector gets it from real
/// sensors, not one per live packet's instants.
pub const MAX_PACKET: usize = 1200;

/// Instants in one backfill packet of `channels` channels.
fn instants_per_packet(channels: usize) -> usize {
    ((MAX_PACKET - OVERHEAD) / (4 * channels.max(1))).max(1)
}

/// The agent's ack timeout without RTX (docs/protocol.md 11.7 step 6):
/// a mark unmoved this long while backfill went beyond it means a packet
/// was lost or refused, and the backfill goes back to the mark.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(6);
/// How often a backfill with everything sent looks at the mark again.
const MARK_POLL: Duration = Duration::from_millis(200);

/// What one [`Backfill::poll`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Sample values in the packet.
    pub samples: usize,
    /// Whether they were sent before (after going back to the mark).
    pub again: bool,
}

/// One stream's backfill in progress.
#[derive(Debug)]
pub struct Backfill {
    plan: BackfillPlan,
    sender: RtpSender,
    pacer: BackfillPacer,
    /// The outage's first instant, the next instant to send, the first
    /// never sent, and where the live stream began.
    first_ns: i64,
    next_ns: i64,
    fresh_ns: i64,
    end_ns: i64,
    /// The collector's latest mark and when it last moved.
    mark_ns: u64,
    mark_moved: Instant,
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
        // On the live stream's grid, so instants never collide.
        let first_ns = start_ns - outage / step_ns.max(1) * step_ns;
        Self {
            sender: RtpSender::with_start(plan.ssrc, (seed as u16).wrapping_mul(7), 0),
            pacer: BackfillPacer::new(plan.rate, now),
            first_ns,
            next_ns: first_ns,
            fresh_ns: first_ns,
            end_ns: start_ns,
            mark_ns: 0,
            mark_moved: now,
            step_ns,
            plan,
            seed,
            instant_id,
        }
    }

    /// The first instant on the grid after `mark_ns`.
    fn after(&self, mark_ns: u64) -> i64 {
        let mark = i64::try_from(mark_ns).unwrap_or(i64::MAX);
        if mark < self.first_ns {
            return self.first_ns;
        }
        let step = self.step_ns.max(1);
        self.first_ns + ((mark - self.first_ns) / step + 1) * step
    }

    /// Send the next packet if the pace allows: `Some(when)` to be called
    /// again, `None` when the collector's mark (`mark_ns`, its latest
    /// committed message, 11.4) has passed the whole outage. `send` gets
    /// the packet and what it carried.
    pub fn poll(
        &mut self,
        desc: &StreamDescription,
        buf: &mut [u8],
        now: Instant,
        mark_ns: u64,
        send: impl FnOnce(&[u8], Sent),
    ) -> Option<Instant> {
        let fmt = desc.samples.as_ref()?;
        if mark_ns != self.mark_ns {
            self.mark_ns = mark_ns;
            self.mark_moved = now;
        }
        let mark = i64::try_from(mark_ns).unwrap_or(i64::MAX);
        if mark >= self.end_ns - self.step_ns {
            return None;
        }
        // 11.7 step 6: sent beyond a mark that stopped: back to it.
        let resume = self.after(mark_ns);
        if self.next_ns > resume && now.saturating_duration_since(self.mark_moved) >= ACK_TIMEOUT {
            self.next_ns = resume;
            self.mark_moved = now;
        }
        if self.next_ns >= self.end_ns {
            return Some(now + MARK_POLL);
        }
        let channels = fmt.channels.len();
        let left = usize::try_from((self.end_ns - self.next_ns) / self.step_ns.max(1)).unwrap_or(0);
        let spp = instants_per_packet(channels).min(left.max(1));
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
            let again = self.next_ns < self.fresh_ns;
            send(
                &buf[..n],
                Sent {
                    samples: channels * spp,
                    again,
                },
            );
        }
        self.next_ns += self.step_ns * spp as i64;
        self.fresh_ns = self.fresh_ns.max(self.next_ns);
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::{decode_payload, parse_rtp};

    const START: i64 = 1_767_225_600_030_000_000;
    const STEP: u64 = 100_000_000;

    fn backfill(outage: Duration, rate: u64) -> (StreamDescription, Backfill) {
        // 10 Hz, 3 channels, 2 instants a live packet.
        let desc = crate::sensor::standard_stream(3, 10, 2);
        let plan = BackfillPlan {
            payload_type: 100,
            ssrc: 0x0bf0_0001,
            outage,
            rate,
        };
        let bf = Backfill::new(plan, 3, &desc, START, 7);
        (desc, bf)
    }

    /// The instants of one poll's packet, and whether they went before.
    fn poll(
        bf: &mut Backfill,
        desc: &StreamDescription,
        now: Instant,
        mark: u64,
    ) -> (Option<Instant>, Vec<u64>, bool) {
        let mut buf = [0u8; 1500];
        let mut sent = None;
        let next = bf.poll(desc, &mut buf, now, mark, |p, s| {
            sent = Some((p.to_vec(), s))
        });
        let Some((p, s)) = sent else {
            return (next, Vec::new(), false);
        };
        assert!(p.len() <= MAX_PACKET, "{} bytes", p.len());
        let rtp = parse_rtp(&p).unwrap();
        assert_eq!((rtp.payload_type, rtp.ssrc), (100, 0x0bf0_0001));
        let at = rtp.sample_instant(3).unwrap().unwrap();
        assert_eq!(at.step_ns, STEP);
        assert!(matches!(
            decode_payload(rtp.payload).unwrap(),
            sipsensor_protocol::Payload::Samples(_)
        ));
        let count = s.samples as u64 / 3;
        (
            next,
            (0..count).map(|k| at.first_ns + k * at.step_ns).collect(),
            s.again,
        )
    }

    #[test]
    fn backfills_the_outage_on_the_live_grid_packed_then_stops_at_the_mark() {
        // 30.05 s before a start that is not on a whole second: 300
        // instants, 96 to a packet as the agent packs them.
        let (desc, mut bf) = backfill(Duration::from_millis(30_050), 1_000_000);
        let now = Instant::now();
        let mut instants = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..4 {
            // 10 ms apart: 10 kB at 1 MB/s, room for the next packet.
            let at = now + Duration::from_millis(10 * i);
            let (_, got, again) = poll(&mut bf, &desc, at, 0);
            assert!(!again);
            sizes.push(got.len());
            instants.extend(got);
        }
        assert_eq!(sizes, vec![96, 96, 96, 12]);
        let expected: Vec<u64> = (1..=300).rev().map(|k| START as u64 - k * STEP).collect();
        assert_eq!(instants, expected);
        // All sent: it waits for the mark, sending nothing.
        let later = now + Duration::from_millis(50);
        let (next, got, _) = poll(&mut bf, &desc, later, 0);
        assert!(got.is_empty() && next.is_some());
        // The mark reaches the last backfilled instant: done.
        let (next, _, _) = poll(&mut bf, &desc, later, START as u64 - STEP);
        assert!(next.is_none());
    }

    #[test]
    fn a_mark_stopped_for_the_ack_timeout_sends_it_back_from_the_mark() {
        let (desc, mut bf) = backfill(Duration::from_secs(30), 1_000_000);
        let t0 = Instant::now();
        let first = START as u64 - 300 * STEP;
        let ms = Duration::from_millis;
        // Two packets go; the collector commits the first 50 instants only.
        poll(&mut bf, &desc, t0, 0);
        poll(&mut bf, &desc, t0 + ms(10), 0);
        let mark = first + 49 * STEP;
        let moved = t0 + ms(20);
        let (_, got, again) = poll(&mut bf, &desc, moved, mark);
        assert_eq!(got[0], first + 192 * STEP, "on while the mark moves");
        assert!(!again);
        // The mark stays: before the ack timeout, on it goes ...
        let (_, got, _) = poll(&mut bf, &desc, moved + ms(1000), mark);
        assert_eq!(got[0], first + 288 * STEP);
        // ... after it, back to just after the mark, counted as sent again.
        let back = moved + ACK_TIMEOUT;
        let (_, got, again) = poll(&mut bf, &desc, back, mark);
        assert_eq!(got[0], first + 50 * STEP);
        assert!(again);
        // Not again at once: the timeout starts over.
        let (_, got, _) = poll(&mut bf, &desc, back + ms(10), mark);
        assert_eq!(got[0], first + 146 * STEP);
    }

    #[test]
    fn a_slow_rate_holds_the_next_packet_back() {
        let (desc, mut bf) = backfill(Duration::from_secs(60), 100);
        let mut buf = [0u8; 1500];
        let now = Instant::now();
        let mut sent = 0;
        let mut waits = 0;
        for _ in 0..100 {
            match bf.poll(&desc, &mut buf, now, 0, |_, _| sent += 1) {
                Some(at) if at > now => waits += 1,
                Some(_) => {}
                None => panic!("a minute is not sent in one instant"),
            }
        }
        // 100 bytes a second with a burst of one largest packet: one
        // packed packet goes, then each poll is told to wait.
        assert_eq!(sent, 1);
        assert_eq!(waits, 99);
    }
}
