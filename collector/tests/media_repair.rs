//! docs/protocol.md 11.5 and 11.6 through the real receive thread and
//! SQLite: a lost live packet is NACKed on the wire (to the session's RTCP
//! address), its retransmission stored once as `resent`, and a backfilled
//! copy of a stored packet changes nothing.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sipsensor_collector::config::MediaConfig;
use sipsensor_collector::media::{MediaEngine, StreamSetup, stream_spec};
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::sip::config::RealtimePriority;
use sipsensor_collector::stats::{StreamInfo, StreamsRegistry};
use sipsensor_collector::storage::sqlite::{SqliteOptions, SqliteStore};
use sipsensor_collector::storage::writer::{StorageWriter, WriterConfig};
use sipsensor_collector::storage::{NewSession, Order, ReadingSource, SampleQuery, Storage};
use sipsensor_protocol::{
    Agreed, AgreedBackfill, AgreedRecovery, AgreedRtx, ChannelSpec, MediaDirection, RemoteMedia,
    RtcpPacket, RtpSender, SampleFormat, SampleInstant, StreamDescription, Unit,
    parse_rtcp_compound, parse_rtp, write_rtx_payload,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

const LIVE: u32 = 0x1a2b_3c4d;
const RTX: u32 = 0x5e1f_0001;
const BACKFILL: u32 = 0x0bf0_0001;
const T0_NS: u64 = 1_767_225_600_000_000_000;

fn description(samples_pt: u8) -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: 1,
        samples: Some(SampleFormat {
            payload_type: samples_pt,
            period: 10,
            samples_per_packet: 5,
            channels: vec![ChannelSpec {
                name: "temperature".into(),
                unit: Unit::from_symbol("Cel").unwrap(),
                scale: -2,
            }],
        }),
        events: None,
    }
}

/// The stamped samples packet of instants `packet * 5 ..`, 10 Hz.
fn samples(tx: &mut RtpSender, d: &StreamDescription, packet: u64) -> Vec<u8> {
    let instant = SampleInstant {
        first_ns: T0_NS + packet * 500_000_000,
        step_ns: 100_000_000,
    };
    let values: Vec<i32> = (0..5).map(|k| (packet * 5 + k) as i32).collect();
    let mut buf = [0u8; 128];
    let n = tx
        .write_samples_stamped(&mut buf, d, packet * 50, &values, false, (1, instant))
        .unwrap();
    buf[..n].to_vec()
}

