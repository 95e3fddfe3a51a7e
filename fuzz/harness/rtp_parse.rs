//! RTP (RFC 3550 5.1) through rtp-rs, and the payload inside it.

pub fn run(data: &[u8]) {
    let Ok(packet) = sipsensor_protocol::parse_rtp(data) else {
        return;
    };
    let _ = sipsensor_protocol::decode_payload(packet.payload);
}
