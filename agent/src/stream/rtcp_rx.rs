//! The RTCP the collector sends back: receiver reports (loss, jitter,
//! round trip) and BYE, read on their own normal-priority thread.
//!
//! Parsing a compound allocates (the protocol crate returns owned
//! packets), so it stays off the real-time thread; this one sleeps in
//! `poll` on the socket and a stop pipe, costing nothing while nothing
//! arrives. Malformed datagrams are counted, never a panic.

mod nacks;

use super::stats::{Shared, bump};
pub(crate) use nacks::MAX_PER_COMPOUND;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sipsensor_protocol::{
    BackfillMessage, NtpTime, ReportBlock, RtcpApp, RtcpPacket, SrtpContext, parse_rtcp_compound,
    round_trip_time,
};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

/// Larger than any compound a collector sends (RR + SDES + BYE is under
/// 100 bytes); a longer datagram is cut and then fails to parse: counted.
const RECV_BUF: usize = 2048;
/// Datagrams read per wake-up before polling again.
const BURST: usize = 64;

/// The running receiver thread.
#[derive(Debug)]
pub(crate) struct RtcpReceiver {
    thread: JoinHandle<UdpSocket>,
    stop: OwnedFd,
}

/// Where repair requests go: the peer's RTCP address (changed by a
/// re-INVITE; `None` while no session is up) and the ring to the sender
/// thread.
#[derive(Debug)]
pub(crate) struct Repair {
    pub peer: Arc<Mutex<Option<SocketAddr>>>,
    pub nacks: rtrb::Producer<u16>,
}

/// The session's inbound SRTCP context, swapped as sessions come and go.
pub(crate) type SharedSrtcp = Arc<Mutex<Option<SrtpContext>>>;

impl RtcpReceiver {
    /// Read `socket` (non-blocking) for reports about `ssrc`; each
    /// compound's size goes to `sizes` for the RTCP interval (6.3.3).
    /// With `srtp`, only compounds that pass SRTCP (RFC 3711 3.4) are
    /// read; the others are counted and dropped.
    pub fn spawn(
        socket: UdpSocket,
        ssrc: u32,
        stats: Arc<Shared>,
        sizes: rtrb::Producer<u16>,
        srtp: SharedSrtcp,
        repair: Repair,
    ) -> std::io::Result<RtcpReceiver> {
        let (stop_rx, stop) = nix::unistd::pipe().map_err(std::io::Error::from)?;
        let thread = std::thread::Builder::new()
            .name("rtcp-receiver".into())
            .stack_size(64 * 1024)
            .spawn(move || run(socket, &stop_rx, ssrc, &stats, sizes, srtp, repair))?;
        Ok(RtcpReceiver { thread, stop })
    }

    /// Stop the thread and get the socket back.
    pub fn stop(self) -> Option<UdpSocket> {
        let _ = nix::unistd::write(&self.stop, &[1]);
        self.thread.join().ok()
    }
}

fn run(
    socket: UdpSocket,
    stop: &OwnedFd,
    ssrc: u32,
    stats: &Shared,
    mut sizes: rtrb::Producer<u16>,
    srtp: SharedSrtcp,
    mut repair: Repair,
) -> UdpSocket {
    let mut buf = vec![0u8; RECV_BUF];
    let mut plain = Vec::with_capacity(RECV_BUF);
    loop {
        let mut fds = [
            PollFd::new(socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("RTCP receiver: poll failed ({e}); receiver reports are ignored");
                return socket;
            }
        }
        if fds[1].any().unwrap_or(true) {
            return socket;
        }
        for _ in 0..BURST {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let mut data = buf.get(..n).unwrap_or_default();
                    let mut keyed = srtp.lock().unwrap_or_else(|p| p.into_inner());
                    let authenticated = match keyed.as_mut() {
                        Some(context) => {
                            if context.unprotect_rtcp(data, &mut plain).is_err() {
                                bump(&stats.rtcp_received, 1);
                                bump(&stats.srtcp_rejected, 1);
                                continue;
                            }
                            data = &plain;
                            true
                        }
                        None => false,
                    };
                    drop(keyed);
                    // Authenticated under SRTP; else the peer's address.
                    let from_peer = authenticated
                        || *repair.peer.lock().unwrap_or_else(|p| p.into_inner()) == Some(from);
                    handle(data, ssrc, stats, SystemTime::now(), from_peer);
                    nacks::take_nacks(data, ssrc, from_peer, stats, &mut repair.nacks);
                    let _ = sizes.push(u16::try_from(n).unwrap_or(u16::MAX));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // ICMP errors reported on the socket (port unreachable):
                // nothing to read, try again at the next datagram.
                Err(_) => break,
            }
        }
    }
}