fn rtx_of(tx: &mut RtpSender, original: &[u8]) -> Vec<u8> {
    let o = parse_rtp(original).unwrap();
    let instant = o.sample_instant(1).unwrap().unwrap().encode();
    let mut buf = [0u8; 160];
    let n = tx
        .write_extended(&mut buf, 98, o.marker, o.timestamp, &[(1, &instant)], |b| {
            write_rtx_payload(b, o.sequence, o.payload)
        })
        .unwrap();
    buf[..n].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_packet_is_nacked_resent_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> = Arc::new(
        SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let registry = StreamsRegistry::new();
    let metrics = Metrics::new(registry.clone());
    let writer = StorageWriter::spawn(store.clone(), WriterConfig::default(), metrics.clone());
    let config = MediaConfig {
        rtp_bind: "127.0.0.1:0".parse().unwrap(),
        receive_priority: RealtimePriority(0),
        ..MediaConfig::default()
    };
    let engine = MediaEngine::start(
        &config,
        "127.0.0.1".parse().unwrap(),
        writer.handle(),
        metrics.clone(),
    )
    .unwrap();
    let media = engine.handle();

    let agent_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent_rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent_rtcp
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let desc = description(96);
    let agreed = Agreed {
        description: desc.clone(),
        direction: MediaDirection::RecvOnly,
        remote: Some(RemoteMedia {
            rtp: agent_rtp.local_addr().unwrap(),
            rtcp: agent_rtcp.local_addr().unwrap(),
        }),
        remote_ssrc: Some(LIVE),
        remote_cname: None,
        srtp: None,
    };
    let aor = "sip:s1@example.net";
    let sensor = store.upsert_sensor(aor, None).await.unwrap().id;
    let session = store
        .open_session(&NewSession {
            sensor,
            call_id: "c1".into(),
            ssrc: LIVE,
            stream: stream_spec(&desc),
            started_ns: T0_NS as i64,
        })
        .await
        .unwrap()
        .id;
    let spec = stream_spec(&desc);
    let stats = registry.open(StreamInfo {
        sensor,
        aor: aor.into(),
        session,
        call_id: "c1".into(),
        ssrc: LIVE,
        remote: None,
        rate_hz: spec.rate_hz,
        channels: spec.channels,
        started_ns: T0_NS as i64,
    });
    let recovery = AgreedRecovery {
        instant_id: Some(1),
        rtx: Some(AgreedRtx {
            payload_types: vec![(96, 98)],
            rtx_time: Duration::from_secs(3),
            ssrc: Some(RTX),
        }),
        backfill: Some(AgreedBackfill {
            payload_type: 100,
            mark: 0,
            oldest: None,
            max_rate: Some(2000),
            ssrc: Some(BACKFILL),
        }),
    };
    media
        .add(StreamSetup {
            sensor,
            aor: aor.into(),
            session: Some(session),
            agreed,
            recovery,
            signalling_ip: None,
            local_ssrc: 0x0bad_cafe,
            cname: "collector@127.0.0.1".into(),
            previous_sample_ns: None,
            stats,
            acknowledge: false,
        })
        .await
        .unwrap();

    let to: SocketAddr = media.rtp_addr();
    let mut live = RtpSender::with_start(LIVE, 0xfffe, 0);
    let p0 = samples(&mut live, &desc, 0);
    let lost = samples(&mut live, &desc, 1);
    let p2 = samples(&mut live, &desc, 2);
    agent_rtp.send_to(&p0, to).unwrap();
    agent_rtp.send_to(&p2, to).unwrap();

    // The NACK for 0xffff comes to the session's RTCP address.
    let mut buf = [0u8; 1500];
    let nack = loop {
        let (n, _) = agent_rtcp.recv_from(&mut buf).expect("a NACK within 3 s");
        let nack = parse_rtcp_compound(&buf[..n])
            .unwrap()
            .into_iter()
            .find_map(|p| match p {
                RtcpPacket::Nack(n) => Some(n),
                _ => None,
            });
        if let Some(nack) = nack {
            break nack;
        }
    };
    assert_eq!((nack.sender_ssrc, nack.media_ssrc), (0x0bad_cafe, LIVE));
    assert_eq!(nack.lost().collect::<Vec<_>>(), vec![0xffff]);

    let mut rtx = RtpSender::with_start(RTX, 1, 0);
    let resent = rtx_of(&mut rtx, &lost);
    agent_rtp.send_to(&resent, to).unwrap();
    // Replayed, and the first packet backfilled again: nothing new.
    agent_rtp.send_to(&resent, to).unwrap();
    let mut backfill = RtpSender::with_start(BACKFILL, 9, 0);
    agent_rtp
        .send_to(&samples(&mut backfill, &description(100), 0), to)
        .unwrap();

    let query = SampleQuery {
        sensor,
        from_ns: i64::MIN,
        to_ns: i64::MAX,
        limit: 100,
        order: Order::Asc,
        after: None,
    };
    let mut stored = Vec::new();
    for _ in 0..50 {
        media.flush().await;
        stored = store.samples(&query).await.unwrap();
        if stored.len() >= 15 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: Vec<(i64, i64, ReadingSource)> =
        stored.iter().map(|s| (s.ts_ns, s.raw, s.source)).collect();
    let want: Vec<(i64, i64, ReadingSource)> = (0..15u64)
        .map(|i| {
            let source = if (5..10).contains(&i) {
                ReadingSource::Resent
            } else {
                ReadingSource::Live
            };
            ((T0_NS + i * 100_000_000) as i64, i as i64, source)
        })
        .collect();
    assert_eq!(got, want, "every sample once, the lost ones resent");

    let mut recovered = 0;
    for _ in 0..30 {
        recovered = metrics.packets_recovered.get();
        if recovered > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recovered, 1);
    assert!(metrics.nacks_sent.get() >= 1);
    engine.stop().await;
    writer.shutdown().await;
}
