//! The spool's bookkeeping without files: which segments exist, how big
//! they are and what instants they hold, when to start a new one and
//! which old ones to delete. Time comes in as an argument (ns since the
//! Unix epoch), so the rules are tested with a fake clock.

use std::collections::VecDeque;

/// How big and how old the spool may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_age_ns: i64,
}

impl Limits {
    /// A segment is closed at 1/32 of `max_bytes` (64 KiB to 4 MiB), so
    /// trimming frees the space in small steps and a crash leaves at most
    /// one segment to scan.
    pub fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 32).clamp(64 << 10, 4 << 20)
    }

    /// ... and when it spans 1/16 of `max_age`, so age trimming is as fine.
    fn segment_span_ns(&self) -> i64 {
        (self.max_age_ns / 16).max(1)
    }
}

/// One segment file as the ring knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub id: u64,
    pub bytes: u64,
    /// Earliest and latest instant held; `None` when empty or unknown (a
    /// sealed segment whose successor's header was unreadable).
    pub span: Option<(i64, i64)>,
}

/// Why a segment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Everything in it is at or below the collector's committed mark.
    Released,
    /// Older than `max_age`.
    Expired,
    /// The spool is over `max_bytes`.
    Full,
}

#[derive(Debug)]
pub struct Ring {
    limits: Limits,
    /// Oldest first; the last one is written to.
    segments: VecDeque<Segment>,
    released: i64,
}

