//! The tokio shell around a [`UserAgent`]: one task
//! that owns the user agent, feeds it what the sockets receive, wakes it at
//! its deadlines and sends what it asks. Nothing SIP-specific happens here:
//! the TU calls any [`UserAgent`] method through [`UaHandle::with`] (calls,
//! and the fleet subscription of docs/protocol.md 12.1 alike:
//! `subscribe`, `accept_subscription`, `notify`, ...) and reads every
//! [`UaEvent`], `UaEvent::Subscription` included, from the receiver.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::sip_transport::{Incoming, NetError, Network};
use sipsensor_protocol::{Target, UaEvent, UaOutput, UserAgent};

/// Work for the user agent, run inside its task with the current time.
pub type Command = Box<dyn FnOnce(&mut UserAgent, Instant) + Send>;

/// A CRLF keep-alive to send on the connection to a peer, and where to
/// say whether it went out.
type Ping = (Target, tokio::sync::oneshot::Sender<Result<(), NetError>>);

/// How the TU talks to a running user agent.
#[derive(Debug, Clone)]
pub struct UaHandle {
    commands: mpsc::Sender<Command>,
    pings: mpsc::Sender<Ping>,
}

impl UaHandle {
    /// Runs `f` on the user agent and returns its result; `None` once the
    /// driver has stopped.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut UserAgent, Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let command: Command = Box::new(move |ua, now| {
            let _ = tx.send(f(ua, now));
        });
        self.commands.send(command).await.ok()?;
        rx.await.ok()
    }

    /// Sends a CRLF keep-alive on the open connection to `peer` (RFC 5626
    /// 4.4.1). An error means the flow is gone (closed or reset); `None`
    /// once the driver has stopped.
    pub async fn ping(&self, peer: Target) -> Option<Result<(), NetError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pings.send((peer, tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Starts the driver task. Events arrive on the returned receiver; the task
/// ends when every [`UaHandle`] is dropped or the event receiver is.
pub fn spawn(
    ua: UserAgent,
    network: Network,
    incoming: mpsc::Receiver<Incoming>,
) -> (
    UaHandle,
    mpsc::Receiver<UaEvent>,
    tokio::task::JoinHandle<UserAgent>,
) {
    let (command_tx, command_rx) = mpsc::channel(64);
    let (ping_tx, ping_rx) = mpsc::channel(4);
    let (event_tx, event_rx) = mpsc::channel(1024);
    let task = tokio::spawn(run(ua, network, incoming, command_rx, ping_rx, event_tx));
    (
        UaHandle {
            commands: command_tx,
            pings: ping_tx,
        },
        event_rx,
        task,
    )
}

async fn run(
    mut ua: UserAgent,
    network: Network,
    mut incoming: mpsc::Receiver<Incoming>,
    mut commands: mpsc::Receiver<Command>,
    mut pings: mpsc::Receiver<Ping>,
    events: mpsc::Sender<UaEvent>,
) -> UserAgent {
    loop {
        if !flush(&mut ua, &network, &events).await {
            return ua;
        }
        // A day stands in for "no deadline": the loop wakes on input anyway.
        let deadline = ua
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            message = incoming.recv() => match message {
                Some(Incoming::Message { data, source, transport }) => {
                    ua.handle_input(&data, Target::new(transport, source), Instant::now());
                }
                Some(Incoming::Rejected { source, transport, error }) => {
                    let _ = events
                        .send(UaEvent::Malformed {
                            source: Target::new(transport, source),
                            reason: error.to_string(),
                        })
                        .await;
                }
                None => return ua,
            },
            command = commands.recv() => match command {
                Some(command) => command(&mut ua, Instant::now()),
                None => {
                    let _ = flush(&mut ua, &network, &events).await;
                    return ua;
                }
            },
            Some((peer, reply)) = pings.recv() => {
                let _ = reply.send(network.ping(peer.addr, peer.transport).await);
            }
            _ = tokio::time::sleep_until(deadline.into()) => ua.handle_timeout(Instant::now()),
        }
    }
}

/// Sends and reports everything the user agent has queued. False when the
/// TU has gone away.
async fn flush(ua: &mut UserAgent, network: &Network, events: &mpsc::Sender<UaEvent>) -> bool {
    while let Some(output) = ua.poll_output() {
        match output {
            UaOutput::Transmit { target, bytes } => {
                if network
                    .send(&bytes, target.addr, target.transport)
                    .await
                    .is_err()
                {
                    ua.handle_transport_error(target, Instant::now());
                }
            }
            UaOutput::Event(event) => {
                if events.send(event).await.is_err() {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip_transport::{NetConfig, TlsConfig, tls};
    use sipsensor_protocol::{
        EndReason, IdGenerator, LiteralsOnly, LocalEndpoint, Transport, UaConfig,
    };
    use sipsensor_testkit::pki::TestCa;
    use tokio::time::timeout;

    /// UDP, TCP and TLS on loopback; TLS with a certificate from `ca`.
    fn net_config(ca: &TestCa) -> NetConfig {
        let any = "127.0.0.1:0".parse().unwrap();
        let issued = ca.issue(&["127.0.0.1"]);
        let identity = tls::Identity {
            certificate: issued.certificate.as_bytes(),
            private_key: issued.private_key.as_bytes(),
        };
        let ca = ca.certificate_pem();
        NetConfig {
            tls: Some(TlsConfig::from_pem(Some(any), identity, ca.as_bytes()).unwrap()),
            ..NetConfig::udp_and_tcp(any)
        }
    }

    async fn start(
        name: &str,
        transport: Transport,
        ca: &TestCa,
    ) -> (UaHandle, mpsc::Receiver<UaEvent>, std::net::SocketAddr) {
        let (network, incoming) = Network::bind(net_config(ca)).await.unwrap();
        let addr = network.local_addr(transport).unwrap();
        let local = LocalEndpoint::new(transport, addr);
        let config = UaConfig::new(local, format!("sip:{name}@example.net"));
        let ua =
            UserAgent::new(config, IdGenerator::from_entropy(), Box::new(LiteralsOnly)).unwrap();
        let (handle, events, _task) = spawn(ua, network, incoming);
        (handle, events, addr)
    }

    async fn next(events: &mut mpsc::Receiver<UaEvent>) -> UaEvent {
        timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn a_call_over_loopback_udp_tcp_and_tls() {
        let ca = TestCa::new("test CA");
        for transport in [Transport::Udp, Transport::Tcp, Transport::Tls] {
            let (sensor, mut sensor_events, _) = start("sensor", transport, &ca).await;
            let (collector, mut collector_events, collector_addr) =
                start("collector", transport, &ca).await;
            let to = match transport {
                Transport::Udp => format!("sip:collector@{collector_addr}"),
                Transport::Tcp => format!("sip:collector@{collector_addr};transport=tcp"),
                Transport::Tls => format!("sips:collector@{collector_addr}"),
            };
            let call = sensor
                .with(move |ua, now| ua.call(&to, b"offer".to_vec(), now))
                .await
                .unwrap()
                .unwrap();
            let UaEvent::IncomingCall { session, offer, .. } = next(&mut collector_events).await
            else {
                panic!("expected a call")
            };
            assert_eq!(offer, b"offer");
            collector
                .with(move |ua, now| ua.accept(session, b"answer".to_vec(), now))
                .await
                .unwrap()
                .unwrap();
            assert!(matches!(
                next(&mut sensor_events).await,
                UaEvent::Answered { .. }
            ));
            assert!(matches!(
                next(&mut collector_events).await,
                UaEvent::Confirmed { .. }
            ));
            sensor
                .with(move |ua, now| ua.hangup(call, now))
                .await
                .unwrap()
                .unwrap();
            assert!(matches!(
                next(&mut collector_events).await,
                UaEvent::Ended {
                    reason: EndReason::RemoteBye,
                    ..
                }
            ));
        }
    }

    #[tokio::test]
    async fn pings_go_out_on_an_open_connection_only() {
        let ca = TestCa::new("test CA");
        let (sensor, _sensor_events, _) = start("sensor", Transport::Tcp, &ca).await;
        let (collector, mut collector_events, collector_addr) =
            start("collector", Transport::Tcp, &ca).await;
        // No connection yet: nothing to keep alive.
        let none = sensor
            .ping(Target::new(Transport::Tcp, collector_addr))
            .await
            .unwrap();
        assert!(matches!(none, Err(NetError::NoConnection(..))), "{none:?}");
        let to = format!("sip:collector@{collector_addr};transport=tcp");
        sensor
            .with(move |ua, now| ua.call(&to, b"offer".to_vec(), now))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            next(&mut collector_events).await,
            UaEvent::IncomingCall { .. }
        ));
        sensor
            .ping(Target::new(Transport::Tcp, collector_addr))
            .await
            .unwrap()
            .unwrap();
        drop(collector);
    }
}
