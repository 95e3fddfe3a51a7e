//! RTCP compound packets (RFC 3550 6, A.2 validity checks), generic NACKs
//! in them (RFC 4585 6.2.1) and the SSBF APP messages (docs/protocol.md
//! 11.4).

use sipsensor_protocol::{BackfillMessage, RtcpPacket};

pub fn run(data: &[u8]) {
    let Ok(packets) = sipsensor_protocol::parse_rtcp_compound(data) else {
        return;
    };
    for p in &packets {
        match p {
            RtcpPacket::Nack(nack) => {
                let lost = nack.lost().count();
                assert!(lost >= nack.items.len() && lost <= 17 * nack.items.len());
            }
            RtcpPacket::App(app) => {
                if let Ok(Some(message)) = BackfillMessage::from_app(app) {
                    let again = BackfillMessage::from_app(&message.to_app(app.ssrc));
                    assert_eq!(again, Ok(Some(message)), "SSBF changed in a round trip");
                }
            }
            _ => {}
        }
    }
}
