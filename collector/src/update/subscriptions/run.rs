//! The shell around [`SubscriptionManager`]: events from the SIP side and
//! wants from the rollout come in on one channel, SUBSCRIBEs go out on
//! another, NOTIFY states go to the [`FleetView`], and a timer wakes the
//! manager when it asks.
//!
//! The SIP side (the protocol crate's `subscribe`/`notify`, docs/protocol.md
//! 12.8) sends [`SipEvent`]s through a [`FleetHandle`] and sends each
//! [`Command`] it receives, answering with [`SipEvent::Answered`].

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
                if let (true, Some(state)) = (known, state)
                    && let Err(e) = fleet.record(&sensor, state, now_ns()).await
                {
                    tracing::warn!("fleet state of {sensor} not stored: {e}");
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
