//! RTCP compound packets (RFC 3550 6, A.2 validity checks).

pub fn run(data: &[u8]) {
    let _ = sipsensor_protocol::parse_rtcp_compound(data);
}
