//! SenML unit symbols: the protocol crate's registry, which the stream's
//! SDP carries (docs/protocol.md section 2.3).

pub use sipsensor_protocol::sdp::Unit;
