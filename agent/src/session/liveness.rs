//! Whether the session's peer is still there, sans-I/O: the collector's
//! RTCP (docs/protocol.md 6.1) is the heartbeat. The shell counts the
//! compounds that came from the peer and reported on our stream; the
//! controller asks for that count every [`CHECK_INTERVAL`] and ends a
//! session whose count has not moved for the peer timeout, so a dead
//! collector or a dead path is noticed in seconds, not at the in-dialog
//! OPTIONS' 20 + 32 s.

use std::time::{Duration, Instant};

use sipsensor_protocol::{RtcpConfig, Sdp, StreamDescription, StreamRole, agreed_recovery};

use super::flow::FlowKeeper;
use super::{Action, Controller, Opener, Phase};
use crate::status::AgentState;

/// How often the shell is asked for the count: a dead peer is noticed at
/// most this long after its timeout.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// The default timeout against a peer that agreed backfill: it sends a
/// compound at least every second (docs/protocol.md 6.1), so three missed
/// in a row; with a dispatcher's 1 s to give up on a dead collector and
/// the new call's set-up, a sensor moves within 5 s.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Against a peer that did not: RFC 3550 6.3 lets it report as seldom as
/// every 6.2 s (the 5 s minimum, randomised, compensated), so three
/// reports missed in a row; longer for a slow stream (`peer_timeout`).
pub const LEGACY_PEER_TIMEOUT: Duration = Duration::from_secs(20);
/// Added to the timeout for the peer's first report: its compounds reach
/// us only once our first report has reached it (through a NAT, or a
/// relay, it learns our RTCP address from it, RFC 4961), and that first
/// report may come before its stream exists there and be dropped: the
/// next comes one of our RTCP intervals (5 s) later.
pub const FIRST_REPORT_GRACE: Duration = Duration::from_secs(6);
/// The average compound the peer's RTCP interval is reckoned with, in
/// bytes without headers: its RR + SDES CNAME and our SR + SDES are
/// 60-80 (RFC 3550 6.3.2 averages both); generous, so as not to reckon
/// its interval short.
const COMPOUND_BYTES: usize = 100;
/// Reports of a peer that agreed nothing that may go missing in a row.
const MISSED_REPORTS: u32 = 3;
/// After a live session's peer fell silent, calls are made again every
/// 2-4 s (jittered) so that a collector back after an outage, or a
/// dispatcher's other one, has the sensor within 5 s...
pub const RECALL_MAX: Duration = Duration::from_secs(4);
/// ...each given up when not answered within this (a live collector, or
/// a dispatcher's failover to one, answers well within it)...
pub const RECALL_ANSWER: Duration = Duration::from_secs(4);
/// ...for this many calls (5 to 10 minutes); then the usual back-off, at
/// its ceiling by then.
pub const RECALLS: u32 = 75;

/// What the peer's count told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// Nothing heard for this long: at least the timeout.
    Dead(Duration),
}

/// The watch over one session's peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerWatch {
    timeout: Duration,
    /// The count last reported, and when it was seen to move (the start,
    /// until it does: the peer gets a whole timeout for its first report).
    count: Option<u64>,
    since: Instant,
    /// Whether the peer has been heard at all in this session.
    heard: bool,
    next_check: Instant,
}

impl PeerWatch {
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Self {
            timeout,
            count: None,
            since: now,
            heard: false,
            next_check: now + CHECK_INTERVAL,
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        self.next_check
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.next_check <= now
    }

    pub fn heard(&self) -> bool {
        self.heard
    }

    /// The shell's count of the peer's reports at `now`. A count that moved
    /// (either way: a restarted sender starts again from 0) is taken as
    /// heard now, which is never earlier than the report came, so a peer
    /// is never declared dead before its timeout.
    pub fn checked(&mut self, count: u64, now: Instant) -> Verdict {
        self.next_check = now + CHECK_INTERVAL;
        match self.count {
            None => {
                // The first look sets the base; a report counted already
                // (the sender started before the watch) is news too.
                self.count = Some(count);
                if count > 0 {
                    self.since = now;
                    self.heard = true;
                }
            }
            Some(last) if last != count => {
                self.count = Some(count);
                self.since = now;
                self.heard = true;
            }
            Some(_) => {}
        }
        let silent = now.saturating_duration_since(self.since);
        let allowed = if self.heard {
            self.timeout
        } else {
            self.timeout + FIRST_REPORT_GRACE
        };
        if silent >= allowed {
            Verdict::Dead(silent)
        } else {
            Verdict::Alive
        }
    }
}

