//! sipsensor-agent: see `sipsensor-agent --help`.

fn main() -> std::process::ExitCode {
    sipsensor_agent::cli::main()
}
