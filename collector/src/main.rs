//! sipsensor-collector command line.

use clap::{Parser, Subcommand};
use sipsensor_collector::config::{self, Config};
use sipsensor_collector::export::{self, ExportRequest, Format, Kind};
use sipsensor_collector::storage::sqlite::IntegrityCheck;
use sipsensor_collector::storage::{self, OpenOptions, StorageUrl, TS_MAX};
use sipsensor_collector::{app, timefmt};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "sipsensor-collector",
    version,
    about = "sipsensor data collector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector until SIGTERM or SIGINT.
    Run {
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate a config file and exit.
    CheckConfig {
        #[arg(default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Call a sensor by its address of record: it answers and streams.
    Call(sipsensor_collector::sip::cli::CallArgs),
    /// Change the sample rate of a sensor's stream (a re-INVITE).
    SetRate(sipsensor_collector::sip::cli::SetRateArgs),
    /// Fleet updates: publish and list bundles, roll them out (docs/fleet-updates.md).
    #[command(subcommand)]
    Update(sipsensor_collector::update::cli::UpdateCommand),
    /// Write one sensor's stored data as CSV or JSON.
    Export {
        /// Read the storage URL from this config file.
        #[arg(short, long, conflicts_with = "storage")]
        config: Option<PathBuf>,
        /// Storage URL (sqlite:///... or postgres://...) instead of a config.
        #[arg(long)]
        storage: Option<StorageUrl>,
        /// Sensor id or address of record.
        #[arg(long)]
        sensor: String,
        /// Start (RFC 3339, inclusive); default: the beginning.
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// End (RFC 3339, exclusive); default: no end.
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        #[arg(long, value_enum, default_value = "samples")]
        kind: Kind,
        /// Output file; default standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn parse_time(s: &str) -> Result<i64, String> {
    timefmt::parse_rfc3339(s).map_err(|e| e.to_string())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in journald or files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr (the reader of a pipe gone, journald restarted)
        // must not stop the collector: the default reports write errors
        // with eprintln!, which panics on that same closed stderr.
        .log_internal_errors(false)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Call(a) => sipsensor_collector::sip::cli::call(a),
        Command::SetRate(a) => sipsensor_collector::sip::cli::set_rate(a),
        Command::CheckConfig { config } => check_config(&config),
        Command::Update(command) => {
            runtime().and_then(|rt| rt.block_on(sipsensor_collector::update::cli::run(command)))
        }
        Command::Export {
            config,
            storage,
            sensor,
            from,
            to,
            format,
            kind,
            output,
        } => {
            let url = match (config, storage) {
                (_, Some(url)) => Ok(url),
                (Some(path), None) => Config::load(&path)
                    .map(|c| c.storage.url)
                    .map_err(|e| e.to_string()),
                (None, None) => Config::load(std::path::Path::new(config::DEFAULT_PATH))
                    .map(|c| c.storage.url)
                    .map_err(|e| format!("{e} (or give --storage URL)")),
            };
            url.and_then(|url| {
                let req = ExportRequest {
                    sensor,
                    from_ns: from.unwrap_or(i64::MIN),
                    to_ns: to.unwrap_or(TS_MAX),
                    format,
                    kind,
                };
                run_export(&url, &req, output)
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("sipsensor-collector: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the config, then reads what it names (credentials, token file,
/// control socket path) as `run` would; warnings go to stderr.
fn check_config(path: &std::path::Path) -> Result<(), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let findings = app::check::check(&config);
    for w in &findings.warnings {
        eprintln!("sipsensor-collector: warning: {w}");
    }
    if findings.errors.is_empty() {
        println!("{}: ok", path.display());
        Ok(())
    } else {
        Err(findings.errors.join("\nsipsensor-collector: "))
    }
}

fn run(config_path: PathBuf) -> Result<(), String> {
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    init_logging();
    let rt = runtime()?;
    rt.block_on(app::run(config, app::shutdown_signal(), |_| {}))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn run_export(
    url: &StorageUrl,
    req: &ExportRequest,
    output: Option<PathBuf>,
) -> Result<(), String> {
    let rt = runtime()?;
    rt.block_on(async {
        // Reading only: skip the full-file check a long-running start does.
        let opts = OpenOptions {
            sqlite_check: IntegrityCheck::HeaderOnly,
            sqlite_group: None,
        };
        let store = storage::open(url, opts).await.map_err(|e| e.to_string())?;
        let result = match &output {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                export::export(store.as_ref(), req, std::io::BufWriter::new(file)).await
            }
            None => {
                let stdout = std::io::stdout().lock();
                export::export(store.as_ref(), req, std::io::BufWriter::new(stdout)).await
            }
        };
        let closed = store.close().await;
        let rows = result.map_err(|e| e.to_string())?;
        closed.map_err(|e| e.to_string())?;
        if let Some(path) = output {
            eprintln!("{rows} rows written to {}", path.display());
        }
        std::io::stderr().flush().ok();
        Ok(())
    })
}
