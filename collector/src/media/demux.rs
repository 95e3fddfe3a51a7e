//! Which stream a datagram belongs to, sans-I/O: the receive thread hands
//! every datagram of the shared port pair here with its arrival time and
//! carries out the [`Delivery`] it gets back (count and log a reject, ...).
//!
//! A stream's packets are found by (source address, SSRC) once it has
//! latched; before that by its signalled SSRC (`a=ssrc`, checked against the
//! SDP and SIP peer addresses) or, without one, by those addresses alone.
//! Packets from a sensor we are calling, which may stream before its stream
//! is set up, are kept a few seconds and replayed when it is. RTCP is bound
//! the same way: a sender report counts only with the stream's SSRC and
//! from its RTCP address (see `Slot::rtcp_may_come_from`).
//!
//! A stream's retransmission and backfill SSRCs (docs/protocol.md 11.5,
//! 11.6: the same RTP session) are its own only from the exact address its
//! live SSRC latched to: a stranger cannot inject under them, and they
//! never latch a stream themselves.
//!
//! An SRTP stream takes only what its own key authenticated (the
//! decryptor says which stream's key that was): a plain packet that names
//! it, by its SSRC or by its address before it latched, is refused, while
//! plain packets from the same address go on to the plain streams there (a
//! plain and an SRTP sensor behind one NAT).

use super::Reject;
use super::stream::{ClockRefusal, Outcome, Sink, SrRefusal, StreamRx};
use sipsensor_protocol::{BackfillMessage, RtcpPacket, parse_rtcp_compound, parse_rtp};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Packets from an awaited address kept before their stream is set up.
const LIMBO_MAX: usize = 4096;
const LIMBO_AGE: Duration = Duration::from_secs(3);

/// Identifies a stream in the engine for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(pub u64);

/// Every stream slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} streams are being received, the configured maximum")]
pub struct Full(pub u32);

/// The socket of the pair a datagram came in on: RTP on the even port,
/// RTCP on the next (RFC 3550 11; RFC 5761 muxing is not offered, so the
/// port alone tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Port {
    Rtp,
    Rtcp,
}

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub(super) struct Datagram<'a> {
    pub data: &'a [u8],
    pub from: SocketAddr,
    pub port: Port,
    /// Longer than the receive buffer (MSG_TRUNC): only a prefix is here.
    pub truncated: bool,
    /// The SRTP stream whose key authenticated it (and `data` is the
    /// decrypted packet); `None` when it came in plain.
    pub authenticated_for: Option<StreamKey>,
}

/// A datagram (or an RTCP sender report in one) no stream took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rejected {
    pub reason: Reject,
    pub from: SocketAddr,
    /// For the log line.
    pub detail: String,
}

/// What became of an RTCP sender report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Report {
    Taken(StreamKey),
    Refused(Rejected),
    /// An `SSBF` message (docs/protocol.md 11.4) in a compound whose sender
    /// report stream `key` took: from that stream's agent.
    Backfill {
        key: StreamKey,
        message: BackfillMessage,
    },
}

/// What became of a datagram. The stream's own rows and rejects are in the
/// [`Sink`] it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Delivery {
    /// RTP handed to stream `key`, and what the stream made of it.
    Rtp {
        key: StreamKey,
        outcome: Outcome,
    },
    /// An RTCP compound; one entry per sender report in it (receiver
    /// reports, SDES and BYE from an agent carry nothing the collector
    /// stores: the session ends by SIP BYE).
    Rtcp(Vec<Report>),
    /// From an awaited sensor whose stream is not set up yet: kept. When
    /// `evicted`, the oldest kept packet was dropped to make room.
    Kept {
        evicted: bool,
    },
    Rejected(Rejected),
}

/// A packet that came before its stream existed.
#[derive(Debug)]
struct Early {
    from: SocketAddr,
    data: Vec<u8>,
    arrival: Instant,
}

