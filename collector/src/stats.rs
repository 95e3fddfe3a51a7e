//! Per-stream statistics, kept in memory. The SIP/RTP side opens a
//! [`StreamHandle`] per stream and records into it; the HTTP API
//! (`/api/streams`) and `/metrics` read snapshots.
//!
//! Loss and jitter are computed by the RTP receiver (RFC 3550 section 6.4.1
//! and appendix A.3/A.8) and stored here as the values it reports in its
//! receiver reports, so the API shows exactly what the agent is told.

use crate::storage::{ChannelSpec, SensorId, SessionId};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Registry-wide identifier of a stream (survives re-INVITEs, which change
/// the session record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StreamId(pub u64);

/// What identifies a stream, given when it opens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    pub sensor: SensorId,
    /// Address of record of the sensor.
    pub aor: String,
    /// Current session record (changes when a re-INVITE renegotiates).
    pub session: SessionId,
    // Call-ID, SSRC and RTP address are left out of `/api/streams`: they
    // are what injecting packets into the stream takes (issue 14).
    #[serde(skip_serializing)]
    pub call_id: String,
    #[serde(skip_serializing)]
    pub ssrc: u32,
    /// Where the RTP comes from.
    #[serde(skip_serializing)]
    pub remote: Option<SocketAddr>,
    pub rate_hz: f64,
    pub channels: Vec<ChannelSpec>,
    /// Wall-clock start (ns since the epoch).
    pub started_ns: i64,
}

/// The receiver's view of the stream (RFC 3550 section 6.4.1 fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Reception {
    /// Cumulative number of packets lost (expected - received; may go
    /// negative when duplicates arrive, as the RFC notes).
    pub lost: i64,
    /// Fraction lost in the last report interval, 0.0 ..= 1.0.
    pub fraction_lost: f64,
    /// Interarrival jitter (appendix A.8), converted to seconds.
    pub jitter_seconds: f64,
}

/// The most recent value of one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastValue {
    pub channel: u16,
    pub name: String,
    pub unit: String,
    pub ts_ns: i64,
    pub raw: i64,
    pub value: f64,
}

/// Packet counters a receiver keeps to itself and hands to its
/// [`StreamHandle`] a few times a second ([`StreamHandle::add`]): at
/// 100,000 packets/s a lock per packet was 13 % of the receive thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub packets: u64,
    pub bytes: u64,
    pub duplicates: u64,
    pub last_packet_ns: Option<i64>,
}

impl Tally {
    /// A packet of `bytes` (RTP payload and header) arrived at `at_ns`.
    pub fn packet(&mut self, bytes: usize, at_ns: i64) {
        self.packets += 1;
        self.bytes += bytes as u64;
        self.last_packet_ns = Some(self.last_packet_ns.map_or(at_ns, |t| t.max(at_ns)));
    }

    /// A packet arrived whose sequence number was already received.
    pub fn duplicate(&mut self) {
        self.duplicates += 1;
    }

    pub fn is_empty(&self) -> bool {
        *self == Tally::default()
    }
}

/// Everything known about one stream at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamSnapshot {
    pub id: StreamId,
    #[serde(flatten)]
    pub info: StreamInfo,
    pub packets: u64,
    pub bytes: u64,
    /// Packets that arrived twice (not stored twice).
    pub duplicates: u64,
    #[serde(flatten)]
    pub reception: Reception,
    pub last_packet_ns: Option<i64>,
    pub last_values: Vec<LastValue>,
    pub uptime_seconds: f64,
}

#[derive(Debug)]
struct Entry {
    info: StreamInfo,
    packets: u64,
    bytes: u64,
    duplicates: u64,
    reception: Reception,
    last_packet_ns: Option<i64>,
    last_values: Vec<Option<LastValue>>,
}

impl Entry {
    fn snapshot(&self, id: StreamId, now_ns: i64) -> StreamSnapshot {
        StreamSnapshot {
            id,
            info: self.info.clone(),
            packets: self.packets,
            bytes: self.bytes,
            duplicates: self.duplicates,
            reception: self.reception,
            last_packet_ns: self.last_packet_ns,
            last_values: self.last_values.iter().flatten().cloned().collect(),
            uptime_seconds: (now_ns.saturating_sub(self.info.started_ns)).max(0) as f64 / 1e9,
        }
    }
}

