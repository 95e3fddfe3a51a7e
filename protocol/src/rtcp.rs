//! RTCP (RFC 3550 section 6): sender and receiver reports, SDES CNAME, BYE,
//! compound packets, the transmission interval, and NTP time.
//!
//! The wall clock is an input: callers turn `SystemTime::now()` into an
//! [`NtpTime`] and pass it in, as they pass `Instant`s to the scheduler.

mod ack;
mod app;
mod build;
mod feedback;
mod interval;
mod ntp;
mod packets;

pub use ack::AckPacer;
pub use app::{APP_NAME as BACKFILL_APP_NAME, AppError, BackfillMessage};
pub use build::{CompoundWriter, RtcpBuildError, receiver_report_compound, sender_report_compound};
pub use feedback::Nack;
pub use interval::{RtcpConfig, RtcpScheduler};
pub use ntp::{NtpTime, SrMapping};
pub use packets::{
    App, Bye, ReceiverReport, ReportBlock, RtcpError, RtcpPacket, SdesChunk, SdesItem,
    SenderReport, parse_compound,
};

use std::time::Duration;

/// The round-trip time a report block implies, seen by the sender of the
/// SR it answers, given the NTP time the block arrived (RFC 3550 6.4.1:
/// A - LSR - DLSR). `None` when the block refers to no SR or the clocks
/// make it negative.
pub fn round_trip_time(arrival: NtpTime, block: &ReportBlock) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = arrival
        .middle32()
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    if rtt > 1 << 31 {
        return None;
    }
    Some(Duration::from_nanos((u64::from(rtt) * 1_000_000_000) >> 16))
}

#[cfg(test)]
mod tests;
