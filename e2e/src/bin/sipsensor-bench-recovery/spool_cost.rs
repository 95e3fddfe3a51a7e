//! Agent CPU and RSS with the spool against without, side by side
//! (issue #15: at most 1.2×). On these machines the agent started first
//! costs about 0.1 % of a core more whichever it is, so the pair runs
//! twice, in both start orders, and the balanced ratio is the geometric
//! mean of the two.

use crate::proc_stats::{self, Reading};
use sipsensor_agent::status::AgentState;
use sipsensor_e2e::Agent;
use std::time::Duration;

/// Before measuring: sessions up, the spool's first segment made.
const WARM_UP: Duration = Duration::from_secs(10);

/// What one round measured, with the spool and without.
struct Round {
    cpu: [f64; 2],
    rss: [f64; 2],
}

const WITH: usize = 0;
const WITHOUT: usize = 1;
const NAMES: [&str; 2] = ["with the spool", "without"];

pub fn run(seconds: u64) -> Result<(), String> {
    let site = crate::Site::start(&["spooling", "plain"])?;
    let mut rounds = Vec::new();
    for order in [[WITH, WITHOUT], [WITHOUT, WITH]] {
        rounds.push(round(&site, order, seconds)?);
    }
    let ratio =
        |r: &Round, v: fn(&Round) -> [f64; 2]| v(r)[WITH] / v(r)[WITHOUT].max(f64::MIN_POSITIVE);
    let cpu = |r: &Round| r.cpu;
    let rss = |r: &Round| r.rss;
    let (first, second) = (ratio(&rounds[0], cpu), ratio(&rounds[1], cpu));
    println!(
        "\nwith/without CPU: {first:.2}× with the spooling agent started first, {second:.2}× \
         started second; balanced {:.2}× (target: at most 1.2×); RSS {:.2}× and {:.2}×",
        (first * second).sqrt(),
        ratio(&rounds[0], rss),
        ratio(&rounds[1], rss)
    );
    Ok(())
}

/// Starts the two agents in `order`, measures them for `seconds` and
/// prints the round's tables; the agents stop when it returns.
fn round(site: &crate::Site, order: [usize; 2], seconds: u64) -> Result<Round, String> {
    let mut agents: Vec<(usize, Agent)> = Vec::new();
    for role in order {
        let mut spec = site.agent_spec(if role == WITH { "spooling" } else { "plain" });
        spec.seed = 1 + role as u64;
        spec.spool.enabled = role == WITH;
        let agent = Agent::start(spec).map_err(|e| e.to_string())?;
        agent.wait_status("streaming", Duration::from_secs(30), |s| {
            s.state == AgentState::Streaming
        });
        agents.push((role, agent));
    }
    std::thread::sleep(WARM_UP);
    let pids: Vec<u32> = agents
        .iter()
        .map(|(_, a)| a.pid().ok_or("an agent is not running"))
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
        "\nagent at 3 channels × 100 Hz (10 samples a packet), {seconds} s after {} s of warm-up, \
         side by side, started first: {}; load average (1 min) {load_before} at the start, \
         {load_after} at the end:\n",
        WARM_UP.as_secs(),
        NAMES[order[0]]
    );
    println!("| agent | CPU (% of a core) | RSS (MiB) | peak RSS (MiB) | written (MB/h) |");
    println!("|---|---:|---:|---:|---:|");
    let mut measured = Round {
        cpu: [0.0; 2],
        rss: [0.0; 2],
    };
    for (i, (role, _)) in agents.iter().enumerate() {
        let (b, a) = (&before[i], &after[i]);
        let share = proc_stats::cpu_share(b, a);
        measured.cpu[*role] = share;
        measured.rss[*role] = a.rss_kib as f64;
        println!(
            "| {} | {:.2} | {:.1} | {:.1} | {:.2} |",
            NAMES[*role],
            share * 100.0,
            a.rss_kib as f64 / 1024.0,
            a.peak_rss_kib as f64 / 1024.0,
            proc_stats::written_per_hour(b, a) / 1e6
        );
    }
    println!("\nby thread (share of a core from schedstat, wake-ups a second):\n");
    println!("| agent | thread | CPU (% of a core) | wake-ups/s |");
    println!("|---|---|---:|---:|");
    for (i, (role, _)) in agents.iter().enumerate() {
        let wall = after[i].at.duration_since(before[i].at);
        for (thread, share, wakes) in
            proc_stats::thread_costs(&threads_before[i], &threads_after[i], wall)
        {
            println!(
                "| {} | {thread} | {:.3} | {wakes:.1} |",
                NAMES[*role],
                share * 100.0
            );
        }
    }
    Ok(measured)
}
