//! `sipsensor-bench bench`: four cases side by side. Each starts a sender
//! child process (this binary's `send`), optionally a busy loop per CPU
//! core, receives for the configured time, and reads the child's own CPU
//! and memory figures from its RESULT line. Every child is killed by PID
//! when its case ends, also on error.
//!
//! `--media plain,AES_CM_128_HMAC_SHA1_80,AEAD_AES_128_GCM` runs each case
//! once per media protection, one after the other (same load, same
//! minute), and prints each SRTP case's CPU against the plain one's.

use crate::Args;
use crate::analyze::{self, EdgeLatency, Timing};
use crate::receive::{Arrival, Receiver};
use crate::send::Shape;
use sipsensor_agent::stream::sim::Checker;
use sipsensor_protocol::{CryptoAttribute, SrtpContext, SrtpKey, SrtpSuite};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Children killed (SIGKILL by PID) and reaped when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug)]
struct Row {
    label: String,
    result: HashMap<String, String>,
    timing: Option<Timing>,
    edges: Option<EdgeLatency>,
    check_errors: usize,
}

impl Row {
    fn num(&self, key: &str) -> f64 {
        self.result
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// Drops CAP_SYS_NICE for the child (from the bounding set, so the
/// exec'd process has neither it nor a way back): SCHED_FIFO then fails
/// with EPERM exactly as for an agent started without the capability.
const WITHOUT_SYS_NICE: [&str; 4] = [
    "setpriv",
    "--bounding-set=-sys_nice",
    "--inh-caps=-sys_nice",
    "--",
];

pub fn run(a: &Args) -> Result<(), String> {
    let seconds: f64 = a.get("seconds", 20.0)?;
    let mlock = a.text("mlock").unwrap_or("onfault").to_owned();
    crate::send::mlock_mode(&mlock)?;
    let shape = Shape::from_args(a)?;
    let edges_ms: u64 = a.get("edges-ms", 0)?;
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("{}", machine(cores));
    println!(
        "stream: {} channels at {} Hz, {} instants per packet; {seconds} s per case; \
         mlock {mlock}; hog = {cores} busy loops",
        shape.channels, shape.rate, shape.spp
    );
    let media = media_list(a.text("media").unwrap_or("plain"))?;
    let mut rows = Vec::new();
    let only = a.text("cases");
    for (fifo, hog) in [(false, false), (true, false), (false, true), (true, true)] {
        let key = format!(
            "{}-{}",
            if fifo { "fifo" } else { "normal" },
            if hog { "hog" } else { "idle" }
        );
        if only.is_some_and(|o| !o.split(',').any(|c| c == key)) {
            continue;
        }
        for suite in &media {
            let label = format!(
                "{}, {}{}",
                if fifo { "SCHED_FIFO" } else { "normal" },
                if hog { "hog" } else { "idle" },
                suite.map_or(String::new(), |s| format!(", {}", s.name()))
            );
            eprintln!("case {label} ...");
            let sender = Sender {
                exe: &exe,
                shape,
                seconds,
                extra: vec![
                    "--mlock".into(),
                    mlock.clone(),
                    "--edges-ms".into(),
                    edges_ms.to_string(),
                ],
                edges: edges_ms > 0,
                prefix: if fifo { &[] } else { &WITHOUT_SYS_NICE },
                dump: a.text("dump").map(PathBuf::from),
                srtp: suite.map(SrtpKey::generate),
            };
            rows.push(case(&label, &sender, if hog { cores } else { 0 })?);
        }
    }
    print_table(&rows);
    print_srtp_ratios(&rows);
    Ok(())
}

/// `plain` or an SRTP suite's name, for each entry of `--media`.
fn media_list(text: &str) -> Result<Vec<Option<SrtpSuite>>, String> {
    text.split(',')
        .map(|m| match m {
            "plain" => Ok(None),
            name => SrtpSuite::from_name(name)
                .map(Some)
                .ok_or_else(|| format!("--media {name:?}: plain or an SRTP suite name")),
        })
        .collect()
}

/// Each SRTP case's process CPU against the plain case of the same
/// scheduling and load (issue 14's target: at most 1.2×).
fn print_srtp_ratios(rows: &[Row]) {
    for r in rows {
        let Some((base, suite)) = r.label.rsplit_once(", ").filter(|(_, s)| s.contains('_')) else {
            continue;
        };
        if let Some(plain) = rows.iter().find(|p| p.label == base) {
            println!(
                "CPU {base}: {suite} {:.3} % / plain {:.3} % = {:.2}×; peak RSS {} / {} kB",
                r.num("cpu_pct"),
                plain.num("cpu_pct"),
                r.num("cpu_pct") / plain.num("cpu_pct"),
                r.num("rss_peak_kb"),
                plain.num("rss_peak_kb"),
            );
        }
    }
}

fn machine(cores: usize) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("machine: {cpu}, {cores} cores, Linux {kernel}")
}

/// How to start the sender.
struct Sender<'a> {
    exe: &'a Path,
    shape: Shape,
    seconds: f64,
    extra: Vec<String>,
    prefix: &'a [&'a str],
    /// Where to write each case's series (`--dump DIR`).
    dump: Option<PathBuf>,
    /// The sender toggles a GPIO input (`--edges-ms`).
    edges: bool,
    /// The sender protects its RTP and RTCP with this key (SRTP).
    srtp: Option<SrtpKey>,
}

