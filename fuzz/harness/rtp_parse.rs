//! RTP (RFC 3550 5.1) through rtp-rs, the payload inside it, its header
//! extension elements (RFC 8285) and the sample instant, and the payload
//! read as RTX (RFC 4588 4).

pub fn run(data: &[u8]) {
    let Ok(packet) = sipsensor_protocol::parse_rtp(data) else {
        return;
    };
    let _ = sipsensor_protocol::decode_payload(packet.payload);
    if let Some(ext) = packet.extension {
        let mut seen = 0usize;
        for element in ext.elements() {
            let Ok((id, body)) = element else { break };
            assert!(
                body.len() <= 255 && id != 0,
                "element {id} of {} bytes",
                body.len()
            );
            seen += 1;
        }
        assert!(seen <= ext.data.len(), "more elements than bytes");
        for id in 1..=14 {
            if let Ok(Some(instant)) = packet.sample_instant(id) {
                let again = sipsensor_protocol::SampleInstant::decode(&instant.encode());
                assert_eq!(again, Ok(instant), "the instant changed in a round trip");
                let _ = instant.sample(255);
                let _ = instant.edge(i64::MIN);
            }
        }
    }
    if let Ok((_, original)) = sipsensor_protocol::parse_rtx(packet.payload) {
        let _ = sipsensor_protocol::decode_payload(original);
    }
}
