//! The common set-up of the one-sensor scenarios: Kamailio (the
//! repository's config) with a sensor and a collector account, the
//! collector registered there, an agent that registers and calls
//! `sip:collector@...` through it, and a tshark capture of all of it.

use crate::{Agent, AgentSpec, Collector, CollectorSpec, StoredSample};
use sipsensor_agent::status::{AgentState, Status};
use sipsensor_testkit::{Capture, Kamailio, Tshark};
use std::time::{Duration, Instant};

pub const SENSOR_PASSWORD: &str = "s3nsor-pw";
pub const COLLECTOR_PASSWORD: &str = "c0llector-pw";

/// `sipsensor-collector call AOR` arguments: 20 Hz, two samples a
/// packet, the simulated sensor's wave channel.
pub const CALL_WAVE_AT_20_HZ: [&str; 8] = [
    "--clock",
    "20",
    "--rate",
    "20",
    "--spp",
    "2",
    "--channel",
    "sim.wave:V:-3",
];

#[derive(Debug)]
pub struct Site {
    pub kamailio: Kamailio,
    pub collector: Collector,
    pub agent: Agent,
    tshark: Option<Tshark>,
    started: Instant,
}

impl Site {
    /// Everything running but the agent (see [`Site::stream`]).
    pub fn start(sensor: &str) -> Self {
        Self::start_with(sensor, |_| {}, |_| {})
    }

    /// Like [`Site::start`], the specs changed by `collector` and `agent`
    /// first (the agent's password is the sensor's unless changed).
    pub fn start_with(
        sensor: &str,
        collector: impl FnOnce(&mut CollectorSpec),
        agent: impl FnOnce(&mut AgentSpec),
    ) -> Self {
        let started = Instant::now();
        let kamailio =
            crate::kamailio(&[(sensor, SENSOR_PASSWORD), ("collector", COLLECTOR_PASSWORD)]);
        let mut cspec = crate::collector_behind(&kamailio, "collector", COLLECTOR_PASSWORD);
        collector(&mut cspec);
        let mut collector = Collector::new(cspec).unwrap_or_else(|e| panic!("{e}"));
        let mut aspec = crate::agent_behind(&kamailio, sensor, SENSOR_PASSWORD, "collector");
        agent(&mut aspec);
        let agent = Agent::new(aspec).unwrap_or_else(|e| panic!("{e}"));
        let tshark = crate::capture(
            &[kamailio.addr().port(), collector.sip_port, agent.sip_port],
            &[collector.rtp_port],
        );
        collector.launch().unwrap_or_else(|e| panic!("{e}"));
        crate::wait_log(
            "collector registration",
            Duration::from_secs(20),
            || collector.log(),
            "registered as",
        );
        Self {
            kamailio,
            collector,
            agent,
            tshark: Some(tshark),
            started,
        }
    }

    /// Start the agent and wait until it streams; its status then.
    pub fn stream(&mut self) -> Status {
        self.agent.launch().unwrap_or_else(|e| panic!("{e}"));
        self.agent
            .wait_status("streaming", Duration::from_secs(30), |s| {
                s.state == AgentState::Streaming
            })
    }

    pub fn aor(&self) -> String {
        self.agent.spec.aor()
    }

    /// `sipsensor-collector call` the sensor at 20 Hz, two samples a
    /// packet, its wave channel: whether it worked and what it said.
    pub fn call_sensor(&self) -> (bool, String) {
        let aor = self.aor();
        let mut args = vec!["call", aor.as_str()];
        args.extend(CALL_WAVE_AT_20_HZ);
        self.collector.control(&args)
    }

    /// Stop the agent (BYE), wait until at least `min` of its samples are
    /// stored and no more arrive, then stop the capture and check it
    /// (scenario 10).
    pub fn finish(&mut self, min: usize) -> (Vec<StoredSample>, Capture) {
        self.agent.stop();
        let stored = crate::settled_samples(&self.collector, &self.aor(), min);
        let tshark = self
            .tshark
            .take()
            .unwrap_or_else(|| panic!("finished twice"));
        (stored, crate::check_capture(tshark))
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}
