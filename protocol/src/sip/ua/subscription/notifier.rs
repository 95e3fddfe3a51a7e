//! The notifier's side (RFC 6665 4.2): SUBSCRIBEs received, handed to the
//! TU to accept or refuse as an INVITE is; NOTIFYs sent; refreshes and
//! expiry.

use std::time::Instant;

use rsip::{Header, Method, Request, Response, StatusCode};

use super::*;
use crate::sip::dialog::Dialog;
use crate::sip::response::response_to;

impl UserAgent {
    /// A SUBSCRIBE outside any dialog (RFC 6665 4.2.1): checked here
    /// (room, package, duration, body), then handed to the TU.
    pub(in super::super) fn incoming_subscribe(
        &mut self,
        id: ServerId,
        request: Request,
        source: Target,
        now: Instant,
    ) {
        if self.subscription_room().is_err() {
            // Stateless, as the transaction layer's own 503 when full: a
            // flood gets one packet per packet and leaves nothing behind.
            let mut r = self.response(&request, StatusCode::ServiceUnavailable, Some("full"));
            r.headers
                .push(Header::RetryAfter(rsip::headers::RetryAfter::new(
                    crate::sip::transaction::FULL_RETRY_AFTER_SECS.to_string(),
                )));
            let _ = self.layer.respond_statelessly(id, r);
            self.event(UaEvent::Refused {
                source,
                status: 503,
                reason: format!(
                    "SUBSCRIBE refused: {} subscriptions",
                    self.subscription_count()
                ),
            });
            return;
        }
        let served =
            event_of(&request).and_then(|e| self.package(&e).filter(|p| p.notifier).cloned());
        let Some(package) = served else {
            // RFC 6665 7.2.2: 489 Bad Event, with Allow-Events.
            self.reply_status(id, &request, StatusCode::BadEvent, now);
            return;
        };
        let expires = match self.judge_subscribe(&request, &package) {
            Ok(e) => e,
            Err(refusal) => {
                self.reply(id, refusal, now);
                return;
            }
        };
        let tag = self.ids.tag();
        let sub = self.subscriptions.fresh_id();
        let timeout = self.config.timers.transaction_timeout();
        self.subscriptions.table.insert(
            sub,
            Subscription {
                side: Side::Notifier,
                event: package.name.clone(),
                phase: Phase::Incoming { server_tx: id, tag },
                dialog: None,
                request: request.clone(),
                body: Vec::new(),
                max_expires: expires,
                // The TU answers within a transaction's time, or the UA
                // does (500) and forgets it.
                expires_at: Some(now + timeout),
                refresh_at: None,
                in_flight: None,
                flow: Some(source).filter(|s| s.transport.is_reliable()),
            },
        );
        self.event(UaEvent::Subscription(SubscriptionEvent::Incoming {
            subscription: sub,
            body: request.body.clone(),
            request,
            source,
            expires,
        }));
    }

    /// The duration a SUBSCRIBE asks for (RFC 6665 4.1.2.1: the package's
    /// default without Expires), or the refusal: 400 for an unreadable
    /// one, 423 with Min-Expires below [`MIN_EXPIRES`] (RFC 6665 4.2.1.1;
    /// 0 is an unsubscribe or a fetch, and allowed), 400 for a body that
    /// breaks the package's rules (docs/protocol.md 12.2).
    fn judge_subscribe(&self, request: &Request, package: &EventPackage) -> Result<u32, Response> {
        let tag = "subscribe";
        if let Some(Err(why)) = package
            .check_subscribe_body
            .map(|check| check(&request.body))
        {
            let mut r = self.response(request, StatusCode::BadRequest, Some(tag));
            incoming::add_warning(&mut r, &self.config.local.host_port(), &why);
            return Err(r);
        }
        match expires_of(request) {
            None => Ok(package.default_expires),
            Some(Err(())) => Err(self.response(request, StatusCode::BadRequest, Some(tag))),
            Some(Ok(e)) if e > 0 && e < MIN_EXPIRES => {
                let mut r = self.response(request, StatusCode::IntervalTooBrief, Some(tag));
                r.headers
                    .push(Header::MinExpires(rsip::headers::MinExpires::new(
                        MIN_EXPIRES.to_string(),
                    )));
                Err(r)
            }
            Some(Ok(e)) => Ok(e),
        }
    }

