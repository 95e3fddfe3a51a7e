//! What the collector stores: sensors, sessions (one negotiated stream each),
//! samples, gaps and events. Plain data; the backends map it to tables.
//!
//! Times are nanoseconds since the Unix epoch (UTC) as `i64`, derived by the
//! caller from RTCP sender reports (RFC 3550 section 6.4.1: the NTP/RTP
//! timestamp pair maps the sample clock to wall-clock time).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// Database identifier of a sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SensorId(pub i64);

/// Database identifier of a session record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub i64);

impl fmt::Display for SensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a sensor stands, as the SIP side last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorState {
    /// Known, but neither registered nor streaming.
    Offline,
    /// Has a current registration binding, no session.
    Registered,
    /// At least one session is streaming.
    Streaming,
}

impl SensorState {
    /// The text stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorState::Offline => "offline",
            SensorState::Registered => "registered",
            SensorState::Streaming => "streaming",
        }
    }

    /// Inverse of [`SensorState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "offline" => Some(SensorState::Offline),
            "registered" => Some(SensorState::Registered),
            "streaming" => Some(SensorState::Streaming),
            _ => None,
        }
    }
}

/// A sensor, identified by its SIP address of record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensor {
    pub id: SensorId,
    /// Address of record, e.g. `sip:sensor-0001@example.net`.
    pub aor: String,
    pub display_name: Option<String>,
    pub state: SensorState,
    /// Last time anything was heard from it (ns since the epoch).
    pub last_seen_ns: Option<i64>,
}

/// One channel of a negotiated stream, as the SDP describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    pub name: String,
    /// SenML unit symbol (RFC 8428 section 12.1), e.g. `Cel`, `%RH`, `Pa`.
    pub unit: String,
    /// Physical value = raw integer * scale.
    pub scale: f64,
}

/// Physical value of a fixed-point sample: `raw * scale`.
///
/// Decimal scales (0.1, 0.01, ...) are not exact in binary, and
/// `2508.0 * 0.01` gives 25.080000000000002; dividing by the exact integer
/// reciprocal (100) gives the correctly rounded 25.08 a person expects.
pub fn scaled(raw: i64, scale: f64) -> f64 {
    if scale > 0.0 && scale < 1.0 {
        let inv = 1.0 / scale;
        let r = inv.round();
        if (inv - r).abs() <= r * 1e-12 && r <= 1e15 {
            return raw as f64 / r;
        }
    }
    raw as f64 * scale
}

/// The negotiated stream of a session (the SDP answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// Samples per second per channel.
    pub rate_hz: f64,
    pub samples_per_packet: u32,
    pub channels: Vec<ChannelSpec>,
}

/// A session to record. One record per negotiated stream: a re-INVITE that
/// changes rate or channels closes the record and opens a new one with the
/// same Call-ID, so every sample is interpreted with the stream it was sent in.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    pub sensor: SensorId,
    pub call_id: String,
    pub ssrc: u32,
    pub stream: StreamSpec,
    pub started_ns: i64,
}

/// A stored session record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub id: SessionId,
    pub sensor: SensorId,
    pub call_id: String,
    pub ssrc: u32,
    pub stream: StreamSpec,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
}

/// The values of every channel at one sampling instant: one stored row.
///
/// One row per instant rather than per channel value: a 3-channel stream
/// costs the store a third of the rows and index entries
/// (docs/benchmarks.md, "collector").
///
/// Identity (the duplicate key) is `(sensor, ts_ns)`: the sampling
/// instant as the agent stamped it, so a sample is stored once however it
/// arrives (a packet received twice, retransmitted, or backfilled in a
/// later session with other sequence numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub session: SessionId,
    /// Denormalised from the session so range queries need no join.
    pub sensor: SensorId,
    /// Extended RTP sequence number (RFC 3550 appendix A.1: cycles * 2^16 +
    /// sequence number) of the packet that carried the instant.
    pub seq: i64,
    /// Position of the sampling instant within that packet.
    pub index: u32,
    pub ts_ns: i64,
    /// The fixed-point values as sent, one per sampled channel of the
    /// session's [`StreamSpec::channels`], in channel order; `None` where the
    /// sensor had no reading (docs/protocol.md 5.2). The physical value is
    /// raw * scale.
    pub raws: Vec<Option<i64>>,
    /// How the reading reached the collector.
    pub source: ReadingSource,
}

/// How a reading reached the collector; stored with it so export, API and
/// page can tell live data from data that came back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingSource {
    /// In the live stream, in time.
    #[default]
    Live,
    /// A retransmission of a lost live packet (RFC 4588) in its session.
    Resent,
    /// Sent from the agent's spool after an interruption, in a later
    /// session.
    Backfilled,
}

