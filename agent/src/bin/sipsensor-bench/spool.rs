//! `sipsensor-bench spool`: what the sample spool writes, from its own
//! counters. A simulated stretch of a 3-channel × 100 Hz stream (the
//! simulated sensor's waveform with noise: temperature, humidity,
//! pressure) goes through the same feed and writer code the agent runs,
//! on a fake clock (an hour takes seconds), with an fsync every
//! `--fsync-ms` of simulated time. Prints the spool's bytes written per
//! hour and the bytes the kernel sent to the disk for it (`write_bytes`
//! of /proc/self/io: whole pages per fsync; the file system's journal
//! comes on top and is not counted). Nothing is asserted.

use crate::Args;
use sipsensor_agent::sensor::sim::{SimChannel, SimConfig};
use sipsensor_agent::spool::{self, SampleRunRef, Spool, SpoolOptions};
use sipsensor_protocol::Unit;
use std::time::{Duration, Instant, UNIX_EPOCH};

const RATE: u64 = 100;
const CHANNELS: usize = 3;

pub fn run(a: &Args) -> Result<(), String> {
    let hours: f64 = a.get("hours", 1.0)?;
    let fsync_ms: u64 = a.get("fsync-ms", 1000)?;
    let spps: Vec<u64> = a
        .text("spp")
        .unwrap_or("1,2,10")
        .split(',')
        .map(|s| s.parse().map_err(|_| format!("--spp: cannot read {s:?}")))
        .collect::<Result<_, _>>()?;
    let base = a
        .text("dir")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    println!(
        "spool: 3 channels x {RATE} Hz, {hours} h simulated, fsync every {fsync_ms} ms, in {}",
        base.display()
    );
    for spp in spps {
        let dir = base.join(format!(
            "sipsensor-spool-figures-{}-{spp}",
            std::process::id()
        ));
        let result = one(&dir, hours, fsync_ms, spp.max(1));
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
    Ok(())
}

fn sensor() -> Result<SimConfig, String> {
    let channel = |name: &str, unit: &str, scale: f64, offset: f64, amplitude: f64, noise: f64| {
        Ok::<_, String>(SimChannel {
            name: name.into(),
            unit: Unit::from_symbol(unit).ok_or_else(|| format!("unit {unit}"))?,
            scale,
            offset,
            amplitude,
            period: Duration::from_secs(600),
            noise,
        })
    };
    Ok(SimConfig {
        seed: 1,
        channels: vec![
            channel("temperature", "Cel", 0.01, 21.5, 2.0, 0.05)?,
            channel("humidity", "%RH", 0.01, 45.0, 5.0, 0.2)?,
            channel("pressure", "Pa", 0.1, 101_325.0, 50.0, 2.0)?,
        ],
    })
}

fn one(dir: &std::path::Path, hours: f64, fsync_ms: u64, spp: u64) -> Result<(), String> {
    let sim = sensor()?;
    let t0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let options = SpoolOptions {
        dir: dir.to_owned(),
        max_bytes: 1 << 34,
        max_age: Duration::from_secs(30 * 86_400),
    };
    let mut store = Spool::open(&options, t0).map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = spool::feed(spool::FEED_BYTES);
    let period = Duration::from_nanos(1_000_000_000 / RATE);
    let instants = (hours * 3600.0 * RATE as f64) as u64;
    let per_sync = (fsync_ms * RATE / 1000).max(1);
    let (mut values, mut buf) = (Vec::with_capacity(CHANNELS * spp as usize), Vec::new());
    let io0 = write_bytes();
    let cpu = Instant::now();
    let mut k = 0;
    while k < instants {
        values.clear();
        for i in k..k + spp {
            for c in 0..CHANNELS {
                let spec = sim.channels[c].scale;
                values.push((sim.value(c, i, period) / spec).round() as i32);
            }
        }
        let first_ns = 1_767_225_600_000_000_000 + (k * 10_000_000) as i64;
        tx.samples(&SampleRunRef {
            stream: 1,
            first_ns,
            spacing_ns: 10_000_000,
            channels: CHANNELS as u8,
            values: &values,
        });
        let now = t0 + period * u32::try_from(k).unwrap_or(u32::MAX);
        rx.drain(&mut store, &mut buf, now);
        let next = k + spp;
        if next / per_sync != k / per_sync {
            store.sync();
        }
        k = next;
    }
    store.sync();
    let elapsed = cpu.elapsed();
    let disk = write_bytes().zip(io0).map(|(b, a)| b - a);
    let s = store.stats();
    let per_hour = |n: u64| n as f64 / hours;
    println!(
        "  {spp:>2} samples/packet: {:.2} MB/h written by the spool ({:.1} bytes a sample instant), \
         {:.0} fsyncs/h, {} segments; {} MB/h reached the disk; a week: {:.0} MiB; ran {:.1} s",
        per_hour(s.bytes_written) / 1e6,
        s.bytes_written as f64 / instants as f64,
        per_hour(s.fsyncs),
        s.segments,
        disk.map_or("unknown".into(), |d| format!("{:.2}", per_hour(d) / 1e6)),
        per_hour(s.bytes_written) * 168.0 / (1 << 20) as f64,
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// Bytes this process caused to be sent to storage (/proc/self/io).
fn write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
}
