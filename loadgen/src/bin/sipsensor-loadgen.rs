//! `sipsensor-loadgen`: simulated sensors against a running collector.
//!
//! ```sh
//! sipsensor-loadgen credentials -n 1000 > credentials.yaml
//! sipsensor-loadgen run --collector 127.0.0.1:5060 -n 1000 --seconds 30 \
//!     --collector-pid $(pidof sipsensor-collector) --metrics 127.0.0.1:8080
//! # A fleet for a rollout: fake installs of about 4 s, 5 % failing.
//! sipsensor-loadgen run --collector 127.0.0.1:5060 -n 1000 --seconds 600 \
//!     --fleet-version 2026.12.1 --install-failure-rate 0.05 \
//!     --fake-download-ms 1000 --fake-install-ms 1000 --fake-reboot-ms 1000 --fake-trial-ms 1000
//! ```

use clap::{Parser, Subcommand};
use sipsensor_loadgen::fake_install::FakeInstallConfig;
use sipsensor_loadgen::load::{self, LoadFleet, LoadOptions};
use sipsensor_loadgen::pki::ThrowAwayPki;
use sipsensor_loadgen::sensor::LoadBackfill;
use sipsensor_runtime::open_files;
use sipsensor_runtime::sip_transport::{TlsConfig, tls::client_config};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "sipsensor-loadgen",
    version,
    about = "simulated sipsensor agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the header of the table `run --row` prints rows of.
    TableHeader,
    /// Print a collector credentials file for the simulated sensors.
    Credentials {
        #[arg(short, long)]
        n: usize,
        #[arg(long, default_value = "sensor-")]
        prefix: String,
        #[arg(long, default_value = "pw-")]
        password_prefix: String,
    },
    /// Write a throw-away CA (demo-ca.pem) and a collector certificate
    /// for 127.0.0.1 (collector.crt, collector.key) into a directory.
    Pki {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Register, call, stream for a while, hang up; print the figures.
    Run(Box<RunArgs>),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The collector's SIP address (UDP, or TLS with --tls-ca).
    #[arg(long)]
    collector: SocketAddr,
    /// SIP over TLS to --collector, checked against this CA, and SRTP:
    /// each sensor on its own connection, as boards are.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    #[arg(short, long)]
    n: usize,
    /// Length of the steady measurement window.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value = "example.net")]
    domain: String,
    #[arg(long, default_value = "sensor-")]
    prefix: String,
    #[arg(long, default_value = "pw-")]
    password_prefix: String,
    /// Packets (and samples per channel) per second.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    #[arg(long, default_value_t = 3)]
    channels: usize,
    #[arg(long, default_value_t = 1)]
    spp: u8,
    /// Addresses to spread the sensors' sockets over (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    ips: Vec<IpAddr>,
    /// Sensors sharing one RTP socket (SSRCs tell them apart).
    #[arg(long, default_value_t = 1)]
    per_rtp_socket: usize,
    /// REGISTERs or INVITEs in flight at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Threads sending RTP.
    #[arg(long, default_value_t = 1)]
    pumps: usize,
    /// Collector PID to measure CPU and memory of.
    #[arg(long)]
    collector_pid: Option<u32>,
    /// Collector HTTP address for /metrics.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// Print them as a row of the docs/benchmarks.md table, with this
    /// store name in its first column.
    #[arg(long)]
    row: Option<String>,
    /// The last this many sensors offer docs/protocol.md 11 and, called
    /// after the others, backfill --backfill-seconds each, all at once.
    #[arg(long, default_value_t = 0)]
    backfill_sensors: usize,
    #[arg(long, default_value_t = 3600)]
    backfill_seconds: u64,
    /// Each backfilling sensor's own rate cap, bytes per second (the
    /// collector's max-rate may be lower).
    #[arg(long, default_value_t = 20_000)]
    backfill_rate: u64,
    /// Ping the collector inside each session this often (milliseconds)
    /// and set a lost session up again (REGISTER, call), as the agent
    /// does: a run that outlives a collector restart. 0: off.
    #[arg(long, default_value_t = 0)]
    keepalive_ms: u64,
    #[command(flatten)]
    fleet: FleetArgs,
}

