//! The harness itself: a process's log survives its relaunch, and a
//! failing scenario quotes the agent's and the collector's logs, every
//! start of each (CI once printed both empty: their temporary directories
//! were removed before the guards read the files).

#![allow(clippy::unwrap_used)]

use sipsensor_e2e::*;
use std::process::Command;
use std::time::Duration;

/// Set in the child run of the quoting test: it starts the processes and
/// fails on purpose.
const FAIL_ON_PURPOSE: &str = "SIPSENSOR_E2E_FAIL_ON_PURPOSE";
const READY: &str = "SIP on ";

fn start_agent(user: &str, collector: &Collector) -> Agent {
    let mut spec = AgentSpec::new(user, "127.0.0.1");
    spec.collector = Some(collector.sip_uri());
    spec.spool.enabled = false;
    Agent::start(spec).unwrap()
}

fn wait_ready_count(agent: &Agent, count: usize) {
    let found = wait_for(Duration::from_secs(10), || {
        (agent.log().matches(READY).count() >= count).then_some(())
    });
    assert!(found.is_some(), "log:\n{}", agent.log());
}

#[test]
fn a_relaunched_agent_keeps_the_log_of_its_first_start() {
    if !require(&[]) {
        return;
    }
    let collector = Collector::start(CollectorSpec::new("sip:collector@127.0.0.1")).unwrap();
    let mut agent = start_agent("logs1", &collector);
    wait_ready_count(&agent, 1);
    agent.kill9();
    agent.launch().unwrap();
    wait_ready_count(&agent, 2);
    assert!(
        agent.log_tail().contains("start 1:"),
        "{}",
        agent.log_tail()
    );
}

#[test]
fn a_failing_scenario_quotes_every_start_of_agent_and_collector() {
    if std::env::var_os(FAIL_ON_PURPOSE).is_some() {
        let mut collector =
            Collector::start(CollectorSpec::new("sip:collector@127.0.0.1")).unwrap();
        collector.kill9();
        collector.launch().unwrap();
        let mut agent = start_agent("logs2", &collector);
        wait_ready_count(&agent, 1);
        agent.kill9();
        agent.launch().unwrap();
        wait_ready_count(&agent, 2);
        panic!("failing on purpose: the logs follow");
    }
    if !require(&[]) {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_failing_scenario_quotes_every_start_of_agent_and_collector",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FAIL_ON_PURPOSE, "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child run must fail:\n{said}");
    assert!(said.contains("failing on purpose"), "{said}");
    // Each quote (the earlier start's, then the running one's from its
    // guard) holds the readiness line that start logged.
    for (who, heading) in [
        ("agent", "--- agent logs2, start 1:"),
        ("agent", "--- agent logs2 (pid"),
        ("collector", "--- collector collector, start 1:"),
        ("collector", "--- collector collector (pid"),
    ] {
        let quote = said
            .split(heading)
            .nth(1)
            .unwrap_or_else(|| panic!("no {heading:?} in:\n{said}"));
        let body = quote.split("\n--- end").next().unwrap_or_default();
        assert!(
            body.contains(READY),
            "{who}: {heading:?} quotes no log:\n{said}"
        );
    }
}