/// One datagram: a compound RTCP packet (RFC 3550 6.1). `from_peer`: it
/// is the session's peer's (it passed SRTCP, or came from the peer's RTCP
/// address in a plain session); only then may it move the committed mark
/// or, with a report on `ssrc`, keep the session alive (docs/protocol.md
/// 6.1): a stranger's compound does neither.
pub(crate) fn handle(data: &[u8], ssrc: u32, stats: &Shared, arrival: SystemTime, from_peer: bool) {
    bump(&stats.rtcp_received, 1);
    let packets = match parse_rtcp_compound(data) {
        Ok(p) => p,
        Err(_) => {
            bump(&stats.rtcp_malformed, 1);
            return;
        }
    };
    let ntp = NtpTime::from_system_time(arrival);
    let mut about_us = false;
    for p in &packets {
        let blocks: &[ReportBlock] = match p {
            RtcpPacket::ReceiverReport(rr) => &rr.reports,
            RtcpPacket::SenderReport(sr) => &sr.reports,
            RtcpPacket::Bye(_) => {
                stats
                    .peer_bye
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                &[]
            }
            RtcpPacket::App(app) if from_peer => {
                // A committed mark about our stream is a report on it too:
                // the collector sends one at least every second when
                // backfill is agreed (docs/protocol.md 6.1, 11.4), while
                // its receiver reports may be 5 s and more apart.
                about_us |= ssbf(app, ssrc, stats);
                &[]
            }
            _ => &[],
        };
        for b in blocks.iter().filter(|b| b.ssrc == ssrc) {
            // RFC 3550 6.4.1: RTT = A - LSR - DLSR.
            stats.report(b, round_trip_time(ntp, b));
            about_us = true;
        }
    }
    if about_us && from_peer {
        bump(&stats.peer_reports, 1);
    }
}

