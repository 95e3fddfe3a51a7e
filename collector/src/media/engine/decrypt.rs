//! SRTP and SRTCP (RFC 3711) in the receive path, sans-I/O: every
//! datagram of an SRTP stream is authenticated and decrypted here before
//! the demux sees it, and what fails is dropped and counted, never stored.
//!
//! A stream's packets are found by their SSRC (in clear in both headers,
//! RFC 3711 3.1, 3.4): the signalled one (`a=ssrc`), or, without one, the
//! first that authenticates from the stream's addresses. A packet with an
//! SRTP stream's SSRC that does not authenticate is refused here; any
//! other goes on as it came, with no stream's authentication, and the
//! demux refuses it if it names an SRTP stream (by SSRC, or by address
//! before the stream latched): a plain sensor behind the same NAT as an
//! SRTP one is still heard, and a spoofer still cannot slip plain RTP into
//! the SRTP stream.

use crate::media::demux::{Datagram, Port, StreamKey};
use sipsensor_protocol::{SrtpContext, SrtpError, SrtpKeys};
use std::collections::HashMap;
use std::net::IpAddr;

/// The port a datagram came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Rtp,
    Rtcp,
}

/// What became of a datagram.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Opened<'a> {
    /// Not authenticated by any SRTP stream's key: the demux gets it as it
    /// came and takes it for a plain stream only.
    Plain,
    /// Authenticated under stream `.0`'s key and decrypted.
    Decrypted(StreamKey, &'a [u8]),
    /// Dropped: forged, replayed, under another key.
    Refused(SrtpError),
}

/// Why packets were refused, counted between two drains.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusals {
    pub authentication: u64,
    pub replay: u64,
    pub foreign_ssrc: u64,
}

impl Refusals {
    fn add(&mut self, e: &SrtpError) {
        match e {
            SrtpError::Replay => self.replay += 1,
            SrtpError::ForeignSsrc(_) => self.foreign_ssrc += 1,
            _ => self.authentication += 1,
        }
    }
}

struct Keyed {
    ssrc: Option<u32>,
    ips: Vec<IpAddr>,
    rtp_in: SrtpContext,
    rtcp_in: SrtpContext,
    rtcp_out: SrtpContext,
    /// The stream's RTX and backfill sources (docs/protocol.md 11.8): the
    /// session's master key, a context (and rollover counter, RFC 3711
    /// 3.2.3) of their own each: (RTP, RTCP) by SSRC.
    extra: HashMap<u32, (SrtpContext, SrtpContext)>,
}

impl Keyed {
    fn new(keys: &SrtpKeys, ssrc: Option<u32>, ips: Vec<IpAddr>) -> Result<Self, SrtpError> {
        Ok(Keyed {
            ssrc,
            ips,
            rtp_in: SrtpContext::inbound(&keys.receive)?,
            rtcp_in: SrtpContext::inbound(&keys.receive)?,
            rtcp_out: SrtpContext::outbound(&keys.send)?,
            extra: HashMap::new(),
        })
    }

    fn open(&mut self, kind: Kind, data: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        match kind {
            Kind::Rtp => self.rtp_in.unprotect_rtp(data, out),
            Kind::Rtcp => self.rtcp_in.unprotect_rtcp(data, out),
        }
    }

    /// [`Self::open`] under the context of `ssrc` when it is one of the
    /// stream's extra sources.
    fn open_as(
        &mut self,
        ssrc: u32,
        kind: Kind,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SrtpError> {
        match (self.extra.get_mut(&ssrc), kind) {
            (Some((rtp, _)), Kind::Rtp) => rtp.unprotect_rtp(data, out),
            (Some((_, rtcp)), Kind::Rtcp) => rtcp.unprotect_rtcp(data, out),
            (None, _) => self.open(kind, data, out),
        }
    }
}

/// The SRTP streams and their contexts.
#[derive(Default)]
pub(super) struct Decryptor {
    streams: HashMap<StreamKey, Keyed>,
    by_ssrc: HashMap<u32, StreamKey>,
    /// SRTP streams per address (any, bound or not).
    by_ip: HashMap<IpAddr, Vec<StreamKey>>,
    plain: Vec<u8>,
    sealed: Vec<u8>,
    refusals: Refusals,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Starts checking `key`'s packets when `keys` is `Some` (and stops
    /// when it is `None`: a re-INVITE to plain RTP). `ssrc` is the
    /// signalled one; `ips` the addresses the stream may come from.
    pub fn set(
        &mut self,
        key: StreamKey,
        keys: Option<&SrtpKeys>,
        ssrc: Option<u32>,
        ips: Vec<IpAddr>,
    ) -> Result<(), SrtpError> {
        let known = self.streams.get(&key).and_then(|k| k.ssrc);
        self.remove(key);
        let Some(keys) = keys else { return Ok(()) };
        // A re-key keeps the SSRC learnt from the stream (RFC 3711 allows
        // no change of SSRC under SDES; the agent keeps its own).
        let ssrc = ssrc.or(known);
        let keyed = Keyed::new(keys, ssrc, ips)?;
        if let Some(s) = ssrc {
            self.by_ssrc.insert(s, key);
        }
        for ip in &keyed.ips {
            self.by_ip.entry(*ip).or_default().push(key);
        }
        self.streams.insert(key, keyed);
        Ok(())
    }

