//! `sipsensor-collector update rollout/status/halt`: the command line, the
//! requests it sends over the control socket ([`crate::sip::control`]),
//! and how a rollout is written for a person.

pub use super::request::{RolloutRequest, UpdateRequest};
use super::{
    DEFAULT_GROWTH, RolloutId, RolloutSnapshot, RolloutStatus, SensorPhase, human_duration,
};
use crate::sip::cli::Target;
use crate::sip::control::{self, Request};
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum UpdateCommand {
    /// Roll a published version out: canaries, then waves (docs/protocol.md 12.7).
    Rollout(RolloutArgs),
    /// Show one rollout, or the recent ones.
    Status {
        /// The rollout's number (default: the recent ones, a line each).
        rollout: Option<RolloutId>,
        #[command(flatten)]
        target: Target,
    },
    /// Stop a running rollout: no further sensor is targeted, and those
    /// not yet installing are told to stop.
    Halt {
        rollout: RolloutId,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["sensors", "all"])))]
pub struct RolloutArgs {
    /// The version to run (published with `update publish`).
    pub version: String,
    /// The sensors, by address of record or user name, in targeting order:
    /// the first --canary of them are the canaries.
    #[arg(long, value_delimiter = ',')]
    pub sensors: Vec<String>,
    /// Every sensor the collector knows.
    #[arg(long)]
    pub all: bool,
    /// How many sensors the first wave has.
    #[arg(long)]
    pub canary: u32,
    /// Halt when more sensors than this have failed.
    #[arg(long)]
    pub max_failures: u32,
    /// Each wave is this many times the previous one.
    #[arg(long, default_value_t = DEFAULT_GROWTH)]
    pub growth: u32,
    /// How long a targeted sensor has to report `good` (e.g. 30m, 90s, 2h).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Reboot at once, or in each sensor's maintenance window.
    #[arg(long, default_value = "now", value_parser = ["now", "window"])]
    pub reboot: String,
    #[command(flatten)]
    pub target: Target,
}

/// `90s`, `30m`, `2h`, `1h30m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 30m, 90s, 2h or 1h30m");
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || text.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Runs `sipsensor-collector update rollout/status/halt`.
pub fn run(command: UpdateCommand) -> Result<(), String> {
    let (target, request) = match command {
        UpdateCommand::Rollout(a) => (
            a.target,
            UpdateRequest::Rollout(RolloutRequest {
                version: a.version,
                sensors: (!a.all).then_some(a.sensors),
                canary: a.canary,
                max_failures: a.max_failures,
                growth: a.growth,
                timeout_s: a.timeout.as_secs(),
                reboot: a.reboot,
            }),
        ),
        UpdateCommand::Status { rollout, target } => (target, UpdateRequest::Status { rollout }),
        UpdateCommand::Halt { rollout, target } => (target, UpdateRequest::Halt { rollout }),
    };
    let socket = target.socket()?;
    let reply = control::request(&socket, &Request::Update(request), control::CLIENT_TIMEOUT)
        .map_err(|e| e.to_string())?;
    if reply.ok {
        println!("{}", reply.message);
        Ok(())
    } else {
        Err(reply.message)
    }
}

/// One line: `rollout 3 of 2026.12.2: running, wave 2 of 7; 30 done, 1 failed, 20 targeted, 949 pending`.
pub fn summary_line(s: &RolloutSnapshot) -> String {
    let count = |p: SensorPhase| s.sensors.iter().filter(|r| r.phase == p).count();
    let status = match &s.status {
        RolloutStatus::Running => "running".to_string(),
        RolloutStatus::Finished => "finished".to_string(),
        RolloutStatus::Halted { .. } => "halted".to_string(),
    };
    let waves = s.plan.waves().len();
    let wave = s.wave.map_or(0, |w| w + 1);
    let mut line = format!(
        "rollout {} of {}: {status}, wave {wave} of {waves}; {} done, {} failed",
        s.id,
        s.plan.version(),
        count(SensorPhase::Done),
        count(SensorPhase::Failed)
    );
    for (phase, name) in [
        (SensorPhase::Targeted, "targeted"),
        (SensorPhase::Stopped, "stopped"),
        (SensorPhase::Pending, "pending"),
    ] {
        let n = count(phase);
        if n > 0 {
            let _ = write!(line, ", {n} {name}");
        }
    }
    line
}

/// The summary, the plan, the halt's reason and every sensor not done.
pub fn details(s: &RolloutSnapshot) -> String {
    let mut text = summary_line(s);
    let p = &s.plan;
    let _ = write!(
        text,
        "\n  {} sensors, --canary {} --growth {} --max-failures {} --timeout {} --reboot {}",
        p.sensors.len(),
        p.canary,
        p.growth,
        p.max_failures,
        human_duration(p.timeout),
        p.want.reboot.as_str()
    );
    if let RolloutStatus::Halted { reason } = &s.status {
        let _ = write!(text, "\n  halted: {reason}");
    }
    for r in s.sensors.iter().filter(|r| {
        matches!(
            r.phase,
            SensorPhase::Targeted | SensorPhase::Failed | SensorPhase::Stopped
        )
    }) {
        let _ = write!(text, "\n  {} {}", r.sensor, r.phase.as_str());
        if let Some(u) = r.last_update {
            let _ = write!(text, " (last reported {u})");
        }
        if let Some(d) = &r.detail {
            let _ = write!(text, ": {d}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        for bad in ["", "m", "3x", "30m5", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn the_wire_form_of_a_rollout_request() {
        let r = Request::Update(UpdateRequest::Halt { rollout: 3 });
        assert_eq!(
            serde_json::to_string(&r).unwrap_or_default(),
            r#"{"update":{"halt":{"rollout":3}}}"#
        );
        let s: Request =
            serde_json::from_str(r#"{"update":{"status":{}}}"#).unwrap_or(Request::Sessions);
        assert_eq!(s, Request::Update(UpdateRequest::Status { rollout: None }));
    }
}