#[derive(Debug)]
struct Slot {
    key: StreamKey,
    stream: StreamRx,
    /// The (address, SSRC) it latched to, its key in `by_addr`.
    latched: Option<(SocketAddr, u32)>,
    /// Where its sender reports come from, once one was taken.
    rtcp_from: Option<SocketAddr>,
    /// Its RTX and backfill sources that have sent, their keys in `by_addr`.
    extra_latched: Vec<(SocketAddr, u32)>,
    /// SRTP (RFC 3711): only packets its own key authenticated are its.
    srtp: bool,
}

impl Slot {
    /// Whether a packet authenticated for `authenticated_for` (`None`:
    /// plain) may be this stream's: a plain stream's packets come plain,
    /// an SRTP stream's under its own key.
    fn admits(&self, authenticated_for: Option<StreamKey>) -> bool {
        match authenticated_for {
            None => !self.srtp,
            Some(key) => self.srtp && key == self.key,
        }
    }

    /// Whether RTCP from `from` may be this stream's (RFC 3550 8.2: a
    /// source is its SSRC at one transport address). Once a report was
    /// taken, only its address; before, the negotiated RTCP address, or,
    /// when RTP came from another address than the SDP's (a NAT or relay
    /// translated it), any port of the address RTP latched to, as RTP
    /// itself latches (symmetric RTP).
    fn rtcp_may_come_from(&self, from: SocketAddr) -> bool {
        if let Some(bound) = self.rtcp_from {
            return bound == from;
        }
        if self.stream.sdp_rtcp == Some(from) {
            return true;
        }
        self.latched
            .is_some_and(|(rtp, _)| Some(rtp) != self.stream.sdp_rtp && rtp.ip() == from.ip())
    }
}

/// The lookup state of every stream being received.
#[derive(Debug)]
pub(super) struct Demux {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    keys: HashMap<StreamKey, usize>,
    /// Latched streams by where their packets come from.
    by_addr: HashMap<(SocketAddr, u32), usize>,
    /// Streams by SSRC (signalled, or learnt when they latched).
    by_ssrc: HashMap<u32, Vec<usize>>,
    /// Streams by their RTX and backfill SSRCs.
    by_extra_ssrc: HashMap<u32, Vec<usize>>,
    /// Streams without a signalled SSRC, by the addresses they may use.
    by_ip: HashMap<IpAddr, Vec<usize>>,
    /// Sensors being called, until when their early packets are kept.
    awaiting: HashMap<IpAddr, Instant>,
    limbo: VecDeque<Early>,
    max_streams: u32,
    next_key: u64,
}

/// Takes `slot` out of the list under `key` (one entry, not a scan of the
/// map: 10,000 sessions hanging up at once must not cost 10,000 scans).
fn remove_slot<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<usize>>, key: K, slot: usize) {
    if let Some(v) = map.get_mut(&key) {
        v.retain(|s| *s != slot);
        if v.is_empty() {
            map.remove(&key);
        }
    }
}

fn canonical(from: SocketAddr) -> SocketAddr {
    SocketAddr::new(from.ip().to_canonical(), from.port())
}

impl Demux {
    pub fn new(max_streams: u32) -> Self {
        Demux {
            slots: Vec::new(),
            free: Vec::new(),
            keys: HashMap::new(),
            by_addr: HashMap::new(),
            by_ssrc: HashMap::new(),
            by_extra_ssrc: HashMap::new(),
            by_ip: HashMap::new(),
            awaiting: HashMap::new(),
            limbo: VecDeque::new(),
            max_streams,
            next_key: 0,
        }
    }