    /// Also checks `key`'s packets from `ssrcs` (its RTX and backfill
    /// sources), each under its own context of the stream's `keys`.
    pub fn add_sources(
        &mut self,
        key: StreamKey,
        keys: Option<&SrtpKeys>,
        ssrcs: &[u32],
    ) -> Result<(), SrtpError> {
        let (Some(keys), Some(keyed)) = (keys, self.streams.get_mut(&key)) else {
            return Ok(());
        };
        for &ssrc in ssrcs {
            if keyed.ssrc == Some(ssrc) || self.by_ssrc.contains_key(&ssrc) {
                continue;
            }
            let contexts = (
                SrtpContext::inbound(&keys.receive)?,
                SrtpContext::inbound(&keys.receive)?,
            );
            keyed.extra.insert(ssrc, contexts);
            self.by_ssrc.insert(ssrc, key);
        }
        Ok(())
    }

    pub fn remove(&mut self, key: StreamKey) {
        let Some(keyed) = self.streams.remove(&key) else {
            return;
        };
        for ssrc in keyed.extra.keys() {
            if self.by_ssrc.get(ssrc) == Some(&key) {
                self.by_ssrc.remove(ssrc);
            }
        }
        if let Some(s) = keyed.ssrc
            && self.by_ssrc.get(&s) == Some(&key)
        {
            self.by_ssrc.remove(&s);
        }
        for ip in keyed.ips {
            if let Some(list) = self.by_ip.get_mut(&ip) {
                list.retain(|k| *k != key);
                if list.is_empty() {
                    self.by_ip.remove(&ip);
                }
            }
        }
    }

    /// Authenticates and decrypts one datagram when it belongs to an SRTP
    /// stream (by SSRC, or by address for a stream not yet bound).
    pub fn open(&mut self, kind: Kind, data: &[u8], from: IpAddr) -> Opened<'_> {
        if self.streams.is_empty() {
            return Opened::Plain;
        }
        let at = match kind {
            Kind::Rtp => 8,
            Kind::Rtcp => 4,
        };
        let Some(ssrc) = data
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
        else {
            return Opened::Plain;
        };
        let from = from.to_canonical();
        if let Some(key) = self.by_ssrc.get(&ssrc).copied() {
            let Some(keyed) = self.streams.get_mut(&key) else {
                return Opened::Plain;
            };
            return match keyed.open_as(ssrc, kind, data, &mut self.plain) {
                Ok(()) => Opened::Decrypted(key, &self.plain),
                Err(e) => {
                    self.refusals.add(&e);
                    Opened::Refused(e)
                }
            };
        }
        let Some(candidates) = self.by_ip.get(&from) else {
            return Opened::Plain;
        };
        // An address with SRTP streams still without an SSRC: the first
        // packet their key authenticates is theirs. What none authenticates
        // may be a plain stream's from the same address (one NAT).
        for key in candidates.clone() {
            let Some(keyed) = self.streams.get_mut(&key) else {
                continue;
            };
            if keyed.ssrc.is_some() {
                continue;
            }
            if keyed.open(kind, data, &mut self.plain).is_ok() {
                keyed.ssrc = Some(ssrc);
                self.by_ssrc.insert(ssrc, key);
                return Opened::Decrypted(key, &self.plain);
            }
        }
        Opened::Plain
    }

    /// `d` as the demux is to see it: decrypted and marked with the stream
    /// whose key authenticated it, or as it came (marked with none);
    /// `None` when SRTP refused it (counted in [`Self::take_refusals`]).
    pub fn open_datagram<'a>(&'a mut self, d: Datagram<'a>) -> Option<Datagram<'a>> {
        let kind = match d.port {
            Port::Rtp => Kind::Rtp,
            Port::Rtcp => Kind::Rtcp,
        };
        let (data, authenticated_for) = match self.open(kind, d.data, d.from.ip()) {
            Opened::Plain => (d.data, None),
            Opened::Decrypted(key, plain) => (plain, Some(key)),
            Opened::Refused(_) => return None,
        };
        Some(Datagram {
            data,
            authenticated_for,
            ..d
        })
    }

    /// `packet` (a receiver report for `key`) SRTCP-protected when the
    /// stream is SRTP, as it is otherwise; `None` when it cannot be.
    pub fn seal<'a>(&'a mut self, key: StreamKey, packet: &'a [u8]) -> Option<&'a [u8]> {
        let Some(keyed) = self.streams.get_mut(&key) else {
            return Some(packet);
        };
        keyed
            .rtcp_out
            .protect_rtcp(packet, &mut self.sealed)
            .ok()
            .map(|()| self.sealed.as_slice())
    }

    /// The refusals since the last call.
    pub fn take_refusals(&mut self) -> Refusals {
        std::mem::take(&mut self.refusals)
    }
}

#[cfg(test)]
mod tests;