impl Sender<'_> {
    fn command(&self, rx: &Receiver) -> Result<Command, String> {
        let (program, mut args): (PathBuf, Vec<String>) = match self.prefix.split_first() {
            Some((p, rest)) => {
                let mut a: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
                a.push(self.exe.display().to_string());
                (PathBuf::from(p), a)
            }
            None => (self.exe.to_path_buf(), Vec::new()),
        };
        args.extend([
            "send".into(),
            "--to".into(),
            rx.rtp_addr()?.to_string(),
            "--rtcp-to".into(),
            rx.rtcp_addr()?.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
        ]);
        args.extend(self.shape.args());
        args.extend(self.extra.iter().cloned());
        if let Some(key) = &self.srtp {
            let crypto = CryptoAttribute {
                tag: 1,
                key: key.clone(),
            };
            args.extend(["--srtp-crypto".into(), crypto.value()]);
        }
        let mut c = Command::new(program);
        c.args(args).stdout(Stdio::piped());
        Ok(c)
    }
}

/// Start the sender, receive until it exits (and a little after, for
/// what is still queued), and return its stdout with the arrivals.
pub fn stream(
    rx: &Receiver,
    mut cmd: Command,
    limit: Duration,
) -> Result<(String, Vec<Arrival>, bool), String> {
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let mut guard = Children(vec![child]);
    let deadline = Instant::now() + limit;
    let mut exited = None;
    let mut arrivals = rx.collect(deadline, || {
        if exited.is_none() {
            exited = guard.0[0].try_wait().ok().flatten();
        }
        exited.is_some()
    });
    arrivals.extend(rx.collect(Instant::now() + Duration::from_millis(200), || false));
    let mut out = String::new();
    if let Some(o) = guard.0[0].stdout.as_mut() {
        let _ = o.read_to_string(&mut out);
    }
    let ok = exited.is_some_and(|s| s.success());
    drop(guard);
    Ok((out, arrivals, ok))
}

fn case(label: &str, sender: &Sender<'_>, hogs: usize) -> Result<Row, String> {
    let rx = Receiver::bind()?;
    let mut hog_children = Children(Vec::new());
    for _ in 0..hogs {
        let c = Command::new(sender.exe)
            .args(["hog", "--seconds", &(sender.seconds + 15.0).to_string()])
            .spawn()
            .map_err(|e| format!("hog: {e}"))?;
        hog_children.0.push(c);
    }
    if hogs > 0 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let limit = Duration::from_secs_f64(sender.seconds + 10.0);
    let (out, arrivals, ok) = stream(&rx, sender.command(&rx)?, limit)?;
    drop(hog_children);
    if !ok {
        return Err(format!("{label}: the sender failed; its output: {out}"));
    }
    let mut result: HashMap<String, String> = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| format!("{label}: no RESULT line in {out:?}"))?
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // `THREAD <name> cpu_pct=<x>` lines: the steady-state share per thread.
    for l in out.lines().filter_map(|l| l.strip_prefix("THREAD ")) {
        if let Some((name, v)) = l.split_once(" cpu_pct=") {
            result.insert(format!("thread:{name}"), v.to_owned());
        }
    }
    let mut rtcp = rx.rtcp();
    let mut arrivals = arrivals;
    let mut unauthentic = 0;
    if let Some(key) = &sender.srtp {
        // The receiving end's work: what failed SRTP counts as bad.
        unauthentic = unprotect(key, &mut arrivals, &mut rtcp)?;
    }
    let mut checker = Checker::new(sender.shape.sim(), sender.shape.description(sender.edges));
    let check_errors = arrivals
        .iter()
        .filter(|a| checker.packet(&a.bytes).is_err())
        .count()
        + unauthentic;
    if let Some(dir) = &sender.dump {
        let name = label.replace(", ", "-").replace('_', "-").to_lowercase();
        let path = dir.join(format!("{name}.csv"));
        std::fs::write(&path, analyze::series(&arrivals, sender.shape.rate, 1))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(Row {
        label: label.to_owned(),
        result,
        timing: analyze::timing(&arrivals, sender.shape.rate, 1),
        edges: analyze::edge_latency(&arrivals, &rtcp, sender.shape.rate).filter(|_| sender.edges),
        check_errors,
    })
}

