//! Outbound SRTP/SRTCP protection written into the caller's buffer, so a
//! sender that reuses one buffer allocates nothing per packet.
//!
//! rtc-srtp's `Context::encrypt_rtp`/`encrypt_rtcp` return a fresh
//! `BytesMut` for every packet, which the agent's real-time thread must not
//! do. The crypto stays the crate's (rtc-crypto's AES-CTR, HMAC-SHA1 and
//! AES-GCM, keyed once here); this module only lays out the packet and
//! does the RFC's index and IV arithmetic, and its output is checked
//! against the crate's own (tests.rs).

use super::SrtpError;
use crate::sdp::{SrtpKey, SrtpSuite};
use rtc_srtp::crypto::{
    AeadAlgorithm, AeadCipher, BlockCipherAlgorithm, HmacAlgorithm, Mac, RTCCrypto, StreamCipher,
    StreamCipherAlgorithm,
};

/// RFC 3711 4.3.2 key derivation labels.
const LABEL_RTP_KEY: u8 = 0x00;
const LABEL_RTP_AUTH: u8 = 0x01;
const LABEL_RTP_SALT: u8 = 0x02;
const LABEL_RTCP_KEY: u8 = 0x03;
const LABEL_RTCP_AUTH: u8 = 0x04;
const LABEL_RTCP_SALT: u8 = 0x05;

/// RFC 3711 4.2: n_a = 160 bits for HMAC-SHA1.
const AUTH_KEY_LEN: usize = 20;
/// RFC 3711 3.4: the E flag above the 31-bit SRTCP index.
const ENCRYPTED: u32 = 1 << 31;
/// RFC 3711 9.2: 2^31 SRTCP packets under one master key at most.
const MAX_RTCP_INDEX: u32 = (1 << 31) - 1;

/// One direction (RTP or RTCP) of one suite, keyed.
enum Transform {
    /// AES_CM_128_HMAC_SHA1_80 (RFC 3711 4.1.1, 4.2.1; RFC 4568 6.2.1).
    AesCm {
        cipher: Box<dyn StreamCipher>,
        auth: Box<dyn Mac>,
        salt: [u8; 14],
    },
    /// AEAD_AES_128_GCM (RFC 7714 8, 9).
    Gcm {
        cipher: Box<dyn AeadCipher>,
        salt: [u8; 12],
    },
}

/// This side's SRTP and SRTCP sending state.
pub(super) struct Sealer {
    rtp: Transform,
    rtcp: Transform,
    /// The 48-bit packet index (ROC * 2^16 + SEQ) of the last RTP packet
    /// protected (RFC 3711 3.3.1); none before the first.
    rtp_index: Option<u64>,
    /// The index the next SRTCP packet carries (RFC 3711 3.4: starts at 0).
    rtcp_index: u32,
}

