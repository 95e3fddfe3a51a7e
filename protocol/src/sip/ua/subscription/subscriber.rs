//! The subscriber's side (RFC 6665 4.1): SUBSCRIBE out of a dialog,
//! routed like an INVITE; its refreshes and its end in the dialog; the
//! NOTIFYs that come back.

use std::time::Instant;

use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Request, Response, StatusCode};

use super::*;
use crate::sip::dialog::{Dialog, DialogError};

impl UserAgent {
    /// Subscribes to `event` at `to` (RFC 6665 4.1.2.1) for `expires`
    /// seconds, with `body` (empty: none). The SUBSCRIBE goes where an
    /// INVITE would (outbound proxy, then the URI) and a challenge is
    /// answered as for an INVITE (RFC 3261 22.2, RFC 8760). The
    /// subscription then reports [`SubscriptionEvent::Active`] and
    /// [`SubscriptionEvent::Notified`], is refreshed by the UA at half its
    /// duration, and ends with [`SubscriptionEvent::Terminated`].
    pub fn subscribe(
        &mut self,
        to: &str,
        event: &str,
        body: Vec<u8>,
        expires: u32,
        now: Instant,
    ) -> Result<SubscriptionId, UaError> {
        let accept = self
            .package(event)
            .ok_or_else(|| UaError::UnknownEvent(event.to_owned()))?
            .content_type
            .clone();
        self.subscription_room()?;
        let to_uri = parse_uri(to)?;
        let target = self.out_of_dialog_target(&to_uri)?;
        let call_id = self.ids.call_id(&self.config.local.host_port());
        let tag = self.ids.tag();
        let seq = self.ids.cseq_start();
        let branch = self.ids.branch();
        let mut request =
            self.out_of_dialog_request(Method::Subscribe, &to_uri, &call_id, &tag, seq, &branch);
        self.event_headers(&mut request, event);
        request
            .headers
            .push(Header::Accept(rsip::headers::Accept::new(accept)));
        request
            .headers
            .push(Header::Expires(rsip::headers::Expires::new(
                expires.to_string(),
            )));
        self.set_event_body(&mut request, event, body.clone());
        let id = self.layer.send_request(request.clone(), target, now)?;
        let sub = self.subscriptions.fresh_id();
        self.subscriptions.table.insert(
            sub,
            Subscription {
                side: Side::Subscriber,
                event: event.to_owned(),
                phase: Phase::Subscribing,
                dialog: None,
                request: request.clone(),
                body,
                max_expires: expires,
                expires_at: None,
                refresh_at: None,
                in_flight: Some(id),
                flow: Some(target).filter(|t| t.transport.is_reliable()),
            },
        );
        self.subscriptions.unconfirmed.insert((call_id, tag), sub);
        self.clients.insert(id, Purpose::Subscribe(sub));
        self.in_dialog_sent.insert(id, (request, target));
        self.pump(now);
        Ok(sub)
    }

    /// Refreshes a subscription now, with a new body (`Some(empty)`: none
    /// from now on) or the last one (RFC 6665 4.1.2.2).
    pub fn refresh_subscription(
        &mut self,
        sub: SubscriptionId,
        body: Option<Vec<u8>>,
        now: Instant,
    ) -> Result<(), UaError> {
        let s = self.subscriber_active(sub)?;
        let expires = s.max_expires;
        if let Some(body) = body {
            s.body = body;
        }
        self.send_resubscribe(sub, expires, now)?;
        self.pump(now);
        Ok(())
    }

    /// Ends a subscription (RFC 6665 4.1.2.3: a SUBSCRIBE with `Expires:
    /// 0`); [`SubscriptionEvent::Terminated`] with
    /// [`SubscriptionEnd::Local`] follows the final NOTIFY, a failure, or
    /// a transaction's time without either.
    pub fn unsubscribe(&mut self, sub: SubscriptionId, now: Instant) -> Result<(), UaError> {
        let timeout = self.config.timers.transaction_timeout();
        let s = self.subscriber_active(sub)?;
        s.phase = Phase::Ending;
        s.refresh_at = None;
        s.expires_at = Some(now + timeout);
        self.send_resubscribe(sub, 0, now)?;
        self.pump(now);
        Ok(())
    }

    fn subscriber_active(&mut self, sub: SubscriptionId) -> Result<&mut Subscription, UaError> {
        let s = self.subscriptions.get_mut(sub)?;
        if s.side != Side::Subscriber || !matches!(s.phase, Phase::Active) || s.dialog.is_none() {
            return Err(UaError::SubscriptionNotActive(sub));
        }
        Ok(s)
    }