    /// Accepts a SUBSCRIBE handed up in [`SubscriptionEvent::Incoming`]:
    /// 200 with the granted duration (what was asked, at most
    /// `max_expires`, never below [`MIN_EXPIRES`]) and at once the first
    /// NOTIFY with `body` (RFC 6665 4.2.1.2). A SUBSCRIBE with `Expires:
    /// 0` (a fetch) gets its NOTIFY as `terminated` and ends.
    pub fn accept_subscription(
        &mut self,
        sub: SubscriptionId,
        max_expires: u32,
        body: Vec<u8>,
        now: Instant,
    ) -> Result<(), UaError> {
        let (server_tx, tag, request) = self.incoming_subscription(sub)?;
        let asked = self
            .subscriptions
            .table
            .get(&sub)
            .map_or(0, |s| s.max_expires);
        let max_expires = max_expires.max(MIN_EXPIRES);
        let granted = asked.min(max_expires);
        let dialog = Dialog::from_uas(&request, &tag, &mut self.ids)?;
        let target = self
            .layer
            .server_target(server_tx)
            .ok_or(UaError::UnknownRequest)?;
        let mut ok = self.response(&request, StatusCode::OK, Some(&tag));
        // RFC 3261 12.1.1 (RFC 6665 4.2.1.1): the dialog-creating 2xx copies
        // Record-Route and carries our Contact.
        for h in request.headers.iter() {
            if matches!(h, Header::RecordRoute(_)) {
                ok.headers.push(h.clone());
            }
        }
        ok.headers
            .push(Header::Contact(rsip::headers::Contact::new(format!(
                "<{}>",
                self.config.contact_for(target.transport)
            ))));
        ok.headers.push(Header::Expires(rsip::headers::Expires::new(
            granted.to_string(),
        )));
        self.layer.respond(server_tx, ok, now)?;
        self.subscriptions.by_dialog.insert(dialog.id.clone(), sub);
        if let Some(s) = self.subscriptions.table.get_mut(&sub) {
            s.dialog = Some(dialog);
            s.phase = Phase::Active;
            s.max_expires = max_expires;
            s.expires_at = Some(now + seconds(granted));
            s.body = body.clone();
        }
        let state = if granted == 0 {
            NotifyState::Terminated(TerminatedReason::Timeout)
        } else {
            NotifyState::Active
        };
        self.notify(sub, body, state, now)
    }

    /// Refuses a SUBSCRIBE handed up in [`SubscriptionEvent::Incoming`]
    /// (403 for an untrusted peer), with a Warning when given.
    pub fn reject_subscription(
        &mut self,
        sub: SubscriptionId,
        status: u16,
        warning: Option<&str>,
        now: Instant,
    ) -> Result<(), UaError> {
        let (server_tx, tag, request) = self.incoming_subscription(sub)?;
        let mut r = self.response(&request, StatusCode::from(status), Some(&tag));
        if let Some(text) = warning {
            incoming::add_warning(&mut r, &self.config.local.host_port(), text);
        }
        self.layer.respond(server_tx, r, now)?;
        self.end_subscription(sub, SubscriptionEnd::Rejected(status));
        self.pump(now);
        Ok(())
    }

    /// Refuses a SUBSCRIBE handed up in [`SubscriptionEvent::Incoming`]
    /// with one response the TU built (a digest challenge) and no
    /// transaction kept, as [`UserAgent::reject_statelessly`] does for an
    /// INVITE: the answered retry comes up as a new subscription.
    pub fn reject_subscription_statelessly(
        &mut self,
        sub: SubscriptionId,
        response: Response,
        now: Instant,
    ) -> Result<(), UaError> {
        let (server_tx, _, _) = self.incoming_subscription(sub)?;
        let status = response.status_code.code();
        self.layer.respond_statelessly(server_tx, response)?;
        self.end_subscription(sub, SubscriptionEnd::Rejected(status));
        self.pump(now);
        Ok(())
    }

    fn incoming_subscription(
        &self,
        sub: SubscriptionId,
    ) -> Result<(ServerId, String, Request), UaError> {
        let s = self
            .subscriptions
            .table
            .get(&sub)
            .ok_or(UaError::UnknownSubscription(sub))?;
        match &s.phase {
            Phase::Incoming { server_tx, tag } => Ok((*server_tx, tag.clone(), s.request.clone())),
            _ => Err(UaError::SubscriptionNotActive(sub)),
        }
    }

    /// Sends a NOTIFY in an accepted subscription (RFC 6665 4.2.2) with
    /// `Event` and `Subscription-State` (4.1.3: `active` with the seconds
    /// left, or `terminated` with a reason, which ends the subscription).
    /// A 481, 408 or no answer ends it too
    /// ([`SubscriptionEnd::DialogGone`]).
    pub fn notify(
        &mut self,
        sub: SubscriptionId,
        body: Vec<u8>,
        state: NotifyState,
        now: Instant,
    ) -> Result<(), UaError> {
        self.send_notify(sub, body, state, SubscriptionEnd::Local, now)
    }

