//! The shell around [`SubscriptionManager`]: events from the SIP side and
//! wants from the rollout come in on one channel, SUBSCRIBEs go out on
//! another, NOTIFY states go to the [`FleetView`], and a timer wakes the
//! manager when it asks.
//!
//! The SIP side (the protocol crate's `subscribe`/`notify`, docs/protocol.md
//! 12.8; `sip/core/fleet.rs`) sends [`SipEvent`]s through a [`FleetHandle`]
//! and sends each [`Command`] it receives, answering with
//! [`SipEvent::Answered`]. A state stored in the view goes on to the
//! rollouts ([`FleetReports`]).

use super::{Answer, Command, NotifyStatus, RequestId, SubscriptionManager};
use crate::timefmt::now_ns;
use crate::update::fleet::{FleetState, FleetView, FleetWant};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the SIP side reports about a sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipEvent {
    SessionStarted {
        sensor: String,
    },
    SessionEnded {
        sensor: String,
    },
    Answered {
        sensor: String,
        request: RequestId,
        answer: Answer,
    },
    /// A NOTIFY in a subscription's dialog; `state` is its body, `None`
    /// when it had none (a final NOTIFY may not).
    Notified {
        sensor: String,
        status: NotifyStatus,
        state: Option<FleetState>,
    },
}

#[derive(Debug)]
enum Input {
    Sip(SipEvent),
    Want {
        sensor: String,
        want: Option<FleetWant>,
    },
}

/// What a rollout calls to have a sensor told which image to run.
pub trait FleetWants: Send + Sync {
    /// `None`: report only (and stop a download not yet installing).
    fn set_want(&self, sensor: &str, want: Option<FleetWant>);
}

/// Where a sensor's state goes once it is in the fleet view: the rollouts
/// (`rollout::service::RolloutHandle`), which judge it (12.7).
#[async_trait::async_trait]
pub trait FleetReports: Send + Sync {
    async fn report(&self, sensor: &str, state: FleetState);
}

/// The way into a running [`run`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FleetHandle {
    inputs: mpsc::UnboundedSender<Input>,
}

impl FleetHandle {
    /// Hands an event to the manager; false when it has stopped.
    pub fn sip_event(&self, event: SipEvent) -> bool {
        self.inputs.send(Input::Sip(event)).is_ok()
    }
}

impl FleetWants for FleetHandle {
    fn set_want(&self, sensor: &str, want: Option<FleetWant>) {
        // A stopped manager is a collector shutting down: nothing to tell.
        let _ = self.inputs.send(Input::Want {
            sensor: sensor.to_string(),
            want,
        });
    }
}

/// A new manager's handle and the receiving end [`run`] takes. The
/// channel is unbounded: its senders are the collector's own SIP core
/// (one event per SIP transaction it already accepted) and the rollout
/// (one want per sensor and wave).
pub fn channel() -> (FleetHandle, Inputs) {
    let (tx, rx) = mpsc::unbounded_channel();
    (FleetHandle { inputs: tx }, Inputs(rx))
}

/// The receiving end of [`channel`].
#[derive(Debug)]
pub struct Inputs(mpsc::UnboundedReceiver<Input>);

