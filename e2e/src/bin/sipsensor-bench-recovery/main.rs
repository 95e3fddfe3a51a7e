//! The benchmarks of issue #15 (gap-free data), printed and never asserted
//! (docs/benchmarks.md): real agents and a real collector behind Kamailio,
//! as the e2e scenarios run them, from the binaries in
//! `$SIPSENSOR_BIN_DIR` (`make bench-recovery` builds release ones).
//!
//! - `spool-cost [--seconds N]`: two agents side by side in one run, at
//!   3 channels × 100 Hz, one with the spool and one without: CPU, RSS,
//!   bytes written per hour (the target: at most 1.2× the CPU and RSS),
//!   and each thread's CPU and wake-ups a second, to say which costs.
//! - `catch-up [--outage-seconds N]`: one sensor's spool filled with an
//!   outage of N s (default an hour) at 3 channels × 100 Hz by the spool's
//!   own writer on a fake clock, then the agent started against a
//!   collector that holds nothing of it: how long until the backfill of
//!   the outage is stored.

mod catch_up;
mod proc_stats;
mod spool_cost;

use sipsensor_e2e::site::{COLLECTOR_PASSWORD, SENSOR_PASSWORD};
use sipsensor_e2e::{AgentSpec, Collector};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: sipsensor-bench-recovery spool-cost [--seconds N]\n\
                     \x20      sipsensor-bench-recovery catch-up [--outage-seconds N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("spool-cost") => number(&args, "--seconds", 60).and_then(spool_cost::run),
        Some("catch-up") => number(&args, "--outage-seconds", 3600).and_then(catch_up::run),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipsensor-bench-recovery: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name N` among `args`, or `default`.
fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a whole number\n{USAGE}")),
    }
}

/// The stream: 3 channels at 100 Hz, a packet every 100 ms.
pub fn three_by_100_hz(spec: &mut AgentSpec) {
    spec.rate = 100;
    spec.spp = 10;
    spec.interval_ms = 10;
    spec.channels = 3;
}

/// Kamailio with `sensors` and a collector registered there.
#[derive(Debug)]
pub struct Site {
    pub kamailio: sipsensor_testkit::Kamailio,
    pub collector: Collector,
}

impl Site {
    pub fn start(sensors: &[&str]) -> Result<Self, String> {
        let mut users: Vec<(&str, &str)> = sensors.iter().map(|s| (*s, SENSOR_PASSWORD)).collect();
        users.push(("collector", COLLECTOR_PASSWORD));
        let kamailio = sipsensor_e2e::kamailio(&users);
        let spec = sipsensor_e2e::collector_behind(&kamailio, "collector", COLLECTOR_PASSWORD);
        let collector = Collector::start(spec).map_err(|e| e.to_string())?;
        let registered = sipsensor_e2e::wait_for(Duration::from_secs(20), || {
            collector.log().contains("registered as").then_some(())
        });
        registered
            .ok_or_else(|| format!("the collector did not register:\n{}", collector.log()))?;
        Ok(Self {
            kamailio,
            collector,
        })
    }

    /// An agent of `sensor` calling the collector through Kamailio.
    pub fn agent_spec(&self, sensor: &str) -> AgentSpec {
        let mut spec =
            sipsensor_e2e::agent_behind(&self.kamailio, sensor, SENSOR_PASSWORD, "collector");
        three_by_100_hz(&mut spec);
        spec
    }
}
