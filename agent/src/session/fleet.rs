//! The notifier of the fleet subscription (docs/protocol.md 12.1, RFC
//! 6665 4.2), sans-I/O: who may subscribe (the rule that admits an
//! INVITE, `trust.rs`), how long for, the first NOTIFY with the board's
//! state and one on every change the updater reports, the want of each
//! SUBSCRIBE handed to the updater, and the last NOTIFY when the board
//! goes down. The user agent keeps the dialogs and answers what breaks
//! the rules before the controller hears of it: 489 for another event
//! package, 423 under 60 s, 400 for a body against 12.2.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sipsensor_protocol::fleet::{FleetState, FleetWant};
use sipsensor_protocol::{
    NotifyState, Request, SubscriptionEvent, SubscriptionId, Target, TerminatedReason,
};

use super::{Action, Admission, Controller, Opener, Phase, Refusal};

/// The longest subscription granted (12.1: the collector asks for an
/// hour and refreshes at half of it); the user agent never grants under
/// 60 s.
pub const MAX_EXPIRES: u32 = 3600;

/// Subscriptions the user agent keeps at once (`UaConfig::
/// max_subscriptions`; more get 503). A sensor has a collector or two; a
/// collector that restarts leaves its old subscription behind until a
/// NOTIFY to it gets 481 or it expires, so room for a few restarts.
pub const MAX_SUBSCRIPTIONS: usize = 16;

/// The subscriptions this sensor serves, and the state they are told.
#[derive(Debug, Default)]
pub(super) struct Subscribers {
    active: BTreeMap<SubscriptionId, Subscriber>,
    /// Admitted before the updater's first state: accepted once it comes
    /// (the first NOTIFY must carry it, 12.1).
    waiting: Vec<(SubscriptionId, Subscriber, Option<FleetWant>)>,
    /// The updater's last state: the first NOTIFY of the next subscriber.
    state: Option<FleetState>,
}

#[derive(Debug, Clone)]
struct Subscriber {
    /// Who set it up: its refreshes must come the same way.
    opener: Opener,
    expires_at: Instant,
}

impl Subscribers {
    pub(super) fn count(&self) -> usize {
        self.active.len()
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.active.values().map(|s| s.expires_at).min()
    }
}

/// The duration the user agent grants for `asked` (RFC 6665 4.2.1.1).
fn granted(asked: u32) -> Duration {
    Duration::from_secs(u64::from(asked.min(MAX_EXPIRES)))
}

impl Controller {
    pub(super) fn subscription_event(&mut self, event: SubscriptionEvent, now: Instant) {
        match event {
            SubscriptionEvent::Incoming {
                subscription,
                request,
                source,
                body,
                expires,
            } => self.incoming_subscription(subscription, &request, source, &body, expires, now),
            SubscriptionEvent::InDialogRequest {
                subscription,
                id,
                request,
                source,
                on_dialog_flow,
            } => {
                let opener = self
                    .fleet
                    .active
                    .get(&subscription)
                    .map(|s| s.opener.clone());
                self.screen_in_dialog(id, &request, source, on_dialog_flow, opener.as_ref(), now);
            }
            SubscriptionEvent::Refreshed {
                subscription,
                body,
                expires,
            } => {
                let Some(s) = self.fleet.active.get_mut(&subscription) else {
                    return;
                };
                s.expires_at = now + granted(expires);
                // The user agent refused a body against 12.2 already.
                match FleetWant::parse(&body) {
                    Ok(want) => self.actions.push_back(Action::Want(want)),
                    Err(e) => tracing::debug!("fleet: ignored a refresh's body: {e}"),
                }
            }
            SubscriptionEvent::Terminated { subscription, .. } => {
                self.fleet.active.remove(&subscription);
                self.fleet.waiting.retain(|(s, ..)| *s != subscription);
            }
            // The subscriber's side: the collector's, not ours.
            SubscriptionEvent::Active { .. } | SubscriptionEvent::Notified { .. } => {}
        }
    }