impl Sealer {
    pub(super) fn new(key: &SrtpKey, crypto: &dyn RTCCrypto) -> Result<Self, SrtpError> {
        let (master_key, master_salt) = (key.master_key(), key.master_salt());
        let kdf = |label, out: &mut [u8]| derive(crypto, master_key, master_salt, label, out);
        let transform = |key_label, auth_label, salt_label| -> Result<Transform, SrtpError> {
            let mut session_key = [0u8; 16];
            kdf(key_label, &mut session_key)?;
            let t = match key.suite() {
                SrtpSuite::AesCm128HmacSha1_80 => {
                    let mut auth_key = [0u8; AUTH_KEY_LEN];
                    kdf(auth_label, &mut auth_key)?;
                    let mut salt = [0u8; 14];
                    kdf(salt_label, &mut salt)?;
                    Transform::AesCm {
                        cipher: crypto
                            .new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, &session_key)
                            .map_err(setup)?,
                        auth: crypto
                            .new_hmac(HmacAlgorithm::Sha1, &auth_key)
                            .map_err(setup)?,
                        salt,
                    }
                }
                SrtpSuite::AeadAes128Gcm => {
                    let mut salt = [0u8; 12];
                    kdf(salt_label, &mut salt)?;
                    Transform::Gcm {
                        cipher: crypto
                            .new_aead(AeadAlgorithm::Aes128Gcm, &session_key)
                            .map_err(setup)?,
                        salt,
                    }
                }
            };
            Ok(t)
        };
        Ok(Sealer {
            rtp: transform(LABEL_RTP_KEY, LABEL_RTP_AUTH, LABEL_RTP_SALT)?,
            rtcp: transform(LABEL_RTCP_KEY, LABEL_RTCP_AUTH, LABEL_RTCP_SALT)?,
            rtp_index: None,
            rtcp_index: 0,
        })
    }

    /// Protects `packet` into `out` (cleared first). Allocates only if
    /// `out` lacks room for the packet and its tag.
    pub(super) fn rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let header_len = rtp_header_len(packet)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let index = self.next_rtp_index(seq)?;
        let roc = (index >> 16) as u32;
        out.clear();
        out.extend_from_slice(packet);
        match &mut self.rtp {
            Transform::AesCm { cipher, auth, salt } => {
                let iv = aes_cm_iv(ssrc, index, salt);
                cipher
                    .apply_keystream(&iv, &mut out[header_len..])
                    .map_err(setup)?;
                // RFC 3711 4.2: the tag covers the packet and the ROC.
                let mut tag = [0u8; AUTH_KEY_LEN];
                auth.sign(&[out.as_slice(), &roc.to_be_bytes()], &mut tag)
                    .map_err(setup)?;
                out.extend_from_slice(&tag[..10]);
            }
            Transform::Gcm { cipher, salt } => {
                // RFC 7714 8.1: ROC || SEQ is the packet index; 8.2: the
                // header is the associated data.
                let iv = gcm_iv(ssrc, index, salt);
                let mut tag = [0u8; 16];
                let (aad, payload) = out.split_at_mut(header_len);
                cipher
                    .seal_in_place(&iv, aad, payload, &mut tag)
                    .map_err(setup)?;
                out.extend_from_slice(&tag);
            }
        }
        self.rtp_index = Some(index);
        Ok(())
    }

    /// Protects one RTCP compound packet into `out` (cleared first).
    pub(super) fn rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < 8 || packet[0] >> 6 != 2 {
            return Err(SrtpError::Malformed(format!(
                "RTCP of {} bytes",
                packet.len()
            )));
        }
        let index = self.rtcp_index;
        if index > MAX_RTCP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let e_and_index = (ENCRYPTED | index).to_be_bytes();
        out.clear();
        out.extend_from_slice(packet);
        match &mut self.rtcp {
            Transform::AesCm { cipher, auth, salt } => {
                // RFC 3711 4.1.1 with the SRTCP index as i; everything after
                // the first header and sender SSRC is encrypted (3.4).
                let iv = aes_cm_iv(ssrc, u64::from(index), salt);
                cipher.apply_keystream(&iv, &mut out[8..]).map_err(setup)?;
                out.extend_from_slice(&e_and_index);
                let mut tag = [0u8; AUTH_KEY_LEN];
                auth.sign(&[out.as_slice()], &mut tag).map_err(setup)?;
                out.extend_from_slice(&tag[..10]);
            }
            Transform::Gcm { cipher, salt } => {
                // RFC 7714 9.1: IV from 00 00 || 0 || the 31-bit index in
                // place of ROC || SEQ; AAD = first 8 octets || E || index;
                // the index word goes last, after the tag.
                let iv = gcm_iv(ssrc, u64::from(index), salt);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&packet[..8]);
                aad[8..].copy_from_slice(&e_and_index);
                let mut tag = [0u8; 16];
                cipher
                    .seal_in_place(&iv, &aad, &mut out[8..], &mut tag)
                    .map_err(setup)?;
                out.extend_from_slice(&tag);
                out.extend_from_slice(&e_and_index);
            }
        }
        self.rtcp_index = index + 1;
        Ok(())
    }

    /// The packet index of `seq` (RFC 3711 3.3.1): the sender knows its
    /// own ROC, so the index is the one nearest the last packet's.
    fn next_rtp_index(&self, seq: u16) -> Result<u64, SrtpError> {
        let Some(last) = self.rtp_index else {
            return Ok(u64::from(seq));
        };
        let step = i64::from(seq.wrapping_sub(last as u16) as i16);
        let index = (last as i64 + step).max(0) as u64;
        // RFC 3711 9.2: at most 2^48 packets under one master key.
        if index >> 48 != 0 {
            return Err(SrtpError::KeyExhausted);
        }
        Ok(index)
    }
}

/// The RTP header's length with its CSRCs and extension (RFC 3550 5.1,
/// 5.3.1): what stays clear, and for AEAD is authenticated as such.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    let malformed = || SrtpError::Malformed(format!("RTP of {} bytes", packet.len()));
    let first = *packet.first().ok_or_else(malformed)?;
    if first >> 6 != 2 {
        return Err(malformed());
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4).ok_or_else(malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if packet.len() < len {
        return Err(malformed());
    }
    Ok(len)
}

/// The AES-CM PRF (RFC 3711 4.3.1, 4.3.3) with a key derivation rate of
/// 0: `out` = AES(master key, (salt XOR label * 2^48) * 2^16 + block).
fn derive(
    crypto: &dyn RTCCrypto,
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    out: &mut [u8],
) -> Result<(), SrtpError> {
    let mut block_in = [0u8; 16];
    let salt_len = master_salt.len().min(14);
    block_in[..salt_len].copy_from_slice(&master_salt[..salt_len]);
    block_in[7] ^= label;
    for (n, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = block_in;
        block[14..].copy_from_slice(&(n as u16).to_be_bytes());
        crypto
            .block_encrypt(BlockCipherAlgorithm::Aes128, master_key, &mut block)
            .map_err(setup)?;
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    Ok(())
}

/// RFC 3711 4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16),
/// `i` the 48-bit packet (or SRTCP) index.
fn aes_cm_iv(ssrc: u32, index: u64, salt: &[u8; 14]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..14].copy_from_slice(&index.to_be_bytes()[2..]);
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// RFC 7714 8.1, 9.1: IV = (00 00 || SSRC || 48-bit index) XOR salt.
fn gcm_iv(ssrc: u32, index: u64, salt: &[u8; 12]) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

fn setup(e: impl std::fmt::Display) -> SrtpError {
    SrtpError::Setup(e.to_string())
}

#[cfg(test)]
mod tests;
