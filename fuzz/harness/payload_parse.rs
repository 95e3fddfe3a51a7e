//! The sensor payload (docs/protocol.md section 5): decode, then read every
//! value and record the decoder says is there.

pub fn run(data: &[u8]) {
    let Ok(payload) = sipsensor_protocol::decode_payload(data) else {
        return;
    };
    let _ = format!("{payload:?}");
}
