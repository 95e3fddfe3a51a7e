//! The one library in sipsensor that speaks SIP, SDP and RTP/RTCP.
//!
//! Everything here is sans-I/O: state machines take messages and the current
//! time as values and hand back what to send and when to wake them. Sockets,
//! clocks and threads live in the agent's and collector's thin tokio shells,
//! so every RFC rule is tested without a socket.

pub mod ids;
pub mod payload;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod sip;

#[cfg(test)]
mod test_clock;
