//! sipsensor-bench: the real-time sender measured and checked.
//!
//! ```text
//! sipsensor-bench bench [--seconds 20] [--mlock onfault|all|off] [--dump DIR]
//!     [--cases normal-idle,fifo-idle,normal-hog,fifo-hog] [--edges-ms N]
//!     4 cases (SCHED_FIFO or not × CPU hog on every core or not): a sender
//!     child process streams 3 channels at 100 Hz, 2 instants per packet,
//!     to a receiver here that timestamps arrivals in the kernel
//!     (SO_TIMESTAMPNS); prints CPU, peak RSS, jitter, drift, rate error.
//!     With --edges-ms N the stream also carries a GPIO input toggled every
//!     N ms, and the edges' latency (push to kernel receive) is printed.
//! sipsensor-bench send --to ADDR --rtcp-to ADDR [--seconds S] [--priority P] ...
//!     the sender: a simulated board and a `Streamer`; prints one RESULT
//!     line with its own CPU time and peak RSS.
//! sipsensor-bench check [--seconds S] -- PREFIX...
//!     runs `PREFIX... send ...` (e.g. under qemu-arm-static), receives on
//!     127.0.0.1 and checks every packet against the waveform; exit 1 on
//!     any difference.
//! sipsensor-bench hog --seconds S
//!     a busy loop that ends by itself after S seconds.
//! sipsensor-bench spool [--hours 1] [--fsync-ms 1000] [--spp 1,2,10] [--dir DIR]
//!     the sample spool's bytes written per hour at 3 channels x 100 Hz,
//!     on a fake clock (spool.rs).
//! ```
//!
//! For now the measured process is this binary's `send`, which runs the
//! agent's `Streamer` and sensor I/O thread but not its SIP stack or tokio
//! runtime (docs/benchmarks.md says so next to the figures).

mod analyze;
mod bench;
mod check;
mod receive;
mod send;
mod spool;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `--key value` options and bare `--flag`s; `--` ends them.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
    /// What follows `--`.
    pub rest: Vec<String>,
}

impl Args {
    fn parse(args: &[String], flags: &[&str]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = args.iter();
        while let Some(x) = it.next() {
            if x == "--" {
                a.rest = it.cloned().collect();
                break;
            }
            let Some(key) = x.strip_prefix("--") else {
                return Err(format!("unexpected argument {x:?}"));
            };
            if flags.contains(&key) {
                a.flags.push(key.to_owned());
            } else {
                let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
                a.values.insert(key.to_owned(), v.clone());
            }
        }
        Ok(a)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot read {v:?}")),
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

const USAGE: &str =
    "usage: sipsensor-bench bench|send|check|hog|spool [options] (see the source's header)";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "bench" => Args::parse(rest, &[]).and_then(|a| bench::run(&a)),
        "send" => Args::parse(rest, &[]).and_then(|a| send::run(&a)),
        "check" => Args::parse(rest, &[]).and_then(|a| check::run(&a)),
        "hog" => Args::parse(rest, &[]).and_then(|a| hog(&a)),
        "spool" => Args::parse(rest, &[]).and_then(|a| spool::run(&a)),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipsensor-bench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Spin for `--seconds`, then exit: a hog that cannot outlive the bench
/// even if the bench dies before killing it.
fn hog(a: &Args) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs_f64(a.get("seconds", 10.0)?);
    let mut x: u64 = 1;
    while Instant::now() < end {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    Ok(())
}
