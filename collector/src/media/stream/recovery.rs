//! What one stream agreed of docs/protocol.md section 11 on the receive
//! side, sans-I/O: which of its packets carry the sample instant (11.2),
//! which SSRCs are its retransmissions (11.5, RFC 4588 8.3) and its
//! backfill (11.6), and when to NACK what is missing (RFC 4585 6.2.1).

use sipsensor_protocol::{
    AgreedRecovery, CompoundWriter, Nack, NackConfig, NackScheduler, ReceiverReport,
};
use std::time::{Duration, Instant};

/// Which of the session's sources a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Live,
    /// A retransmission (RFC 4588) of a live packet.
    Rtx,
    Backfill,
}

/// Repair counters not yet handed to `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RepairTally {
    /// Compound packets with a NACK sent.
    pub nacks_sent: u64,
    /// Lost live packets a retransmission filled.
    pub recovered: u64,
    /// Lost live packets given up (their `rtx-time` passed, or more were
    /// missing than are tracked): the backfill has to bring them.
    pub given_up: u64,
}

impl RepairTally {
    pub fn add(&mut self, other: RepairTally) {
        self.nacks_sent += other.nacks_sent;
        self.recovered += other.recovered;
        self.given_up += other.given_up;
    }
}

#[derive(Debug)]
struct Rtx {
    ssrc: u32,
    /// `(apt, rtx payload type)`.
    payload_types: Vec<(u8, u8)>,
}

#[derive(Debug)]
pub(super) struct Recovery {
    /// The `a=extmap` ID of the sample instant, when agreed: instants are
    /// then taken from it alone.
    pub instant_id: Option<u8>,
    rtx: Option<Rtx>,
    /// `(payload type, SSRC)` of the backfill stream.
    backfill: Option<(u8, u32)>,
    nack: Option<NackScheduler>,
    /// The `nack` scheduler's give-up time, `None` without it.
    give_up_after: Option<Duration>,
    /// The live stream's highest extended sequence number, against which
    /// an RTX packet's OSN is extended (RFC 3550 A.1).
    highest: Option<u64>,
    pub tally: RepairTally,
}

/// `rtx-time` when the agent stated none (RFC 4588 8.1 leaves it open).
const DEFAULT_RTX_TIME: Duration = Duration::from_secs(3);

impl Recovery {
    pub fn new(agreed: &AgreedRecovery) -> Self {
        let (rtx, nack) = rtx_and_nack(agreed);
        Recovery {
            instant_id: agreed.instant_id,
            give_up_after: give_up_after(agreed).filter(|_| nack.is_some()),
            rtx,
            backfill: backfill_of(agreed),
            nack,
            highest: None,
            tally: RepairTally::default(),
        }
    }

    /// A re-INVITE agreed `agreed` instead (docs/protocol.md 11.1 rule 5):
    /// NACKs start or stop, the RTX and backfill SSRCs are these from now
    /// on. Losses already waiting for a retransmission keep waiting when
    /// NACK + RTX stays agreed with the same `rtx-time`; the live
    /// sequence and the tallies carry on.
    pub fn reconfigure(&mut self, agreed: &AgreedRecovery) {
        let (rtx, nack) = rtx_and_nack(agreed);
        let give_up_after = give_up_after(agreed).filter(|_| nack.is_some());
        if give_up_after != self.give_up_after {
            // What the old scheduler still waited for is the backfill's now.
            if let Some(mut old) = self.nack.take() {
                let waited = old.missing() as u64;
                let given_up: u64 = old.take_given_up().iter().map(|r| r.end - r.start).sum();
                self.tally.given_up += waited + given_up;
            }
            self.nack = nack.map(|mut n| {
                if let Some(h) = self.highest {
                    n.on_restart(h);
                }
                n
            });
            self.give_up_after = give_up_after;
        }
        self.rtx = rtx;
        self.backfill = backfill_of(agreed);
        self.instant_id = agreed.instant_id;
    }

    /// The SSRCs besides the live one that are this stream's.
    pub fn extra_ssrcs(&self) -> Vec<u32> {
        self.rtx
            .as_ref()
            .map(|r| r.ssrc)
            .into_iter()
            .chain(self.backfill.map(|(_, s)| s))
            .collect()
    }

    pub fn source_of(&self, ssrc: u32) -> Source {
        if self.rtx.as_ref().is_some_and(|r| r.ssrc == ssrc) {
            Source::Rtx
        } else if self.backfill.is_some_and(|(_, s)| s == ssrc) {
            Source::Backfill
        } else {
            Source::Live
        }
    }

    /// The original payload type an RTX payload type stands for.
    pub fn apt(&self, rtx_pt: u8) -> Option<u8> {
        self.rtx.as_ref().and_then(|r| {
            r.payload_types
                .iter()
                .find(|(_, pt)| *pt == rtx_pt)
                .map(|(apt, _)| *apt)
        })
    }