impl Ring {
    pub fn new(limits: Limits, segments: Vec<Segment>, released: i64) -> Ring {
        Ring {
            limits,
            segments: segments.into(),
            released,
        }
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    pub fn current(&self) -> Option<&Segment> {
        self.segments.back()
    }

    pub fn released(&self) -> i64 {
        self.released
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// The earliest instant held.
    pub fn oldest(&self) -> Option<i64> {
        self.segments
            .iter()
            .filter_map(|s| s.span)
            .map(|s| s.0)
            .min()
    }

    pub fn newest(&self) -> Option<i64> {
        self.segments
            .iter()
            .filter_map(|s| s.span)
            .map(|s| s.1)
            .max()
    }

    /// The id the next segment gets.
    pub fn next_id(&self) -> u64 {
        self.segments.back().map_or(1, |s| s.id + 1)
    }

    /// Whether the next record of `span` goes into a new segment.
    pub fn should_rotate(&self, span: (i64, i64)) -> bool {
        let Some(cur) = self.segments.back() else {
            return true;
        };
        if cur.bytes >= self.limits.segment_bytes() {
            return true;
        }
        cur.span
            .is_some_and(|(min, _)| span.1.saturating_sub(min) > self.limits.segment_span_ns())
    }

    /// A new segment of `header_bytes` was created.
    pub fn opened(&mut self, id: u64, header_bytes: u64) {
        self.segments.push_back(Segment {
            id,
            bytes: header_bytes,
            span: None,
        });
    }

    /// `bytes` holding instants `span` (`None`: no samples, a release
    /// mark) were appended to the current segment.
    pub fn appended(&mut self, bytes: u64, span: Option<(i64, i64)>) {
        if let Some(cur) = self.segments.back_mut() {
            cur.bytes += bytes;
            if let Some(span) = span {
                cur.span = Some(match cur.span {
                    None => span,
                    Some((a, b)) => (a.min(span.0), b.max(span.1)),
                });
            }
        }
    }

    /// The collector committed everything through `at`; `false` when the
    /// mark does not move forward (nothing to persist).
    pub fn release(&mut self, at: i64) -> bool {
        if at <= self.released {
            return false;
        }
        self.released = at;
        true
    }

    /// The oldest segments to delete now, oldest first, and why; removed
    /// from the ring. Never the segment being written.
    pub fn trim(&mut self, now_ns: i64) -> Vec<(Segment, DropReason)> {
        let mut out = Vec::new();
        let cutoff = now_ns.saturating_sub(self.limits.max_age_ns);
        while self.segments.len() > 1 {
            let Some(oldest) = self.segments.front().copied() else {
                break;
            };
            let reason = match oldest.span {
                Some((_, max)) if max <= self.released => DropReason::Released,
                Some((_, max)) if max < cutoff => DropReason::Expired,
                // An empty sealed segment holds nothing worth its file.
                None if oldest.bytes <= super::format::HEADER_LEN as u64 => DropReason::Released,
                _ if self.bytes() > self.limits.max_bytes => DropReason::Full,
                _ => break,
            };
            self.segments.pop_front();
            out.push((oldest, reason));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;
    const HOUR: i64 = 3600 * SEC;

    fn limits() -> Limits {
        Limits {
            max_bytes: 64 << 20,
            max_age_ns: 16 * HOUR,
        }
    }

    /// Appends 1 KiB a second from `start` for `secs`, rotating as the
    /// file layer would.
    fn feed(ring: &mut Ring, start: i64, secs: i64) -> Vec<(Segment, DropReason)> {
        let mut dropped = Vec::new();
        for s in 0..secs {
            let at = start + s * SEC;
            if ring.should_rotate((at, at)) {
                let id = ring.next_id();
                ring.opened(id, 44);
            }
            ring.appended(1024, Some((at, at)));
            dropped.extend(ring.trim(at));
        }
        dropped
    }

    #[test]
    fn segments_close_at_their_size_or_span() {
        let mut ring = Ring::new(limits(), Vec::new(), i64::MIN);
        feed(&mut ring, 0, 3 * 3600);
        // 2 MiB (64 MiB / 32) fills in 34 min at 1 KiB/s, before the
        // 1 h span (16 h / 16) is reached.
        let first = *ring.segments().next().expect("a segment");
        assert!(first.bytes >= limits().segment_bytes());
        let mut age = Ring::new(
            Limits {
                max_bytes: 1 << 30,
                max_age_ns: 16 * 60 * SEC,
            },
            Vec::new(),
            i64::MIN,
        );
        feed(&mut age, 0, 600);
        let spans: Vec<_> = age.segments().filter_map(|s| s.span).collect();
        assert!(spans.len() >= 9, "{spans:?}");
        assert!(spans.iter().all(|(a, b)| b - a <= 60 * SEC));
    }

    #[test]
    fn over_max_bytes_the_oldest_goes_first() {
        let l = Limits {
            max_bytes: 1 << 20,
            max_age_ns: 1000 * HOUR,
        };
        let mut ring = Ring::new(l, Vec::new(), i64::MIN);
        let dropped = feed(&mut ring, 0, 4000);
        assert!(ring.bytes() <= l.max_bytes + l.segment_bytes());
        assert!(!dropped.is_empty());
        assert!(dropped.iter().all(|(_, r)| *r == DropReason::Full));
        let ids: Vec<u64> = dropped.iter().map(|(s, _)| s.id).collect();
        let expect: Vec<u64> = (1..=ids.len() as u64).collect();
        assert_eq!(ids, expect, "oldest first");
        // What is left is the newest stretch, ending now.
        assert_eq!(ring.newest(), Some(3999 * SEC));
        assert!(ring.oldest() > Some(0));
    }

    #[test]
    fn older_than_max_age_is_dropped_with_a_fake_clock() {
        let mut ring = Ring::new(limits(), Vec::new(), i64::MIN);
        feed(&mut ring, 0, 3600);
        assert!(ring.trim(HOUR).is_empty());
        // 17 h later, everything but the segment being written is expired.
        let dropped = ring.trim(17 * HOUR);
        assert!(!dropped.is_empty());
        assert!(dropped.iter().all(|(_, r)| *r == DropReason::Expired));
        assert_eq!(ring.segments().count(), 1);
    }

    #[test]
    fn released_segments_go_and_the_mark_only_moves_forward() {
        let mut ring = Ring::new(limits(), Vec::new(), i64::MIN);
        feed(&mut ring, 0, 3 * 3600);
        let before = ring.segments().count();
        let second = ring.segments().nth(1).and_then(|s| s.span).expect("span");
        assert!(ring.release(second.1));
        assert!(!ring.release(second.1 - 1));
        let dropped = ring.trim(3 * HOUR);
        assert_eq!(dropped.len(), 2);
        assert!(dropped.iter().all(|(_, r)| *r == DropReason::Released));
        assert_eq!(ring.segments().count(), before - 2);
        assert_eq!(ring.released(), second.1);
    }

    #[test]
    fn the_segment_being_written_is_never_dropped() {
        let mut ring = Ring::new(limits(), Vec::new(), i64::MIN);
        feed(&mut ring, 0, 10);
        ring.release(i64::MAX);
        assert!(ring.trim(i64::MAX).is_empty());
        assert_eq!(ring.segments().count(), 1);
    }

    #[test]
    fn a_sealed_segment_of_unknown_span_stays_until_space_is_needed() {
        let l = Limits {
            max_bytes: 1 << 20,
            max_age_ns: HOUR,
        };
        let unknown = Segment {
            id: 1,
            bytes: 600 << 10,
            span: None,
        };
        let mut ring = Ring::new(l, vec![unknown], i64::MIN);
        ring.opened(2, 44);
        ring.appended(1024, Some((10 * HOUR, 10 * HOUR)));
        assert!(ring.trim(10 * HOUR).is_empty());
        ring.appended(500 << 10, Some((10 * HOUR, 10 * HOUR)));
        assert_eq!(ring.trim(10 * HOUR), vec![(unknown, DropReason::Full)]);
    }
}
