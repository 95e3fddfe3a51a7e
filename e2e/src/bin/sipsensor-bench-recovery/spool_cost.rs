//! Agent CPU and RSS with the spool against without, side by side in one
//! run (issue #15: at most 1.2×).

use crate::proc_stats::{self, Reading};
use sipsensor_agent::status::AgentState;
use sipsensor_e2e::Agent;
use std::time::Duration;

/// Before measuring: sessions up, the spool's first segment made.
const WARM_UP: Duration = Duration::from_secs(10);

pub fn run(seconds: u64) -> Result<(), String> {
    let site = crate::Site::start(&["spooling", "plain"])?;
    let mut with = site.agent_spec("spooling");
    with.seed = 1;
    let mut without = site.agent_spec("plain");
    without.seed = 2;
    without.spool.enabled = false;
    let mut agents = Vec::new();
    for spec in [with, without] {
        let agent = Agent::start(spec).map_err(|e| e.to_string())?;
        agent.wait_status("streaming", Duration::from_secs(30), |s| {
            s.state == AgentState::Streaming
        });
        agents.push(agent);
    }
    std::thread::sleep(WARM_UP);
    let pids: Vec<u32> = agents
        .iter()
        .map(|a| a.pid().ok_or("an agent is not running"))
        .collect::<Result<_, _>>()?;
    let read = |pid: u32| proc_stats::read(pid).ok_or(format!("/proc/{pid} unreadable"));
    let before: Vec<Reading> = pids.iter().map(|p| read(*p)).collect::<Result<_, _>>()?;
    let threads_before: Vec<_> = pids.iter().map(|p| proc_stats::threads(*p)).collect();
    let load_before = proc_stats::load_average();
    std::thread::sleep(Duration::from_secs(seconds));
    let after: Vec<Reading> = pids.iter().map(|p| read(*p)).collect::<Result<_, _>>()?;
    let threads_after: Vec<_> = pids.iter().map(|p| proc_stats::threads(*p)).collect();
    let load_after = proc_stats::load_average();

    println!(
        "agent at 3 channels × 100 Hz (10 samples a packet), {seconds} s after {} s of warm-up, \
         one run, side by side; load average (1 min) {load_before} at the start, {load_after} \
         at the end:\n",
        WARM_UP.as_secs()
    );
    println!("| agent | CPU (% of a core) | RSS (MiB) | peak RSS (MiB) | written (MB/h) |");
    println!("|---|---:|---:|---:|---:|");
    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    for (name, (b, a)) in ["with the spool", "without"]
        .iter()
        .zip(before.iter().zip(&after))
    {
        let share = proc_stats::cpu_share(b, a);
        cpu.push(share);
        rss.push(a.rss_kib as f64);
        println!(
            "| {name} | {:.2} | {:.1} | {:.1} | {:.2} |",
            share * 100.0,
            a.rss_kib as f64 / 1024.0,
            a.peak_rss_kib as f64 / 1024.0,
            proc_stats::written_per_hour(b, a) / 1e6
        );
    }
    let ratio = |v: &[f64]| v[0] / v[1].max(f64::MIN_POSITIVE);
    println!(
        "\nwith/without: CPU {:.2}×, RSS {:.2}× (target: at most 1.2×)",
        ratio(&cpu),
        ratio(&rss)
    );
    println!("\nby thread (share of a core from schedstat, wake-ups a second):\n");
    println!("| agent | thread | CPU (% of a core) | wake-ups/s |");
    println!("|---|---|---:|---:|");
    for (i, name) in ["with the spool", "without"].iter().enumerate() {
        let wall = after[i].at.duration_since(before[i].at);
        for (thread, share, wakes) in
            proc_stats::thread_costs(&threads_before[i], &threads_after[i], wall)
        {
            println!("| {name} | {thread} | {:.3} | {wakes:.1} |", share * 100.0);
        }
    }
    Ok(())
}