    /// [`UserAgent::notify`], with the reason the TU hears when `state`
    /// ends the subscription.
    fn send_notify(
        &mut self,
        sub: SubscriptionId,
        body: Vec<u8>,
        state: NotifyState,
        end: SubscriptionEnd,
        now: Instant,
    ) -> Result<(), UaError> {
        let local = self.config.local.clone();
        let s = self.subscriptions.get_mut(sub)?;
        if s.side != Side::Notifier || !matches!(s.phase, Phase::Active) {
            return Err(UaError::SubscriptionNotActive(sub));
        }
        let left = s
            .expires_at
            .map_or(0, |at| at.saturating_duration_since(now).as_secs());
        let dialog = s
            .dialog
            .as_mut()
            .ok_or(UaError::SubscriptionNotActive(sub))?;
        let mut request = dialog.request(Method::Notify, &local, &mut self.ids);
        let target = locate(&dialog.next_hop()?, self.resolver.as_ref())?;
        s.body = body.clone();
        let event = s.event.clone();
        let value = match state {
            NotifyState::Active => format!("active;expires={left}"),
            NotifyState::Terminated(reason) => format!("terminated;reason={}", reason.as_str()),
        };
        self.event_headers(&mut request, &event);
        request.headers.push(Header::SubscriptionState(
            rsip::headers::SubscriptionState::new(value),
        ));
        self.set_event_body(&mut request, &event, body);
        let id = self.layer.send_request(request.clone(), target, now)?;
        self.clients.insert(id, Purpose::Notify(sub));
        self.in_dialog_sent.insert(id, (request, target));
        if let NotifyState::Terminated(_) = state {
            self.end_subscription(sub, end);
        }
        self.pump(now);
        Ok(())
    }

    /// The answer to one of our NOTIFYs: a challenge is answered once
    /// with credentials (RFC 3261 22.2); RFC 6665 4.2.2, a 481 (or 408, or
    /// none: docs/protocol.md 12.1) means the subscriber has forgotten the
    /// subscription.
    pub(in super::super) fn notify_response(
        &mut self,
        sub: SubscriptionId,
        sent: Option<(Request, Target)>,
        response: Option<&Response>,
        now: Instant,
    ) {
        let status = response.map(|r| r.status_code.code());
        if let (Some(401 | 407), Some(sent), Some(challenge)) = (status, &sent, response)
            && self.subscription_challenged(sub, sent, challenge, now)
        {
            return;
        }
        if let None | Some(408 | 481) = status {
            self.end_subscription(sub, SubscriptionEnd::DialogGone(status.unwrap_or(408)));
        }
    }

    /// A SUBSCRIBE in the dialog, let through and of our package: a refresh or, with
    /// `Expires: 0`, the end (RFC 6665 4.2.1.2, 4.1.2.3). Either way the
    /// subscriber gets a NOTIFY at once with the last body.
    pub(super) fn incoming_refresh(
        &mut self,
        sub: SubscriptionId,
        id: ServerId,
        request: Request,
        now: Instant,
    ) {
        let Some(s) = self.subscriptions.table.get(&sub) else {
            return;
        };
        let max_expires = s.max_expires;
        let Some(package) = self.package(&s.event).cloned() else {
            return self.reply_status(id, &request, StatusCode::BadEvent, now);
        };
        let asked = match self.judge_subscribe(&request, &package) {
            Ok(e) => e,
            Err(refusal) => {
                self.reply(id, refusal, now);
                return;
            }
        };
        let granted = asked.min(max_expires);
        let mut ok = self.response(&request, StatusCode::OK, None);
        ok.headers.push(Header::Expires(rsip::headers::Expires::new(
            granted.to_string(),
        )));
        self.reply(id, ok, now);
        let body = match self.subscriptions.table.get_mut(&sub) {
            Some(s) => {
                s.expires_at = Some(now + seconds(granted));
                s.body.clone()
            }
            None => return,
        };
        if granted == 0 {
            let last = NotifyState::Terminated(TerminatedReason::Timeout);
            let _ = self.send_notify(sub, body, last, SubscriptionEnd::Unsubscribed, now);
            // Unsent (no route left), it ends all the same.
            self.end_subscription(sub, SubscriptionEnd::Unsubscribed);
            return;
        }
        self.event(UaEvent::Subscription(SubscriptionEvent::Refreshed {
            subscription: sub,
            body: request.body,
            expires: granted,
        }));
        let _ = self.notify(sub, body, NotifyState::Active, now);
    }

    /// Unanswered by the TU, or not refreshed in time: RFC 6665 4.2.2, a
    /// last NOTIFY `terminated;reason=timeout`, and the end.
    pub(super) fn notifier_timeout(&mut self, sub: SubscriptionId, now: Instant) {
        let Some(s) = self.subscriptions.table.get(&sub) else {
            return;
        };
        if s.expires_at.is_none_or(|at| at > now) {
            return;
        }
        match &s.phase {
            Phase::Incoming { server_tx, tag } => {
                let r = response_to(&s.request, StatusCode::ServerInternalError, Some(tag));
                let _ = self.layer.respond(*server_tx, r, now);
            }
            _ => {
                let body = s.body.clone();
                let timeout = NotifyState::Terminated(TerminatedReason::Timeout);
                let _ = self.send_notify(sub, body, timeout, SubscriptionEnd::Expired, now);
            }
        }
        self.end_subscription(sub, SubscriptionEnd::Expired);
    }

    /// Room for one more subscription ([`UaConfig::max_subscriptions`]).
    pub(super) fn subscription_room(&self) -> Result<(), UaError> {
        let count = self.subscriptions.table.len();
        if count >= self.config.max_subscriptions {
            return Err(UaError::TooManySubscriptions(count));
        }
        Ok(())
    }
}
