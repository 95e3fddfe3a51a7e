//! One stream's acknowledgement (docs/protocol.md 11.4), sans-I/O: when
//! the collector sends its committed mark, and what it makes of the
//! expired and unsampled ranges its agent declares.
//!
//! The mark comes from storage (`Storage::committed_through`, asked by the
//! acknowledger in [`store`] after commits), capped by the stream's own
//! holes that are not stored yet (a loss still within its grace time or
//! being repaired, which storage cannot know of). It goes out in an RTCP
//! compound (RR + SDES + APP) soon after it moved, at most 4 times a
//! second ([`AckPacer`]), and in one at least every [`ACK_EVERY`]: the
//! agent takes a second without one as a sign the collector or the path is
//! gone (it moves on after 5 s), which the RFC 3550 interval (5 s at the
//! least) would not allow.

pub mod store;
pub mod unconfirmed;

use crate::storage::SensorId;
use sipsensor_protocol::{AckPacer, BackfillMessage};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// An acknowledged stream gets a compound at least this often.
pub const ACK_EVERY: Duration = Duration::from_secs(1);
/// docs/protocol.md 11.4: a moved mark goes out at most 4 times a second.
const ACK_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Declared ranges remembered, so the agent's repetitions (one per
/// compound until the mark passes) reach storage once.
const REMEMBERED: usize = 8;
/// ... unless the mark has not passed after this long: the range is
/// handed on again (a store that failed meanwhile gets another go).
const FORWARD_AGAIN: Duration = Duration::from_secs(10);

/// Which range an agent declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeKind {
    /// Its spool lost the samples: a gap that can never fill.
    Expired,
    /// It sampled nothing there.
    Unsampled,
}

impl RangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RangeKind::Expired => "expired",
            RangeKind::Unsampled => "unsampled",
        }
    }
}

/// A range the agent declared for its sensor: nothing strictly between
/// `after_ns` and `before_ns` will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    pub sensor: SensorId,
    pub kind: RangeKind,
    pub after_ns: i64,
    pub before_ns: i64,
}

/// Why a declared range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("names stream {0:#010x}, not this one")]
    OtherStream(u32),
    #[error("an empty or inverted range ({after_ns}, {before_ns})")]
    Empty { after_ns: u64, before_ns: u64 },
    #[error("a range beyond any storable instant (before {0})")]
    OutOfRange(u64),
    #[error("a range ending {ahead_s} s in the future")]
    Future { ahead_s: i64 },
}

/// What to do with an `SSBF` message the stream's agent sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to storage.
    Record(Declared),
    /// Nothing to do: a repetition, a range the mark has passed, or a
    /// message meant for agents (a committed mark).
    Nothing,
    Refuse(Refusal),
}

/// The acknowledgement state of one stream.
#[derive(Debug)]
pub struct StreamAcks {
    pub sensor: SensorId,
    pacer: AckPacer,
    last_sent: Option<Instant>,
    forwarded: VecDeque<(RangeKind, i64, i64, Instant)>,
}

impl StreamAcks {
    pub fn new(sensor: SensorId) -> Self {
        StreamAcks {
            sensor,
            pacer: AckPacer::new(ACK_MIN_INTERVAL),
            last_sent: None,
            forwarded: VecDeque::new(),
        }
    }

    /// Storage's mark for the sensor (`None`: nothing stored), capped by
    /// `hole_from_ns`, the last instant before the stream's oldest hole
    /// that storage does not know of yet.
    pub fn on_mark(&mut self, stored: Option<i64>, hole_from_ns: Option<i64>) {
        let mark = match (stored, hole_from_ns) {
            (Some(m), Some(h)) => m.min(h),
            (m, _) => m.unwrap_or(0),
        };
        // Within a session a mark never goes back (the pacer keeps the
        // highest); before the epoch there is nothing to acknowledge.
        self.pacer.on_commit(u64::try_from(mark).unwrap_or(0));
    }

    /// The mark to send in a compound now, if one is due: it moved (paced)
    /// or [`ACK_EVERY`] passed since the last.
    pub fn poll_send(&mut self, now: Instant) -> Option<u64> {
        if let Some(mark) = self.pacer.poll_transmit(now) {
            self.last_sent = Some(now);
            return Some(mark);
        }
        if self
            .last_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= ACK_EVERY)
        {
            self.pacer.note_sent(now);
            self.last_sent = Some(now);
            return Some(self.pacer.mark());
        }
        None
    }

    /// A message in a compound the demultiplexer bound to this stream (its
    /// RTCP address and SSRC; under SRTP, authenticated). `stream_ssrc`:
    /// the live SSRC, once known; `now_ns` the wall clock; `max_ahead_ns`
    /// how far ahead of it an agent's clock may be.
    pub fn on_message(
        &mut self,
        msg: BackfillMessage,
        stream_ssrc: Option<u32>,
        now: Instant,
        now_ns: i64,
        max_ahead_ns: i64,
    ) -> Verdict {
        let (kind, media_ssrc, after, before) = match msg {
            BackfillMessage::Committed { .. } => return Verdict::Nothing,
            BackfillMessage::Expired {
                media_ssrc,
                after_ns,
                before_ns,
            } => (RangeKind::Expired, media_ssrc, after_ns, before_ns),
            BackfillMessage::Unsampled {
                media_ssrc,
                after_ns,
                before_ns,
            } => (RangeKind::Unsampled, media_ssrc, after_ns, before_ns),
        };
        if stream_ssrc.is_some_and(|s| s != media_ssrc) {
            return Verdict::Refuse(Refusal::OtherStream(media_ssrc));
        }
        if before <= after {
            return Verdict::Refuse(Refusal::Empty {
                after_ns: after,
                before_ns: before,
            });
        }
        let (Ok(after_ns), Ok(before_ns)) = (i64::try_from(after), i64::try_from(before)) else {
            return Verdict::Refuse(Refusal::OutOfRange(before));
        };
        if before_ns.saturating_sub(now_ns) > max_ahead_ns {
            return Verdict::Refuse(Refusal::Future {
                ahead_s: (before_ns - now_ns) / 1_000_000_000,
            });
        }
        // The mark has reached it: a repetition still under way.
        if u64::try_from(before_ns).is_ok_and(|b| b <= self.pacer.mark()) {
            return Verdict::Nothing;
        }
        let fresh = |(k, a, b, at): &(RangeKind, i64, i64, Instant)| {
            *k == kind
                && *a == after_ns
                && *b == before_ns
                && now.saturating_duration_since(*at) < FORWARD_AGAIN
        };
        if self.forwarded.iter().any(fresh) {
            return Verdict::Nothing;
        }
        self.forwarded
            .retain(|(k, a, b, _)| (*k, *a, *b) != (kind, after_ns, before_ns));
        if self.forwarded.len() >= REMEMBERED {
            self.forwarded.pop_front();
        }
        self.forwarded.push_back((kind, after_ns, before_ns, now));
        Verdict::Record(Declared {
            sensor: self.sensor,
            kind,
            after_ns,
            before_ns,
        })
    }
}

#[cfg(test)]
mod tests;