    pub fn is_backfill_pt(&self, pt: u8) -> bool {
        self.backfill.is_some_and(|(p, _)| p == pt)
    }

    /// A live packet was accepted with this extended sequence number.
    pub fn on_live(&mut self, ext: u64, restarted: bool, now: Instant) {
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        if let Some(n) = &mut self.nack {
            if restarted {
                self.highest = Some(ext);
                n.on_restart(ext);
            } else {
                n.on_received(ext, now);
            }
        }
    }

    /// The extended sequence number of a retransmitted original, when it
    /// is one the NACKs still wait for; `None` for anything else (a
    /// packet never lost, already filled or given up, or an OSN made up):
    /// such a retransmission stores nothing.
    pub fn on_rtx(&mut self, osn: u16, now: Instant) -> Option<u64> {
        let ext = extend(self.highest?, osn);
        let nack = self.nack.as_mut()?;
        if !nack.awaits(ext) {
            return None;
        }
        nack.on_received(ext, now);
        self.tally.recovered += 1;
        Some(ext)
    }

    /// Whether NACKs are pending (for the shell's list of streams to poll).
    pub fn nacking(&self) -> bool {
        self.nack.as_ref().is_some_and(|n| n.missing() > 0)
    }

    /// An RR (no report block, so the regular reports' interval figures
    /// stay whole) + SDES + generic NACK (RFC 4585 6.2.1, docs/protocol.md
    /// 11.5) for what is due now.
    pub fn poll_nack(
        &mut self,
        now: Instant,
        (local_ssrc, media_ssrc, cname): (u32, u32, &str),
        buf: &mut [u8],
    ) -> Option<usize> {
        let nack = self.nack.as_mut()?;
        let lost = nack.poll_nack(now);
        let given_up: u64 = nack
            .take_given_up()
            .iter()
            .map(|r| r.end.saturating_sub(r.start))
            .sum();
        self.tally.given_up += given_up;
        if lost.is_empty() {
            return None;
        }
        let mut w = CompoundWriter::new(buf);
        w.receiver_report(&ReceiverReport {
            ssrc: local_ssrc,
            reports: Vec::new(),
        })
        .ok()?;
        w.sdes(local_ssrc, cname, &[]).ok()?;
        w.nack(&Nack::for_lost(local_ssrc, media_ssrc, &lost))
            .ok()?;
        let n = w.finish().ok()?;
        self.tally.nacks_sent += 1;
        Some(n)
    }
}

/// The RTX source and its NACK scheduler. Without the RTX SSRC (RFC 4588
/// 8.3, `a=ssrc-group:FID`) no retransmission could be told from a
/// stranger's: no NACKs then.
fn rtx_and_nack(agreed: &AgreedRecovery) -> (Option<Rtx>, Option<NackScheduler>) {
    let rtx = agreed.rtx.as_ref().and_then(|r| {
        Some(Rtx {
            ssrc: r.ssrc?,
            payload_types: r.payload_types.clone(),
        })
    });
    let nack = give_up_after(agreed)
        .filter(|_| rtx.is_some())
        .map(|give_up_after| {
            NackScheduler::new(NackConfig {
                give_up_after,
                ..NackConfig::default()
            })
        });
    (rtx, nack)
}

/// How long a lost packet is NACKed: the sender's `rtx-time`.
fn give_up_after(agreed: &AgreedRecovery) -> Option<Duration> {
    agreed.rtx.as_ref().map(|r| {
        if r.rtx_time.is_zero() {
            DEFAULT_RTX_TIME
        } else {
            r.rtx_time
        }
    })
}

/// `(payload type, SSRC)` of the backfill stream; 11.1 rule 3: backfill
/// only with the sample instant.
fn backfill_of(agreed: &AgreedRecovery) -> Option<(u8, u32)> {
    agreed
        .backfill
        .as_ref()
        .filter(|_| agreed.instant_id.is_some())
        .and_then(|b| Some((b.payload_type, b.ssrc?)))
}

/// The extended sequence number with low bits `seq` nearest to `highest`
/// (RFC 3550 A.1's cycles, RFC 4588 4: the OSN is of the live stream).
fn extend(highest: u64, seq: u16) -> u64 {
    let base = (highest & !0xffff) | u64::from(seq);
    [
        base.checked_sub(0x1_0000),
        Some(base),
        base.checked_add(0x1_0000),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|c| c.abs_diff(highest))
    .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_osn_is_extended_to_the_nearest_cycle() {
        assert_eq!(extend(0x1_0005, 0x0003), 0x1_0003);
        assert_eq!(extend(0x1_0005, 0xfffe), 0xfffe);
        assert_eq!(extend(0x1_fff0, 0x0002), 0x2_0002);
        assert_eq!(extend(3, 0xffff), 0xffff);
    }
}
