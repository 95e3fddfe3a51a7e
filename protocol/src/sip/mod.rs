//! SIP (RFC 3261) on top of `rsip`'s message types.

pub mod dialog;
pub mod digest;
pub mod ids;
pub mod message;
pub mod registrar;
pub mod registration;
pub mod timers;
pub mod transaction;
