//! RTP (RFC 3550 5.1) through rtp-rs, and the payload inside it.

pub fn run(data: &[u8]) {
    let Ok(packet) = sipsensor_protocol::rtp::parse(data) else {
        return;
    };
    let _ = sipsensor_protocol::payload::decode(packet.payload);
}
