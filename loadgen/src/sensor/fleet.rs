//! The shell of a simulated sensor's fleet notifier ([`FleetNotifier`]):
//! the user agent's subscription events in, its actions carried out on the
//! user agent, and the fake reboot of an update: the sensor goes down as
//! the agent does (stream, BYE, un-REGISTER) and a new user agent, which
//! knows no dialog, comes up on the same port.

use super::{GOODBYE, SensorError, State, ua};
use crate::fleet::{FleetAction, FleetNotifier};
use sipsensor_protocol::fleet::DEFAULT_EXPIRES;
use sipsensor_protocol::{
    NotifyState, RegistrationEvent, SubscriptionEvent, TerminatedReason, UaEvent,
};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

impl State {
    /// A subscription event of the user agent, for the notifier.
    pub(super) async fn fleet_event(&mut self, e: SubscriptionEvent) {
        let Some(fleet) = &mut self.fleet else { return };
        let now = Instant::now();
        match e {
            // The simulated sensor trusts every subscriber, as it answers
            // every INVITE: the trust rules are the agent's (docs/security.md).
            SubscriptionEvent::Incoming {
                subscription, body, ..
            } => fleet.subscribed(subscription, &body, now),
            SubscriptionEvent::Refreshed {
                subscription, body, ..
            } => fleet.refreshed(subscription, &body, now),
            SubscriptionEvent::Terminated { subscription, .. } => fleet.ended(subscription),
            _ => {}
        }
    }

    /// Carries out what the notifier decided; `events` is the user
    /// agent's, replaced across the fake reboot.
    pub(super) async fn fleet_actions(&mut self, events: &mut Option<mpsc::Receiver<UaEvent>>) {
        while let Some(action) = self.fleet.as_mut().and_then(FleetNotifier::poll_action) {
            match action {
                FleetAction::Accept { subscription, body } => {
                    let _ = self
                        .with_ua(move |ua, now| {
                            ua.accept_subscription(subscription, DEFAULT_EXPIRES, body, now)
                        })
                        .await;
                }
                FleetAction::Reject {
                    subscription,
                    status,
                    reason,
                } => {
                    let _ = self
                        .with_ua(move |ua, now| {
                            ua.reject_subscription(subscription, status, Some(&reason), now)
                        })
                        .await;
                }
                FleetAction::Notify {
                    subscription,
                    body,
                    last,
                } => {
                    let state = if last {
                        NotifyState::Terminated(TerminatedReason::Deactivated)
                    } else {
                        NotifyState::Active
                    };
                    let _ = self
                        .with_ua(move |ua, now| ua.notify(subscription, body, state, now))
                        .await;
                }
                FleetAction::GoDown => self.go_down(events).await,
                FleetAction::ComeBack => self.come_back(events).await,
            }
        }
    }

    /// The reboot begins: media stops, the BYE and the un-REGISTER go out
    /// (the agent's shutdown), then the user agent and its socket go away.
    async fn go_down(&mut self, events: &mut Option<mpsc::Receiver<UaEvent>>) {
        if let Some(id) = self.stream_id.take() {
            self.pump.finish(id).await;
        }
        let _ = self.streaming.send(None);
        let mut ending = self.session.take();
        if let Some(s) = ending {
            // No answer to wait for when the BYE (or CANCEL) could not go.
            let sent = self.with_ua(move |ua, now| ua.hangup(s, now)).await;
            if !matches!(sent, Some(Ok(()))) {
                ending = None;
            }
        }
        if let Some(reply) = self.pending_call.take() {
            let _ = reply.send(Err(SensorError::Stopped));
        }
        // The reboot sets the session up again itself.
        if let Some(r) = &mut self.redial {
            r.call_at = None;
        }
        let mut registered = self.config.registrar.is_some()
            && self.with_ua(|ua, now| ua.unregister(now)).await.is_some();
        // The BYE's and the un-REGISTER's answers, so that the user agent
        // lives through their retransmissions and challenges: a BYE lost
        // here leaves the collector a session that only its silence
        // timeout ends.
        if let Some(rx) = events.as_mut() {
            let answered = async {
                while ending.is_some() || registered {
                    match rx.recv().await {
                        None => return,
                        Some(UaEvent::Ended { session, .. }) if Some(session) == ending => {
                            ending = None;
                        }
                        Some(UaEvent::Registration(
                            RegistrationEvent::Unregistered | RegistrationEvent::Failed { .. },
                        )) => registered = false,
                        Some(_) => {}
                    }
                }
            };
            let _ = tokio::time::timeout(GOODBYE, answered).await;
        }
        *events = None;
        if let Some(running) = self.ua.take() {
            self.sip_port = running.sip_addr.port();
            // The driver ends (and closes the socket) once its handle is gone.
            drop(running.handle);
            let _ = tokio::time::timeout(GOODBYE, running.task).await;
        }
    }

    /// The new slot is up: a new user agent on the old port registers, and
    /// calls once registered if the sensor had called before.
    async fn come_back(&mut self, events: &mut Option<mpsc::Receiver<UaEvent>>) {
        let started = match self.start_ua_on_old_port().await {
            Ok(started) => started,
            Err(e) => {
                eprintln!("{}: not back from the fake reboot: {e}", self.config.aor);
                return;
            }
        };
        let (running, rx) = started;
        if running.sip_addr.port() != self.sip_port {
            eprintln!(
                "{}: back from the fake reboot on another port, {}",
                self.config.aor, running.sip_addr
            );
        }
        self.ua = Some(running);
        *events = Some(rx);
        self.call_when_registered = true;
        if self.config.registrar.is_some() {
            self.register(None).await;
        } else if self.calls_out {
            self.call_when_registered = false;
            self.call(None).await;
        }
    }

    /// The socket closes a little after the old driver ended: retry the
    /// old port for a while (a board comes back on its address), then any.
    async fn start_ua_on_old_port(
        &self,
    ) -> Result<(ua::RunningUa, mpsc::Receiver<UaEvent>), SensorError> {
        for _ in 0..50 {
            match ua::start(&self.config, self.tls.clone(), self.sip_port, true).await {
                Err(SensorError::Bind(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                other => return other,
            }
        }
        ua::start(&self.config, self.tls.clone(), 0, true).await
    }
}
