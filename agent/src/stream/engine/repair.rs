//! Repair within a session (docs/protocol.md 11.5): live packets kept in
//! the RTX history, NACKed ones resent as RTX (RFC 4588) after the live
//! work of each wake, never before it.

use super::super::stats::bump;
use super::{Core, RTX_PER_WAKE, Sink};
use std::time::Instant;

impl Core {
    /// The session's peer NACKed these sequence numbers of the live stream
    /// (RFC 4585 6.2.1): the ones still kept are queued for RTX, at most
    /// once per hold-off each (`RetransmitHistory`). Without RTX agreed,
    /// nothing.
    pub fn on_nack(&mut self, lost: impl IntoIterator<Item = u16>, now: Instant) {
        let Some(history) = self.history.as_mut() else {
            return;
        };
        history.on_nack(lost, now);
        let unavailable = history.unavailable();
        if unavailable > self.rtx_unavailable_seen {
            bump(
                &self.stats.rtx_unavailable,
                unavailable - self.rtx_unavailable_seen,
            );
            self.rtx_unavailable_seen = unavailable;
        }
        self.rtx_due = history.poll_timeout(now);
    }

    /// RTX packets the rate allows now (RFC 4588 4, docs/protocol.md 11.5).
    pub(super) fn send_rtx(&mut self, now: Instant, sink: &mut impl Sink) {
        let Some(history) = self.history.as_mut() else {
            return;
        };
        for _ in 0..RTX_PER_WAKE {
            match history.poll_transmit(&mut self.buf, now) {
                Ok(Some(n)) => {
                    if sink.rtx(&self.buf[..n]) {
                        bump(&self.stats.rtx_sent, 1);
                    } else {
                        bump(&self.stats.send_errors, 1);
                    }
                }
                Ok(None) => break,
                Err(_) => bump(&self.stats.send_errors, 1),
            }
        }
        self.rtx_due = history.poll_timeout(now);
    }

    /// A live packet just sent: kept for RTX when agreed.
    pub(super) fn keep(&mut self, len: usize, now: Instant) {
        if let (Some(history), Some(packet)) = (self.history.as_mut(), self.buf.get(..len)) {
            history.record(packet, now);
        }
    }
}