/// The simulated fleet (docs/protocol.md 12; docs/fleet-updates.md
/// "Simulated fleets").
#[derive(Debug, clap::Args)]
struct FleetArgs {
    /// Every sensor runs this image version and answers the collector's
    /// fleet subscription with a fake install (none without it).
    #[arg(long)]
    fleet_version: Option<String>,
    /// `compatible=` of the sensors' reports.
    #[arg(long, default_value = "sipsensor-sim")]
    fleet_compatible: String,
    /// The share of fake installs that fail (0 to 1): at the download, at
    /// `rauc install` or at the health check (a rollback).
    #[arg(long, default_value_t = 0.0)]
    install_failure_rate: f64,
    /// The fake steps' durations, milliseconds.
    #[arg(long, default_value_t = 60_000)]
    fake_download_ms: u64,
    #[arg(long, default_value_t = 90_000)]
    fake_install_ms: u64,
    #[arg(long, default_value_t = 40_000)]
    fake_reboot_ms: u64,
    /// The health check: `trial` to `good`.
    #[arg(long, default_value_t = 60_000)]
    fake_trial_ms: u64,
    /// Each step's time is drawn from ± this share (0 to 1) of its value.
    #[arg(long, default_value_t = 0.5)]
    fake_jitter: f64,
    /// Seeds the fake installs' draws (which fail, how long each step takes).
    #[arg(long, default_value_t = 1)]
    fleet_seed: u64,
}

impl FleetArgs {
    fn load_fleet(self) -> Option<LoadFleet> {
        let ms = Duration::from_millis;
        Some(LoadFleet {
            version: self.fleet_version?,
            compatible: self.fleet_compatible,
            install: FakeInstallConfig {
                download: ms(self.fake_download_ms),
                install: ms(self.fake_install_ms),
                reboot: ms(self.fake_reboot_ms),
                trial: ms(self.fake_trial_ms),
                jitter: self.fake_jitter,
                failure_rate: self.install_failure_rate,
            },
            seed: self.fleet_seed,
        })
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::TableHeader => {
            println!("{}", load::LoadReport::TABLE_HEADER);
            ExitCode::SUCCESS
        }
        Command::Credentials {
            n,
            prefix,
            password_prefix,
        } => {
            print!("{}", load::credentials_yaml(n, &prefix, &password_prefix));
            ExitCode::SUCCESS
        }
        Command::Pki { dir } => match ThrowAwayPki::write(&dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sipsensor-loadgen: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            let RunArgs {
                collector,
                tls_ca,
                n,
                seconds,
                domain,
                prefix,
                password_prefix,
                rate,
                channels,
                spp,
                ips,
                per_rtp_socket,
                concurrency,
                pumps,
                collector_pid,
                metrics,
                json,
                row,
                backfill_sensors,
                backfill_seconds,
                backfill_rate,
                keepalive_ms,
                fleet,
            } = *args;
            // Thousands of sockets; without the hard limit's room the
            // run fails where it runs out, which says so.
            let _ = open_files::raise_to_hard_limit();
            let tls = match tls_ca.map(|ca| client_config(&ca, None)).transpose() {
                Ok(client) => client.map(|client| TlsConfig {
                    client: Some(client),
                    ..TlsConfig::default()
                }),
                Err(e) => {
                    eprintln!("sipsensor-loadgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let opts = LoadOptions {
                collector,
                domain,
                sensors: n,
                prefix,
                password_prefix,
                rate_hz: rate,
                channels,
                samples_per_packet: spp,
                duration: Duration::from_secs(seconds),
                ips,
                per_rtp_socket,
                concurrency,
                collector_pid,
                metrics,
                pumps,
                tls,
                backfill_sensors,
                backfill: LoadBackfill {
                    outage: Duration::from_secs(backfill_seconds),
                    rate: backfill_rate,
                },
                fleet: fleet.load_fleet(),
                keep_session: (keepalive_ms > 0).then(|| Duration::from_millis(keepalive_ms)),
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sipsensor-loadgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(load::run(opts)) {
                Ok(r) => {
                    if let Some(store) = row {
                        println!("{}", r.table_row(&store));
                        if let Some(c) = r.caveat(&store) {
                            eprintln!("{c}");
                        }
                        if backfill_sensors > 0 {
                            eprintln!(
                                "  ({store}: {backfill_sensors} sensors backfilling {backfill_seconds} \
                                 s each beside the live load sent {} samples once and {} again \
                                 from a stopped mark; the collector deferred {} backfill \
                                 packets; {} of {backfill_sensors} backfills acknowledged \
                                 whole, the last {} after its call)",
                                r.backfill_samples_sent,
                                r.backfill_samples_again,
                                r.backfill_deferred.map_or("?".into(), |n| n.to_string()),
                                r.backfills_done,
                                r.backfill_done_s
                                    .map_or("none within the run".into(), |s| format!("{s:.0} s"))
                            );
                        }
                    } else if json {
                        println!("{}", r.to_json());
                    } else {
                        println!("{:#}", r.to_json());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sipsensor-loadgen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