type Shared = Arc<Mutex<Entry>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain counters: a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// All open streams.
#[derive(Debug, Default)]
pub struct StreamsRegistry {
    next: AtomicU64,
    streams: Mutex<HashMap<StreamId, Shared>>,
}

impl StreamsRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(StreamsRegistry::default())
    }

    /// Registers a stream; it is listed until the handle is closed or dropped.
    pub fn open(self: &Arc<Self>, info: StreamInfo) -> StreamHandle {
        let id = StreamId(self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let entry = Arc::new(Mutex::new(Entry {
            last_values: vec![None; info.channels.len()],
            info,
            packets: 0,
            bytes: 0,
            duplicates: 0,
            reception: Reception::default(),
            last_packet_ns: None,
        }));
        lock(&self.streams).insert(id, entry.clone());
        StreamHandle {
            id,
            entry,
            registry: Arc::downgrade(self),
        }
    }

    /// Snapshots of all open streams, ordered by sensor and stream id.
    pub fn snapshot(&self, now_ns: i64) -> Vec<StreamSnapshot> {
        let entries: Vec<(StreamId, Shared)> = lock(&self.streams)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let mut out: Vec<StreamSnapshot> = entries
            .iter()
            .map(|(id, e)| lock(e).snapshot(*id, now_ns))
            .collect();
        out.sort_by(|a, b| a.info.aor.cmp(&b.info.aor).then(a.id.cmp(&b.id)));
        out
    }

    pub fn get(&self, id: StreamId, now_ns: i64) -> Option<StreamSnapshot> {
        let e = lock(&self.streams).get(&id).cloned()?;
        let snap = lock(&e).snapshot(id, now_ns);
        Some(snap)
    }

    pub fn len(&self) -> usize {
        lock(&self.streams).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Owned by whoever receives the stream. Dropping it removes the stream
/// from the registry.
#[derive(Debug)]
pub struct StreamHandle {
    id: StreamId,
    entry: Shared,
    registry: Weak<StreamsRegistry>,
}

impl StreamHandle {
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Adds what a receiver counted since it last handed over.
    pub fn add(&self, tally: Tally) {
        if tally.is_empty() {
            return;
        }
        let mut e = lock(&self.entry);
        e.packets += tally.packets;
        e.bytes += tally.bytes;
        e.duplicates += tally.duplicates;
        e.last_packet_ns = match (e.last_packet_ns, tally.last_packet_ns) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// One packet of `bytes` arrived at `at_ns` (see [`Tally`] for many).
    pub fn record_packet(&self, bytes: usize, at_ns: i64) {
        let mut t = Tally::default();
        t.packet(bytes, at_ns);
        self.add(t);
    }

    /// Loss and jitter as the receiver computed them for its report.
    pub fn set_reception(&self, reception: Reception) {
        lock(&self.entry).reception = reception;
    }

    /// Latest sample of a channel; the physical value uses the channel's scale.
    /// A channel outside the stream description is ignored (the receiver
    /// counts such packets as malformed before they get here).
    pub fn set_last_value(&self, channel: u16, ts_ns: i64, raw: i64) {
        let mut e = lock(&self.entry);
        let Some(spec) = e.info.channels.get(usize::from(channel)).cloned() else {
            return;
        };
        if let Some(slot) = e.last_values.get_mut(usize::from(channel)) {
            if slot.as_ref().is_some_and(|v| v.ts_ns > ts_ns) {
                return; // a reordered, older packet
            }
            *slot = Some(LastValue {
                channel,
                name: spec.name,
                unit: spec.unit,
                ts_ns,
                raw,
                value: crate::storage::scaled(raw, spec.scale),
            });
        }
    }

    /// A re-INVITE renegotiated the stream: new session record, rate and
    /// channels. Counters continue; last values restart.
    pub fn renegotiated(&self, session: SessionId, rate_hz: f64, channels: Vec<ChannelSpec>) {
        let mut e = lock(&self.entry);
        e.info.session = session;
        e.info.rate_hz = rate_hz;
        e.last_values = vec![None; channels.len()];
        e.info.channels = channels;
    }

    pub fn snapshot(&self, now_ns: i64) -> StreamSnapshot {
        lock(&self.entry).snapshot(self.id, now_ns)
    }

    /// Removes the stream from the registry (same as dropping the handle).
    pub fn close(self) {}
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if let Some(reg) = self.registry.upgrade() {
            lock(&reg.streams).remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> StreamInfo {
        StreamInfo {
            sensor: SensorId(1),
            aor: "sip:s1@example.net".into(),
            session: SessionId(7),
            call_id: "c1".into(),
            ssrc: 0xdead_beef,
            remote: Some("127.0.0.1:4000".parse().unwrap()),
            rate_hz: 10.0,
            channels: vec![
                ChannelSpec {
                    name: "temperature".into(),
                    unit: "Cel".into(),
                    scale: 0.01,
                },
                ChannelSpec {
                    name: "humidity".into(),
                    unit: "%RH".into(),
                    scale: 0.1,
                },
            ],
            started_ns: 1_000_000_000,
        }
    }

    #[test]
    fn records_and_snapshots() {
        let reg = StreamsRegistry::new();
        let h = reg.open(info());
        let mut t = Tally::default();
        t.packet(40, 2_000_000_000);
        t.packet(40, 1_500_000_000); // reordered arrival time
        t.duplicate();
        h.add(t);
        h.add(Tally::default());
        let mut older = Tally::default();
        older.packet(40, 1_000_000_000);
        h.add(older);
        h.set_reception(Reception {
            lost: 3,
            fraction_lost: 0.25,
            jitter_seconds: 0.002,
        });
        h.set_last_value(0, 1_900_000_000, 2508);
        h.set_last_value(0, 1_800_000_000, 1000); // older: ignored
        h.set_last_value(1, 1_900_000_000, 455);
        h.set_last_value(9, 1_900_000_000, 1); // unknown channel: ignored
        let s = reg.get(h.id(), 3_500_000_000).unwrap();
        assert_eq!(s.packets, 3);
        assert_eq!(s.bytes, 120);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reception.lost, 3);
        assert_eq!(s.last_packet_ns, Some(2_000_000_000));
        assert_eq!(s.uptime_seconds, 2.5);
        assert_eq!(s.last_values.len(), 2);
        assert_eq!(s.last_values[0].raw, 2508);
        assert!((s.last_values[0].value - 25.08).abs() < 1e-9);
        assert!((s.last_values[1].value - 45.5).abs() < 1e-9);
    }

    #[test]
    fn drop_removes_and_renegotiation_keeps_counters() {
        let reg = StreamsRegistry::new();
        let a = reg.open(info());
        let b = reg.open(StreamInfo {
            aor: "sip:a@example.net".into(),
            ..info()
        });
        assert_eq!(reg.len(), 2);
        // Ordered by address of record.
        let list = reg.snapshot(0);
        assert_eq!(list[0].info.aor, "sip:a@example.net");
        a.record_packet(10, 5);
        a.set_last_value(0, 5, 1);
        a.renegotiated(SessionId(8), 5.0, vec![info().channels[1].clone()]);
        let s = a.snapshot(5);
        assert_eq!(s.packets, 1);
        assert_eq!(s.info.session, SessionId(8));
        assert!(s.last_values.is_empty());
        drop(b);
        assert_eq!(reg.len(), 1);
        a.close();
        assert!(reg.is_empty());
    }

    #[test]
    fn json_shape() {
        let reg = StreamsRegistry::new();
        let h = reg.open(info());
        let v = serde_json::to_value(h.snapshot(2_000_000_000)).unwrap();
        for key in [
            "id",
            "aor",
            "packets",
            "lost",
            "fraction_lost",
            "jitter_seconds",
            "last_values",
            "uptime_seconds",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        for key in ["ssrc", "call_id", "remote"] {
            assert!(v.get(key).is_none(), "{key} published in {v}");
        }
    }
}
