//! The command line: `run`, `check-config`, `probe`, `status`.

use crate::config::{self, ConfigFiles};
use crate::daemon::{self, RunOptions};
use crate::probe::{self, ProbeEnv};
use crate::sensor::SensorEnv;
use crate::status::{self, client};
use crate::update;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The sipsensor device daemon: sensors in, a real-time RTP stream out,
/// a SIP user agent.
#[derive(Debug, Parser)]
// The version names the build: "0.1.0 (abcdef123456 2026-12-06)" (build.rs).
#[command(name = "sipsensor-agent", version = env!("SIPSENSOR_AGENT_VERSION"), about)]
pub struct Cli {
    /// Where sysfs is mounted (tests point it at a fake tree).
    #[arg(long, global = true, default_value = "/sys", value_name = "DIR")]
    pub sysfs_root: PathBuf,
    /// Where the device nodes are (`i2c-N`).
    #[arg(long, global = true, default_value = "/dev", value_name = "DIR")]
    pub dev_root: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run {
        /// Config files, merged in order (later wins key by key).
        #[arg(long = "config", value_name = "FILE", default_value = config::DEFAULT_CONFIG)]
        config: Vec<PathBuf>,
        /// The technician's override file, merged last when it exists.
        #[arg(long = "override", value_name = "FILE", default_value = config::DEFAULT_OVERRIDE)]
        override_file: PathBuf,
        /// Do not read an override file.
        #[arg(long, conflicts_with = "override_file")]
        no_override: bool,
        /// Status socket, instead of the config's `status.socket`.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Check config files and exit non-zero with file:line:column on error.
    CheckConfig {
        /// Files merged in order; without any, the default config and the
        /// override file (when present).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Scan I2C buses, IIO devices and GPIOs; print a config snippet.
    Probe,
    /// Ask the running daemon for its status.
    Status {
        #[arg(long, value_name = "PATH", default_value = status::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        /// Wait up to SECS for the agent to be registered; exit 0 once it
        /// is, 1 when the time is up (the RAUC health check).
        #[arg(long, value_name = "SECS")]
        wait_registered: Option<u64>,
        /// With --wait-registered: exit 0 only once the agent has been
        /// registered and streaming for SECS without a break (the health
        /// check of an update's trial slot, docs/protocol.md 12.6).
        #[arg(long, value_name = "SECS", requires = "wait_registered")]
        wait_streamed: Option<u64>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            override_file,
            no_override,
            socket,
        } => {
            let optional = if no_override {
                vec![]
            } else {
                vec![override_file]
            };
            daemon::run(RunOptions {
                files: ConfigFiles::new(config, optional),
                env: SensorEnv::system(cli.sysfs_root, cli.dev_root),
                socket,
                poll: Duration::from_secs(2),
            })
        }
        Command::CheckConfig { files } => check_config(files),
        Command::Probe => {
            let env = SensorEnv::system(cli.sysfs_root.clone(), cli.dev_root.clone());
            let findings = probe::probe(&ProbeEnv {
                sysfs_root: cli.sysfs_root,
                dev_root: cli.dev_root,
                i2c: env.i2c,
            });
            print!("{}", probe::render(&findings));
            ExitCode::SUCCESS
        }
        Command::Status {
            socket,
            json,
            wait_registered,
            wait_streamed,
        } => status_cmd(&socket, json, wait_registered, wait_streamed),
    }
}

fn check_config(files: Vec<PathBuf>) -> ExitCode {
    let files = if files.is_empty() {
        ConfigFiles::new(
            vec![config::DEFAULT_CONFIG.into()],
            vec![config::DEFAULT_OVERRIDE.into()],
        )
    } else {
        ConfigFiles::new(files, vec![])
    };
    match config::load_with_notes(&files) {
        Ok((c, notes)) => {
            for n in notes {
                eprintln!("note: {n}");
            }
            println!("{}", summary(&c));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

/// What `check-config` prints for a valid config.
pub fn summary(c: &config::Config) -> String {
    let files: Vec<String> = c.sources.iter().map(|p| p.display().to_string()).collect();
    let sensors: Vec<String> = c
        .sensors
        .iter()
        .map(|s| format!("{} ({})", s.name, s.type_name()))
        .collect();
    let channels: Vec<String> = c
        .stream
        .channels
        .iter()
        .map(|ch| format!("{} [{}]", ch.spec.name, ch.spec.unit))
        .collect();
    format!(
        "config OK: {}\n  identity: {}\n  sensors: {}\n  stream: {} Hz, {} samples per packet, channels: {}\n  inputs: {}\n  security: {}",
        files.join(" + "),
        c.identity.aor,
        if sensors.is_empty() {
            "none".into()
        } else {
            sensors.join(", ")
        },
        c.stream.rate_hz,
        c.stream.samples_per_packet,
        if channels.is_empty() {
            "none".into()
        } else {
            channels.join(", ")
        },
        if c.gpio.inputs.is_empty() {
            "none".into()
        } else {
            c.gpio
                .inputs
                .iter()
                .map(|i| format!("{} (GPIO {})", i.name, i.pin))
                .collect::<Vec<_>>()
                .join(", ")
        },
        security(c)
    )
}

/// How SIP and the samples travel, as the start-up warning would say.
fn security(c: &config::Config) -> String {
    use config::ClearText;
    let ca = c
        .sip
        .tls
        .as_ref()
        .map(|t| t.ca_file.display().to_string())
        .unwrap_or_default();
    match c.clear_text() {
        None => format!("SIP over TLS (CA {ca}), SRTP required"),
        Some(ClearText::Signalling(t)) => {
            format!("clear text: SIP over {t}, no SRTP (`sip.transport: tls` to protect them)")
        }
        Some(ClearText::SamplesSrtpOff) => {
            format!("SIP over TLS (CA {ca}); clear text: samples as plain RTP (`media.srtp: off`)")
        }
        Some(ClearText::SamplesSrtpOptional) => format!(
            "SIP over TLS (CA {ca}); samples as plain RTP to a peer without SRTP (`media.srtp: optional`)"
        ),
    }
}

fn status_cmd(
    socket: &std::path::Path,
    json: bool,
    wait: Option<u64>,
    streamed: Option<u64>,
) -> ExitCode {
    let every = Duration::from_millis(500);
    let result = match (wait, streamed) {
        (Some(secs), Some(streamed)) => update::health::wait_streamed(
            socket,
            Duration::from_secs(secs),
            Duration::from_secs(streamed),
            every,
        )
        .map_err(|e| e.to_string()),
        (Some(secs), None) => client::wait_registered(socket, Duration::from_secs(secs), every)
            .map_err(|e| e.to_string()),
        (None, _) => client::fetch(socket, Duration::from_secs(2)).map_err(|e| e.to_string()),
    };
    match result {
        Ok(s) => {
            if json {
                match serde_json::to_string_pretty(&s) {
                    Ok(t) => println!("{t}"),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", status::render(&s));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_forms() {
        let c = Cli::try_parse_from([
            "sipsensor-agent",
            "run",
            "--config",
            "a.yaml",
            "--config",
            "b.yaml",
        ])
        .unwrap();
        match c.command {
            Command::Run {
                config,
                override_file,
                no_override,
                ..
            } => {
                assert_eq!(config, [PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]);
                assert_eq!(override_file, PathBuf::from(config::DEFAULT_OVERRIDE));
                assert!(!no_override);
            }
            other => panic!("{other:?}"),
        }
        let c =
            Cli::try_parse_from(["sipsensor-agent", "status", "--wait-registered", "30"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Status {
                wait_registered: Some(30),
                ..
            }
        ));
        let c = Cli::try_parse_from([
            "sipsensor-agent",
            "status",
            "--wait-registered",
            "300",
            "--wait-streamed",
            "60",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Status {
                wait_registered: Some(300),
                wait_streamed: Some(60),
                ..
            }
        ));
        // Streaming is waited for within the registration's bound only.
        assert!(
            Cli::try_parse_from(["sipsensor-agent", "status", "--wait-streamed", "60"]).is_err()
        );
        let c =
            Cli::try_parse_from(["sipsensor-agent", "--sysfs-root", "/tmp/s", "probe"]).unwrap();
        assert_eq!(c.sysfs_root, PathBuf::from("/tmp/s"));
        let c =
            Cli::try_parse_from(["sipsensor-agent", "check-config", "x.yaml", "y.yaml"]).unwrap();
        assert!(matches!(c.command, Command::CheckConfig { files } if files.len() == 2));
        assert!(
            Cli::try_parse_from(["sipsensor-agent", "status", "--wait-registered", "soon"])
                .is_err()
        );
    }
}
