//! A simulated sensor that keeps its session (`keep_session`, as the agent
//! does, docs/protocol.md 6.1) calls again when its collector restarted:
//! the restarted one knows no dialog and answers the in-session OPTIONS
//! 481, which ends the session, and the sensor's next INVITE reaches it.
//! Without `keep_session` the sensor would stream into the void forever.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sipsensor_loadgen::pump::MediaPump;
use sipsensor_loadgen::sensor::{SensorConfig, SimSensor, standard_stream};
use sipsensor_loadgen::sockets::SharedSocket;
use sipsensor_protocol::{
    AnswerPolicy, IdGenerator, LiteralsOnly, LocalEndpoint, LocalMedia, LocalSdp, ReceivePolicy,
    Transport, UaConfig, UaEvent, UserAgent, answer_offer, parse_sdp,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// A collector's user agent on `addr` (port 0: any), which answers calls.
async fn collector(
    addr: SocketAddr,
) -> (
    UaHandle,
    mpsc::Receiver<UaEvent>,
    tokio::task::JoinHandle<UserAgent>,
    SocketAddr,
) {
    // The old user agent's socket closes a little after its task ended.
    let mut bound = None;
    for _ in 0..100 {
        let config = NetConfig {
            udp: Some(addr),
            ..NetConfig::default()
        };
        match Network::bind(config).await {
            Ok(b) => {
                bound = Some(b);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let (network, incoming) = bound.expect("the collector's port within 2 s");
    let addr = network.local_addr(Transport::Udp).unwrap();
    let config = UaConfig::new(
        LocalEndpoint::new(Transport::Udp, addr),
        "sip:collector@127.0.0.1",
    );
    let ua = UserAgent::new(config, IdGenerator::from_entropy(), Box::new(LiteralsOnly)).unwrap();
    let (handle, events, task) = ua_driver::spawn(ua, network, incoming);
    (handle, events, task, addr)
}

/// Answers the next INVITE within `limit`; false when none came.
async fn answer_a_call(
    ua: &UaHandle,
    events: &mut mpsc::Receiver<UaEvent>,
    limit: Duration,
) -> bool {
    let call = async {
        loop {
            if let Some(UaEvent::IncomingCall { session, offer, .. }) = events.recv().await {
                return (session, offer);
            }
        }
    };
    let Ok((session, offer)) = tokio::time::timeout(limit, call).await else {
        return false;
    };
    let mut ids = IdGenerator::from_entropy();
    let local = LocalMedia::new("127.0.0.1:9".parse().unwrap());
    let mut origin = LocalSdp::new("collector", "127.0.0.1".parse().unwrap(), &mut ids);
    let (answer, _) = answer_offer(
        &parse_sdp(&offer).unwrap(),
        &AnswerPolicy::Receive(ReceivePolicy::default()),
        &local,
        &mut origin,
    )
    .unwrap();
    let bytes = answer.to_bytes();
    ua.with(move |ua, now| ua.accept(session, bytes, now))
        .await
        .unwrap()
        .unwrap();
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_that_keeps_its_session_calls_a_restarted_collector_again() {
    let (ua, mut events, task, addr) = collector("127.0.0.1:0".parse().unwrap()).await;
    let config = SensorConfig {
        aor: "sip:sensor-00000@127.0.0.1".into(),
        username: "sensor-00000".into(),
        password: "pw".into(),
        sip_ip: "127.0.0.1".parse().unwrap(),
        registrar: None,
        collector: Some(format!("sip:collector@{addr}")),
        expires: 3600,
        capabilities: standard_stream(1, 10, 1),
        seed: 0,
    };
    let rtp = SharedSocket::bind("127.0.0.1".parse().unwrap()).unwrap();
    let sensor = SimSensor::start(config, rtp, MediaPump::start().unwrap())
        .await
        .unwrap();
    sensor.keep_session(Duration::from_millis(300)).await;
    let (placed, answered) = tokio::join!(
        sensor.call(),
        answer_a_call(&ua, &mut events, Duration::from_secs(5))
    );
    assert!(answered && placed.is_ok(), "{placed:?}");

    // The collector restarts: a new user agent on the same port.
    drop((ua, events));
    let _ = task.await;
    let (ua, mut events, _task, _) = collector(addr).await;
    assert!(
        answer_a_call(&ua, &mut events, Duration::from_secs(6)).await,
        "the sensor did not call the restarted collector"
    );
    sensor
        .wait_streaming(Duration::from_secs(5), Option::is_some)
        .await
        .unwrap();
}
