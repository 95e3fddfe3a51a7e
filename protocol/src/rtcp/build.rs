//! Writing compound RTCP packets into a caller's buffer (RFC 3550 6.1).

use super::feedback::{FMT_NACK, Nack, PT_RTPFB};
use super::packets::{
    App, MAX_COUNT, PT_APP, PT_BYE, PT_RR, PT_SDES, PT_SR, ReceiverReport, ReportBlock, SDES_CNAME,
    SenderReport,
};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpBuildError {
    #[error("buffer too small for the compound packet")]
    BufferTooSmall,
    #[error("{0} items, at most 31 fit one packet")]
    TooMany(usize),
    #[error("an SDES item or BYE reason is longer than 255 bytes")]
    TooLong,
    #[error("a compound packet must start with an SR or RR (RFC 3550 6.1)")]
    FirstNotReport,
    #[error("a compound packet must carry an SDES CNAME (RFC 3550 6.1)")]
    NoCname,
    #[error("APP data of {0} bytes is not a multiple of 32 bits (RFC 3550 6.7)")]
    AppData(usize),
    #[error("APP subtype {0} does not fit 5 bits")]
    AppSubtype(u8),
    #[error("a generic NACK needs at least one FCI entry (RFC 4585 6.2.1)")]
    EmptyNack,
}

/// Appends packets to a buffer; [`Self::finish`] checks the RFC 3550 6.1
/// rules and returns the length.
#[derive(Debug)]
pub struct CompoundWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    first: Option<u8>,
    has_cname: bool,
}

impl<'a> CompoundWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            first: None,
            has_cname: false,
        }
    }

    /// Reserves `body_len` bytes (a multiple of 4) after a header.
    fn packet(&mut self, count: u8, pt: u8, body_len: usize) -> Result<&mut [u8], RtcpBuildError> {
        let start = self.len;
        let total = 4 + body_len;
        let out = self
            .buf
            .get_mut(start..start + total)
            .ok_or(RtcpBuildError::BufferTooSmall)?;
        let words = u16::try_from(total / 4 - 1).map_err(|_| RtcpBuildError::BufferTooSmall)?;
        out[0] = 0x80 | count;
        out[1] = pt;
        out[2..4].copy_from_slice(&words.to_be_bytes());
        out[4..].fill(0);
        self.len += total;
        self.first.get_or_insert(pt);
        Ok(&mut out[4..])
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn sender_report(&mut self, sr: &SenderReport) -> Result<(), RtcpBuildError> {
        let n = check_count(sr.reports.len())?;
        let b = self.packet(n, PT_SR, 24 + 24 * sr.reports.len())?;
        b[0..4].copy_from_slice(&sr.ssrc.to_be_bytes());
        b[4..12].copy_from_slice(&sr.ntp.0.to_be_bytes());
        b[12..16].copy_from_slice(&sr.rtp_timestamp.to_be_bytes());
        b[16..20].copy_from_slice(&sr.packet_count.to_be_bytes());
        b[20..24].copy_from_slice(&sr.octet_count.to_be_bytes());
        write_blocks(&mut b[24..], &sr.reports);
        Ok(())
    }

    pub fn receiver_report(&mut self, rr: &ReceiverReport) -> Result<(), RtcpBuildError> {
        let n = check_count(rr.reports.len())?;
        let b = self.packet(n, PT_RR, 4 + 24 * rr.reports.len())?;
        b[0..4].copy_from_slice(&rr.ssrc.to_be_bytes());
        write_blocks(&mut b[4..], &rr.reports);
        Ok(())
    }

    /// An SDES packet with one chunk: CNAME, then further `(type, value)`
    /// items (RFC 3550 6.5).
    pub fn sdes(
        &mut self,
        ssrc: u32,
        cname: &str,
        more: &[(u8, &[u8])],
    ) -> Result<(), RtcpBuildError> {
        let items = std::iter::once((SDES_CNAME, cname.as_bytes())).chain(more.iter().copied());
        let mut items_len = 0;
        for (_, v) in items.clone() {
            if v.len() > 255 {
                return Err(RtcpBuildError::TooLong);
            }
            items_len += 2 + v.len();
        }
        // SSRC, items, at least one null octet, padded to 32 bits.
        let body = (4 + items_len + 1).div_ceil(4) * 4;
        let b = self.packet(1, PT_SDES, body)?;
        b[0..4].copy_from_slice(&ssrc.to_be_bytes());
        let mut at = 4;
        for (kind, v) in items {
            b[at] = kind;
            b[at + 1] = v.len() as u8;
            b[at + 2..at + 2 + v.len()].copy_from_slice(v);
            at += 2 + v.len();
        }
        self.has_cname = true;
        Ok(())
    }

    /// A BYE for `sources`, with an optional reason (RFC 3550 6.6).
    pub fn bye(&mut self, sources: &[u32], reason: Option<&str>) -> Result<(), RtcpBuildError> {
        let n = check_count(sources.len())?;
        let reason = reason.map(str::as_bytes);
        if reason.is_some_and(|r| r.len() > 255) {
            return Err(RtcpBuildError::TooLong);
        }
        let reason_len = reason.map_or(0, |r| (1 + r.len()).div_ceil(4) * 4);
        let b = self.packet(n, PT_BYE, 4 * sources.len() + reason_len)?;
        for (i, s) in sources.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&s.to_be_bytes());
        }
        if let Some(r) = reason {
            let at = 4 * sources.len();
            b[at] = r.len() as u8;
            b[at + 1..at + 1 + r.len()].copy_from_slice(r);
        }
        Ok(())
    }

    /// An APP packet (RFC 3550 6.7).
    pub fn app(&mut self, app: &App) -> Result<(), RtcpBuildError> {
        if !app.data.len().is_multiple_of(4) {
            return Err(RtcpBuildError::AppData(app.data.len()));
        }
        if usize::from(app.subtype) > MAX_COUNT {
            return Err(RtcpBuildError::AppSubtype(app.subtype));
        }
        let b = self.packet(app.subtype, PT_APP, 8 + app.data.len())?;
        b[0..4].copy_from_slice(&app.ssrc.to_be_bytes());
        b[4..8].copy_from_slice(&app.name);
        b[8..].copy_from_slice(&app.data);
        Ok(())
    }

    /// A generic NACK (RFC 4585 6.2.1).
    pub fn nack(&mut self, nack: &Nack) -> Result<(), RtcpBuildError> {
        if nack.items.is_empty() {
            return Err(RtcpBuildError::EmptyNack);
        }
        let b = self.packet(FMT_NACK, PT_RTPFB, nack.body_len())?;
        nack.write_body(b);
        Ok(())
    }

    /// The compound's length, after checking it starts with a report and
    /// carries a CNAME (RFC 3550 6.1).
    pub fn finish(self) -> Result<usize, RtcpBuildError> {
        if !matches!(self.first, Some(PT_SR | PT_RR)) {
            return Err(RtcpBuildError::FirstNotReport);
        }
        if !self.has_cname {
            return Err(RtcpBuildError::NoCname);
        }
        Ok(self.len)
    }
}

