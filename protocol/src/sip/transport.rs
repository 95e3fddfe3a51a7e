//! Transport-layer rules of RFC 3261 section 18 and RFC 3581, sans-I/O.
//!
//! - [`framing`]: cutting a TCP byte stream into messages by Content-Length
//!   (18.3) and CRLF keep-alives (RFC 5626 3.5.1).
//! - [`received`]: a server stamping `received`/`rport` into the top Via of
//!   a request it receives (18.2.1, RFC 3581 section 4).
//! - [`routing`]: where a server sends a response (18.2.2, RFC 3581 section 5).
//! - [`reflexive`]: a client learning its public address from a response.
//! - [`via`]: the top-Via reader these share (rsip cannot read IPv6 sent-by).
//!
//! The sockets that move the bytes are `sipsensor-runtime`'s.

pub mod framing;
pub mod received;
pub mod reflexive;
pub mod routing;
pub mod via;

pub use framing::{DEFAULT_MAX_MESSAGE_SIZE, Frame, FrameError, PING, PONG, StreamFramer};
pub use received::stamp_received;
pub use reflexive::{Reflexive, reflexive_address};
pub use routing::{Destination, ResponseRoute, response_route};
pub use via::ViaError;