/// An `SSBF` APP packet (docs/protocol.md 11.4): a committed mark about
/// our stream is kept (the highest; within a session it never goes
/// back). Only compounds from the session's peer get here: under SRTP
/// they passed SRTCP. Marks about other streams, and the agent's own
/// subtypes, are ignored; a short one is malformed.
/// Returns whether it was a committed mark about our stream.
fn ssbf(app: &RtcpApp, ssrc: u32, stats: &Shared) -> bool {
    match BackfillMessage::from_app(app) {
        Ok(Some(BackfillMessage::Committed {
            media_ssrc,
            through_ns,
        })) if media_ssrc == ssrc => {
            stats
                .committed_mark
                .fetch_max(through_ns, std::sync::atomic::Ordering::Relaxed);
            true
        }
        Ok(_) => false,
        Err(_) => {
            bump(&stats.rtcp_malformed, 1);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::{CompoundWriter, ReceiverReport};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, UNIX_EPOCH};

    fn rr(ssrc_about: u32, last_sr: u32, dlsr: u32, bye: bool) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let mut w = CompoundWriter::new(&mut buf);
        w.receiver_report(&ReceiverReport {
            ssrc: 0x0bad_cafe,
            reports: vec![ReportBlock {
                ssrc: ssrc_about,
                fraction_lost: 64,
                cumulative_lost: -3,
                extended_highest_seq: 0x1_1236,
                jitter: 2,
                last_sr,
                delay_since_last_sr: dlsr,
            }],
        })
        .unwrap();
        w.sdes(0x0bad_cafe, "collector@203.0.113.5", &[]).unwrap();
        if bye {
            w.bye(&[0x0bad_cafe], None).unwrap();
        }
        let n = w.finish().unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn reports_about_our_stream_update_the_figures() {
        let stats = Shared::default();
        // The SR went out at 00:00:01.5, the RR arrives 1.6 s later having
        // been held 1.5 s by the collector: RTT 100 ms (docs/protocol.md 8).
        let sr_at = UNIX_EPOCH + Duration::from_millis(1_767_225_601_500);
        let lsr = NtpTime::from_system_time(sr_at).middle32();
        let arrival = sr_at + Duration::from_millis(1600);
        handle(
            &rr(0x1a2b_3c4d, lsr, 0x0001_8000, false),
            0x1a2b_3c4d,
            &stats,
            arrival,
            true,
        );
        let s = stats.snapshot();
        let r = s.last_report.unwrap();
        assert_eq!((r.fraction_lost, r.cumulative_lost, r.jitter), (64, -3, 2));
        assert_eq!(r.extended_highest_seq, 0x1_1236);
        let rtt = r.round_trip.unwrap();
        assert!(
            rtt.abs_diff(Duration::from_millis(100)) < Duration::from_micros(100),
            "{rtt:?}"
        );
        assert!(!s.peer_bye);
        // Another source's report is ignored; a BYE is noted.
        handle(&rr(0x5555, 0, 0, true), 0x1a2b_3c4d, &stats, arrival, true);
        let s = stats.snapshot();
        assert_eq!((s.receiver_reports, s.rtcp_received), (1, 2));
        // Only the report about our stream is the peer's heartbeat.
        assert_eq!(s.peer_reports, 1);
        assert!(s.peer_bye);
    }

    /// The receiver thread on `sock` for SSRC 7, taking plain RTCP from
    /// `peer` and SRTCP under `srtcp`; the sizes ring's other end.
    fn spawn_on(
        sock: UdpSocket,
        stats: &Arc<Shared>,
        peer: Option<std::net::SocketAddr>,
        srtcp: Option<SrtpContext>,
    ) -> (RtcpReceiver, rtrb::Consumer<u16>) {
        let (tx, sizes) = rtrb::RingBuffer::new(8);
        let (nacks, _) = rtrb::RingBuffer::new(8);
        let repair = Repair {
            peer: Arc::new(Mutex::new(peer)),
            nacks,
        };
        let srtcp = Arc::new(Mutex::new(srtcp));
        let rx = RtcpReceiver::spawn(sock, 7, stats.clone(), tx, srtcp, repair).unwrap();
        (rx, sizes)
    }

    fn with_app(app: &RtcpApp) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let mut w = CompoundWriter::new(&mut buf);
        w.receiver_report(&ReceiverReport {
            ssrc: 0x0bad_cafe,
            reports: vec![],
        })
        .unwrap();
        w.sdes(0x0bad_cafe, "collector@203.0.113.5", &[]).unwrap();
        w.app(app).unwrap();
        let n = w.finish().unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn the_committed_mark_about_our_stream_is_kept_and_never_goes_back() {
        let stats = Shared::default();
        let mark = |media_ssrc, through_ns| {
            with_app(
                &BackfillMessage::Committed {
                    media_ssrc,
                    through_ns,
                }
                .to_app(0x0bad_cafe),
            )
        };
        let now = SystemTime::now();
        // From a stranger (plain RTP, another address): ignored.
        handle(&mark(7, 1_000), 7, &stats, now, false);
        assert_eq!(stats.committed_mark.load(Ordering::Relaxed), 0);
        handle(&mark(7, 1_000), 7, &stats, now, true);
        assert_eq!(stats.committed_mark.load(Ordering::Relaxed), 1_000);
        // Another stream's mark, a mark going back, the agent's own
        // message echoed: none moves it.
        handle(&mark(8, 9_000), 7, &stats, now, true);
        handle(&mark(7, 500), 7, &stats, now, true);
        let expired = BackfillMessage::Expired {
            media_ssrc: 7,
            after_ns: 0,
            before_ns: 99_000,
        };
        handle(&with_app(&expired.to_app(7)), 7, &stats, now, true);
        assert_eq!(stats.committed_mark.load(Ordering::Relaxed), 1_000);
        // A short SSBF is malformed, counted, and moves nothing.
        let mut short = BackfillMessage::Committed {
            media_ssrc: 7,
            through_ns: 5_000,
        }
        .to_app(0x0bad_cafe);
        short.data.truncate(8);
        handle(&with_app(&short), 7, &stats, now, true);
        assert_eq!(stats.committed_mark.load(Ordering::Relaxed), 1_000);
        assert_eq!(stats.snapshot().rtcp_malformed, 1);
    }

    #[test]
    fn without_srtp_a_mark_counts_only_from_the_peers_address() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let addr = sock.local_addr().unwrap();
        let stats = Arc::new(Shared::default());
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (rx, _sizes) = spawn_on(sock, &stats, Some(peer.local_addr().unwrap()), None);
        let mark = |through_ns| {
            with_app(
                &BackfillMessage::Committed {
                    media_ssrc: 7,
                    through_ns,
                }
                .to_app(0x0bad_cafe),
            )
        };
        // A stranger spoofing the collector's SSRC from another address.
        let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
        stranger.send_to(&mark(99), addr).unwrap();
        for _ in 0..500 {
            if stats.snapshot().rtcp_received == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(stats.committed_mark.load(Ordering::Relaxed), 0);
        peer.send_to(&mark(42), addr).unwrap();
        for _ in 0..500 {
            if stats.committed_mark.load(Ordering::Relaxed) == 42 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        rx.stop();
        assert_eq!(stats.snapshot().rtcp_received, 2);
        assert_eq!(stats.committed_mark.load(Ordering::Relaxed), 42);
    }

    #[test]
    fn a_forged_mark_fails_srtcp_and_never_reaches_the_stats() {
        use sipsensor_protocol::{SrtpKey, SrtpSuite};
        let right = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80);
        let wrong = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let addr = sock.local_addr().unwrap();
        let stats = Arc::new(Shared::default());
        let inbound = SrtpContext::inbound(&right).unwrap();
        let (rx, _sizes) = spawn_on(sock, &stats, None, Some(inbound));
        let plain = with_app(
            &BackfillMessage::Committed {
                media_ssrc: 7,
                through_ns: 42,
            }
            .to_app(0x0bad_cafe),
        );
        let mut forged = Vec::new();
        SrtpContext::outbound(&wrong)
            .unwrap()
            .protect_rtcp(&plain, &mut forged)
            .unwrap();
        let mut genuine = Vec::new();
        SrtpContext::outbound(&right)
            .unwrap()
            .protect_rtcp(&plain, &mut genuine)
            .unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(&plain, addr).unwrap();
        peer.send_to(&forged, addr).unwrap();
        for _ in 0..500 {
            if stats.snapshot().srtcp_rejected == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(stats.committed_mark.load(Ordering::Relaxed), 0);
        peer.send_to(&genuine, addr).unwrap();
        for _ in 0..500 {
            if stats.committed_mark.load(Ordering::Relaxed) == 42 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        rx.stop();
        assert_eq!(stats.committed_mark.load(Ordering::Relaxed), 42);
    }

    #[test]
    fn malformed_compounds_are_counted_never_a_panic() {
        let stats = Shared::default();
        let good = rr(1, 0, 0, false);
        // Every truncation (but the one that leaves a whole RR, 32
        // bytes, which is valid) and a flipped version bit.
        let mut inputs: Vec<Vec<u8>> = (0..good.len())
            .filter(|n| *n != 32)
            .map(|n| good[..n].to_vec())
            .collect();
        let mut v1 = good.clone();
        v1[0] = 0x40 | (v1[0] & 0x3f);
        inputs.push(v1);
        for i in &inputs {
            handle(i, 1, &stats, SystemTime::now(), true);
        }
        let s = stats.snapshot();
        assert_eq!(s.rtcp_malformed, inputs.len() as u64);
        assert_eq!((s.receiver_reports, s.peer_reports), (0, 0));
    }

    #[test]
    fn only_the_peers_reports_keep_the_session_alive() {
        let stats = Shared::default();
        let report = rr(7, 0, 0, false);
        handle(&report, 7, &stats, SystemTime::now(), false);
        assert_eq!(stats.snapshot().peer_reports, 0, "a stranger's report");
        handle(&report, 7, &stats, SystemTime::now(), true);
        assert_eq!(stats.snapshot().peer_reports, 1);
    }

    /// The collector's marks come every second when backfill is agreed,
    /// its receiver reports only every 5 s and more at a low rate: a mark
    /// about our stream from the peer keeps the session alive (with a 4 s
    /// peer timeout, sessions were ended and set up again every few
    /// seconds); another stream's mark, or a stranger's, does not.
    #[test]
    fn a_committed_mark_from_the_peer_is_a_heartbeat() {
        let stats = Shared::default();
        let mark = |media_ssrc| {
            with_app(
                &BackfillMessage::Committed {
                    media_ssrc,
                    through_ns: 5,
                }
                .to_app(0x0bad_cafe),
            )
        };
        handle(&mark(8), 7, &stats, SystemTime::now(), true);
        handle(&mark(7), 7, &stats, SystemTime::now(), false);
        assert_eq!(stats.snapshot().peer_reports, 0);
        handle(&mark(7), 7, &stats, SystemTime::now(), true);
        assert_eq!(stats.snapshot().peer_reports, 1);
    }

    #[test]
    fn the_thread_reads_the_socket_and_stops_on_request() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let addr = sock.local_addr().unwrap();
        let stats = Arc::new(Shared::default());
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (rx, mut sizes) = spawn_on(sock, &stats, Some(peer.local_addr().unwrap()), None);
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let packet = rr(7, 0, 0, false);
        stranger.send_to(&packet, addr).unwrap();
        peer.send_to(&packet, addr).unwrap();
        peer.send_to(b"junk", addr).unwrap();
        // Bounded wait for the three datagrams to be read.
        for _ in 0..500 {
            if stats.snapshot().rtcp_received == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let back = rx.stop().expect("the socket comes back");
        assert_eq!(back.local_addr().unwrap(), addr);
        let s = stats.snapshot();
        assert_eq!(
            (s.rtcp_received, s.rtcp_malformed, s.receiver_reports),
            (3, 1, 2)
        );
        // The stranger's copy of the report is read but is no heartbeat.
        assert_eq!(s.peer_reports, 1);
        assert_eq!(sizes.pop().unwrap(), packet.len() as u16);
    }
}
