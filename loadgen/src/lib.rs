//! Simulated sensors that speak the sipsensor protocol through the protocol
//! crate alone: each registers, calls the collector (or answers its call)
//! and streams a deterministic waveform over RTP with RTCP sender reports.
//!
//! One process runs thousands of them: a SIP socket and user agent each,
//! RTP sent by one [`pump::MediaPump`] thread on a schedule, RTP sockets
//! optionally shared by several sensors ([`sockets::RtpSockets`]). The
//! collector's system tests use the same sensors with injected faults
//! (duplicates, losses, foreign sources).

pub mod fake_install;
pub mod fleet;
pub mod load;
pub mod pki;
pub mod pump;
pub mod sensor;
pub mod sockets;
pub mod waveform;
