//! One sensor's catch-up after an outage at 3 channels × 100 Hz: the
//! spool filled on a fake clock (the spool's own writer, records stamped
//! from an outage-length ago to now), then the agent started against a
//! collector that holds nothing of the sensor, so its mark is 0 and the
//! whole outage is backfilled (docs/protocol.md 11.7) while it streams
//! live. Timed until the outage's last two seconds are stored.

use sipsensor_agent::spool::{Record, SampleRun, Spool, SpoolOptions};
use sipsensor_agent::status::AgentState;
use sipsensor_e2e::{Agent, collector, unix_ns};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHANNELS: u8 = 3;
const SPACING_NS: i64 = 10_000_000;
const SAMPLES_PER_RUN: usize = 10;
/// The layout number the filled runs are filed under, and the channels
/// behind it as the agent's description names them, in the spool's
/// layouts file (agent/src/spool/layouts.rs: `id\tcount\tname/unit/scale`).
const LAYOUT: u32 = 0x0bf1_0001;
const LAYOUT_CHANNELS: [&str; 3] = ["sim.wave/V/-3", "sim.extra1/V/-3", "sim.extra2/V/-3"];
/// The instants checked at each end of the outage.
const PROBE_NS: i64 = 2_000_000_000;

fn at(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Instants of channel 0 stored in `[from, from + PROBE_NS)`.
fn stored_in(url: &str, aor: &str, from: i64) -> usize {
    collector::samples_in(url, aor, Some((from, from + PROBE_NS)))
        .iter()
        .filter(|s| s.channel == 0)
        .count()
}

pub fn run(outage_s: u64) -> Result<(), String> {
    let site = crate::Site::start(&["catchup"])?;
    let mut agent = Agent::new(site.agent_spec("catchup")).map_err(|e| e.to_string())?;
    let dir = agent.spool_dir();
    let outage_ns = i64::try_from(outage_s).unwrap_or(i64::MAX / 4) * 1_000_000_000;
    let fill_end = unix_ns() - 1_000_000_000;
    let fill_start = fill_end - outage_ns;

    let filling = Instant::now();
    let options = SpoolOptions {
        dir: dir.clone(),
        max_bytes: 192 << 20,
        max_age: Duration::from_secs(7 * 86_400),
    };
    let mut spool = Spool::open(&options, at(fill_start)).map_err(|e| e.to_string())?;
    let mut layouts = std::fs::File::create(dir.join("layouts")).map_err(|e| e.to_string())?;
    writeln!(layouts, "{LAYOUT:08x}\t3\t{}", LAYOUT_CHANNELS.join("\t"))
        .map_err(|e| e.to_string())?;
    let run_ns = SPACING_NS * SAMPLES_PER_RUN as i64;
    let mut runs = 0u64;
    let mut first_ns = fill_start;
    while first_ns < fill_end {
        let values = (0..SAMPLES_PER_RUN * usize::from(CHANNELS))
            .map(|i| ((runs as usize * 7 + i * 13) % 2000) as i32 - 1000)
            .collect();
        let run = SampleRun {
            stream: LAYOUT,
            first_ns,
            spacing_ns: SPACING_NS as u32,
            channels: CHANNELS,
            values,
        };
        spool.append(&Record::Samples(run), at(first_ns));
        runs += 1;
        first_ns += run_ns;
    }
    spool.sync();
    let stats = spool.stats();
    drop(spool);
    let filled = filling.elapsed();

    let url = site.collector.storage_url().to_string();
    let aor = agent.spec.aor();
    agent.launch().map_err(|e| e.to_string())?;
    let started = Instant::now();
    agent.wait_status("streaming", Duration::from_secs(30), |s| {
        s.state == AgentState::Streaming
    });
    let live_after = started.elapsed();
    let want = usize::try_from(PROBE_NS / SPACING_NS).unwrap_or(0);
    // Backfill goes oldest first: done when the outage's end is stored.
    let limit = Duration::from_secs(outage_s + 600);
    let mut last = 0;
    let done = sipsensor_e2e::wait_for(limit, || {
        last = stored_in(&url, &aor, fill_end - PROBE_NS);
        if last < want {
            std::thread::sleep(Duration::from_secs(2));
        }
        (last >= want).then(|| started.elapsed())
    })
    .ok_or_else(|| {
        format!(
            "the outage's end not stored within {limit:?} ({last} of {want} instants); agent log:\n{}",
            agent.log_tail()
        )
    })?;
    let head = stored_in(&url, &aor, fill_start);
    let samples = (outage_ns / SPACING_NS) as f64 * f64::from(CHANNELS);
    println!(
        "catch-up after {outage_s} s at 3 channels × 100 Hz: spool {} runs, {:.1} MB on disk, \
         filled in {:.1} s on a fake clock\n",
        runs,
        stats.bytes_on_disk as f64 / 1e6,
        filled.as_secs_f64()
    );
    println!("| outage | live after | backfill done after | samples/s | outage start stored |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {outage_s} s | {:.1} s | {:.1} s | {:.0} | {head} of {want} instants |",
        live_after.as_secs_f64(),
        done.as_secs_f64(),
        samples / done.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    Ok(())
}
