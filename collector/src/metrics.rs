//! Prometheus metrics (OpenMetrics text through the prometheus-client
//! crate). Collector-wide counters live here; per-stream figures are read
//! from the [`StreamsRegistry`] at scrape time.

use crate::stats::StreamsRegistry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use sipsensor_runtime::sip_transport::{NetStatsHandle, StreamStats};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Label set with one label, e.g. `kind="disk_full"`.
pub type Label1 = [(&'static str, &'static str); 1];

/// Content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Collector-wide metrics. Cloned handles share their values.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub samples_stored: Counter,
    /// Of `samples_stored`, those resent or backfilled (docs/protocol.md 11).
    pub samples_stored_late: Counter,
    pub samples_duplicate: Counter,
    pub events_stored: Counter,
    pub events_duplicate: Counter,
    pub gaps_stored: Counter,
    /// Storage errors by [`StorageError::kind`](crate::storage::StorageError::kind).
    pub storage_errors: Family<Label1, Counter>,
    /// Rows given up (memory bound reached while the store failed).
    pub rows_dropped: Counter,
    /// Resent or backfilled rows the writer deferred (its late rows' bound):
    /// not committed, so the agents send them again.
    pub late_rows_deferred: Counter,
    /// Rows received and not yet committed.
    pub pending_rows: Gauge,
    pub batch_seconds: Histogram,
    /// Rows deleted by retention, by `table`.
    pub retention_deleted: Family<Label1, Counter>,
    /// Packets or requests refused, by `reason` (for the SIP/RTP side:
    /// wrong source, unknown SSRC, malformed, flood...).
    pub packets_rejected: Family<Label1, Counter>,
    /// SIP authentication attempts (REGISTER, INVITE) by `outcome`:
    /// accepted, challenged, wrong_password, unknown_user, blocked...
    pub sip_auth: Family<Label1, Counter>,
    /// SRTP/SRTCP packets dropped, by `reason` (authentication, replay,
    /// foreign_ssrc): forged, replayed or under another key (RFC 3711 3.3).
    pub srtp_rejected: Family<Label1, Counter>,
    /// Compound RTCP packets with a generic NACK sent (docs/protocol.md 11.5).
    pub nacks_sent: Counter,
    /// Lost live packets a retransmission filled.
    pub packets_recovered: Counter,
    /// Lost live packets given up after `rtx-time`: left to the backfill.
    pub packets_given_up: Counter,
    /// Streams ended because nothing authenticated arrived for
    /// `media.silence_timeout_s` (an agent gone without BYE).
    pub streams_silent: Counter,
    /// Acknowledgement messages (docs/protocol.md 11.4) sent and taken in,
    /// by `kind`: committed_sent, expired, unsampled, refused.
    pub backfill_marks: Family<Label1, Counter>,
    /// The SIP network's counters, once it is bound.
    sip_network: Arc<OnceLock<NetStatsHandle>>,
    /// The fleet view, once loaded.
    fleet: crate::update::fleet::metrics::FleetCollector,
}

#[derive(Debug)]
struct StreamsCollector(Arc<StreamsRegistry>);

/// SIP over TCP and TLS connections, read from the runtime's counters at
/// scrape time (issue 14: a connection flood shows here first).
#[derive(Debug)]
struct SipConnectionsCollector(Arc<OnceLock<NetStatsHandle>>);