    /// A SUBSCRIBE in the dialog: the next CSeq, our body, `expires`.
    fn send_resubscribe(
        &mut self,
        sub: SubscriptionId,
        expires: u32,
        now: Instant,
    ) -> Result<(), UaError> {
        let local = self.config.local.clone();
        let s = self.subscriptions.get_mut(sub)?;
        let dialog = s
            .dialog
            .as_mut()
            .ok_or(UaError::SubscriptionNotActive(sub))?;
        let mut request = dialog.request(Method::Subscribe, &local, &mut self.ids);
        let target = locate(&dialog.next_hop()?, self.resolver.as_ref())?;
        let (event, body) = (s.event.clone(), s.body.clone());
        self.event_headers(&mut request, &event);
        if let Some(p) = self.package(&event) {
            let accept = rsip::headers::Accept::new(p.content_type.clone());
            request.headers.push(Header::Accept(accept));
        }
        request
            .headers
            .push(Header::Expires(rsip::headers::Expires::new(
                expires.to_string(),
            )));
        self.set_event_body(&mut request, &event, body);
        let id = self.layer.send_request(request.clone(), target, now)?;
        if let Some(s) = self.subscriptions.table.get_mut(&sub) {
            s.in_flight = Some(id);
        }
        self.clients.insert(id, Purpose::Subscribe(sub));
        self.in_dialog_sent.insert(id, (request, target));
        Ok(())
    }

    /// The answer to one of our SUBSCRIBEs.
    pub(in super::super) fn subscribe_response(
        &mut self,
        sub: SubscriptionId,
        sent: Option<(Request, Target)>,
        response: Option<Response>,
        now: Instant,
    ) {
        let status = response.as_ref().map(|r| r.status_code.code());
        if status.is_some_and(|s| s < 200) {
            return;
        }
        let Some(s) = self.subscriptions.table.get_mut(&sub) else {
            return;
        };
        s.in_flight = None;
        let initial = s.dialog.is_none() || matches!(s.phase, Phase::Subscribing);
        let ending = matches!(s.phase, Phase::Ending);
        if let (Some(401 | 407), Some(sent), Some(challenge)) = (status, &sent, &response)
            && self.subscription_challenged(sub, sent, challenge, now)
        {
            return;
        }
        match (status, response) {
            (Some(200..=299), Some(response)) => {
                if ending {
                    return;
                }
                if let Some((sent, _)) = sent {
                    self.subscription_accepted(sub, &sent, &response, now);
                }
            }
            _ if ending => self.end_subscription(sub, SubscriptionEnd::Local),
            (status, response) if initial => {
                let status = status.unwrap_or(408);
                self.end_subscription(
                    sub,
                    SubscriptionEnd::Refused {
                        status,
                        warning: response.as_ref().and_then(warning_text),
                        retry_after: response.as_ref().and_then(retry_after),
                    },
                );
            }
            // docs/protocol.md 12.1: a refresh answered 481 or 408, or not at
            // all, ends it; any other failure leaves it until it expires
            // (RFC 6665 4.1.2.2).
            (None | Some(408 | 481), _) => {
                self.end_subscription(sub, SubscriptionEnd::DialogGone(status.unwrap_or(408)))
            }
            _ => {}
        }
    }

    /// A 2xx to our SUBSCRIBE: the dialog (unless a NOTIFY made it first,
    /// RFC 6665 4.1.2.4), the granted duration (4.1.2.1: its Expires), and
    /// the refresh at half of it.
    fn subscription_accepted(
        &mut self,
        sub: SubscriptionId,
        sent: &Request,
        response: &Response,
        now: Instant,
    ) {
        let Some(s) = self.subscriptions.table.get_mut(&sub) else {
            return;
        };
        let granted = match expires_of(response) {
            Some(Ok(e)) => e.min(s.max_expires),
            _ => s.max_expires,
        };
        if s.dialog.is_none() {
            match Dialog::from_uac(sent, response) {
                Ok(dialog) => {
                    self.subscriptions.by_dialog.insert(dialog.id.clone(), sub);
                    s.dialog = Some(dialog);
                }
                Err(e) => {
                    let reason = e.to_string();
                    self.event(UaEvent::Malformed {
                        source: Target::new(self.config.local.transport, self.config.local.addr),
                        reason: format!("2xx to SUBSCRIBE: {reason}"),
                    });
                    self.end_subscription(sub, SubscriptionEnd::DialogGone(500));
                    return;
                }
            }
        }
        let Some(s) = self.subscriptions.table.get_mut(&sub) else {
            return;
        };
        s.phase = Phase::Active;
        s.expires_at = Some(now + seconds(granted));
        s.refresh_at = Some(now + seconds(granted / 2));
        let key = s
            .dialog
            .as_ref()
            .map(|d| (d.id.call_id.clone(), d.id.local_tag.clone()));
        if let Some(key) = key {
            self.subscriptions.unconfirmed.remove(&key);
        }
        self.event(UaEvent::Subscription(SubscriptionEvent::Active {
            subscription: sub,
            expires: granted,
        }));
    }

