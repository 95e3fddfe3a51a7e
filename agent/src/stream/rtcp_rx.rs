//! The RTCP the collector sends back: receiver reports (loss, jitter,
//! round trip) and BYE, read on their own normal-priority thread.
//!
//! Parsing a compound allocates (the protocol crate returns owned
//! packets), so it stays off the real-time thread; this one sleeps in
//! `poll` on the socket and a stop pipe, costing nothing while nothing
//! arrives. Malformed datagrams are counted, never a panic.

use super::stats::{Shared, bump};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sipsensor_protocol::{
    NtpTime, ReportBlock, RtcpPacket, SrtpContext, parse_rtcp_compound, round_trip_time,
};
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
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
        srtp: Option<SrtpContext>,
    ) -> std::io::Result<RtcpReceiver> {
        let (stop_rx, stop) = nix::unistd::pipe().map_err(std::io::Error::from)?;
        let thread = std::thread::Builder::new()
            .name("rtcp-receiver".into())
            .stack_size(64 * 1024)
            .spawn(move || run(socket, &stop_rx, ssrc, &stats, sizes, srtp))?;
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
    mut srtp: Option<SrtpContext>,
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
                    if let Some(context) = srtp.as_mut() {
                        if context.unprotect_rtcp(data, &mut plain).is_err() {
                            bump(&stats.rtcp_received, 1);
                            bump(&stats.srtcp_rejected, 1);
                            continue;
                        }
                        data = &plain;
                    }
                    let from_peer = stats.is_peer(from, srtp.is_some());
                    handle(data, ssrc, stats, SystemTime::now(), from_peer);
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

/// One datagram: a compound RTCP packet (RFC 3550 6.1). Only one
/// `from_peer` (docs/protocol.md 6.1) with a report on `ssrc` keeps the
/// session alive: a stranger's compound does not.
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

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::{CompoundWriter, ReceiverReport};
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
        let peer: std::net::SocketAddr = "203.0.113.5:50001".parse().unwrap();
        // Before the address is known nothing plain is the peer's.
        assert!(!stats.is_peer(peer, false));
        stats.set_peer_rtcp(peer);
        assert!(stats.is_peer(peer, false));
        // Another host, or another port of the peer's host: a stranger.
        for stranger in ["198.51.100.9:50001", "203.0.113.5:50003"] {
            assert!(!stats.is_peer(stranger.parse().unwrap(), false));
        }
        // SRTCP already proved the sender holds the session key.
        assert!(stats.is_peer("198.51.100.9:1".parse().unwrap(), true));
        let report = rr(7, 0, 0, false);
        handle(&report, 7, &stats, SystemTime::now(), false);
        assert_eq!(stats.snapshot().peer_reports, 0, "a stranger's report");
        handle(&report, 7, &stats, SystemTime::now(), true);
        assert_eq!(stats.snapshot().peer_reports, 1);
    }

    #[test]
    fn the_thread_reads_the_socket_and_stops_on_request() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let addr = sock.local_addr().unwrap();
        let stats = Arc::new(Shared::default());
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        stats.set_peer_rtcp(peer.local_addr().unwrap());
        let (tx, mut sizes) = rtrb::RingBuffer::new(8);
        let rx = RtcpReceiver::spawn(sock, 7, stats.clone(), tx, None).unwrap();
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
