//! Event subscriptions (RFC 6665) in the user agent core: the subscriber
//! (`subscribe`, refresh, unsubscribe; NOTIFY received) in
//! [`subscriber`], the notifier (SUBSCRIBE received, `notify`) in
//! [`notifier`]. Both sides keep a dialog each, apart from the INVITE
//! sessions, and report to the TU as [`SubscriptionEvent`]s. Every
//! subscription the TU hears of ends with exactly one
//! [`SubscriptionEvent::Terminated`].
//!
//! Bodies are opaque here; an [`EventPackage`] names the package's media
//! type and may check bodies, so that a body the package refuses gets 400
//! before the TU sees it (docs/protocol.md 12.2). The tests are the UA's
//! (`ua/tests/subscription*.rs`), on its in-memory network.

mod events;
mod notifier;
mod subscriber;

pub use events::{
    NotifyState, SubscriptionEnd, SubscriptionEvent, SubscriptionId, SubscriptionState,
    SubscriptionStatus, TerminatedReason,
};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Request};

use super::session_table::{Timed, TimerTable};
use super::*;
use crate::sip::dialog::Dialog;

/// RFC 6665 4.2.1.1 lets a notifier refuse shorter subscriptions (423);
/// docs/protocol.md 12.1 sets the floor at 60 s.
pub const MIN_EXPIRES: u32 = 60;

/// The default [`UaConfig::max_subscriptions`]: a collector subscribes to
/// each of 10,000 sensors once; twice that leaves room for the ones
/// ending while their successors start.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 20_000;

/// Checks a body of the package: `Err(why)` gets 400 with a Warning.
pub type BodyCheck = fn(&[u8]) -> Result<(), String>;

/// An event package (RFC 6665 7.2) this user agent speaks.
#[derive(Debug, Clone)]
pub struct EventPackage {
    /// The `Event` token.
    pub name: String,
    /// The media type of its bodies, both ways (`Accept`, `Content-Type`).
    pub content_type: String,
    /// Serve SUBSCRIBEs for it (be its notifier). A SUBSCRIBE for a
    /// package not served gets 489 (RFC 6665 7.2.2).
    pub notifier: bool,
    /// The duration of a SUBSCRIBE without `Expires` (RFC 6665 4.1.2.1:
    /// the package's default).
    pub default_expires: u32,
    /// Checks the body of a SUBSCRIBE we receive.
    pub check_subscribe_body: Option<BodyCheck>,
    /// Checks the body of a NOTIFY we receive.
    pub check_notify_body: Option<BodyCheck>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Subscriber,
    Notifier,
}

#[derive(Debug)]
pub(crate) enum Phase {
    /// Notifier: SUBSCRIBE received, the TU has not answered.
    Incoming {
        server_tx: ServerId,
        tag: String,
    },
    /// Subscriber: SUBSCRIBE sent, no 2xx yet (a NOTIFY may have come:
    /// RFC 6665 4.1.2.4).
    Subscribing,
    Active,
    /// Subscriber: our unsubscribe went out; the final NOTIFY is awaited.
    Ending,
}

#[derive(Debug)]
pub(crate) struct Subscription {
    pub side: Side,
    pub event: String,
    pub phase: Phase,
    pub dialog: Option<Dialog>,
    /// The out-of-dialog SUBSCRIBE as last sent (subscriber) or received
    /// (notifier, until answered).
    pub request: Request,
    /// Subscriber: the body our refreshes carry. Notifier: the last NOTIFY
    /// body, sent again on a refresh and in the last NOTIFY.
    pub body: Vec<u8>,
    /// Notifier: the longest duration the TU grants.
    pub max_expires: u32,
    pub expires_at: Option<Instant>,
    /// Subscriber: when to refresh (half the granted duration).
    pub refresh_at: Option<Instant>,
    /// Subscriber: our SUBSCRIBE in flight; no second one meanwhile.
    pub in_flight: Option<ClientId>,
    /// The TCP or TLS connection it was set up on (None over UDP).
    pub flow: Option<Target>,
}