impl Metrics {
    pub fn new(streams: Arc<StreamsRegistry>) -> Arc<Self> {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            samples_stored: Counter::default(),
            samples_stored_late: Counter::default(),
            samples_duplicate: Counter::default(),
            events_stored: Counter::default(),
            events_duplicate: Counter::default(),
            gaps_stored: Counter::default(),
            storage_errors: Family::default(),
            rows_dropped: Counter::default(),
            late_rows_deferred: Counter::default(),
            pending_rows: Gauge::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            retention_deleted: Family::default(),
            packets_rejected: Family::default(),
            sip_auth: Family::default(),
            srtp_rejected: Family::default(),
            nacks_sent: Counter::default(),
            packets_recovered: Counter::default(),
            packets_given_up: Counter::default(),
            streams_silent: Counter::default(),
            backfill_marks: Family::default(),
            sip_network: Arc::default(),
            fleet: Default::default(),
        };
        registry.register(
            "sipsensor_collector_samples_stored",
            "Samples committed to storage",
            m.samples_stored.clone(),
        );
        registry.register(
            "sipsensor_collector_samples_stored_late",
            "Of the samples committed, those resent or backfilled",
            m.samples_stored_late.clone(),
        );
        registry.register(
            "sipsensor_collector_samples_duplicate",
            "Samples received again and not stored twice",
            m.samples_duplicate.clone(),
        );
        registry.register(
            "sipsensor_collector_events_stored",
            "Events committed to storage",
            m.events_stored.clone(),
        );
        registry.register(
            "sipsensor_collector_events_duplicate",
            "Events received again and not stored twice",
            m.events_duplicate.clone(),
        );
        registry.register(
            "sipsensor_collector_gaps_stored",
            "Gaps recorded",
            m.gaps_stored.clone(),
        );
        registry.register(
            "sipsensor_collector_storage_errors",
            "Failed storage operations by kind",
            m.storage_errors.clone(),
        );
        registry.register(
            "sipsensor_collector_rows_dropped",
            "Rows discarded because storage failed longer than memory allows",
            m.rows_dropped.clone(),
        );
        registry.register(
            "sipsensor_collector_late_rows_deferred",
            "Resent or backfilled rows deferred while storage was busy (sent again by the agents)",
            m.late_rows_deferred.clone(),
        );
        registry.register(
            "sipsensor_collector_pending_rows",
            "Rows received and not yet committed",
            m.pending_rows.clone(),
        );
        registry.register_with_unit(
            "sipsensor_collector_batch_duration",
            "Time to commit one batch",
            Unit::Seconds,
            m.batch_seconds.clone(),
        );
        registry.register(
            "sipsensor_collector_retention_deleted_rows",
            "Rows deleted by retention, by table",
            m.retention_deleted.clone(),
        );
        registry.register(
            "sipsensor_collector_packets_rejected",
            "Packets or requests refused, by reason",
            m.packets_rejected.clone(),
        );
        registry.register(
            "sipsensor_collector_sip_auth",
            "SIP authentication attempts by outcome",
            m.sip_auth.clone(),
        );
        registry.register(
            "sipsensor_collector_srtp_rejected",
            "SRTP and SRTCP packets dropped (failed authentication, replayed, another SSRC), by reason",
            m.srtp_rejected.clone(),
        );
        registry.register(
            "sipsensor_collector_nacks_sent",
            "RTCP compounds with a generic NACK for lost live packets sent",
            m.nacks_sent.clone(),
        );
        registry.register(
            "sipsensor_collector_packets_recovered",
            "Lost live packets filled by a retransmission (RTX)",
            m.packets_recovered.clone(),
        );
        registry.register(
            "sipsensor_collector_packets_given_up",
            "Lost live packets no retransmission filled within rtx-time",
            m.packets_given_up.clone(),
        );
        registry.register(
            "sipsensor_collector_streams_silent",
            "Streams ended because nothing authenticated arrived for media.silence_timeout_s",
            m.streams_silent.clone(),
        );
        registry.register(
            "sipsensor_collector_backfill_marks",
            "SSBF acknowledgement messages: committed marks sent; expired and unsampled \
             ranges recorded; refused ones",
            m.backfill_marks.clone(),
        );
        registry.register_collector(Box::new(StreamsCollector(streams)));
        registry.register_collector(Box::new(SipConnectionsCollector(m.sip_network.clone())));
        registry.register_collector(Box::new(m.fleet.clone()));
        Arc::new(Metrics { registry, ..m })
    }

    /// Publishes the fleet view's counts; the first view given is kept.
    pub fn watch_fleet(&self, fleet: Arc<crate::update::fleet::FleetView>) {
        let _ = self.fleet.0.set(fleet);
    }

    /// Publishes the SIP network's connection counters; the first network
    /// given is kept (there is one per collector).
    pub fn watch_sip_network(&self, network: NetStatsHandle) {
        let _ = self.sip_network.set(network);
    }

    /// The OpenMetrics text exposition (serve with [`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Collector for StreamsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let streams = self.0.snapshot(now_ns());
        // A stream is told by its registry id, not its SSRC: the SSRC is what
        // spoofing its packets takes (issue 14).
        let labels: Vec<[(&'static str, String); 2]> = streams
            .iter()
            .map(|s| {
                [
                    ("sensor", s.info.aor.clone()),
                    ("stream", s.id.0.to_string()),
                ]
            })
            .collect();

        let g = ConstGauge::new(streams.len() as i64);
        let m = encoder.encode_descriptor(
            "sipsensor_collector_streams",
            "Streams being received",
            None,
            g.metric_type(),
        )?;
        g.encode(m)?;

        macro_rules! per_stream {
            ($name:expr, $help:expr, $unit:expr, $ty:ident, $mt:expr, $value:expr) => {{
                let mut m = encoder.encode_descriptor($name, $help, $unit, $mt)?;
                for (s, l) in streams.iter().zip(&labels) {
                    #[allow(clippy::redundant_closure_call)]
                    let v = ($value)(s);
                    $ty::new(v).encode(m.encode_family(l)?)?;
                }
            }};
        }
        per_stream!(
            "sipsensor_stream_packets",
            "RTP packets received",
            None,
            ConstCounter,
            MetricType::Counter,
            |s: &crate::stats::StreamSnapshot| s.packets
        );
        per_stream!(
            "sipsensor_stream_duplicate_packets",
            "RTP packets received twice",
            None,
            ConstCounter,
            MetricType::Counter,
            |s: &crate::stats::StreamSnapshot| s.duplicates
        );
        per_stream!(
            "sipsensor_stream_lost_packets",
            "Cumulative packets lost (RFC 3550 6.4.1)",
            None,
            ConstGauge,
            MetricType::Gauge,
            |s: &crate::stats::StreamSnapshot| s.reception.lost
        );
        per_stream!(
            "sipsensor_stream_jitter",
            "Interarrival jitter (RFC 3550 A.8)",
            Some(&Unit::Seconds),
            ConstGauge,
            MetricType::Gauge,
            |s: &crate::stats::StreamSnapshot| s.reception.jitter_seconds
        );
        per_stream!(
            "sipsensor_stream_uptime",
            "Time since the session started",
            Some(&Unit::Seconds),
            ConstGauge,
            MetricType::Gauge,
            |s: &crate::stats::StreamSnapshot| s.uptime_seconds
        );

        let mut m = encoder.encode_descriptor(
            "sipsensor_stream_last_value",
            "Latest value of each channel, in its SenML unit",
            None,
            ConstGauge::new(0.0).metric_type(),
        )?;
        for s in &streams {
            for v in &s.last_values {
                let l = [
                    ("sensor", s.info.aor.clone()),
                    ("stream", s.id.0.to_string()),
                    ("channel", v.name.clone()),
                    ("unit", v.unit.clone()),
                ];
                ConstGauge::new(v.value).encode(m.encode_family(&l)?)?;
            }
        }
        Ok(())
    }
}

