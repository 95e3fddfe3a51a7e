//! The fleet subscriptions on the SIP side (docs/protocol.md 12.1): the
//! subscription manager's [`Command`]s become SUBSCRIBEs on the user agent,
//! routed like the collector's INVITEs, and the user agent's subscription
//! events become the manager's [`SipEvent`]s.
//!
//! Every NOTIFY is screened here before the user agent acts on it (the UA
//! runs with `screen_in_dialog`): it must come from where the sensor is
//! (its flow, the source it registered from, or a trusted proxy), within a
//! budget per subscription, and with a body that reads under 12.2 (400
//! otherwise, logged and counted).

use super::{Action, Core, Now};
use crate::update::subscriptions::run::SipEvent;
use crate::update::subscriptions::{Answer, Command, CommandKind, NotifyStatus, RequestId};
use sipsensor_protocol::fleet::FleetState;
use sipsensor_protocol::prelude::*;
use sipsensor_protocol::{
    Request, ServerId, StatusCode, SubscriptionEnd, SubscriptionEvent, SubscriptionId,
    SubscriptionState, SubscriptionStatus, Target, UaError, headers, response_to,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// NOTIFYs one subscription may send at once, and how fast its budget
/// comes back: a sensor reports a change of state, progress at most
/// every 5 s (12.1), so more than this is a flood, refused with 503 and
/// never written to the fleet view.
const NOTIFY_BURST: u32 = 10;
const NOTIFY_REFILL: Duration = Duration::from_secs(1);

/// One of our subscriptions as the user agent knows it.
#[derive(Debug)]
struct FleetSub {
    sensor: String,
    /// The manager's request whose answer is awaited.
    pending: Option<RequestId>,
    /// The duration the user agent last reported granted.
    granted: Duration,
    /// Where the sensor's NOTIFYs come from when not on the dialog's flow:
    /// the source its REGISTER came from (our own registrar); `None`
    /// behind a proxy, whose address is a trusted peer.
    source: Option<SocketAddr>,
    budget: NotifyBudget,
}

#[derive(Debug)]
struct NotifyBudget {
    tokens: u32,
    refilled_at: Instant,
}

impl NotifyBudget {
    fn new(now: Instant) -> Self {
        NotifyBudget {
            tokens: NOTIFY_BURST,
            refilled_at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let earned =
            now.saturating_duration_since(self.refilled_at).as_millis() / NOTIFY_REFILL.as_millis();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(NOTIFY_BURST);
            self.refilled_at = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// A SUBSCRIBE between [`Action::Subscribe`] and its
/// [`super::Report::Subscribed`].
#[derive(Debug)]
struct Placing {
    sensor: String,
    source: Option<SocketAddr>,
}

/// The fleet subscriptions' part of the core.
#[derive(Debug, Default)]
pub(super) struct FleetSubs {
    by_sub: HashMap<SubscriptionId, FleetSub>,
    by_sensor: HashMap<String, SubscriptionId>,
    placing: HashMap<RequestId, Placing>,
}

/// What a NOTIFY's `Subscription-State` tells the manager (RFC 6665
/// 4.1.3); `pending` counts as active, a missing `expires` as the
/// duration asked for.
fn notify_status(state: &SubscriptionState) -> NotifyStatus {
    match state.status {
        SubscriptionStatus::Terminated => NotifyStatus::Terminated,
        SubscriptionStatus::Active | SubscriptionStatus::Pending => NotifyStatus::Active {
            expires: state
                .expires
                .map_or(crate::update::subscriptions::REQUESTED_EXPIRES, |s| {
                    Duration::from_secs(u64::from(s))
                }),
        },
    }
}

/// How a subscription's end answers the request that was out for it.
fn answer_of(end: &SubscriptionEnd) -> Answer {
    match end {
        SubscriptionEnd::Refused { status: 408, .. } => Answer::TimedOut,
        SubscriptionEnd::Refused { status, .. } => Answer::Refused { status: *status },
        SubscriptionEnd::DialogGone(481) => Answer::Gone,
        SubscriptionEnd::DialogGone(_) | SubscriptionEnd::Expired => Answer::TimedOut,
        SubscriptionEnd::ByNotifier { .. }
        | SubscriptionEnd::Local
        | SubscriptionEnd::Rejected(_)
        | SubscriptionEnd::Unsubscribed => Answer::Refused { status: 481 },
    }
}

impl Core {
    fn fleet_event(&mut self, event: SipEvent) {
        self.push(Action::Fleet(event));
    }

    fn answer(&mut self, sensor: String, request: RequestId, answer: Answer) {
        self.fleet_event(SipEvent::Answered {
            sensor,
            request,
            answer,
        });
    }

    /// A SUBSCRIBE the manager asks for.
    pub fn handle_fleet_command(&mut self, command: Command, now: Now) {
        let body = match command.want.as_ref().map(|w| w.to_body()).transpose() {
            Ok(body) => body.unwrap_or_default(),
            Err(e) => {
                // Our own catalogue's want: nothing the sensor could read.
                self.warn(
                    "fleet",
                    format!("the want for {} cannot be written: {e}", command.sensor),
                );
                self.answer(
                    command.sensor,
                    command.request,
                    Answer::Refused { status: 500 },
                );
                return;
            }
        };
        let expires = u32::try_from(command.expires.as_secs()).unwrap_or(u32::MAX);
        match command.kind {
            CommandKind::Renew => {
                // The user agent refreshes by itself (and reports an end):
                // the subscription it holds is the answer.
                let held = self.fleet.by_sensor.get(&command.sensor);
                let answer = match held.and_then(|sub| self.fleet.by_sub.get(sub)) {
                    Some(s) if !s.granted.is_zero() => Answer::Accepted { expires: s.granted },
                    _ => Answer::Gone,
                };
                self.answer(command.sensor, command.request, answer);
            }
            CommandKind::Refresh => {
                let Some(sub) = self.fleet.by_sensor.get(&command.sensor).copied() else {
                    // The user agent ended it meanwhile: as if answered 481.
                    self.answer(command.sensor, command.request, Answer::Gone);
                    return;
                };
                if let Some(s) = self.fleet.by_sub.get_mut(&sub) {
                    s.pending = Some(command.request);
                }
                self.push(Action::RefreshSubscription { sub, body });
            }
            CommandKind::Subscribe => {
                if let Some(old) = self.fleet.by_sensor.remove(&command.sensor) {
                    // The manager has given it up (a lost answer): end it
                    // so that the sensor holds one subscription of ours.
                    self.fleet.by_sub.remove(&old);
                    self.push(Action::Unsubscribe(old));
                }
                let Some((target, source)) = self.locate(&command.sensor, now.instant) else {
                    self.answer(
                        command.sensor,
                        command.request,
                        Answer::Refused { status: 404 },
                    );
                    return;
                };
                self.fleet.placing.insert(
                    command.request,
                    Placing {
                        sensor: command.sensor.clone(),
                        source,
                    },
                );
                self.push(Action::Subscribe {
                    request: command.request,
                    target,
                    body,
                    expires,
                });
            }
        }
    }

    /// Where a request to the sensor goes, as for an INVITE
    /// (`outgoing.rs`): its binding here, or its AOR through the proxy.
    fn locate(&self, aor: &str, now: Instant) -> Option<(String, Option<SocketAddr>)> {
        if !self.settings.embedded_registrar {
            return Some((aor.to_string(), None));
        }
        let bindings = self
            .registrar
            .as_ref()
            .map(|r| r.lookup(aor, now))
            .unwrap_or_default();
        let b = bindings.first()?;
        Some((super::outgoing::target_of(b), Some(b.source)))
    }

    /// The user agent took (or refused) our SUBSCRIBE.
    pub(super) fn subscribed(
        &mut self,
        request: RequestId,
        result: Result<SubscriptionId, UaError>,
        now: Now,
    ) {
        let Some(placing) = self.fleet.placing.remove(&request) else {
            return;
        };
        match result {
            Ok(sub) => {
                self.fleet.by_sensor.insert(placing.sensor.clone(), sub);
                self.fleet.by_sub.insert(
                    sub,
                    FleetSub {
                        sensor: placing.sensor,
                        pending: Some(request),
                        granted: Duration::ZERO,
                        source: placing.source,
                        budget: NotifyBudget::new(now.instant),
                    },
                );
            }
            Err(e) => {
                self.warn(
                    "fleet",
                    format!("cannot subscribe to {}: {e}", placing.sensor),
                );
                self.answer(placing.sensor, request, Answer::Refused { status: 503 });
            }
        }
    }

    /// Our refresh could not be sent (the subscription is not active in
    /// the user agent): as if answered 481.
    pub(super) fn refresh_failed(&mut self, sub: SubscriptionId) {
        let Some(s) = self.fleet.by_sub.get_mut(&sub) else {
            return;
        };
        if let Some(request) = s.pending.take() {
            let sensor = s.sensor.clone();
            self.answer(sensor, request, Answer::Gone);
        }
    }

    pub(super) fn subscription(&mut self, event: SubscriptionEvent, now: Now) {
        match event {
            SubscriptionEvent::Active {
                subscription,
                expires,
            } => {
                let Some(s) = self.fleet.by_sub.get_mut(&subscription) else {
                    return;
                };
                let expires = Duration::from_secs(u64::from(expires));
                s.granted = expires;
                // The user agent's own refreshes answer nothing of ours.
                if let Some(request) = s.pending.take() {
                    let sensor = s.sensor.clone();
                    self.answer(sensor, request, Answer::Accepted { expires });
                }
            }
            SubscriptionEvent::Notified {
                subscription,
                state,
                body,
            } => {
                let Some(s) = self.fleet.by_sub.get(&subscription) else {
                    return;
                };
                // Read once already when screened; a NOTIFY without a
                // body (a last one may have none) reports no state.
                let parsed = (!body.is_empty())
                    .then(|| FleetState::parse(&body).ok())
                    .flatten();
                let event = SipEvent::Notified {
                    sensor: s.sensor.clone(),
                    status: notify_status(&state),
                    state: parsed,
                };
                self.fleet_event(event);
            }
            SubscriptionEvent::Terminated {
                subscription,
                reason,
            } => {
                let Some(s) = self.fleet.by_sub.remove(&subscription) else {
                    return;
                };
                if self.fleet.by_sensor.get(&s.sensor) == Some(&subscription) {
                    self.fleet.by_sensor.remove(&s.sensor);
                }
                match s.pending {
                    Some(request) => self.answer(s.sensor, request, answer_of(&reason)),
                    // Ended between requests (a refresh of the user
                    // agent's own failed, or it expired): as a last NOTIFY.
                    None => self.fleet_event(SipEvent::Notified {
                        sensor: s.sensor,
                        status: NotifyStatus::Terminated,
                        state: None,
                    }),
                }
            }
            SubscriptionEvent::InDialogRequest {
                subscription,
                id,
                request,
                source,
                on_dialog_flow,
            } => self.screen_notify(subscription, id, &request, source, on_dialog_flow, now),
            // We serve no package as notifier: the user agent answers 489
            // before any of these could come.
            SubscriptionEvent::Incoming { .. } | SubscriptionEvent::Refreshed { .. } => {}
        }
    }

    /// A NOTIFY in one of our subscriptions' dialogs, before the user
    /// agent acts on it.
    fn screen_notify(
        &mut self,
        sub: SubscriptionId,
        id: ServerId,
        request: &Request,
        source: Target,
        on_dialog_flow: bool,
        now: Now,
    ) {
        let trusted = self.trusted(source.addr.ip().to_canonical());
        let Some(s) = self.fleet.by_sub.get_mut(&sub) else {
            // Not (or no longer) ours: the user agent answers it (481).
            self.push(Action::AdmitInDialog(id));
            return;
        };
        let sensor = s.sensor.clone();
        let from_sensor = on_dialog_flow || trusted || s.source == Some(source.addr);
        if !from_sensor {
            self.count("fleet_notify_forbidden");
            self.warn(
                "fleet_notify",
                format!(
                    "NOTIFY for {sensor} from {}: 403, not where the sensor is",
                    source.addr
                ),
            );
            self.refuse_notify(id, request, 403, "not from the subscription's peer", None);
            return;
        }
        if !s.budget.take(now.instant) {
            self.count("fleet_notify_flood");
            self.warn(
                "fleet_notify",
                format!("NOTIFY flood from {sensor} ({}): 503", source.addr),
            );
            self.refuse_notify(id, request, 503, "too many NOTIFYs", Some(5));
            return;
        }
        if !request.body.is_empty()
            && let Err(e) = FleetState::parse(&request.body)
        {
            // docs/protocol.md 12.2: a body that breaks the rules gets 400.
            self.count("fleet_body_malformed");
            self.warn(
                "fleet_body",
                format!(
                    "NOTIFY from {sensor} ({}): 400, unreadable fleet body: {e}",
                    source.addr
                ),
            );
            self.refuse_notify(id, request, 400, &e.to_string(), None);
            return;
        }
        self.push(Action::AdmitInDialog(id));
    }

    fn refuse_notify(
        &mut self,
        id: ServerId,
        request: &Request,
        status: u16,
        why: &str,
        retry_after: Option<u32>,
    ) {
        let tag = self.ids.tag();
        let mut response = response_to(request, StatusCode::from(status), Some(&tag));
        let warning = format!("399 {} \"{}\"", self.settings.host, why.replace('"', "'"));
        response
            .headers
            .push(sipsensor_protocol::Header::Warning(headers::Warning::new(
                warning,
            )));
        if let Some(seconds) = retry_after {
            response
                .headers
                .push(sipsensor_protocol::Header::RetryAfter(
                    headers::RetryAfter::new(seconds.to_string()),
                ));
        }
        self.push(Action::RefuseInDialog { id, response });
    }

    /// A stream session with the sensor is up (12.1: subscribe, or check
    /// the subscription held, at each new one).
    pub(super) fn fleet_session_started(&mut self, aor: &str) {
        self.fleet_event(SipEvent::SessionStarted {
            sensor: aor.to_string(),
        });
    }

    /// The sensor's last stream session is over.
    pub(super) fn fleet_session_ended(&mut self, aor: &str) {
        self.fleet_event(SipEvent::SessionEnded {
            sensor: aor.to_string(),
        });
    }
}

#[cfg(test)]
mod tests;