/// Replaces each SRTP packet and SRTCP compound by its plaintext; those
/// that fail authentication are dropped and counted.
fn unprotect(
    key: &SrtpKey,
    arrivals: &mut Vec<Arrival>,
    rtcp: &mut Vec<Vec<u8>>,
) -> Result<usize, String> {
    let context = || SrtpContext::inbound(key).map_err(|e| format!("SRTP: {e}"));
    let (mut rtp_in, mut rtcp_in) = (context()?, context()?);
    let before = arrivals.len() + rtcp.len();
    let mut plain = Vec::new();
    arrivals.retain_mut(|a| {
        let ok = rtp_in.unprotect_rtp(&a.bytes, &mut plain).is_ok();
        std::mem::swap(&mut a.bytes, &mut plain);
        ok
    });
    rtcp.retain_mut(|c| {
        let ok = rtcp_in.unprotect_rtcp(c, &mut plain).is_ok();
        std::mem::swap(c, &mut plain);
        ok
    });
    Ok(before - arrivals.len() - rtcp.len())
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| case | FIFO granted | CPU % of a core: process (sender thread, sensor thread) | peak RSS kB | p50 µs | p99 µs | max µs | sender's max wake delay µs | drift µs | rate ppm | packets | lost | missing % | bad |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let t = r.timing;
        let f = |g: fn(&Timing) -> f64| t.map_or("-".into(), |t| format!("{:.1}", g(&t)));
        let samples = r.num("samples") + r.num("missing");
        println!(
            "| {} | {} | {:.2} ({:.2}, {:.2}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            r.label,
            if r.num("realtime") == 1.0 {
                "yes"
            } else {
                "no"
            },
            r.num("cpu_pct"),
            r.num("thread:rtp-sender"),
            r.num("thread:sensor-sim"),
            r.num("rss_peak_kb"),
            f(|t| t.p50_us),
            f(|t| t.p99_us),
            f(|t| t.max_us),
            r.num("max_late_us"),
            f(|t| t.drift_us),
            t.map_or("-".into(), |t| format!("{:.2}", t.rate_ppm)),
            t.map_or(0, |t| t.packets),
            t.map_or(0, |t| t.lost),
            if samples > 0.0 {
                r.num("missing") / samples * 100.0
            } else {
                0.0
            },
            r.check_errors,
        );
    }
    for r in rows {
        if let Some(e) = r.edges {
            println!(
                "edge latency, {}: {} edges, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
                r.label, e.edges, e.p50_us, e.p99_us, e.max_us
            );
        }
    }
    let p99 = |label: &str| {
        rows.iter()
            .find(|r| r.label == label)
            .and_then(|r| r.timing)
            .map(|t| t.p99_us)
    };
    for load in ["idle", "hog"] {
        let normal = p99(&format!("normal, {load}"));
        let fifo = p99(&format!("SCHED_FIFO, {load}"));
        if let (Some(n), Some(f)) = (normal, fifo) {
            println!(
                "p99 jitter {load}: normal {n:.1} µs / SCHED_FIFO {f:.1} µs = {:.1}×",
                n / f.max(0.001)
            );
        }
    }
}