    /// Starts routing packets to `stream`. Packets kept for its addresses
    /// are replayed to it at once (a sensor answering our INVITE starts
    /// streaming before the stream exists); what became of them is
    /// returned with the key.
    pub fn add(
        &mut self,
        stream: StreamRx,
        now_ns: i64,
        sink: &mut Sink,
    ) -> Result<(StreamKey, Vec<Delivery>), Full> {
        if self.keys.len() >= self.max_streams as usize {
            return Err(Full(self.max_streams));
        }
        self.next_key += 1;
        let key = StreamKey(self.next_key);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        match stream.expected_ssrc {
            Some(ssrc) => self.by_ssrc.entry(ssrc).or_default().push(slot),
            None => {
                for ip in &stream.allowed_ips {
                    self.by_ip.entry(*ip).or_default().push(slot);
                }
            }
        }
        for ssrc in stream.extra_ssrcs() {
            self.by_extra_ssrc.entry(ssrc).or_default().push(slot);
        }
        for ip in &stream.allowed_ips {
            self.awaiting.remove(ip);
        }
        let allowed = stream.allowed_ips.clone();
        self.slots[slot] = Some(Slot {
            key,
            stream,
            latched: None,
            rtcp_from: None,
            extra_latched: Vec::new(),
            srtp: false,
        });
        self.keys.insert(key, slot);
        let (mine, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.limbo)
            .into_iter()
            .partition(|e| allowed.contains(&e.from.ip().to_canonical()));
        self.limbo = rest;
        let replayed = mine
            .into_iter()
            .map(|e| {
                let kept = Datagram {
                    data: &e.data,
                    from: e.from,
                    port: Port::Rtp,
                    truncated: false,
                    authenticated_for: None,
                };
                self.rtp(kept, e.arrival, now_ns, false, sink)
            })
            .collect();
        Ok((key, replayed))
    }

    /// Takes the RTP kept for `ips` (a sensor we called streamed before its
    /// stream was set up) as (data, source, arrival), so an SRTP stream's
    /// are authenticated before they are replayed.
    pub fn take_kept(&mut self, ips: &[IpAddr]) -> Vec<(Vec<u8>, SocketAddr, Instant)> {
        let (mine, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.limbo)
            .into_iter()
            .partition(|e| ips.contains(&e.from.ip().to_canonical()));
        self.limbo = rest;
        mine.into_iter()
            .map(|e| (e.data, e.from, e.arrival))
            .collect()
    }

    /// Stops routing packets to a stream and gives it back (to be
    /// finished); its later packets are unknown.
    pub fn remove(&mut self, key: StreamKey) -> Option<StreamRx> {
        let slot = self.keys.remove(&key)?;
        let Slot {
            stream,
            latched,
            extra_latched,
            ..
        } = self.slots.get_mut(slot)?.take()?;
        if let Some((addr, ssrc)) = latched {
            self.by_addr.remove(&(addr, ssrc));
            remove_slot(&mut self.by_ssrc, ssrc, slot);
        }
        for source in extra_latched {
            self.by_addr.remove(&source);
        }
        for ssrc in stream.extra_ssrcs() {
            remove_slot(&mut self.by_extra_ssrc, ssrc, slot);
        }
        match stream.expected_ssrc {
            Some(ssrc) => remove_slot(&mut self.by_ssrc, ssrc, slot),
            None => {
                for ip in &stream.allowed_ips {
                    remove_slot(&mut self.by_ip, *ip, slot);
                }
            }
        }
        self.free.push(slot);
        Some(stream)
    }

    /// Marks a stream as SRTP (`on`) or plain, as its offer/answer (or a
    /// re-INVITE) agreed: from now on it takes only packets of that kind.
    pub fn set_srtp(&mut self, key: StreamKey, on: bool) {
        if let Some(s) = self
            .keys
            .get(&key)
            .and_then(|slot| self.slots.get_mut(*slot))
            .and_then(Option::as_mut)
        {
            s.srtp = on;
        }
    }

    pub fn stream_mut(&mut self, key: StreamKey) -> Option<&mut StreamRx> {
        let slot = *self.keys.get(&key)?;
        self.slots
            .get_mut(slot)
            .and_then(Option::as_mut)
            .map(|s| &mut s.stream)
    }

    /// Changes a stream with `change` (a re-INVITE), then routes the RTX
    /// and backfill SSRCs it has afterwards, and no longer those it had
    /// (docs/protocol.md 11.1 rule 5); false when there is no such stream.
    pub fn change_stream(&mut self, key: StreamKey, change: impl FnOnce(&mut StreamRx)) -> bool {
        let Some(slot) = self.keys.get(&key).copied() else {
            return false;
        };
        let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let before = s.stream.extra_ssrcs();
        change(&mut s.stream);
        let after = s.stream.extra_ssrcs();
        for ssrc in before.iter().filter(|x| !after.contains(x)) {
            remove_slot(&mut self.by_extra_ssrc, *ssrc, slot);
            for source in s.extra_latched.iter().filter(|(_, x)| x == ssrc) {
                self.by_addr.remove(source);
            }
            s.extra_latched.retain(|(_, x)| x != ssrc);
        }
        for ssrc in after.iter().filter(|x| !before.contains(x)) {
            self.by_extra_ssrc.entry(*ssrc).or_default().push(slot);
        }
        true
    }

