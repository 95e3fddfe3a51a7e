//! SIP side (in progress).
pub mod config;
pub mod credentials;