    /// A new SUBSCRIBE for `sipsensor-fleet`: admitted as an INVITE is
    /// (12.1), then its want goes to the updater.
    fn incoming_subscription(
        &mut self,
        subscription: SubscriptionId,
        request: &Request,
        source: Target,
        body: &[u8],
        expires: u32,
        now: Instant,
    ) {
        if self.phase == Phase::Stopping {
            self.actions.push_back(Action::RejectSubscription {
                subscription,
                status: 503,
                warning: "this sensor is going down".into(),
            });
            return;
        }
        let opener = match self.trust.admit(request, source, now, &mut self.ids) {
            Ok(Admission::Flow) => Opener::Flow,
            Ok(Admission::Caller(user)) => {
                tracing::info!(
                    "fleet subscription from {} authenticated as {user}",
                    source.addr
                );
                Opener::Caller(user)
            }
            Err(Refusal::Challenge { response, why }) => {
                if matches!(why, sipsensor_protocol::DigestAuthFailure::NoCredentials(_)) {
                    tracing::debug!("challenged a fleet subscription from {}", source.addr);
                } else {
                    tracing::warn!("refused a fleet subscription from {}: {why}", source.addr);
                }
                self.actions.push_back(Action::ChallengeSubscription {
                    subscription,
                    response,
                });
                return;
            }
            Err(why) => {
                tracing::warn!("refused a fleet subscription from {}: {why}", source.addr);
                self.actions.push_back(Action::RejectSubscription {
                    subscription,
                    status: 403,
                    warning: "not a trusted caller".into(),
                });
                return;
            }
        };
        let want = match FleetWant::parse(body) {
            Ok(want) => want,
            // The user agent checks bodies first; should one slip by, it
            // changes nothing (12.2).
            Err(e) => {
                self.actions.push_back(Action::RejectSubscription {
                    subscription,
                    status: 400,
                    warning: e.to_string(),
                });
                return;
            }
        };
        let subscriber = Subscriber {
            opener,
            expires_at: now + granted(expires),
        };
        if self.fleet.state.is_some() {
            self.accept_subscription(subscription, subscriber, want);
        } else {
            self.fleet.waiting.push((subscription, subscriber, want));
        }
    }

    fn accept_subscription(
        &mut self,
        subscription: SubscriptionId,
        subscriber: Subscriber,
        want: Option<FleetWant>,
    ) {
        let Some(body) = self.fleet_body() else {
            self.actions.push_back(Action::RejectSubscription {
                subscription,
                status: 500,
                warning: "the sensor's state cannot be written".into(),
            });
            return;
        };
        self.actions.push_back(Action::AcceptSubscription {
            subscription,
            max_expires: MAX_EXPIRES,
            body,
        });
        self.fleet.active.insert(subscription, subscriber);
        self.actions.push_back(Action::Want(want));
    }

    /// The updater's new state (12.3; it holds progress back to once per
    /// 5 s): a NOTIFY to every subscriber, and the first to those waiting.
    pub fn fleet_state(&mut self, state: FleetState, now: Instant) {
        self.fleet.state = Some(state);
        self.forget_expired(now);
        if let Some(body) = self.fleet_body() {
            for subscription in self.fleet.active.keys() {
                self.actions.push_back(Action::Notify {
                    subscription: *subscription,
                    body: body.clone(),
                    state: NotifyState::Active,
                });
            }
        }
        for (subscription, subscriber, want) in std::mem::take(&mut self.fleet.waiting) {
            self.accept_subscription(subscription, subscriber, want);
        }
    }

    /// The board goes down (the updater's reboot, SIGTERM): the last
    /// NOTIFY to every subscriber, `terminated;reason=deactivated`, so
    /// that the collector subscribes again once it is back (12.1).
    pub fn fleet_going_down(&mut self) {
        let body = self.fleet_body().unwrap_or_default();
        for subscription in std::mem::take(&mut self.fleet.active).into_keys() {
            self.actions.push_back(Action::Notify {
                subscription,
                body: body.clone(),
                state: NotifyState::Terminated(TerminatedReason::Deactivated),
            });
        }
        for (subscription, ..) in std::mem::take(&mut self.fleet.waiting) {
            self.actions.push_back(Action::RejectSubscription {
                subscription,
                status: 503,
                warning: "this sensor is going down".into(),
            });
        }
    }

    /// Subscriptions not refreshed in time: the user agent ends them
    /// (RFC 6665 4.2.2); no NOTIFY is due to them meanwhile.
    pub(super) fn forget_expired(&mut self, now: Instant) {
        self.fleet.active.retain(|_, s| s.expires_at > now);
    }

    fn fleet_body(&self) -> Option<Vec<u8>> {
        let state = self.fleet.state.as_ref()?;
        match state.to_body() {
            Ok(body) => Some(body),
            Err(e) => {
                tracing::error!("fleet: cannot write the state {state:?}: {e}");
                None
            }
        }
    }

    /// Fleet subscriptions being served.
    pub fn fleet_subscribers(&self) -> usize {
        self.fleet.count()
    }
}

#[cfg(test)]
mod tests;