impl ReadingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadingSource::Live => "live",
            ReadingSource::Resent => "resent",
            ReadingSource::Backfilled => "backfilled",
        }
    }

    /// The stored code: a small integer, not text, because it is a column
    /// of the largest table (SQLite stores 0 and 1 in no bytes at all).
    pub fn code(self) -> i16 {
        match self {
            ReadingSource::Live => 0,
            ReadingSource::Resent => 1,
            ReadingSource::Backfilled => 2,
        }
    }

    /// Inverse of [`ReadingSource::code`].
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(ReadingSource::Live),
            1 => Some(ReadingSource::Resent),
            2 => Some(ReadingSource::Backfilled),
            _ => None,
        }
    }
}

impl Reading {
    /// Samples in the reading (channels with a value).
    pub fn sample_count(&self) -> u64 {
        self.raws.iter().filter(|r| r.is_some()).count() as u64
    }

    /// `(channel, raw)` of each channel with a value, in channel order.
    pub fn samples(&self) -> impl DoubleEndedIterator<Item = (u16, i64)> + '_ {
        self.raws
            .iter()
            .enumerate()
            .filter_map(|(ch, r)| Some((u16::try_from(ch).ok()?, (*r)?)))
    }
}

/// Why samples are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// RTP packets lost inside a session (sequence numbers skipped).
    Loss,
    /// The sensor took no samples for a while: timestamps jump with no
    /// packet lost (docs/protocol.md 5.3).
    Source,
    /// Between the end of one session and the start of the next (collector
    /// or sensor restart, network outage).
    SessionBreak,
    /// The collector had to discard rows it could not store.
    Overload,
    /// Data that can never come back: older than what the agent's spool
    /// still holds (issue 15). Recorded by [`Storage::record_expired`](crate::storage::Storage::record_expired).
    Expired,
}

impl GapCause {
    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::Loss => "loss",
            GapCause::Source => "source",
            GapCause::SessionBreak => "session_break",
            GapCause::Overload => "overload",
            GapCause::Expired => "expired",
        }
    }

    /// Whether the samples may still arrive (retransmitted or backfilled
    /// from the agent's spool): such a gap holds back
    /// [`Storage::committed_through`](crate::storage::Storage::committed_through).
    /// A source gap was never sampled; an expired one is gone for good.
    pub fn is_fillable(self) -> bool {
        match self {
            GapCause::Loss | GapCause::SessionBreak | GapCause::Overload => true,
            GapCause::Source | GapCause::Expired => false,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "loss" => Some(GapCause::Loss),
            "source" => Some(GapCause::Source),
            "session_break" => Some(GapCause::SessionBreak),
            "overload" => Some(GapCause::Overload),
            "expired" => Some(GapCause::Expired),
            _ => None,
        }
    }
}

/// Samples that did not arrive, stored as such (never interpolated).
/// Identity: `(sensor, from_ns, to_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub sensor: SensorId,
    /// The session the gap lies in (or the session after a break).
    pub session: Option<SessionId>,
    /// Timestamp of the last sample before the gap.
    pub from_ns: i64,
    /// Timestamp of the first sample after the gap.
    pub to_ns: i64,
    /// Sampling instants missing (per channel).
    pub samples: i64,
    pub cause: GapCause,
}

/// A discrete event (a GPIO edge) with its exact time.
/// Identity: `(session, seq, index, channel)` like samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Event {
    pub session: SessionId,
    pub sensor: SensorId,
    pub channel: u16,
    pub seq: i64,
    pub index: u32,
    pub ts_ns: i64,
    /// The new state after the edge (0 or 1 for a GPIO input).
    pub value: i64,
}

/// Rows written together in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub readings: Vec<Reading>,
    pub gaps: Vec<Gap>,
    pub events: Vec<Event>,
    /// Last-heard times; the store keeps the latest per sensor.
    pub seen: Vec<(SensorId, i64)>,
}