/// The timeout for a session: `configured` when the offer and the answer
/// agreed backfill (docs/protocol.md 6.1: the peer then reports at least
/// every second). When they did not, at least [`LEGACY_PEER_TIMEOUT`] and
/// three of the longest intervals RFC 3550 A.7 gives the peer at the
/// stream's bandwidth (`agreed`): a slow stream's peer reports seldom.
pub fn peer_timeout(
    configured: Duration,
    offer: &Sdp,
    answer: &Sdp,
    agreed: &StreamDescription,
) -> Duration {
    // Whether backfill is on does not depend on which side offered.
    if agreed_recovery(offer, answer, StreamRole::Sender)
        .backfill
        .is_some()
    {
        return configured;
    }
    legacy_peer_timeout(configured, agreed)
}

/// The timeout against a peer that agreed no backfill for a stream of
/// `agreed`'s bandwidth: see [`peer_timeout`].
pub fn legacy_peer_timeout(configured: Duration, agreed: &StreamDescription) -> Duration {
    let interval =
        RtcpConfig::new(agreed.session_bandwidth_bps()).longest_receiver_interval(COMPOUND_BYTES);
    configured
        .max(LEGACY_PEER_TIMEOUT)
        .max(interval.saturating_mul(MISSED_REPORTS))
}

/// The controller's side: ask for the count, end a dead session and set
/// up the next one.
impl Controller {
    /// A call made again that got no answer in time: give it up (the user
    /// agent cancels it) and make the next.
    pub(super) fn recall_timeout(&mut self, now: Instant) {
        if self.call_deadline.is_none_or(|d| d > now) {
            return;
        }
        let Phase::Calling { session, .. } = &self.phase else {
            self.call_deadline = None;
            return;
        };
        if let Some(session) = *session {
            self.actions.push_back(Action::Hangup(session));
        }
        self.problem(
            "call",
            format!(
                "the collector did not answer within {} s; calling again",
                RECALL_ANSWER.as_secs()
            ),
        );
        self.wait(now, None);
    }

    /// The wait before the next call while re-establishing a session, or
    /// `None` when not (any more): then the usual back-off.
    pub(super) fn recall_delay(&mut self) -> Option<Duration> {
        let made = self.recalls?;
        if made >= RECALLS {
            self.recalls = None;
            return None;
        }
        self.recalls = Some(made + 1);
        // Counted as failures too: after the recalls the usual back-off
        // goes on from where this many failures put it.
        let _ = self.backoff.next_delay(&mut self.ids);
        let half = RECALL_MAX / 2;
        Some(half + half.mul_f64(self.ids.unit()))
    }

    pub(super) fn watch_timeout(&mut self, now: Instant) {
        let due = matches!(&self.phase, Phase::Streaming { watch: Some(w), .. } if w.is_due(now));
        if due {
            self.actions.push_back(Action::CheckPeer);
        }
    }

    /// The shell's answer to [`Action::CheckPeer`]: how many reports the
    /// session's peer has sent about our stream so far.
    pub fn peer_checked(&mut self, count: u64, now: Instant) {
        let Phase::Streaming {
            session,
            watch: Some(watch),
            ..
        } = &mut self.phase
        else {
            return;
        };
        let session = *session;
        let first = !watch.heard();
        let verdict = watch.checked(count, now);
        if first && watch.heard() {
            // A session counts as set up once its peer proved alive: only
            // then may the next failure be retried at once.
            self.backoff.reset();
            self.recalls = None;
        }
        if let Verdict::Dead(silent) = verdict {
            self.peer_dead(session, silent, now);
        }
    }

    /// No report from the peer for the timeout: the collector or the path
    /// to it is gone. End the session without waiting for anyone (the BYE
    /// is best effort) and set up the next one.
    fn peer_dead(&mut self, session: super::SessionId, silent: Duration, now: Instant) {
        let caller = matches!(self.opener, Some((s, Opener::Us)) if s == session);
        let was_alive = matches!(&self.phase, Phase::Streaming { watch: Some(w), .. } if w.heard());
        self.opener = None;
        self.actions.push_back(Action::StopStream);
        self.actions.push_back(Action::Hangup(session));
        self.problem(
            "call",
            format!(
                "no RTCP from the collector for {:.1} s: the collector or the path to it is \
                 gone; ending the session",
                silent.as_secs_f64()
            ),
        );
        let state = if self.registered || self.settings.registration.is_none() {
            AgentState::Registered
        } else {
            AgentState::Registering
        };
        self.set_state(state);
        if self.flow.as_ref().is_some_and(FlowKeeper::is_up) {
            // The flow may have died with the path: check it now rather
            // than at the next idle keep-alive (RFC 5626 4.4.1).
            self.actions.push_back(Action::PingFlow);
        }
        if caller && self.may_call() {
            if was_alive {
                // Call again at once (a dispatcher picks a live
                // collector), then every few seconds for a while.
                self.recalls = Some(0);
                self.call(now);
            } else {
                // This session never proved alive either.
                self.wait(now, None);
            }
        } else {
            // Called by the collector: be free for its next call.
            self.phase = Phase::Idle;
        }
    }
}
