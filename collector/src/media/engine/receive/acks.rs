//! The receive thread's side of acknowledgement (docs/protocol.md 11.4):
//! marks from the acknowledger in, `SSBF` ranges from agents on to the
//! acknowledger, RR + SDES + APP committed out.

use super::{ReceiveThread, wall_ns};
use crate::media::Reject;
use crate::media::acks::Verdict;
use crate::media::demux::StreamKey;
use crate::media::engine::MediaNotice;
use crate::media::engine::send::BatchTx;
use crate::storage::SensorId;
use sipsensor_protocol::BackfillMessage;
use std::collections::HashMap;
use std::time::Instant;

impl ReceiveThread {
    /// The store's committed marks: each acknowledged stream of the sensor
    /// takes its own, capped by its holes not stored yet.
    /// `asked`: when the storage query behind them began.
    pub(super) fn on_marks(&mut self, marks: &[(SensorId, Option<i64>)], asked: Instant) {
        if !self.unconfirmed.is_empty() {
            self.poll_unconfirmed(Instant::now());
            self.unconfirmed.seen_by(asked);
        }
        let by_sensor: HashMap<SensorId, Option<i64>> = marks.iter().copied().collect();
        // Rows and gaps still in this thread's batch: a hole whose grace
        // time just ended has left its stream but not reached the writer
        // (found in e2e s17: the mark passed a loss gap that was still
        // here, and the agent released what it should have backfilled).
        let mut unhanded: HashMap<SensorId, i64> = HashMap::new();
        for (sensor, cap) in self.caps_of(&self.sink.batch) {
            unhanded
                .entry(sensor)
                .and_modify(|c| *c = (*c).min(cap))
                .or_insert(cap);
        }
        for (key, a) in &mut self.acks {
            let Some(stored) = by_sensor.get(&a.sensor) else {
                continue;
            };
            let hole = self.demux.stream_mut(*key).and_then(|s| s.hole_from_ns());
            let cap = [
                hole,
                self.unconfirmed.cap(a.sensor),
                unhanded.get(&a.sensor).copied(),
            ]
            .into_iter()
            .flatten()
            .min();
            a.on_mark(*stored, cap);
        }
    }

    /// The writer's answers for the batches handed: a failed one is asked
    /// again; the sensors of a committed one get a mark round asked after
    /// it (a quiet stream would otherwise wait for its next commit).
    pub(super) fn poll_unconfirmed(&mut self, now: Instant) {
        if self.unconfirmed.is_empty() {
            return;
        }
        let mut confirmed = Vec::new();
        for _ in 0..self.unconfirmed.poll(now, &mut confirmed) {
            if let Ok(reply) = self.rt.block_on(self.writer.flush_later()) {
                self.unconfirmed.retry(reply);
            }
        }
        confirmed.sort_unstable();
        confirmed.dedup();
        for sensor in confirmed {
            self.commits.touch(sensor);
        }
    }

    /// An `SSBF` message from the agent of stream `key`.
    pub(super) fn on_backfill(&mut self, key: StreamKey, message: BackfillMessage) {
        let Some(a) = self.acks.get_mut(&key) else {
            // Not agreed for this session: ignored like any unknown APP.
            return;
        };
        let ssrc = self.demux.stream_mut(key).and_then(|s| s.remote_ssrc());
        match a.on_message(message, ssrc, Instant::now(), wall_ns(), self.max_ahead_ns) {
            Verdict::Nothing => {}
            Verdict::Record(d) => {
                // The rows before it (a new session's break gap) go first.
                self.flush_rows();
                let _ = self.notices.send(MediaNotice::Declared(d));
            }
            Verdict::Refuse(r) => {
                self.counts.add(Reject::BackfillRange);
                let detail = format!("SSBF range from the agent of sensor {}: {r}", a.sensor.0);
                self.log(Reject::BackfillRange, None, &detail);
            }
        }
    }

    /// RR + SDES + APP committed to each acknowledged stream whose mark is
    /// due (docs/protocol.md 11.4).
    pub(super) fn send_acks(&mut self, now: Instant, tx: &mut BatchTx) {
        let mut buf = [0u8; 256];
        for (key, a) in &mut self.acks {
            let Some(mark) = a.poll_send(now) else {
                continue;
            };
            let Some(s) = self.demux.stream_mut(*key) else {
                continue;
            };
            let Some(media_ssrc) = s.remote_ssrc() else {
                continue;
            };
            let app = BackfillMessage::Committed {
                media_ssrc,
                through_ns: mark,
            }
            .to_app(s.local_ssrc);
            if let Some(n) = s.rtcp_now(now, &mut self.ids, &mut buf, Some(&app))
                && let Some(dest) = s.rtcp_dest
                && let Some(packet) = self.decrypt.seal(*key, &buf[..n])
            {
                self.marks_sent += tx.push(&self.rtcp, packet, dest) as u64;
            }
        }
        self.marks_sent += tx.flush(&self.rtcp) as u64;
    }
}
