//! NACK and RTX over loopback (docs/protocol.md 11.5, 11.8): only the
//! session's peer is answered, under SRTP only an authenticated NACK, and
//! the RTX packets go out in their own SSRC and SRTP context.

use super::*;
use sipsensor_protocol::{CompoundWriter, Nack, parse_rtx};

const RTX_SSRC: u32 = 0x5e1f_0001;

fn recovery() -> LiveRecovery {
    LiveRecovery {
        instant_id: Some(1),
        rtx: Some(RtxPlan {
            ssrc: RTX_SSRC,
            payload_types: vec![(96, 98)],
            rtx_time: Duration::from_secs(3),
        }),
    }
}

fn nack_compound(media_ssrc: u32, lost: &[u16]) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mut w = CompoundWriter::new(&mut buf);
    w.receiver_report(&ReceiverReport {
        ssrc: 0x0bad_cafe,
        reports: vec![],
    })
    .unwrap();
    w.sdes(0x0bad_cafe, "collector@127.0.0.1", &[]).unwrap();
    w.nack(&Nack::for_lost(0x0bad_cafe, media_ssrc, lost))
        .unwrap();
    let n = w.finish().unwrap();
    buf.truncate(n);
    buf
}

fn ssrc_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[8], p[9], p[10], p[11]])
}

/// Wait (bounded) until `done` holds for the stream's figures.
fn wait_for(r: &Running, done: impl Fn(&StreamStats) -> bool) -> StreamStats {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = r.streamer.stats();
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// RTX packets that reached the collector within `within`.
fn rtx_packets(r: &Running, within: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(n) = r.collector.rtp.recv(&mut buf)
            && ssrc_of(&buf[..n]) == RTX_SSRC
        {
            out.push(buf[..n].to_vec());
        }
    }
    out
}

#[test]
fn only_the_peer_s_nack_about_our_stream_is_answered_with_rtx() {
    let sim = SimStream::new(42, 2, 100, true);
    let desc = sim.full_description(2);
    let (_tx, events) = handoff::events(0, 1);
    let r = start_recovering(sim, desc, events, None, &[], quick(), recovery());
    let live = r.collector.rtp_packets(5);
    let (first, _) = &live[0];
    let lost = parse_rtp(first).unwrap();
    assert!(lost.sample_instant(1).unwrap().is_some(), "stamped");

    // From another address, and about another SSRC: nothing.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ours = nack_compound(r.streamer.ssrc(), &[lost.sequence]);
    stranger.send_to(&ours, r.agent_rtcp).unwrap();
    let other = nack_compound(0x5555_5555, &[lost.sequence]);
    r.collector.rtcp.send_to(&other, r.agent_rtcp).unwrap();
    let s = wait_for(&r, |s| s.nacks_refused >= 2);
    assert_eq!((s.nacks_refused, s.nacks_received), (2, 0));
    assert!(rtx_packets(&r, Duration::from_millis(100)).is_empty());

    // From the peer about our stream: the packet again, as RTX.
    r.collector.rtcp.send_to(&ours, r.agent_rtcp).unwrap();
    let rtx = rtx_packets(&r, Duration::from_millis(300));
    let stats = r.streamer.stats();
    r.streamer.stop().unwrap();
    assert!(r.runner.stop(Duration::from_secs(1)));
    assert_eq!(rtx.len(), 1, "{stats:?}");
    let p = parse_rtp(&rtx[0]).unwrap();
    assert_eq!(p.payload_type, 98);
    let (osn, payload) = parse_rtx(p.payload).unwrap();
    assert_eq!((osn, payload), (lost.sequence, lost.payload));
    assert_eq!((stats.nacks_received, stats.rtx_sent), (1, 1));
}

#[test]
fn under_srtp_only_an_authenticated_nack_is_answered_in_the_rtx_context() {
    let sim = SimStream::new(42, 2, 100, true);
    let desc = sim.full_description(2);
    let (_tx, events) = handoff::events(0, 1);
    let keys = fresh_keys(SrtpSuite::AesCm128HmacSha1_80);
    let r = start_recovering(
        sim,
        desc,
        events,
        Some(keys.clone()),
        &[],
        quick(),
        recovery(),
    );
    let live = r.collector.rtp_packets(5);
    let mut rx = SrtpContext::inbound(&keys.send).unwrap();
    let mut plain = Vec::new();
    rx.unprotect_rtp(&live[0].0, &mut plain).unwrap();
    let lost = parse_rtp(&plain).unwrap().sequence;
    let nack = nack_compound(r.streamer.ssrc(), &[lost]);

    // Plain from the peer's own address: not authenticated, dropped.
    r.collector.rtcp.send_to(&nack, r.agent_rtcp).unwrap();
    let s = wait_for(&r, |s| s.srtcp_rejected >= 1);
    assert_eq!((s.srtcp_rejected, s.nacks_received), (1, 0));
    assert!(rtx_packets(&r, Duration::from_millis(100)).is_empty());

    let mut wire = Vec::new();
    SrtpContext::outbound(&keys.receive)
        .unwrap()
        .protect_rtcp(&nack, &mut wire)
        .unwrap();
    r.collector.rtcp.send_to(&wire, r.agent_rtcp).unwrap();
    let rtx = rtx_packets(&r, Duration::from_millis(300));
    r.streamer.stop().unwrap();
    assert!(r.runner.stop(Duration::from_secs(1)));
    assert_eq!(rtx.len(), 1);
    // Its own context: the RTX SSRC's rollover counter starts at 0.
    let mut rtx_rx = SrtpContext::inbound(&keys.send).unwrap();
    rtx_rx.unprotect_rtp(&rtx[0], &mut plain).unwrap();
    let (osn, _) = parse_rtx(parse_rtp(&plain).unwrap().payload).unwrap();
    assert_eq!(osn, lost);
}
