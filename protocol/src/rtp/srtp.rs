//! SRTP and SRTCP (RFC 3711, RFC 7714) for one direction of a stream, on
//! webrtc-rs's sans-I/O `rtc-srtp`.
//!
//! A [`SrtpContext`] is either outbound (protects what this side sends
//! with its own key) or inbound (unprotects what the peer sends, with its
//! key); RFC 4568 6.1 gives each side its own. RTP and RTCP of one
//! direction may use one context or two (one per thread): their states
//! (RFC 3711 3.3.1 rollover counter, 3.4 SRTCP index) are independent.
//!
//! Outbound packets are protected by [`seal`] into the caller's buffer
//! (no allocation per packet); inbound ones by the crate's `Context`.

use crate::sdp::{SrtpKey, SrtpSuite};
use rtc_shared::error::Error as CrateError;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::RTCCrypto;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;
use thiserror::Error;

/// The replay window (RFC 3711 3.3.2: at least 64; webrtc and libsrtp use
/// 64 to 128). Sensor packets arrive in order on one path, so 128 is ample.
const REPLAY_WINDOW: usize = 128;

/// How many SSRCs an inbound context tries before it has authenticated a
/// packet: the crate keeps state per SSRC, so a flood of forged SSRCs is
/// bounded by starting afresh past this many.
const MAX_UNPROVEN_SSRCS: usize = 8;

/// Why a packet was not protected or unprotected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// The authentication tag does not match: a forged or damaged packet,
    /// or the wrong key (RFC 3711 3.3 step 5).
    #[error("authentication failed")]
    Authentication,
    /// Already received (RFC 3711 3.3.2).
    #[error("replayed packet")]
    Replay,
    /// From an SSRC other than the one this context has authenticated.
    #[error("SSRC {0:#010x} is not the stream's")]
    ForeignSsrc(u32),
    /// Too short or not RTP/RTCP.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// 2^48 RTP or 2^31 RTCP packets under one key (RFC 3711 9.2).
    #[error("the key's packet limit is reached")]
    KeyExhausted,
    /// The crypto library refused the key (not expected for checked keys).
    #[error("SRTP context: {0}")]
    Setup(String),
    /// Protecting with an inbound context or unprotecting with an
    /// outbound one (a bug in the caller).
    #[error("the context is for the other direction")]
    WrongWay,
}

impl SrtpError {
    /// Whether the packet failed the SRTP checks themselves (to be counted
    /// as an attack or a wrong key), rather than being garbage.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            SrtpError::Authentication | SrtpError::Replay | SrtpError::ForeignSsrc(_)
        )
    }
}

impl From<CrateError> for SrtpError {
    fn from(e: CrateError) -> Self {
        match e {
            CrateError::ErrFailedToVerifyAuthTag
            | CrateError::RtpFailedToVerifyAuthTag
            | CrateError::RtcpFailedToVerifyAuthTag => SrtpError::Authentication,
            CrateError::SrtpSsrcDuplicated(..) | CrateError::SrtcpSsrcDuplicated(..) => {
                SrtpError::Replay
            }
            CrateError::ErrExceededMaxPackets => SrtpError::KeyExhausted,
            other => SrtpError::Malformed(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Outbound,
    Inbound,
}

/// The crypto state of one direction.
enum Engine {
    Outbound(Sealer),
    Inbound(Context),
}

/// One direction's SRTP/SRTCP state.
pub struct SrtpContext {
    key: SrtpKey,
    way: Way,
    engine: Engine,
    /// Inbound: the SSRC of the first authenticated packet; packets
    /// from others are refused before any crypto.
    proven_ssrc: Option<u32>,
    unproven_ssrcs: Vec<u32>,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.key.suite())
            .field("way", &self.way)
            .field("proven_ssrc", &self.proven_ssrc)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// Protects what this side sends, with its own key.
    pub fn outbound(key: &SrtpKey) -> Result<Self, SrtpError> {
        Self::new(key, Way::Outbound)
    }

    /// Unprotects what the peer sends, with the peer's key, with replay
    /// protection (RFC 3711 3.3.2).
    pub fn inbound(key: &SrtpKey) -> Result<Self, SrtpError> {
        Self::new(key, Way::Inbound)
    }

    fn new(key: &SrtpKey, way: Way) -> Result<Self, SrtpError> {
        Ok(Self {
            key: key.clone(),
            way,
            engine: engine(key, way)?,
            proven_ssrc: None,
            unproven_ssrcs: Vec::new(),
        })
    }

    pub fn suite(&self) -> SrtpSuite {
        self.key.suite()
    }

    /// Bytes SRTP adds to an RTP packet (the tag, RFC 3711 3.1).
    pub fn rtp_overhead(&self) -> usize {
        match self.key.suite() {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AeadAes128Gcm => 16,
        }
    }

    /// Bytes SRTCP adds to an RTCP compound packet (E flag and index, then
    /// the tag, RFC 3711 3.4).
    pub fn rtcp_overhead(&self) -> usize {
        4 + self.rtp_overhead()
    }

    /// SRTP-protects one RTP packet into `out` (cleared first). Allocates
    /// nothing when `out` has room for the packet and
    /// [`rtp_overhead`](Self::rtp_overhead).
    pub fn protect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.sealer()?.rtp(packet, out)
    }

    /// SRTCP-protects one RTCP compound packet into `out` (cleared first);
    /// allocates nothing when `out` has room for the packet and
    /// [`rtcp_overhead`](Self::rtcp_overhead).
    pub fn protect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.sealer()?.rtcp(packet, out)
    }

