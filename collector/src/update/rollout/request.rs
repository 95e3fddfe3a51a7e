//! What `update rollout/status/halt` ask the running collector over the
//! control socket: plain data, below both the control socket
//! (`sip/control.rs`, which carries it) and the command line
//! (`control.rs`, which sends it), so neither imports the other through it.

use super::{DEFAULT_TIMEOUT, RebootPolicy, RolloutId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What `update rollout/status/halt` ask the running collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateRequest {
    Rollout(RolloutRequest),
    /// One rollout in detail, or (without) the recent ones in a line each.
    Status {
        #[serde(default)]
        rollout: Option<RolloutId>,
    },
    Halt {
        rollout: RolloutId,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRequest {
    pub version: String,
    /// Addresses of record or user names; `None` for every known sensor.
    #[serde(default)]
    pub sensors: Option<Vec<String>>,
    pub canary: u32,
    pub max_failures: u32,
    pub growth: u32,
    pub timeout_s: u64,
    /// `now` or `window` (12.4).
    pub reboot: String,
}

impl RolloutRequest {
    pub fn reboot_policy(&self) -> Result<RebootPolicy, String> {
        RebootPolicy::parse(&self.reboot)
            .ok_or_else(|| format!("{:?} is not a reboot policy (now or window)", self.reboot))
    }

    pub fn timeout(&self) -> Duration {
        if self.timeout_s == 0 {
            DEFAULT_TIMEOUT
        } else {
            Duration::from_secs(self.timeout_s)
        }
    }
}