    pub fn keys(&self) -> Vec<StreamKey> {
        self.keys.keys().copied().collect()
    }

    pub fn streams_mut(&mut self) -> impl Iterator<Item = &mut StreamRx> {
        self.slots.iter_mut().flatten().map(|s| &mut s.stream)
    }

    /// A call to a sensor at `ip` is under way: keep its packets until
    /// `until` or until its stream is added.
    pub fn expect_source(&mut self, ip: IpAddr, until: Instant) {
        self.awaiting.insert(ip.to_canonical(), until);
    }

    /// Forgets calls that are over and drops the packets kept too long.
    pub fn expire(&mut self, now: Instant) -> Vec<Rejected> {
        self.awaiting.retain(|_, until| *until > now);
        let mut dropped = Vec::new();
        while self
            .limbo
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.arrival) > LIMBO_AGE)
        {
            if let Some(e) = self.limbo.pop_front() {
                dropped.push(Rejected {
                    reason: Reject::UnknownSource,
                    from: e.from,
                    detail: "no session was set up for it".into(),
                });
            }
        }
        dropped
    }

    /// Routes one datagram that arrived at `arrival` (`now_ns`: wall clock).
    pub fn on_datagram(
        &mut self,
        d: Datagram<'_>,
        arrival: Instant,
        now_ns: i64,
        sink: &mut Sink,
    ) -> Delivery {
        if d.truncated {
            return Delivery::Rejected(Rejected {
                reason: Reject::Oversized,
                from: d.from,
                detail: "datagram larger than 2048 bytes".into(),
            });
        }
        match d.port {
            Port::Rtp => self.rtp(d, arrival, now_ns, true, sink),
            Port::Rtcp => self.rtcp(d, arrival, now_ns, sink),
        }
    }

    fn rtp(
        &mut self,
        d: Datagram<'_>,
        arrival: Instant,
        now_ns: i64,
        may_keep: bool,
        sink: &mut Sink,
    ) -> Delivery {
        let (data, authenticated_for) = (d.data, d.authenticated_for);
        let from = canonical(d.from);
        let pkt = match parse_rtp(data) {
            Ok(p) => p,
            Err(e) => return rejected(Reject::MalformedRtp, from, e.to_string()),
        };
        let slot = match self.by_addr.get(&(from, pkt.ssrc)) {
            Some(s) => *s,
            None => match self.latch(from, pkt.ssrc, authenticated_for) {
                Ok(s) => s,
                Err(r) => {
                    let awaited = self
                        .awaiting
                        .get(&from.ip())
                        .is_some_and(|until| arrival < *until);
                    if r == Reject::UnknownSource && awaited && may_keep {
                        let evicted = self.limbo.len() >= LIMBO_MAX;
                        if evicted {
                            self.limbo.pop_front();
                        }
                        self.limbo.push_back(Early {
                            from,
                            data: data.to_vec(),
                            arrival,
                        });
                        return Delivery::Kept { evicted };
                    }
                    return rejected(r, from, format!("SSRC {:#010x}", pkt.ssrc));
                }
            },
        };
        match self.slots.get_mut(slot).and_then(Option::as_mut) {
            Some(s) if !s.admits(authenticated_for) => rejected(
                Reject::Unauthenticated,
                from,
                format!(
                    "SSRC {:#010x} is an SRTP session's, and this packet is not under its key",
                    pkt.ssrc
                ),
            ),
            Some(s) => Delivery::Rtp {
                key: s.key,
                outcome: s.stream.on_rtp(&pkt, arrival, now_ns, sink),
            },
            // `by_addr` never names a free slot (see `remove`).
            None => rejected(
                Reject::UnknownSource,
                from,
                format!("SSRC {:#010x}", pkt.ssrc),
            ),
        }
    }

    /// Binds an (address, SSRC) to a stream on its first packet, never a
    /// plain packet to an SRTP stream (see [`Slot::admits`]).
    fn latch(
        &mut self,
        from: SocketAddr,
        ssrc: u32,
        authenticated_for: Option<StreamKey>,
    ) -> Result<usize, Reject> {
        if let Some(slots) = self.by_extra_ssrc.get(&ssrc) {
            // docs/protocol.md 11.5, 11.6: the same RTP session as the live
            // source, so the address it latched to, and only after it did.
            let mut wrong_address = false;
            for &slot in slots {
                let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                    continue;
                };
                if !s.admits(authenticated_for) {
                    // An SRTP stream's extra sources are its own only under
                    // its key (docs/protocol.md 11.8).
                    return Err(Reject::Unauthenticated);
                }
                match s.latched {
                    Some((addr, _)) if addr == from => {
                        s.extra_latched.push((from, ssrc));
                        self.by_addr.insert((from, ssrc), slot);
                        return Ok(slot);
                    }
                    Some(_) => wrong_address = true,
                    None => {}
                }
            }
            return Err(if wrong_address {
                Reject::WrongAddress
            } else {
                Reject::UnknownSource
            });
        }
        let ip = from.ip();
        if let Some(slots) = self.by_ssrc.get(&ssrc) {
            let (mut wrong_address, mut unauthenticated) = (false, false);
            for &slot in slots {
                let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                    continue;
                };
                // RFC 3550 8.2: a latched SSRC from another transport
                // address is a collision or a loop, not the stream.
                if s.latched.is_some() {
                    wrong_address = true;
                    continue;
                }
                if s.stream.allowed_ips.contains(&ip) {
                    if !s.admits(authenticated_for) {
                        unauthenticated = true;
                        continue;
                    }
                    s.latched = Some((from, ssrc));
                    self.by_addr.insert((from, ssrc), slot);
                    return Ok(slot);
                }
                wrong_address = true;
            }
            if unauthenticated {
                return Err(Reject::Unauthenticated);
            }
            if wrong_address {
                return Err(Reject::WrongAddress);
            }
        }
        // Streams without a signalled SSRC: the first packet from one of
        // their addresses (the exact SDP address first) decides it, and
        // RFC 3550 A.1 probation validates it.
        let unlatched: Vec<(usize, &Slot)> = self
            .by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|s| Some((*s, self.slots.get(*s)?.as_ref()?)))
            .filter(|(_, st)| st.latched.is_none())
            .collect();
        let pick = unlatched
            .iter()
            .filter(|(_, st)| st.admits(authenticated_for))
            .max_by_key(|(_, st)| st.stream.sdp_rtp == Some(from))
            .map(|(slot, _)| *slot);
        if pick.is_none() && !unlatched.is_empty() {
            // Only SRTP streams wait there, and this is not under their key.
            return Err(Reject::Unauthenticated);
        }
        if let Some(slot) = pick
            && let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut)
        {
            s.latched = Some((from, ssrc));
            self.by_addr.insert((from, ssrc), slot);
            self.by_ssrc.entry(ssrc).or_default().push(slot);
            return Ok(slot);
        }
        Err(Reject::UnknownSource)
    }

    fn rtcp(
        &mut self,
        d: Datagram<'_>,
        arrival: Instant,
        now_ns: i64,
        sink: &mut Sink,
    ) -> Delivery {
        let (data, authenticated_for) = (d.data, d.authenticated_for);
        let from = canonical(d.from);
        let packets = match parse_rtcp_compound(data) {
            Ok(p) => p,
            Err(e) => return rejected(Reject::MalformedRtcp, from, e.to_string()),
        };
        let mut reports = Vec::new();
        // The stream whose backfill source reported from the stream's RTCP
        // address: the agent's backfill thread sends its SSBF ranges in
        // that source's compound (docs/protocol.md 11.6).
        let mut bound_by_extra = None;
        for p in &packets {
            let RtcpPacket::SenderReport(sr) = p else {
                continue;
            };
            // An RTX or backfill source's report: its timing is not used
            // (their samples carry their instants, docs/protocol.md 11.2).
            if let Some(slots) = self.by_extra_ssrc.get(&sr.ssrc) {
                bound_by_extra = slots
                    .iter()
                    .filter_map(|slot| self.slots.get(*slot).and_then(Option::as_ref))
                    .find(|s| {
                        s.latched.is_some()
                            && s.admits(authenticated_for)
                            && s.rtcp_may_come_from(from)
                    })
                    .map(|s| s.key)
                    .or(bound_by_extra);
                continue;
            }
            let what = format!("RTCP sender report from SSRC {:#010x}", sr.ssrc);
            let mut refusal = (Reject::UnknownSource, what.clone());
            let mut taken = None;
            let slots = self.by_ssrc.get(&sr.ssrc).cloned().unwrap_or_default();
            for slot in slots {
                let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                    continue;
                };
                if !s.admits(authenticated_for) {
                    refusal = (
                        Reject::Unauthenticated,
                        format!("{what}: an SRTP session's, not under its key"),
                    );
                    continue;
                }
                if !s.rtcp_may_come_from(from) {
                    refusal = (
                        Reject::WrongAddress,
                        format!("{what}: not the session's RTCP address"),
                    );
                    continue;
                }
                match s
                    .stream
                    .on_sender_report(sr, from, data.len(), arrival, now_ns, sink)
                {
                    Ok(()) => {
                        s.rtcp_from = Some(from);
                        taken = Some(s.key);
                        break;
                    }
                    Err(SrRefusal::ForeignSsrc(_)) => {}
                    Err(SrRefusal::Clock(c)) => {
                        let reason = match c {
                            ClockRefusal::FarFromOurs { .. } => Reject::ClockOffset,
                            ClockRefusal::Jumped { .. } => Reject::ClockJump,
                        };
                        refusal = (reason, format!("{what} ({}): {c}", s.stream.aor));
                    }
                }
            }
            reports.push(match taken {
                Some(key) => Report::Taken(key),
                None => Report::Refused(Rejected {
                    reason: refusal.0,
                    from,
                    detail: refusal.1,
                }),
            });
        }
        let bound = reports
            .iter()
            .find_map(|r| match r {
                Report::Taken(key) => Some(*key),
                _ => None,
            })
            .or(bound_by_extra);
        reports.extend(backfill_messages(&packets, bound, from));
        Delivery::Rtcp(reports)
    }
}