impl Batch {
    /// Rows in the batch (the unit of batching limits).
    pub fn rows(&self) -> usize {
        self.readings.len() + self.gaps.len() + self.events.len() + self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    /// The latest last-seen time per sensor, sorted by sensor, so each
    /// sensor row is updated once (and in the same order by every writer).
    pub fn latest_seen(&self) -> Vec<(SensorId, i64)> {
        let mut m: HashMap<SensorId, i64> = HashMap::new();
        for &(s, t) in &self.seen {
            let e = m.entry(s).or_insert(t);
            *e = (*e).max(t);
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort();
        v
    }
}

/// What a [`Batch`] write did. Duplicates are rows whose key already existed;
/// samples are counted one per channel value of a [`Reading`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub samples_inserted: u64,
    /// Of `samples_inserted`, those of resent or backfilled readings.
    pub late_samples_inserted: u64,
    pub samples_duplicate: u64,
    pub gaps_inserted: u64,
    /// Stored gaps that stored samples shrank, split or removed.
    pub gaps_filled: u64,
    pub events_inserted: u64,
    pub events_duplicate: u64,
}

impl WriteReport {
    pub fn add(&mut self, other: &WriteReport) {
        self.samples_inserted += other.samples_inserted;
        self.late_samples_inserted += other.late_samples_inserted;
        self.samples_duplicate += other.samples_duplicate;
        self.gaps_inserted += other.gaps_inserted;
        self.gaps_filled += other.gaps_filled;
        self.events_inserted += other.events_inserted;
        self.events_duplicate += other.events_duplicate;
    }
}

/// Sort order of a sample query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first (the most recent `limit` samples).
    Desc,
}

/// Position of a sample in the total order used for paging:
/// `(ts_ns, session, seq, index, channel)`; the order of the fields is the
/// order of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SampleKey {
    pub ts_ns: i64,
    pub session: SessionId,
    pub seq: i64,
    pub index: u32,
    pub channel: u16,
}

/// Samples of one sensor with `from_ns <= ts_ns < to_ns`.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleQuery {
    pub sensor: SensorId,
    pub from_ns: i64,
    pub to_ns: i64,
    pub limit: u32,
    pub order: Order,
    /// Continue after this key (in `order`); for paging through large ranges.
    pub after: Option<SampleKey>,
}

/// A stored sample with its channel's description and physical value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSample {
    pub session: SessionId,
    pub sensor: SensorId,
    pub channel: u16,
    pub name: String,
    pub unit: String,
    pub seq: i64,
    pub index: u32,
    pub ts_ns: i64,
    pub raw: i64,
    /// raw * scale (see [`scaled`])
    pub value: f64,
    pub source: ReadingSource,
}

impl StoredSample {
    pub fn key(&self) -> SampleKey {
        SampleKey {
            ts_ns: self.ts_ns,
            session: self.session,
            channel: self.channel,
            seq: self.seq,
            index: self.index,
        }
    }
}

/// What a retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub samples: u64,
    pub events: u64,
    pub gaps: u64,
    pub sessions: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_cause_text_round_trip() {
        for s in [
            SensorState::Offline,
            SensorState::Registered,
            SensorState::Streaming,
        ] {
            assert_eq!(SensorState::parse(s.as_str()), Some(s));
        }
        for c in [
            GapCause::Loss,
            GapCause::Source,
            GapCause::SessionBreak,
            GapCause::Overload,
            GapCause::Expired,
        ] {
            assert_eq!(GapCause::parse(c.as_str()), Some(c));
        }
        for s in [
            ReadingSource::Live,
            ReadingSource::Resent,
            ReadingSource::Backfilled,
        ] {
            assert_eq!(ReadingSource::from_code(i64::from(s.code())), Some(s));
        }
        assert_eq!(ReadingSource::from_code(3), None);
        assert_eq!(SensorState::parse("gone"), None);
        assert_eq!(GapCause::parse(""), None);
    }

    #[test]
    fn scaled_values_are_the_decimals_people_expect() {
        assert_eq!(scaled(2508, 0.01), 25.08);
        assert_eq!(scaled(-455, 0.1), -45.5);
        assert_eq!(scaled(101_325, 1.0), 101_325.0);
        assert_eq!(scaled(3, 2.5), 7.5);
        assert_eq!(scaled(7, 0.001), 0.007);
        assert_eq!(scaled(1, 0.3), 0.3);
        assert_eq!(scaled(0, 0.0), 0.0);
    }

    #[test]
    fn batch_counts_rows() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        b.seen.push((SensorId(1), 5));
        b.readings.push(Reading {
            session: SessionId(1),
            sensor: SensorId(1),
            seq: 1,
            index: 0,
            ts_ns: 1,
            raws: vec![Some(2), None, Some(-4)],
            source: ReadingSource::Live,
        });
        assert_eq!(b.rows(), 2);
        assert_eq!(b.readings[0].sample_count(), 2);
        assert_eq!(
            b.readings[0].samples().collect::<Vec<_>>(),
            vec![(0, 2), (2, -4)]
        );
    }

    #[test]
    fn latest_seen_keeps_maximum_per_sensor() {
        let b = Batch {
            seen: vec![
                (SensorId(2), 5),
                (SensorId(1), 9),
                (SensorId(2), 7),
                (SensorId(2), 6),
            ],
            ..Batch::default()
        };
        assert_eq!(b.latest_seen(), vec![(SensorId(1), 9), (SensorId(2), 7)]);
    }
}
