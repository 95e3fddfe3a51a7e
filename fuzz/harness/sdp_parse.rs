//! SDP (RFC 8866): parse, and anything accepted must survive a round trip
//! through our serializer unchanged.

pub fn run(data: &[u8]) {
    let Ok(sdp) = sipsensor_protocol::parse_sdp(data) else {
        return;
    };
    let text = sdp.to_string();
    let again = sipsensor_protocol::parse_sdp(text.as_bytes())
        .unwrap_or_else(|e| panic!("our own SDP does not parse: {e}\n{text}"));
    assert_eq!(sdp, again, "SDP changed in a round trip");
    // The recovery lines (docs/protocol.md 11.1) of whatever is given.
    for role in [
        sipsensor_protocol::StreamRole::Sender,
        sipsensor_protocol::StreamRole::Receiver,
    ] {
        let _ = sipsensor_protocol::agreed_recovery(&sdp, &sdp, role);
    }
    // The sensor-stream reader must cope with whatever media it is given.
    for media in &sdp.media {
        let _ = sipsensor_protocol::StreamDescription::from_media(media);
        // SDES (RFC 4568): an a=crypto taken writes back to itself.
        for value in media.attribute_values("crypto") {
            if let Ok(crypto) = sipsensor_protocol::CryptoAttribute::parse(value) {
                let again = sipsensor_protocol::CryptoAttribute::parse(&crypto.value())
                    .unwrap_or_else(|e| panic!("our own a=crypto does not parse: {e}"));
                assert_eq!(crypto, again, "a=crypto changed in a round trip");
            }
        }
    }
}
