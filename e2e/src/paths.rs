//! Set-ups two scenarios each share: scenario 7's impaired media path
//! (and #15's repair over it), scenario 9's two collectors behind the
//! dispatcher (and #15's failover with backfill).

use crate::{Agent, Collector, CollectorSpec, capture, wait_for};
use sipsensor_agent::status::AgentState;
use sipsensor_testkit::ports::{LOCALHOST, free_rtp_ports};
use sipsensor_testkit::{Postgres, Relay, RelayOptions};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The seeded UDP relay in the media path (the kernels here have no
/// `netem`): the collector binds its RTP on 127.0.0.2 and advertises
/// 127.0.0.1, where the relay listens on the same ports. RTP is impaired;
/// RTCP passes unimpaired (it carries the time base).
#[derive(Debug)]
pub struct ImpairedMedia {
    pub media: Relay,
    _reports: Relay,
    behind: IpAddr,
    rtp: u16,
}

impl ImpairedMedia {
    pub fn start(seed: u64, loss: f64, jitter: Duration) -> Self {
        let behind = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let (rtp, rtcp) = free_rtp_ports(LOCALHOST).unwrap_or_else(|e| panic!("{e}"));
        let relay = |port, seed, loss, jitter| {
            Relay::start(RelayOptions {
                listen: SocketAddr::new(LOCALHOST, port),
                forward_to: SocketAddr::new(behind, port),
                seed,
                loss,
                delay: Duration::ZERO,
                jitter,
            })
            .unwrap_or_else(|e| panic!("relay: {e}"))
        };
        Self {
            media: relay(rtp, seed, loss, jitter),
            _reports: relay(rtcp, seed + 1, 0.0, Duration::ZERO),
            behind,
            rtp,
        }
    }

    /// The collector behind the relay.
    pub fn place(&self, collector: &mut CollectorSpec) {
        collector.rtp_ip = self.behind;
        collector.rtp_port = Some(self.rtp);
        collector.advertise = Some(LOCALHOST);
    }
}

/// Two collectors sharing one throw-away PostgreSQL database, without an
/// embedded registrar (Kamailio's dispatcher is in front of them); not
/// started yet, so a capture can be told their ports first.
#[derive(Debug)]
pub struct CollectorPair {
    pub url: String,
    pub c1: Collector,
    pub c2: Collector,
    _pg: Postgres,
}

impl CollectorPair {
    pub fn new() -> Self {
        let pg = Postgres::start().unwrap_or_else(|e| panic!("postgres: {e}"));
        let url = pg
            .create_db("sipsensor")
            .unwrap_or_else(|e| panic!("postgres: {e}"));
        let spec = |n: u32| {
            let mut s = CollectorSpec::new(&format!("sip:collector{n}@127.0.0.1"));
            s.storage_url = Some(url.clone());
            s.embedded_registrar = false;
            Collector::new(s).unwrap_or_else(|e| panic!("{e}"))
        };
        Self {
            c1: spec(1),
            c2: spec(2),
            url,
            _pg: pg,
        }
    }

    /// Their SIP URIs, the dispatcher set.
    pub fn uris(&self) -> Vec<String> {
        vec![self.c1.sip_uri(), self.c2.sip_uri()]
    }
}

impl Default for CollectorPair {
    fn default() -> Self {
        Self::new()
    }
}

/// The address-of-record of every stream a collector receives.
pub fn streaming_aors(c: &Collector) -> HashSet<String> {
    c.streams()
        .iter()
        .filter_map(|s| s["aor"].as_str().map(str::to_string))
        .collect()
}

/// Scenario 9's start: captures SIP (Kamailio on `kamailio_port`, both
/// collectors, every agent) and the collectors' RTP, starts the collectors
/// and the agents, and waits until every agent streams and the two hold
/// all of them between them. Returns the capture and the AORs on `c1`.
pub fn launch_split(
    kamailio_port: u16,
    c1: &mut Collector,
    c2: &mut Collector,
    agents: &mut [Agent],
) -> (sipsensor_testkit::Tshark, HashSet<String>) {
    let mut sip_ports = vec![kamailio_port, c1.sip_port, c2.sip_port];
    sip_ports.extend(agents.iter().map(|a| a.sip_port));
    let tshark = capture(&sip_ports, &[c1.rtp_port, c2.rtp_port]);
    c1.launch().unwrap_or_else(|e| panic!("collector 1: {e}"));
    c2.launch().unwrap_or_else(|e| panic!("collector 2: {e}"));
    for a in agents.iter_mut() {
        a.launch().unwrap_or_else(|e| panic!("agent: {e}"));
    }
    for a in agents.iter() {
        a.wait_status("streaming", Duration::from_secs(60), |s| {
            s.state == AgentState::Streaming
        });
    }
    let on_c1 = wait_for(Duration::from_secs(10), || {
        let (one, two) = (streaming_aors(c1), streaming_aors(c2));
        (one.len() + two.len() == agents.len()).then_some(one)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} streams: {:?} {:?}",
            agents.len(),
            streaming_aors(c1),
            streaming_aors(c2)
        )
    });
    (tshark, on_c1)
}
