//! Fleet updates (docs/protocol.md section 12): the collector's side.
//!
//! - [`rollout`]: staged rollouts of a published version to a set of
//!   sensors (12.7): the sans-I/O core, its persistence, the control
//!   requests behind `sipsensor-collector update rollout/status/halt`.

pub mod rollout;