    /// RFC 3261 22.2 for our SUBSCRIBE or NOTIFY: once more with
    /// credentials. Out of the dialog it is the same request with CSeq + 1
    /// (as an INVITE's); in it, the dialog's next request. False when it
    /// cannot (no credentials, a wrong password): then it counts as
    /// refused.
    pub(super) fn subscription_challenged(
        &mut self,
        sub: SubscriptionId,
        sent: &(Request, Target),
        challenge: &Response,
        now: Instant,
    ) -> bool {
        let (sent, target) = sent;
        let Some(digest) = self.digest.as_mut() else {
            return false;
        };
        if digest.handle_challenge(sent, challenge).is_err() {
            return false;
        }
        let local = self.config.local.clone();
        let Some(s) = self.subscriptions.table.get_mut(&sub) else {
            return false;
        };
        let mut retry = match s.dialog.as_mut() {
            None => next_attempt(sent, &local, &mut self.ids),
            Some(dialog) => {
                let mut retry = dialog.request(sent.method, &local, &mut self.ids);
                copy_event_fields(sent, &mut retry);
                retry
            }
        };
        if let Some(digest) = self.digest.as_mut() {
            digest.authorize(&mut retry, &mut self.ids);
        }
        let notify = sent.method == Method::Notify;
        match self.layer.send_request(retry.clone(), *target, now) {
            Ok(id) => {
                if let Some(s) = self.subscriptions.table.get_mut(&sub)
                    && !notify
                {
                    s.in_flight = Some(id);
                    if s.dialog.is_none() {
                        s.request = retry.clone();
                    }
                }
                let purpose = if notify {
                    Purpose::Notify(sub)
                } else {
                    Purpose::Subscribe(sub)
                };
                self.clients.insert(id, purpose);
                self.in_dialog_sent.insert(id, (retry, *target));
                true
            }
            Err(_) => false,
        }
    }

    /// A NOTIFY in the dialog, let through (RFC 6665 4.1.3): its
    /// Subscription-State and body are checked, then it is answered 200
    /// and reported.
    pub(super) fn incoming_notify(
        &mut self,
        sub: SubscriptionId,
        id: ServerId,
        request: Request,
        now: Instant,
    ) {
        let Some(s) = self.subscriptions.table.get(&sub) else {
            return;
        };
        let event = s.event.clone();
        let ending = matches!(s.phase, Phase::Ending);
        let state = request.headers.iter().find_map(|h| match h {
            Header::SubscriptionState(v) => SubscriptionState::parse(v.value()),
            _ => None,
        });
        let Some(state) = state else {
            // RFC 6665 4.1.3: Subscription-State is mandatory in NOTIFY.
            let why = "no readable Subscription-State";
            self.reply_warning(id, &request, StatusCode::BadRequest, why, now);
            return;
        };
        let check = self.package(&event).and_then(|p| p.check_notify_body);
        if let Some(Err(why)) = check.map(|check| check(&request.body)) {
            // docs/protocol.md 12.2: a body that breaks the package's rules.
            self.reply_warning(id, &request, StatusCode::BadRequest, &why, now);
            return;
        }
        self.reply_status(id, &request, StatusCode::OK, now);
        if let (Some(s), Some(left)) = (self.subscriptions.table.get_mut(&sub), state.expires)
            && !ending
        {
            // RFC 6665 4.1.3: the notifier may shorten it.
            let end = now + seconds(left);
            s.expires_at = Some(s.expires_at.map_or(end, |at| at.min(end)));
            let half = now + seconds(left / 2);
            s.refresh_at = s.refresh_at.map(|at| at.min(half));
        }
        let terminated = state.status == SubscriptionStatus::Terminated;
        let end = SubscriptionEnd::ByNotifier {
            reason: state.reason.clone(),
            retry_after: state.retry_after,
        };
        self.event(UaEvent::Subscription(SubscriptionEvent::Notified {
            subscription: sub,
            state,
            body: request.body,
        }));
        if terminated {
            let reason = if ending { SubscriptionEnd::Local } else { end };
            self.end_subscription(sub, reason);
        }
    }

