//! Fleet updates (docs/protocol.md 12): the bundles the collector publishes
//! and serves over HTTPS, the fleet view of what every sensor reports, and
//! the RFC 6665 subscriptions that carry reports and wants.

pub mod bundle;
pub mod cli;
pub mod config;
pub mod fleet;
pub mod server;
pub mod store;
pub mod subscriptions;