impl Collector for SipConnectionsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(network) = self.0.get() else {
            return Ok(());
        };
        let stats = network.stats();
        let transports: [(&str, StreamStats); 2] = [("tcp", stats.tcp), ("tls", stats.tls)];
        let mut per_transport =
            |name: &str, help: &str, metric: MetricType, value: fn(&StreamStats) -> u64| {
                let mut m = encoder.encode_descriptor(name, help, None, metric)?;
                for (transport, s) in &transports {
                    let labels = [("transport", *transport)];
                    match metric {
                        MetricType::Gauge => {
                            ConstGauge::new(value(s) as i64).encode(m.encode_family(&labels)?)?
                        }
                        _ => ConstCounter::new(value(s)).encode(m.encode_family(&labels)?)?,
                    }
                }
                Ok::<_, std::fmt::Error>(())
            };
        per_transport(
            "sipsensor_collector_sip_connections_open",
            "SIP connections open now (TLS handshakes included), by transport",
            MetricType::Gauge,
            |s| s.open,
        )?;
        per_transport(
            "sipsensor_collector_sip_connections_accepted",
            "SIP connections accepted, by transport (those then refused by a cap included)",
            MetricType::Counter,
            |s| s.accepted,
        )?;
        per_transport(
            "sipsensor_collector_sip_connections_closed_idle",
            "SIP connections closed after the idle timeout, by transport",
            MetricType::Counter,
            |s| s.closed_idle,
        )?;
        let mut m = encoder.encode_descriptor(
            "sipsensor_collector_sip_connections_refused",
            "SIP connections refused by a cap (overall or per source), by transport",
            None,
            MetricType::Counter,
        )?;
        for (transport, s) in &transports {
            for (cap, n) in [
                ("overall", s.refused_over_limit),
                ("per_source", s.refused_per_source),
            ] {
                let labels = [("transport", *transport), ("cap", cap)];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        let failed = ConstCounter::new(stats.tls.handshakes_failed);
        let m = encoder.encode_descriptor(
            "sipsensor_collector_sip_tls_handshakes_failed",
            "TLS handshakes that failed or timed out, either direction",
            None,
            failed.metric_type(),
        )?;
        failed.encode(m)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{StreamInfo, StreamsRegistry};
    use crate::storage::{ChannelSpec, SensorId, SessionId};

    #[test]
    fn renders_counters_and_streams_with_type_lines() {
        let streams = StreamsRegistry::new();
        let m = Metrics::new(streams.clone());
        m.samples_stored.inc_by(42);
        m.storage_errors
            .get_or_create(&[("kind", "disk_full")])
            .inc();
        m.sip_auth
            .get_or_create(&[("outcome", "wrong_password")])
            .inc();
        let h = streams.open(StreamInfo {
            sensor: SensorId(1),
            aor: "sip:s1@example.net".into(),
            session: SessionId(1),
            call_id: "c".into(),
            ssrc: 77,
            remote: None,
            rate_hz: 10.0,
            channels: vec![ChannelSpec {
                name: "temperature".into(),
                unit: "Cel".into(),
                scale: 0.01,
            }],
            started_ns: 0,
        });
        h.record_packet(20, 1);
        h.set_last_value(0, 1, 2508);
        let text = m.render().unwrap();
        let id = h.id().0;
        assert!(!text.contains("ssrc"), "{text}");
        for needle in [
            "# TYPE sipsensor_collector_samples_stored counter",
            "sipsensor_collector_samples_stored_total 42",
            "sipsensor_collector_storage_errors_total{kind=\"disk_full\"} 1",
            "sipsensor_collector_sip_auth_total{outcome=\"wrong_password\"} 1",
            "# TYPE sipsensor_collector_batch_duration_seconds histogram",
            "# TYPE sipsensor_collector_streams gauge",
            "sipsensor_collector_streams 1",
            "# TYPE sipsensor_stream_packets counter",
            &format!(
                "sipsensor_stream_packets_total{{sensor=\"sip:s1@example.net\",stream=\"{id}\"}} 1"
            ),
            "# TYPE sipsensor_stream_jitter_seconds gauge",
            &format!(
                "sipsensor_stream_last_value{{sensor=\"sip:s1@example.net\",stream=\"{id}\",channel=\"temperature\",unit=\"Cel\"}} 25.08"
            ),
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        drop(h);
        assert!(
            m.render()
                .unwrap()
                .contains("sipsensor_collector_streams 0")
        );
    }

    #[tokio::test]
    async fn sip_connections_are_counted_open_accepted_refused_and_closed_idle() {
        use sipsensor_protocol::Transport;
        use sipsensor_runtime::sip_transport::{NetConfig, Network};
        use std::time::Duration;

        let m = Metrics::new(StreamsRegistry::new());
        assert!(!m.render().unwrap().contains("sip_connections"));
        let config = NetConfig {
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            max_connections_per_source: 2,
            tcp_idle_timeout: Duration::from_secs(1),
            ..NetConfig::default()
        };
        let (network, _incoming) = Network::bind(config).await.unwrap();
        m.watch_sip_network(network.stats_handle());
        let addr = network.local_addr(Transport::Tcp).unwrap();
        // Three silent connections from one host: two admitted, one
        // refused by the per-source cap; the two then closed as idle.
        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let until = |needles: &'static [&'static str]| {
            let m = m.clone();
            async move {
                for _ in 0..100 {
                    let text = m.render().unwrap();
                    if needles.iter().all(|n| text.contains(n)) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("missing one of {needles:?} in:\n{}", m.render().unwrap());
            }
        };
        until(&[
            "sipsensor_collector_sip_connections_open{transport=\"tcp\"} 2",
            "sipsensor_collector_sip_connections_accepted_total{transport=\"tcp\"} 3",
            "sipsensor_collector_sip_connections_refused_total{transport=\"tcp\",cap=\"per_source\"} 1",
            "sipsensor_collector_sip_connections_refused_total{transport=\"tcp\",cap=\"overall\"} 0",
            "sipsensor_collector_sip_tls_handshakes_failed_total 0",
        ])
        .await;
        until(&[
            "sipsensor_collector_sip_connections_closed_idle_total{transport=\"tcp\"} 2",
            "sipsensor_collector_sip_connections_open{transport=\"tcp\"} 0",
        ])
        .await;
    }
}
