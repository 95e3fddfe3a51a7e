//! The acknowledgement path end to end, on loopback with a real store: an
//! acknowledged stream's agent gets its committed mark (docs/protocol.md
//! 11.4) at least once a second, and the ranges it declares are recorded
//! or refused.

use super::*;
use crate::media::acks::store::Acknowledger;
use crate::media::fixtures::{SSRC, agreed, desc, setup};
use crate::media::stream_spec;
use crate::stats::StreamsRegistry;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};
use crate::storage::writer::{StorageWriter, WriterConfig};
use crate::storage::{Batch, GapCause, NewSession, Reading, ReadingSource, Storage, TS_MAX};
use sipsensor_protocol::{
    BackfillMessage, CompoundWriter, NtpTime, RemoteMedia, RtcpPacket, RtpSender,
    parse_rtcp_compound,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;

fn wall_ns() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_nanos()).unwrap()
}

/// One reading of both channels at `ts_ns`, stored directly.
async fn store_one(
    store: &dyn Storage,
    session: SessionId,
    sensor: SensorId,
    ts_ns: i64,
    source: ReadingSource,
) {
    let reading = Reading {
        session,
        sensor,
        seq: 0,
        index: 0,
        ts_ns,
        raws: vec![Some(1), Some(2)],
        source,
    };
    store
        .write_batch(&Batch {
            readings: vec![reading],
            ..Batch::default()
        })
        .await
        .unwrap();
}