/// The `SSBF` messages of a compound (docs/protocol.md 11.4). They count
/// only with a sender report the stream took in the same compound (the
/// agent sends SR + SDES + APP): that binds them to the stream's RTCP
/// address and SSRC, and under SRTP the whole compound is authenticated.
/// Other APP names and unknown subtypes are ignored; a short one is
/// malformed.
fn backfill_messages(
    packets: &[RtcpPacket],
    bound: Option<StreamKey>,
    from: SocketAddr,
) -> Vec<Report> {
    let mut out = Vec::new();
    for p in packets {
        let RtcpPacket::App(app) = p else { continue };
        let refused = |reason, detail: String| {
            Report::Refused(Rejected {
                reason,
                from,
                detail,
            })
        };
        out.push(match (BackfillMessage::from_app(app), bound) {
            (Ok(None), _) => continue,
            (Err(e), _) => refused(Reject::MalformedRtcp, e.to_string()),
            (Ok(Some(message)), Some(key)) => Report::Backfill { key, message },
            (Ok(Some(_)), None) => refused(
                Reject::BackfillRange,
                format!(
                    "SSBF from SSRC {:#010x} without a sender report of its stream",
                    app.ssrc
                ),
            ),
        });
    }
    out
}

fn rejected(reason: Reject, from: SocketAddr, detail: String) -> Delivery {
    Delivery::Rejected(Rejected {
        reason,
        from,
        detail,
    })
}

#[cfg(test)]
mod tests;