fn check_count(n: usize) -> Result<u8, RtcpBuildError> {
    if n > MAX_COUNT {
        return Err(RtcpBuildError::TooMany(n));
    }
    Ok(n as u8)
}

fn write_blocks(b: &mut [u8], blocks: &[ReportBlock]) {
    for (chunk, r) in b.chunks_exact_mut(24).zip(blocks) {
        // RFC 3550 6.4.1: cumulative loss clamps to the 24-bit signed range.
        let lost = r.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0x00ff_ffff;
        chunk[0..4].copy_from_slice(&r.ssrc.to_be_bytes());
        chunk[4..8].copy_from_slice(&(u32::from(r.fraction_lost) << 24 | lost).to_be_bytes());
        chunk[8..12].copy_from_slice(&r.extended_highest_seq.to_be_bytes());
        chunk[12..16].copy_from_slice(&r.jitter.to_be_bytes());
        chunk[16..20].copy_from_slice(&r.last_sr.to_be_bytes());
        chunk[20..24].copy_from_slice(&r.delay_since_last_sr.to_be_bytes());
    }
}

/// The agent's usual compound: SR + SDES CNAME.
pub fn sender_report_compound(
    buf: &mut [u8],
    sr: &SenderReport,
    cname: &str,
) -> Result<usize, RtcpBuildError> {
    let mut w = CompoundWriter::new(buf);
    w.sender_report(sr)?;
    w.sdes(sr.ssrc, cname, &[])?;
    w.finish()
}

/// The collector's usual compound: RR + SDES CNAME.
pub fn receiver_report_compound(
    buf: &mut [u8],
    rr: &ReceiverReport,
    cname: &str,
) -> Result<usize, RtcpBuildError> {
    let mut w = CompoundWriter::new(buf);
    w.receiver_report(rr)?;
    w.sdes(rr.ssrc, cname, &[])?;
    w.finish()
}