/// The committed marks in the collector's compounds, as they arrive, with
/// the time between compounds.
async fn next_mark(rtcp: &UdpSocket) -> u64 {
    let mut buf = [0u8; 1500];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(3), rtcp.recv(&mut buf))
            .await
            .expect("a compound within 3 s")
            .unwrap();
        let packets = parse_rtcp_compound(&buf[..n]).unwrap();
        assert!(matches!(packets[0], RtcpPacket::ReceiverReport(_)));
        for p in &packets {
            if let RtcpPacket::App(a) = p
                && let Ok(Some(BackfillMessage::Committed {
                    media_ssrc,
                    through_ns,
                })) = BackfillMessage::from_app(a)
            {
                assert_eq!(media_ssrc, SSRC);
                return through_ns;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_stream_gets_its_mark_and_its_agents_ranges_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> = Arc::new(
        SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let metrics = Metrics::new(StreamsRegistry::new());
    let writer = StorageWriter::spawn(
        store.clone(),
        WriterConfig {
            flush_interval: Duration::from_millis(20),
            ..WriterConfig::default()
        },
        metrics.clone(),
    );
    let config = MediaConfig {
        rtp_bind: "127.0.0.1:0".parse().unwrap(),
        receive_priority: crate::sip::config::RealtimePriority(0),
        ..MediaConfig::default()
    };
    let mut engine = MediaEngine::start(
        &config,
        "127.0.0.1".parse().unwrap(),
        writer.handle(),
        metrics.clone(),
    )
    .unwrap();
    let mut notices = engine.take_notices().unwrap();
    let (declared, declared_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(MediaNotice::Declared(d)) = notices.recv().await {
            let _ = declared.send(d);
        }
    });
    tokio::spawn(
        Acknowledger {
            store: store.clone(),
            writer: writer.handle(),
            media: engine.handle(),
            metrics: metrics.clone(),
        }
        .run(declared_rx),
    );

    let sensor = store
        .upsert_sensor("sip:s1@example.net", None)
        .await
        .unwrap();
    let t0 = wall_ns();
    let d = desc(1, 10);
    let session = store
        .open_session(&NewSession {
            sensor: sensor.id,
            call_id: "c1".into(),
            ssrc: SSRC,
            stream: stream_spec(&d),
            started_ns: t0,
        })
        .await
        .unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut a = agreed(d.clone());
    a.remote = Some(RemoteMedia {
        rtp: rtp.local_addr().unwrap(),
        rtcp: rtcp.local_addr().unwrap(),
    });
    let registry = StreamsRegistry::new();
    // The previous session ended 20 s ago; this one's first sample leaves
    // a break gap from there, which holds the mark.
    let previous = t0 - 20_000_000_000;
    store_one(
        store.as_ref(),
        session.id,
        sensor.id,
        previous,
        ReadingSource::Live,
    )
    .await;
    let mut s = setup(&registry, a, Some(session.id), Some(previous));
    s.sensor = sensor.id;
    s.acknowledge = true;
    let handle = engine.handle();
    handle.add(s).await.unwrap();
    let to_rtp = handle.rtp_addr();
    let to_rtcp = SocketAddr::new(to_rtp.ip(), to_rtp.port() + 1);

    // Tick 0 is t0; four packets of five instants 100 ms apart.
    let mut tx = RtpSender::with_start(SSRC, 100, 0x1000);
    let sr = tx.sender_report(0, NtpTime::from_unix(Duration::from_nanos(t0 as u64)));
    let compound = |apps: &[BackfillMessage]| {
        let mut buf = [0u8; 256];
        let mut w = CompoundWriter::new(&mut buf);
        w.sender_report(&sr).unwrap();
        w.sdes(SSRC, "s1@127.0.0.1", &[]).unwrap();
        for m in apps {
            w.app(&m.to_app(SSRC)).unwrap();
        }
        let n = w.finish().unwrap();
        buf[..n].to_vec()
    };
    rtcp.send_to(&compound(&[]), to_rtcp).await.unwrap();
    for k in 0..4u64 {
        let mut buf = [0u8; 128];
        let n = tx
            .write_samples(&mut buf, &d, k * 50, &[7; 10], false)
            .unwrap();
        rtp.send_to(&buf[..n], to_rtp).await.unwrap();
    }
    let ns = |t: i64| u64::try_from(t).unwrap();
    let last = ns(t0) + 1_900_000_000;
    // Everything up to the break is acknowledged, nothing beyond it,
    // though later samples are stored.
    let mut mark = 0;
    for _ in 0..10 {
        mark = next_mark(&rtcp).await;
        if mark == ns(previous) {
            break;
        }
    }
    assert_eq!(mark, ns(previous));
    // Nothing moves: the mark is repeated at least once a second.
    let quiet = tokio::time::Instant::now();
    assert_eq!(next_mark(&rtcp).await, ns(previous));
    assert!(quiet.elapsed() < Duration::from_millis(1300));

    // 11.7: the agent's spool lost the first 10 s of the break (expired),
    // and it sampled nothing in the rest (it was off: unsampled). Each is
    // repeated in every compound, as agents do; each is recorded once.
    let mid = t0 - 10_000_000_000;
    let expired = BackfillMessage::Expired {
        media_ssrc: SSRC,
        after_ns: ns(previous),
        before_ns: ns(mid),
    };
    let unsampled = BackfillMessage::Unsampled {
        media_ssrc: SSRC,
        after_ns: ns(mid),
        before_ns: ns(t0),
    };
    // The spool's oldest instant, `mid`, came by backfill.
    store_one(
        store.as_ref(),
        session.id,
        sensor.id,
        mid,
        ReadingSource::Backfilled,
    )
    .await;
    // And a false claim: nothing sampled where samples are stored.
    let false_claim = BackfillMessage::Unsampled {
        media_ssrc: SSRC,
        after_ns: ns(t0) - 1,
        before_ns: last,
    };
    for _ in 0..3 {
        rtcp.send_to(&compound(&[expired, unsampled, false_claim]), to_rtcp)
            .await
            .unwrap();
    }
    for _ in 0..10 {
        mark = next_mark(&rtcp).await;
        if mark == last {
            break;
        }
    }
    assert_eq!(mark, last, "the mark passed the declared ranges");
    let gaps = store.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap();
    let shape: Vec<_> = gaps.iter().map(|g| (g.from_ns, g.to_ns, g.cause)).collect();
    // The false claim left nothing of its own.
    assert_eq!(
        shape,
        vec![
            (previous, mid, GapCause::Expired),
            (mid, t0, GapCause::Source)
        ]
    );
    let text = metrics.render().unwrap();
    assert!(
        text.contains("sipsensor_collector_backfill_marks_total{kind=\"expired\"} 1")
            && text.contains("sipsensor_collector_backfill_marks_total{kind=\"unsampled\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sipsensor_collector_packets_rejected_total{reason=\"backfill_range\"} 1"),
        "{text}"
    );
    engine.stop().await;
    writer.shutdown().await;
}
