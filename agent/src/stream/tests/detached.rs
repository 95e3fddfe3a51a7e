//! The sender started with no session, as the agent starts with no
//! collector reachable: it samples and spools, sends nothing, then
//! streams once a session attaches, with no gap on the grid of instants
//! between what was spooled only and what went live.

use super::*;
use crate::spool;
use crate::stream::test_spool::{open_in, sample_instants as instants};

#[test]
fn with_no_session_it_spools_then_streams_from_the_next_instant_without_a_gap() {
    let sim = SimStream::new(42, 2, 100, true);
    let desc = sim.full_description(2);
    let hub = StatusHub::new();
    let (board, runner) = sim.board(&hub).unwrap();
    let (_tx, events) = handoff::events(0, 1);
    let collector = Collector::new();
    let (feed, mut rx) = spool::feed(spool::FEED_BYTES);
    let mut ids = IdGenerator::seeded(11);
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let plan = StreamPlan {
        rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
        rtcp: UdpSocket::bind("127.0.0.1:0").unwrap(),
        remote_rtp: nowhere,
        remote_rtcp: nowhere,
        description: desc.clone(),
        sender: RtpSender::new(&mut ids),
        ids,
        cname: "sensor-0001@127.0.0.1".into(),
        channels: sim.channels.clone(),
        inputs: Vec::new(),
        options: quick(),
        srtp: None,
        spool: Some(feed),
        recovery: LiveRecovery::default(),
    };
    let rt = RealtimeConfig {
        priority: 10,
        cpu: None,
    };
    let mut streamer = Streamer::start_detached(plan, board, events, &rt, hub).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let dir = tempfile::TempDir::new().unwrap();
    let mut store = open_in(dir.path(), SystemTime::now());
    rx.drain(&mut store, &mut Vec::new(), SystemTime::now());
    let before = instants(&store);
    assert!(before.len() >= 10, "spooled with no session: {before:?}");
    let mut buf = [0u8; 2048];
    assert!(collector.rtp.recv(&mut buf).is_err(), "nothing sent");
    assert_eq!(streamer.remote_rtp(), None);

    streamer
        .attach(SessionPlan {
            remote_rtp: collector.rtp.local_addr().unwrap(),
            remote_rtcp: collector.rtcp.local_addr().unwrap(),
            description: desc,
            srtp: None,
            recovery: LiveRecovery {
                instant_id: Some(1),
                rtx: None,
            },
        })
        .unwrap();
    assert_eq!(streamer.remote_rtp(), collector.rtp.local_addr().ok());
    let same_port = streamer.rtp_socket().unwrap().local_addr().unwrap();
    let live = collector.rtp_packets(10);
    // The handle other senders get is the live stream's own port.
    let source = (0..100)
        .find_map(|_| collector.rtp.recv_from(&mut buf).ok())
        .map(|(_, from)| from);
    assert_eq!(source, Some(same_port));
    let first_live = streamer.first_live_ns();
    streamer.stop().unwrap();
    assert!(runner.stop(Duration::from_secs(1)));
    assert_eq!(live.len(), 10);
    let stamps: Vec<(bool, u64)> = live
        .iter()
        .map(|(p, _)| {
            let p = parse_rtp(p).unwrap();
            (p.marker, p.sample_instant(1).unwrap().unwrap().first_ns)
        })
        .collect();
    let l = stamps[0].1;
    assert_eq!(first_live, Some(l), "L is the first live instant");
    assert!(stamps[0].0, "the marker on the first live packet");
    for (k, (marker, first)) in stamps.iter().enumerate() {
        assert_eq!(*first, l + 20_000_000 * k as u64, "packet {k}");
        assert!(k == 0 || !marker);
    }

    rx.drain(&mut store, &mut Vec::new(), SystemTime::now());
    let all = instants(&store);
    // One grid, every instant once, from the first spooled one through
    // the live ones: nothing lost at the attach.
    let first = all[0];
    let grid: Vec<i64> = (0..all.len() as i64)
        .map(|k| first + k * 10_000_000)
        .collect();
    assert_eq!(all, grid);
    assert!(first < l as i64 && all.contains(&(l as i64)));
    assert!(before.iter().all(|t| *t < l as i64));
}