/// Runs the manager until `shutdown` resolves, every handle is dropped,
/// or the SIP side stops taking commands.
pub async fn run(
    Inputs(mut inputs): Inputs,
    commands: mpsc::Sender<Command>,
    fleet: Arc<FleetView>,
    reports: Option<Arc<dyn FleetReports>>,
    shutdown: impl Future<Output = ()>,
) {
    let mut manager = SubscriptionManager::new();
    tokio::pin!(shutdown);
    loop {
        while let Some(command) = manager.poll_command() {
            if commands.send(command).await.is_err() {
                return;
            }
        }
        let wake = manager.poll_timeout().map(Instant::from_std);
        let input = tokio::select! {
            () = &mut shutdown => return,
            input = inputs.recv() => match input {
                Some(input) => input,
                None => return,
            },
            () = sleep_until(wake) => {
                manager.handle_timeout(Instant::now().into_std());
                continue;
            }
        };
        let now = Instant::now().into_std();
        match input {
            Input::Want { sensor, want } => manager.set_want(&sensor, want, now),
            Input::Sip(SipEvent::SessionStarted { sensor }) => {
                manager.session_started(&sensor, now)
            }
            Input::Sip(SipEvent::SessionEnded { sensor }) => manager.session_ended(&sensor),
            Input::Sip(SipEvent::Answered {
                sensor,
                request,
                answer,
            }) => {
                if !matches!(answer, Answer::Accepted { .. }) {
                    tracing::info!("fleet subscription to {sensor} ended: {answer:?}");
                }
                manager.answered(&sensor, request, answer, now)
            }
            Input::Sip(SipEvent::Notified {
                sensor,
                status,
                state,
            }) => {
                let known = manager.notified(&sensor, status, now);
                let (true, Some(state)) = (known, state) else {
                    continue;
                };
                match fleet.record(&sensor, state.clone(), now_ns()).await {
                    Ok(_) => {
                        if let Some(reports) = &reports {
                            reports.report(&sensor, state).await;
                        }
                    }
                    Err(e) => tracing::warn!("fleet state of {sensor} not stored: {e}"),
                }
            }
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use crate::storage::sqlite::{SqliteOptions, SqliteStore};
    use crate::update::fleet::UpdateState;
    use crate::update::subscriptions::CommandKind;
    use std::time::Duration;

    /// The shell end to end on tokio's paused clock: a session start goes
    /// out as a SUBSCRIBE, a NOTIFY's state lands in the fleet view, and
    /// the refresh comes at half the grant with the rollout's want.
    #[tokio::test(start_paused = true)]
    async fn events_in_commands_out_and_states_into_the_view() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
            .await
            .unwrap();
        let fleet = FleetView::load(Arc::new(store).updates().unwrap())
            .await
            .unwrap();
        let (handle, inputs) = channel();
        let (commands_tx, mut commands) = mpsc::channel(8);
        let task = tokio::spawn(run(
            inputs,
            commands_tx,
            fleet.clone(),
            None,
            std::future::pending(),
        ));
        let sensor = "sip:s1@example.net".to_string();
        assert!(handle.sip_event(SipEvent::SessionStarted {
            sensor: sensor.clone()
        }));
        let sub = commands.recv().await.unwrap();
        assert_eq!((sub.kind, &sub.sensor), (CommandKind::Subscribe, &sensor));
        handle.sip_event(SipEvent::Answered {
            sensor: sensor.clone(),
            request: sub.request,
            answer: Answer::Accepted {
                expires: Duration::from_secs(600),
            },
        });
        let state = FleetState {
            version: "v1".into(),
            agent: "0.1.0".into(),
            compatible: "sipsensor-test".into(),
            slot: "A".into(),
            update: UpdateState::Idle,
            target: None,
            progress: None,
            reason: None,
        };
        handle.sip_event(SipEvent::Notified {
            sensor: sensor.clone(),
            status: NotifyStatus::Active {
                expires: Duration::from_secs(600),
            },
            state: Some(state.clone()),
        });
        // A NOTIFY for a sensor never subscribed to is not recorded.
        handle.sip_event(SipEvent::Notified {
            sensor: "sip:stranger@example.net".into(),
            status: NotifyStatus::Active {
                expires: Duration::from_secs(600),
            },
            state: Some(state.clone()),
        });
        let want = FleetWant {
            version: "v2".into(),
            url: "https://c.example.net:8443/bundles/x.raucb".into(),
            sha256: [0xab; 32],
            size: 1,
            reboot: crate::update::fleet::RebootPolicy::Now,
        };
        handle.set_want(&sensor, Some(want.clone()));
        let refresh = commands.recv().await.unwrap();
        assert_eq!(
            (refresh.kind, refresh.want.as_ref()),
            (CommandKind::Refresh, Some(&want))
        );
        assert_eq!(fleet.sensor(&sensor).map(|s| s.state), Some(state));
        assert!(fleet.sensor("sip:stranger@example.net").is_none());
        handle.sip_event(SipEvent::Answered {
            sensor: sensor.clone(),
            request: refresh.request,
            answer: Answer::Accepted {
                expires: Duration::from_secs(600),
            },
        });
        // Nothing until half the grant has passed (the clock auto-advances).
        let before = Instant::now();
        let next = commands.recv().await.unwrap();
        assert_eq!(next.kind, CommandKind::Renew);
        assert!(Instant::now() - before >= Duration::from_secs(300));
        drop(handle);
        task.await.unwrap();
    }
}