    fn sealer(&mut self) -> Result<&mut Sealer, SrtpError> {
        match &mut self.engine {
            Engine::Outbound(sealer) => Ok(sealer),
            Engine::Inbound(_) => Err(SrtpError::WrongWay),
        }
    }

    fn opener(&mut self) -> Result<&mut Context, SrtpError> {
        match &mut self.engine {
            Engine::Inbound(context) => Ok(context),
            Engine::Outbound(_) => Err(SrtpError::WrongWay),
        }
    }

    /// Authenticates and decrypts one SRTP packet into `out` (cleared
    /// first); nothing is written when it fails.
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let ssrc = ssrc_at(packet, 8)?;
        self.admit(ssrc)?;
        let plain = self.opener()?.decrypt_rtp(packet)?;
        self.proven_ssrc = Some(ssrc);
        self.unproven_ssrcs.clear();
        out.clear();
        out.extend_from_slice(&plain);
        Ok(())
    }

    /// Authenticates and decrypts one SRTCP compound packet into `out`
    /// (cleared first); nothing is written when it fails.
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        // The first packet's sender SSRC (RFC 3550 6.4.1): the crate keeps
        // SRTCP state per sender, so forged senders are bounded as for RTP.
        let ssrc = ssrc_at(packet, 4)?;
        // rtc-srtp 0.21 returns an AES-CM packet whose E flag is clear
        // without checking its tag. RFC 3711 3.4 makes authentication
        // mandatory whatever the flag, and unencrypted SRTCP is never
        // negotiated here (no UNENCRYPTED_SRTCP, sdes.rs): refuse it.
        if !self.rtcp_encrypted_flag(packet) {
            return Err(SrtpError::Authentication);
        }
        self.admit(ssrc)?;
        let plain = self.opener()?.decrypt_rtcp(packet)?;
        self.proven_ssrc = Some(ssrc);
        self.unproven_ssrcs.clear();
        out.clear();
        out.extend_from_slice(&plain);
        Ok(())
    }

    /// The E flag of an SRTCP packet's index word (RFC 3711 3.4): before
    /// the tag for AES-CM, last for AEAD (RFC 7714 9.1); false when the
    /// packet is too short to have one.
    fn rtcp_encrypted_flag(&self, packet: &[u8]) -> bool {
        let tag_after_index = match self.key.suite() {
            SrtpSuite::AesCm128HmacSha1_80 => self.rtp_overhead(),
            SrtpSuite::AeadAes128Gcm => 0,
        };
        packet
            .len()
            .checked_sub(tag_after_index + 4)
            .filter(|at| *at >= 8)
            .and_then(|at| packet.get(at))
            .is_some_and(|b| b & 0x80 != 0)
    }

    /// Refuses a packet from another SSRC than the proven one, and starts
    /// afresh when forged SSRCs pile up before any packet is proven.
    fn admit(&mut self, ssrc: u32) -> Result<(), SrtpError> {
        match self.proven_ssrc {
            Some(proven) if proven != ssrc => Err(SrtpError::ForeignSsrc(ssrc)),
            Some(_) => Ok(()),
            None => {
                if !self.unproven_ssrcs.contains(&ssrc) {
                    if self.unproven_ssrcs.len() >= MAX_UNPROVEN_SSRCS {
                        self.engine = engine(&self.key, self.way)?;
                        self.unproven_ssrcs.clear();
                    }
                    self.unproven_ssrcs.push(ssrc);
                }
                Ok(())
            }
        }
    }
}

fn ssrc_at(packet: &[u8], at: usize) -> Result<u32, SrtpError> {
    packet
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| SrtpError::Malformed(format!("{} bytes", packet.len())))
}

fn engine(key: &SrtpKey, way: Way) -> Result<Engine, SrtpError> {
    let provider =
        rtc_srtp::crypto::default_provider().map_err(|e| SrtpError::Setup(e.to_string()))?;
    match way {
        Way::Outbound => Sealer::new(key, provider.crypto()).map(Engine::Outbound),
        Way::Inbound => inbound_context(key, provider.crypto()).map(Engine::Inbound),
    }
}

/// The crate's context with replay protection (RFC 3711 3.3.2).
fn inbound_context(key: &SrtpKey, crypto: &dyn RTCCrypto) -> Result<Context, SrtpError> {
    let profile = match key.suite() {
        SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    };
    Context::new(
        key.master_key(),
        key.master_salt(),
        profile,
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
        crypto,
    )
    .map_err(|e| SrtpError::Setup(e.to_string()))
}

mod seal;
use seal::Sealer;

#[cfg(test)]
mod tests;