    /// The subscription's dialog for this NOTIFY: the one it has, or,
    /// before the 2xx, one made from the NOTIFY (RFC 6665 4.1.2.4). A
    /// second dialog (another fork's NOTIFY) is not taken: 481.
    pub(super) fn notify_dialog(
        &mut self,
        sub: SubscriptionId,
        notify: &Request,
    ) -> Result<(), StatusCode> {
        let gone = StatusCode::CallTransactionDoesNotExist;
        let s = self.subscriptions.table.get_mut(&sub).ok_or(gone.clone())?;
        let id = DialogId::of_incoming_request(notify).ok_or(gone.clone())?;
        if let Some(dialog) = &s.dialog {
            return if dialog.id == id { Ok(()) } else { Err(gone) };
        }
        let dialog = dialog_from_notify(&s.request, notify).map_err(|_| StatusCode::BadRequest)?;
        s.dialog = Some(dialog);
        self.subscriptions.by_dialog.insert(id.clone(), sub);
        self.subscriptions
            .unconfirmed
            .remove(&(id.call_id, id.local_tag));
        Ok(())
    }

    pub(super) fn subscriber_timeout(&mut self, sub: SubscriptionId, now: Instant) {
        let Some(s) = self.subscriptions.table.get_mut(&sub) else {
            return;
        };
        if s.expires_at.is_some_and(|at| at <= now) {
            let reason = match s.phase {
                Phase::Ending => SubscriptionEnd::Local,
                _ => SubscriptionEnd::Expired,
            };
            self.end_subscription(sub, reason);
            return;
        }
        if s.refresh_at.is_some_and(|at| at <= now) {
            s.refresh_at = None;
            if s.in_flight.is_none() && matches!(s.phase, Phase::Active) {
                let expires = s.max_expires;
                // Unsent, it expires in its time: the TU hears of it then.
                let _ = self.send_resubscribe(sub, expires, now);
            }
        }
    }
}

/// The dialog a NOTIFY creates before the 2xx (RFC 6665 4.1.2.4), as the
/// 2xx would have: the NOTIFY's From and Contact are the notifier's, its
/// To ours, and its Record-Route, in order, the route set (RFC 3261
/// 12.1.1), which `Dialog::from_uac` reads from a response in reverse.
fn dialog_from_notify(subscribe: &Request, notify: &Request) -> Result<Dialog, DialogError> {
    let mut headers = Headers::default();
    let mut routes = Vec::new();
    for h in notify.headers.iter() {
        match h {
            Header::From(f) => headers.push(Header::To(rsip::headers::To::new(f.value()))),
            Header::To(t) => headers.push(Header::From(rsip::headers::From::new(t.value()))),
            Header::CallId(_) | Header::Contact(_) | Header::CSeq(_) => headers.push(h.clone()),
            Header::RecordRoute(_) => routes.push(h.clone()),
            _ => {}
        }
    }
    routes.reverse();
    headers.extend(routes);
    let response = Response {
        status_code: StatusCode::OK,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    };
    Dialog::from_uac(subscribe, &response)
}

/// The same out-of-dialog request once more (RFC 3261 22.2): a new branch,
/// CSeq + 1, the rest as sent.
fn next_attempt(sent: &Request, local: &LocalEndpoint, ids: &mut IdGenerator) -> Request {
    let seq = sent
        .cseq_header()
        .ok()
        .and_then(|c| c.seq().ok())
        .unwrap_or(1)
        .wrapping_add(1);
    let mut headers = Headers::default();
    headers.push(local.via(&ids.branch()));
    for h in sent.headers.iter() {
        match h {
            Header::Via(_) | Header::Authorization(_) | Header::ProxyAuthorization(_) => {}
            Header::CSeq(_) => headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
                "{seq} {}",
                sent.method
            )))),
            other => headers.push(other.clone()),
        }
    }
    let mut retry = sent.clone();
    retry.headers = headers;
    retry
}

/// What a SUBSCRIBE or NOTIFY carries beyond the dialog's own fields:
/// Event, Expires, Accept, Subscription-State, Allow(-Events), the body.
pub(super) fn copy_event_fields(sent: &Request, into: &mut Request) {
    into.headers
        .retain(|h| !matches!(h, Header::ContentLength(_)));
    for h in sent.headers.iter() {
        let carried = matches!(
            h,
            Header::Event(_)
                | Header::Expires(_)
                | Header::Accept(_)
                | Header::SubscriptionState(_)
                | Header::Allow(_)
                | Header::ContentType(_)
                | Header::ContentLength(_)
        ) || matches!(h, Header::Other(name, _) if name.eq_ignore_ascii_case("Allow-Events"));
        if carried {
            into.headers.push(h.clone());
        }
    }
    into.body = sent.body.clone();
}