impl Timed for Subscription {
    fn next_timeout(&self) -> Option<Instant> {
        [self.expires_at, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Every subscription, and how messages find theirs.
#[derive(Default)]
pub(crate) struct Subscriptions {
    pub table: TimerTable<SubscriptionId, Subscription>,
    pub by_dialog: HashMap<DialogId, SubscriptionId>,
    /// Subscriber, before the dialog exists: (Call-ID, our tag), so that a
    /// NOTIFY that overtakes the 2xx finds its subscription (RFC 6665
    /// 4.1.2.4).
    pub unconfirmed: HashMap<(String, String), SubscriptionId>,
    next: u64,
}

impl Subscriptions {
    fn fresh_id(&mut self) -> SubscriptionId {
        self.next += 1;
        SubscriptionId(self.next)
    }

    fn get_mut(&mut self, sub: SubscriptionId) -> Result<&mut Subscription, UaError> {
        self.table
            .get_mut(&sub)
            .ok_or(UaError::UnknownSubscription(sub))
    }
}

/// What the TU screens: a request in a session's dialog or in a
/// subscription's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Screened {
    Session(SessionId),
    Subscription(SubscriptionId),
}

impl UserAgent {
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.table.len()
    }

    /// The event packages we speak, as configured.
    fn package(&self, event: &str) -> Option<&EventPackage> {
        self.config.event_packages.iter().find(|p| p.name == event)
    }

    /// `SUBSCRIBE, NOTIFY` as far as we speak them, for Allow.
    pub(super) fn allow(&self) -> String {
        let mut allow = ALLOW.to_owned();
        if self.config.event_packages.iter().any(|p| p.notifier) {
            allow.push_str(", SUBSCRIBE");
        }
        if !self.config.event_packages.is_empty() {
            allow.push_str(", NOTIFY");
        }
        allow
    }

    /// Allow-Events (RFC 6665 7.2.2): the packages we serve as notifier.
    pub(super) fn allow_events(&self) -> Option<Header> {
        let served: Vec<&str> = self
            .config
            .event_packages
            .iter()
            .filter(|p| p.notifier)
            .map(|p| p.name.as_str())
            .collect();
        (!served.is_empty()).then(|| Header::Other("Allow-Events".into(), served.join(", ")))
    }

    /// Where a request with a To tag goes when no session owns its
    /// dialog: a subscription's dialog, or a subscription whose NOTIFY
    /// overtook the 2xx (RFC 6665 4.1.2.4).
    pub(super) fn subscription_of(&self, request: &Request) -> Option<SubscriptionId> {
        let dialog = DialogId::of_incoming_request(request)?;
        if let Some(sub) = self.subscriptions.by_dialog.get(&dialog) {
            return Some(*sub);
        }
        if request.method != rsip::Method::Notify {
            return None;
        }
        self.subscriptions
            .unconfirmed
            .get(&(dialog.call_id, dialog.local_tag))
            .copied()
    }

    /// A request in a subscription's dialog: to the TU first when it
    /// screens them, as a BYE.
    pub(super) fn in_subscription_dialog(
        &mut self,
        sub: SubscriptionId,
        id: ServerId,
        request: Request,
        source: Target,
        now: Instant,
    ) {
        if self.config.screen_in_dialog {
            let on_dialog_flow = source.transport.is_reliable()
                && self
                    .subscriptions
                    .table
                    .get(&sub)
                    .and_then(|s| s.flow)
                    .is_some_and(|flow| flow == source);
            self.screening
                .insert(id, (Screened::Subscription(sub), request.clone()));
            self.event(UaEvent::Subscription(SubscriptionEvent::InDialogRequest {
                subscription: sub,
                id,
                request,
                source,
                on_dialog_flow,
            }));
            return;
        }
        self.serve_subscription_request(sub, id, request, now);
    }

    /// A request in a subscription's dialog, let through: its dialog
    /// (a NOTIFY may make it, RFC 6665 4.1.2.4), CSeq order (RFC 3261
    /// 12.2.2), Event (RFC 6665 7.2.2), then what the method asks for.
    pub(super) fn serve_subscription_request(
        &mut self,
        sub: SubscriptionId,
        id: ServerId,
        request: Request,
        now: Instant,
    ) {
        use rsip::{Method, StatusCode};
        let side = self.subscriptions.table.get(&sub).map(|s| s.side);
        match (side, &request.method) {
            (None, _) => {
                let gone = StatusCode::CallTransactionDoesNotExist;
                return self.reply_status(id, &request, gone, now);
            }
            (Some(Side::Subscriber), Method::Notify) => {
                if let Err(status) = self.notify_dialog(sub, &request) {
                    return self.reply_status(id, &request, status, now);
                }
            }
            (Some(Side::Notifier), Method::Subscribe) => {}
            _ => return self.reply_status(id, &request, StatusCode::MethodNotAllowed, now),
        }
        let Some(s) = self.subscriptions.table.get_mut(&sub) else {
            return;
        };
        let order = s.dialog.as_mut().map(|d| d.receive_request(&request));
        let event = s.event.clone();
        if let Some(Err(e)) = order {
            // RFC 3261 12.2.2: out of order CSeq gets a 500.
            let status = StatusCode::ServerInternalError;
            return self.reply_warning(id, &request, status, &e.to_string(), now);
        }
        if event_of(&request).as_deref() != Some(event.as_str()) {
            // RFC 6665 7.2.2 (Bad Event): another package in this dialog.
            return self.reply_status(id, &request, StatusCode::BadEvent, now);
        }
        match side {
            Some(Side::Subscriber) => self.incoming_notify(sub, id, request, now),
            _ => self.incoming_refresh(sub, id, request, now),
        }
    }

    /// Ends a subscription: forgets it and tells the TU.
    pub(super) fn end_subscription(&mut self, sub: SubscriptionId, reason: SubscriptionEnd) {
        let Some(s) = self.subscriptions.table.remove(&sub) else {
            return;
        };
        if let Some(dialog) = &s.dialog {
            self.subscriptions.by_dialog.remove(&dialog.id);
        }
        self.subscriptions.unconfirmed.retain(|_, v| *v != sub);
        self.event(UaEvent::Subscription(SubscriptionEvent::Terminated {
            subscription: sub,
            reason,
        }));
    }

    pub(super) fn subscription_timeouts(&mut self, now: Instant) {
        for sub in self.subscriptions.table.due(now) {
            let Some(side) = self.subscriptions.table.get(&sub).map(|s| s.side) else {
                continue;
            };
            match side {
                Side::Subscriber => self.subscriber_timeout(sub, now),
                Side::Notifier => self.notifier_timeout(sub, now),
            }
        }
    }

    /// Headers every SUBSCRIBE and NOTIFY of a subscription carries.
    fn event_headers(&self, request: &mut Request, event: &str) {
        request
            .headers
            .push(Header::Event(rsip::headers::Event::new(event)));
        if let Some(h) = self.allow_events() {
            request.headers.push(h);
        }
        request.headers.retain(|h| !matches!(h, Header::Allow(_)));
        request
            .headers
            .push(Header::Allow(rsip::headers::Allow::new(self.allow())));
        // Content-Length last, where the rest of the stack puts it.
        let length = request
            .headers
            .iter()
            .find(|h| matches!(h, Header::ContentLength(_)))
            .cloned();
        if let Some(length) = length {
            request
                .headers
                .retain(|h| !matches!(h, Header::ContentLength(_)));
            request.headers.push(length);
        }
    }

    /// The body with the package's media type, or none.
    fn set_event_body(&self, request: &mut Request, event: &str, body: Vec<u8>) {
        if body.is_empty() {
            return;
        }
        let content_type = self
            .package(event)
            .map_or("application/octet-stream", |p| p.content_type.as_str())
            .to_owned();
        crate::sip::response::set_body(
            &mut request.headers,
            &mut request.body,
            &content_type,
            body,
        );
    }
}

/// The event package of a request: `Event`'s token, without parameters
/// (RFC 6665 8.2.1).
fn event_of(message: &impl HeadersExt) -> Option<String> {
    message.headers().iter().find_map(|h| match h {
        Header::Event(e) => Some(e.value().split(';').next()?.trim().to_owned()),
        _ => None,
    })
}

/// `Expires` of a request or response, when present and readable.
fn expires_of(message: &impl HeadersExt) -> Option<Result<u32, ()>> {
    message.headers().iter().find_map(|h| match h {
        Header::Expires(e) => Some(delta_seconds(e.value()).ok_or(())),
        _ => None,
    })
}

/// delta-seconds (RFC 3261 25.1), capped at 2^32-1.
fn delta_seconds(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse::<u64>()
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)),
    )
}

fn seconds(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}
